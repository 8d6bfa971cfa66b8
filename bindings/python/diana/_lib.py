# libdiana Python binding: loading the shared library and declaring its C API.
# SPDX-License-Identifier: MIT
"""Low-level ctypes declarations of libdiana (include/diana/*.h).

Nothing here is public API: use the ``diana`` package. Every function of the
public headers is declared in ``DECLARATIONS`` with its exact C signature;
tests/python parses the headers and fails when one is missing or differs.

The library is found by its SONAME ``libdiana.so.0``; the environment
variable ``DIANA_LIBRARY`` overrides it with a file path (build trees).
"""

import ctypes
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_char, c_char_p,
                    c_int, c_int32, c_size_t, c_uint8, c_uint32, c_uint64,
                    c_void_p)

SONAME = "libdiana.so.0"
#: major version of the C API this binding is written for
API_MAJOR = 0
#: the binding declares the API up to this version
API_VERSION = (0, 1)

# ---------------------------------------------------------------------------
# Types (one ctypes type per C type; opaque handles are distinct structures so
# that passing the wrong handle raises ctypes.ArgumentError)
# ---------------------------------------------------------------------------


class diana_dataset(Structure):
    """Opaque ``struct diana_dataset``: only ever used through a POINTER."""


class diana_scanner(Structure):
    """Opaque ``struct diana_scanner``: only ever used through a POINTER."""


class diana_profile(Structure):
    """Opaque ``struct diana_profile``: only ever used through a POINTER."""


class diana_deid_result(Structure):
    """Opaque ``struct diana_deid_result``: only ever used through a POINTER."""


#: DIANA_PROFILE_OPTIONS_VERSION this structure layout corresponds to
PROFILE_OPTIONS_VERSION = 1


class diana_profile_options(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("options", c_uint32),
        ("secret_file", c_char_p),
        ("secret", c_char_p),
        ("secret_len", c_size_t),
        ("key_file", c_char_p),
        ("date_shift_max_days", c_int32),
    ]


#: DIANA_DATASET_OPTIONS_VERSION this structure layout corresponds to
DATASET_OPTIONS_VERSION = 1


class diana_dataset_options(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("flags", c_uint32),
        ("max_size", c_uint64),
    ]


#: DIANA_ELEMENT_VERSION this structure layout corresponds to
ELEMENT_VERSION = 1


class diana_element(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("tag", c_uint32),
        ("vr", c_char * 4),
        ("depth", c_int32),
        ("vm", c_uint32),
        ("length", c_uint64),
        ("keyword", c_char_p),
        ("path", c_char_p),
    ]


diana_log_fn = CFUNCTYPE(None, c_int, c_char_p, c_char_p, c_void_p)
diana_element_fn = CFUNCTYPE(c_int, POINTER(diana_element), c_void_p)

#: C type names of the headers -> ctypes types (used by the header check)
C_TYPES = {
    "diana_dataset": diana_dataset,
    "diana_scanner": diana_scanner,
    "diana_profile": diana_profile,
    "diana_profile_options": diana_profile_options,
    "diana_deid_result": diana_deid_result,
    "diana_dataset_options": diana_dataset_options,
    "diana_element": diana_element,
    "diana_log_fn": diana_log_fn,
    "diana_element_fn": diana_element_fn,
}

#: C macros giving the version of a versioned struct -> the layout we declare
STRUCT_VERSIONS = {
    "DIANA_DATASET_OPTIONS_VERSION": (diana_dataset_options, DATASET_OPTIONS_VERSION),
    "DIANA_ELEMENT_VERSION": (diana_element, ELEMENT_VERSION),
    "DIANA_PROFILE_OPTIONS_VERSION": (diana_profile_options, PROFILE_OPTIONS_VERSION),
}

P_dataset = POINTER(diana_dataset)
P_scanner = POINTER(diana_scanner)
P_profile = POINTER(diana_profile)
P_result = POINTER(diana_deid_result)
# Memory handed out by libdiana as char ** / uint8_t **: received as void *
# so the pointer is kept for diana_free() (a c_char_p would lose it).
P_owned = POINTER(c_void_p)

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class DianaError(Exception):
    """A libdiana call failed.

    ``code`` is the negative DIANA_E* value (compare it with ``diana.ENOTFOUND``
    and friends), ``message`` the one-line message libdiana recorded for the
    calling thread (it never contains DICOM element values).
    """

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message

    @property
    def name(self):
        """Symbolic name of ``code`` without the DIANA_ prefix, e.g. "ENOTFOUND"."""
        return ERROR_NAMES.get(self.code, str(self.code))

    def __str__(self):
        return "%s [%s]" % (self.message or strerror(self.code), self.name)


ERROR_CODES = {
    "OK": 0, "ERROR": -1, "EINVAL": -2, "ENOMEM": -3, "EUNSUPPORTED": -4,
    "ENOTFOUND": -5, "EIO": -6, "EDICOM": -7, "ETIMEDOUT": -8, "ECANCELLED": -9,
    "EAUTH": -10, "ETLS": -11, "ECONNECT": -12, "EPACS": -13, "EUSER": -14,
    "ENOTINIT": -15, "EEXISTS": -16, "ELEAK": -17, "ENOSPC": -18,
}
ERROR_NAMES = {v: k for k, v in ERROR_CODES.items()}


def _decode(b):
    # for library-produced diagnostics: never fail while reporting an error
    return b.decode("utf-8", "replace") if b else ""


def last_error(code):
    """DianaError for `code`, with the calling thread's message.

    The message is taken only when the thread-local code matches: a code that
    did not come from libdiana's error slot (e.g. a callback's return value
    passed through) gets the static description instead of a stale message.
    """
    if api.diana_error_code() == code:
        msg = _decode(api.diana_error_message())
    else:
        msg = ""
    return DianaError(code, msg or strerror(code))


def _check(result, func, args):
    # errcheck runs on the calling thread right after the call: the
    # thread-local message is the one of this call.
    if result < 0:
        raise last_error(result)
    return result


def strerror(code):
    return _decode(api.diana_strerror(code))


# ---------------------------------------------------------------------------
# Declarations: name -> (restype, argtypes, errcheck?, since)
# Keep in the order of the headers. restype/argtypes are the exact mapping of
# the C prototype (see tests/python/headers.py for the rules).
# ---------------------------------------------------------------------------

CHECKED = True

DECLARATIONS = {
    # common.h
    "diana_error_code": (c_int, [], False, (0, 1)),
    "diana_error_message": (c_char_p, [], False, (0, 1)),
    "diana_error_clear": (None, [], False, (0, 1)),
    "diana_strerror": (c_char_p, [c_int], False, (0, 1)),
    "diana_init": (c_int, [], CHECKED, (0, 1)),
    "diana_shutdown": (c_int, [], CHECKED, (0, 1)),
    "diana_version": (c_int, [POINTER(c_int), POINTER(c_int), POINTER(c_int)], False, (0, 1)),
    "diana_version_string": (c_char_p, [], False, (0, 1)),
    "diana_features": (c_uint32, [], False, (0, 1)),
    "diana_log_set_handler": (None, [diana_log_fn, c_void_p], False, (0, 1)),
    "diana_log_set_level": (c_int, [c_int], False, (0, 1)),
    "diana_free": (None, [c_void_p], False, (0, 1)),
    # dataset.h
    "diana_dataset_options_init": (c_int, [POINTER(diana_dataset_options), c_uint32], CHECKED, (0, 1)),
    "diana_dataset_open": (c_int, [POINTER(P_dataset), c_char_p, POINTER(diana_dataset_options)], CHECKED, (0, 1)),
    "diana_dataset_open_memory": (c_int, [POINTER(P_dataset), c_char_p, c_size_t, POINTER(diana_dataset_options)], CHECKED, (0, 1)),
    "diana_dataset_from_json": (c_int, [POINTER(P_dataset), c_char_p, c_size_t], CHECKED, (0, 1)),
    "diana_dataset_free": (None, [P_dataset], False, (0, 1)),
    "diana_dataset_get": (c_int, [P_dataset, c_char_p, P_owned], CHECKED, (0, 1)),
    "diana_dataset_get_bytes": (c_int, [P_dataset, c_char_p, P_owned, POINTER(c_size_t)], CHECKED, (0, 1)),
    # not CHECKED: the wrapper tells a callback's exception from a C error
    "diana_dataset_foreach": (c_int, [P_dataset, c_uint32, diana_element_fn, c_void_p], False, (0, 1)),
    "diana_dataset_to_json": (c_int, [P_dataset, c_uint32, P_owned], CHECKED, (0, 1)),
    "diana_dataset_save_memory": (c_int, [P_dataset, P_owned, POINTER(c_size_t)], CHECKED, (0, 1)),
    "diana_dataset_save": (c_int, [P_dataset, c_char_p], CHECKED, (0, 1)),
    # profile.h
    "diana_deid_option_from_name": (c_int, [c_char_p, POINTER(c_uint32)], CHECKED, (0, 1)),
    "diana_deid_option_name": (c_char_p, [c_uint32], False, (0, 1)),
    "diana_profile_options_init": (c_int, [POINTER(diana_profile_options), c_uint32], CHECKED, (0, 1)),
    "diana_profile_new": (c_int, [POINTER(P_profile), POINTER(diana_profile_options)], CHECKED, (0, 1)),
    "diana_profile_free": (None, [P_profile], False, (0, 1)),
    "diana_profile_set_action": (c_int, [P_profile, c_char_p, c_int, c_char_p], CHECKED, (0, 1)),
    "diana_deid_result_get": (c_char_p, [P_result, c_char_p], False, (0, 1)),
    "diana_deid_result_free": (None, [P_result], False, (0, 1)),
    "diana_anonymize_dataset": (c_int, [P_profile, P_dataset, POINTER(P_result)], CHECKED, (0, 1)),
    "diana_anonymize_file": (c_int, [P_profile, c_char_p, c_char_p, POINTER(P_result)], CHECKED, (0, 1)),
    "diana_anonymize_memory": (c_int, [P_profile, c_char_p, c_size_t, P_owned, POINTER(c_size_t),
                                       POINTER(P_result)], CHECKED, (0, 1)),
    "diana_anonymize_into": (c_int, [P_profile, c_char_p, c_char_p, c_uint32, P_owned, POINTER(P_result)],
                             CHECKED, (0, 1)),
    "diana_anonymize_sync": (c_int, [c_char_p], CHECKED, (0, 1)),
    "diana_scanner_set_profile": (c_int, [P_scanner, P_profile], CHECKED, (0, 1)),
    # scan.h
    "diana_key_lookup": (c_int, [c_char_p, c_char_p, c_char_p, P_owned], CHECKED, (0, 1)),
    "diana_scanner_new": (c_int, [POINTER(P_scanner)], CHECKED, (0, 1)),
    "diana_scanner_free": (None, [P_scanner], False, (0, 1)),
    "diana_scanner_set_options": (c_int, [P_scanner, c_uint32], CHECKED, (0, 1)),
    "diana_scanner_set_action": (c_int, [P_scanner, c_char_p, c_int], CHECKED, (0, 1)),
    "diana_scanner_add_value": (c_int, [P_scanner, c_char_p], CHECKED, (0, 1)),
    "diana_scanner_add_dataset": (c_int, [P_scanner, P_dataset], CHECKED, (0, 1)),
    "diana_scanner_add_key_file": (c_int, [P_scanner, c_char_p], CHECKED, (0, 1)),
    # not CHECKED: DIANA_ELEAK comes with a report the wrapper returns
    "diana_scanner_scan_file": (c_int, [P_scanner, c_char_p, P_owned], False, (0, 1)),
}

# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


class _Missing:
    """Stands for a declared function the loaded library does not export."""

    def __init__(self, name, since):
        self.__name__ = name
        self.since = since

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(
            "%s (libdiana >= %d.%d) is not exported by %s (libdiana %s)"
            % (self.__name__, self.since[0], self.since[1], path, version_string))


class _Api:
    """The declared functions, as attributes named like the C functions."""


def _load():
    name = os.environ.get("DIANA_LIBRARY") or SONAME
    try:
        return ctypes.CDLL(name), name
    except OSError as e:
        hint = "" if os.environ.get("DIANA_LIBRARY") else (
            " (install libdiana, or set DIANA_LIBRARY to the path of libdiana.so)")
        raise ImportError("cannot load libdiana from %r: %s%s" % (name, e, hint)) from e


cdll, path = _load()

try:
    _version = cdll.diana_version
    _version_string = cdll.diana_version_string
except AttributeError as e:
    raise ImportError("%s is not libdiana: %s" % (path, e)) from e
_version.restype = c_int
_version.argtypes = [POINTER(c_int), POINTER(c_int), POINTER(c_int)]
_version_string.restype = c_char_p
_version_string.argtypes = []
_maj, _min, _pat = c_int(), c_int(), c_int()
_version(byref(_maj), byref(_min), byref(_pat))
version_info = (_maj.value, _min.value, _pat.value)
version_string = _version_string().decode("ascii", "replace")
if version_info[0] != API_MAJOR:
    raise ImportError(
        "libdiana %s at %s is incompatible with this binding (written for major version %d)"
        % (version_string, path, API_MAJOR))

# The declarations of later headers live in one file per module
# (_decl_<module>.py, each a DECLARATIONS dict built from the names above).
from . import _decl_session, _decl_dose  # noqa: E402  (needs the types above)
from . import _decl_job  # noqa: E402  (after _decl_session: uses its session type)
from . import _decl_pipeline  # noqa: E402

for _mod in (_decl_session, _decl_dose, _decl_job, _decl_pipeline):
    for _name in _mod.DECLARATIONS:
        if _name in DECLARATIONS:
            raise ImportError("%s declared twice" % _name)
    DECLARATIONS.update(_mod.DECLARATIONS)

api = _Api()
missing = []  # declared functions the loaded library lacks

for _name, (_res, _args, _checked, _since) in DECLARATIONS.items():
    try:
        _fn = getattr(cdll, _name)
    except AttributeError:
        setattr(api, _name, _Missing(_name, _since))
        missing.append(_name)
        continue
    _fn.restype = _res
    _fn.argtypes = _args
    if _checked:
        _fn.errcheck = _check
    setattr(api, _name, _fn)


def has(name):
    """True when the loaded library exports the declared function `name`."""
    return not isinstance(getattr(api, name), _Missing)


# ---------------------------------------------------------------------------
# Owned memory helpers
# ---------------------------------------------------------------------------


def take_bytes(ptr, length):
    """Copy `length` bytes from an owned pointer (c_void_p) and diana_free() it."""
    try:
        return ctypes.string_at(ptr.value, length) if ptr.value else b""
    finally:
        api.diana_free(ptr)


def take_string(ptr):
    """Copy a NUL-terminated UTF-8 string from an owned pointer and diana_free() it."""
    try:
        if not ptr.value:
            raise DianaError(ERROR_CODES["ERROR"], "libdiana returned NULL for a string")
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        api.diana_free(ptr)


lock = threading.Lock()  # guards process-wide settings (log handler)
