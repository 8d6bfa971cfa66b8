# libdiana Python binding: the process-wide log handler.
# SPDX-License-Identifier: MIT

import logging

from . import _lib
from ._lib import api

LOG_NONE = 0
LOG_ERROR = 1
LOG_WARNING = 2
LOG_INFO = 3
LOG_DEBUG = 4

_PY_LEVELS = {
    LOG_ERROR: logging.ERROR,
    LOG_WARNING: logging.WARNING,
    LOG_INFO: logging.INFO,
    LOG_DEBUG: logging.DEBUG,
}

_handler = None  # the Python callable behind the trampoline


def _report(handler):
    # An exception cannot travel through C: report it and carry on.
    try:
        logging.getLogger("diana").exception(
            "exception in the diana log handler %r (ignored)", handler)
    except Exception:  # pragma: no cover - reporting must never raise either
        pass


def _trampoline(level, domain, message, user_data):
    # May run on any thread, concurrently; must not call into libdiana.
    handler = _handler
    if handler is None:
        return
    try:
        handler(level, _lib._decode(domain), _lib._decode(message))
    except BaseException:  # noqa: B902 - nothing may propagate into C
        _report(handler)


# One trampoline for the life of the process: C may still be inside a call to
# it while the handler is being replaced, so it is never released.
_c_trampoline = _lib.diana_log_fn(_trampoline)
_c_null = _lib.diana_log_fn()  # a NULL diana_log_fn (ctypes refuses None here)


def set_log_handler(handler, level=None):
    """Install ``handler(level, domain, message)`` as libdiana's log handler.

    ``handler`` receives the level (``LOG_ERROR`` .. ``LOG_DEBUG``), the module
    name ("core", "dicom", "error", ...) and a one-line message (never DICOM
    element values). It may be called from any thread, concurrently, and must
    not call libdiana. Exceptions it raises are reported on the "diana"
    :mod:`logging` logger and otherwise ignored. ``None`` removes the handler.

    ``level``, when given, is passed to :func:`set_log_level`; otherwise
    libdiana delivers up to ``LOG_WARNING`` unless a level was set before.
    Returns the previous Python handler (or None).
    """
    global _handler
    if handler is not None and not callable(handler):
        raise TypeError("log handler must be callable or None")
    if level is not None:
        level = _check_level(level)
    with _lib.lock:
        previous = _handler
        if handler is None:
            api.diana_log_set_handler(_c_null, None)
            _handler = None
        else:
            _handler = handler
            api.diana_log_set_handler(_c_trampoline, None)
        if level is not None:
            set_log_level(level)
    return previous


def get_log_handler():
    """The Python log handler currently installed, or None."""
    return _handler


def set_log_level(level):
    """Deliver messages up to ``level`` (``LOG_NONE`` .. ``LOG_DEBUG``);
    returns the previous level."""
    return api.diana_log_set_level(_check_level(level))


def _check_level(level):
    level = int(level)
    if not LOG_NONE <= level <= LOG_DEBUG:
        raise ValueError("log level must be between LOG_NONE and LOG_DEBUG, not %d" % level)
    return level


def logging_handler(logger=None):
    """A handler for :func:`set_log_handler` that forwards to :mod:`logging`.

    Messages go to ``logger.getChild(domain)`` (default logger: "diana"),
    with libdiana levels mapped to logging's ERROR/WARNING/INFO/DEBUG.
    Example: ``diana.set_log_handler(diana.logging_handler(), diana.LOG_INFO)``.
    """
    base = logger if logger is not None else logging.getLogger("diana")

    def forward(level, domain, message):
        base.getChild(domain).log(_PY_LEVELS.get(level, logging.DEBUG), "%s", message)

    return forward


def _uninstall():
    # at exit: no call into a finalising interpreter
    global _handler
    if _lib.has("diana_log_set_handler"):
        api.diana_log_set_handler(_c_null, None)
    _handler = None
