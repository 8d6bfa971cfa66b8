# libdiana Python binding: DICOM datasets (include/diana/dataset.h).
# SPDX-License-Identifier: MIT

import collections
import contextlib
import json
import os
import threading
from ctypes import byref, c_size_t, c_void_p

from . import _lib
from ._lib import (DATASET_OPTIONS_VERSION, ERROR_CODES, DianaError, P_dataset,
                   api, diana_dataset_options, diana_element_fn)

OPEN_LENIENT = 1 << 0
OPEN_SKIP_PIXELS = 1 << 1
FOREACH_META = 1 << 0
JSON_PRETTY = 1 << 0
JSON_NO_BULK = 1 << 1
JSON_META = 1 << 2

#: diana_element.length of an element with undefined length (Element.length is None)
UNDEFINED_LENGTH = 0xFFFFFFFFFFFFFFFF

_ENOTFOUND = ERROR_CODES["ENOTFOUND"]
_EUNSUPPORTED = ERROR_CODES["EUNSUPPORTED"]
_EDICOM = ERROR_CODES["EDICOM"]


class Element(collections.namedtuple("Element", "tag vr depth vm length keyword path")):
    """One element as visited by :meth:`Dataset.elements`.

    ``tag`` is ``(group << 16) | element``; ``vr`` the two-letter VR ("UN"
    when unknown); ``depth`` 0 at top level and +1 inside each sequence item;
    ``vm`` the number of values (items for SQ, 0 when empty); ``length`` the value length in
    bytes or None when undefined; ``keyword`` the dictionary keyword ("" for
    private or unknown tags); ``path`` a key for :meth:`Dataset.get`.
    """

    __slots__ = ()

    @property
    def group(self):
        return self.tag >> 16

    @property
    def element(self):
        return self.tag & 0xFFFF


def _cstr(value, what):
    """bytes for a C string argument; refuses embedded NULs (C would truncate)."""
    if b"\0" in value:
        raise ValueError("embedded null byte in %s" % what)
    return value


def _path(path):
    return _cstr(os.fsencode(path), "path")


def _key(key):
    if isinstance(key, int) and not isinstance(key, bool):
        if not 0 <= key <= 0xFFFFFFFF:
            raise ValueError("tag out of range: %#x" % key)
        return b"%08X" % key
    if isinstance(key, str):
        return _cstr(key.encode("utf-8"), "key")
    raise TypeError("key must be str (keyword, tag or path) or int (tag), not %s"
                    % type(key).__name__)


def _options(lenient, skip_pixels, max_size):
    max_size = int(max_size)
    if not 0 <= max_size <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError("max_size must be >= 0")
    opts = diana_dataset_options()
    api.diana_dataset_options_init(byref(opts), DATASET_OPTIONS_VERSION)
    if lenient:
        opts.flags |= OPEN_LENIENT
    if skip_pixels:
        opts.flags |= OPEN_SKIP_PIXELS
    opts.max_size = max_size
    return opts


class Dataset:
    """A parsed DICOM dataset with its file meta information.

    ``Dataset(path)`` parses a file; :meth:`from_bytes` and :meth:`from_json`
    build one from memory. Release it with :meth:`close` or a ``with`` block
    (a forgotten dataset is released when garbage collected).

    Keys name elements by keyword ("PatientName"), tag ("0010,0010",
    "(0010,0010)", "00100010" or the int 0x00100010) or path through
    sequences ("OtherPatientIDsSequence[1].PatientID").

    Reading methods may run on several threads at once; :meth:`close` waits
    for them to finish.

    ``lenient``: accept nonconformant but unambiguous input (otherwise
    DianaError EDICOM). ``skip_pixels``: stop before Pixel Data.
    ``max_size``: refuse larger inputs (0: no limit).
    """

    def __init__(self, path, *, lenient=False, skip_pixels=False, max_size=0):
        self._setup()
        opts = _options(lenient, skip_pixels, max_size)
        out = P_dataset()
        api.diana_dataset_open(byref(out), _path(path), byref(opts))
        self._handle = out

    def _setup(self):
        self._handle = None
        self._cond = threading.Condition(threading.Lock())
        self._users = {}  # thread ident -> nesting depth of calls in progress

    @classmethod
    def _adopt(cls, handle):
        self = cls.__new__(cls)
        self._setup()
        self._handle = handle
        return self

    @classmethod
    def from_bytes(cls, data, *, lenient=False, skip_pixels=False, max_size=0):
        """Parse a DICOM file held in memory (bytes-like)."""
        if not isinstance(data, bytes):
            data = memoryview(data).tobytes()  # any bytes-like object; not an int
        opts = _options(lenient, skip_pixels, max_size)
        out = P_dataset()
        api.diana_dataset_open_memory(byref(out), data, len(data), byref(opts))
        return cls._adopt(out)

    @classmethod
    def from_json(cls, text):
        """Build a dataset from DICOM JSON (PS3.18 Annex F): a str, UTF-8
        bytes, or the parsed object (a dict, or a list of one dict)."""
        if isinstance(text, (dict, list)):
            text = json.dumps(text)
        if isinstance(text, str):
            text = text.encode("utf-8")
        elif not isinstance(text, (bytes, bytearray, memoryview)):
            raise TypeError("from_json expects str, bytes, dict or list, not %s"
                            % type(text).__name__)
        text = bytes(text)  # passed with its length: may hold no NUL
        out = P_dataset()
        api.diana_dataset_from_json(byref(out), text, len(text))
        return cls._adopt(out)

    # -- lifetime -----------------------------------------------------------

    @contextlib.contextmanager
    def _use(self):
        me = threading.get_ident()
        with self._cond:
            handle = self._handle
            if handle is None:
                raise ValueError("operation on a closed Dataset")
            self._users[me] = self._users.get(me, 0) + 1
        try:
            yield handle
        finally:
            with self._cond:
                n = self._users[me] - 1
                if n:
                    self._users[me] = n
                else:
                    del self._users[me]
                    if not self._users:
                        self._cond.notify_all()

    def close(self):
        """Release the dataset (idempotent). Waits for calls in progress on
        other threads."""
        cond = getattr(self, "_cond", None)
        if cond is None:
            return
        with cond:
            if self._users.get(threading.get_ident()):
                raise RuntimeError("Dataset.close() called from inside a call on it")
            while self._users:
                cond.wait()
            handle, self._handle = self._handle, None
        if handle:
            api.diana_dataset_free(handle)

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        if self._handle is None:
            raise ValueError("operation on a closed Dataset")
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # No call can be in progress when the last reference goes. During
        # interpreter shutdown the module may already be torn down.
        handle = getattr(self, "_handle", None)
        if handle:
            self._handle = None
            try:
                api.diana_dataset_free(handle)
            except Exception:
                pass

    def __reduce_ex__(self, protocol):
        # copy/pickle would share (and double-free) the C handle
        raise TypeError("Dataset cannot be copied or pickled; use to_bytes() and from_bytes()")

    def __repr__(self):
        return "<diana.Dataset %s at %#x>" % ("closed" if self.closed else "open", id(self))

    # -- reading ------------------------------------------------------------

    def _get(self, key):
        k = _key(key)
        out = c_void_p()
        with self._use() as h:
            api.diana_dataset_get(h, k, byref(out))
        return _lib.take_string(out)

    def get(self, key, default=None):
        """The value of `key` as text (UTF-8 decoded, padding removed,
        numbers formatted, multiple values joined with backslash), or
        `default` when the element is absent. Binary VRs and sequences raise
        DianaError EUNSUPPORTED (use :meth:`get_bytes`)."""
        try:
            return self._get(key)
        except DianaError as e:
            if e.code == _ENOTFOUND:
                return default
            raise

    def __getitem__(self, key):
        """Like :meth:`get`, but an absent element raises KeyError."""
        try:
            return self._get(key)
        except DianaError as e:
            if e.code == _ENOTFOUND:
                raise KeyError(key) from e
            raise

    def __contains__(self, key):
        try:
            self._get(key)
        except DianaError as e:
            if e.code == _ENOTFOUND:
                return False
            if e.code in (_EUNSUPPORTED, _EDICOM):  # present, but not as text
                return True
            raise
        return True

    def get_bytes(self, key, default=None):
        """The raw value bytes of `key` as stored (binary VRs little endian,
        no character set conversion), or `default` when absent."""
        k = _key(key)
        out = c_void_p()
        n = c_size_t()
        try:
            with self._use() as h:
                api.diana_dataset_get_bytes(h, k, byref(out), byref(n))
        except DianaError as e:
            if e.code == _ENOTFOUND:
                return default
            raise
        return _lib.take_bytes(out, n.value)

    def elements(self, meta=False):
        """Every element in tag order, depth first (a sequence, then the
        elements of each of its items), as a list of :class:`Element`.
        `meta`: start with the file meta group (0002)."""
        found = []
        failed = []

        def visit(p, user_data):
            try:
                e = p.contents
                found.append(Element(
                    e.tag,
                    e.vr.decode("ascii", "replace"),
                    e.depth,
                    e.vm,
                    None if e.length == UNDEFINED_LENGTH else e.length,
                    (e.keyword or b"").decode("utf-8"),
                    (e.path or b"").decode("utf-8"),
                ))
                return 0
            except BaseException as exc:  # noqa: B902 - re-raised after the C call
                failed.append(exc)
                return 1

        callback = diana_element_fn(visit)  # referenced until the call returns
        with self._use() as h:
            rc = api.diana_dataset_foreach(h, FOREACH_META if meta else 0, callback, None)
            if failed:
                raise failed[0]
            if rc < 0:
                raise _lib.last_error(rc)
        return found

    def to_json(self, pretty=False, bulk=True, meta=False):
        """DICOM JSON (PS3.18 Annex F) as a str. ``bulk=False`` leaves out
        binary values longer than 1024 bytes; ``meta=True`` adds the file
        meta group (not part of Annex F)."""
        flags = ((JSON_PRETTY if pretty else 0) | (0 if bulk else JSON_NO_BULK)
                 | (JSON_META if meta else 0))
        out = c_void_p()
        with self._use() as h:
            api.diana_dataset_to_json(h, flags, byref(out))
        return _lib.take_string(out)

    def to_dict(self, bulk=True, meta=False):
        """The DICOM JSON model parsed: {"GGGGEEEE": {"vr": ..., "Value": [...]}}."""
        return json.loads(self.to_json(bulk=bulk, meta=meta))

    # -- writing ------------------------------------------------------------

    def to_bytes(self):
        """The dataset as a DICOM Part 10 file (preamble, DICM, meta, data)."""
        out = c_void_p()
        n = c_size_t()
        with self._use() as h:
            api.diana_dataset_save_memory(h, byref(out), byref(n))
        return _lib.take_bytes(out, n.value)

    def save(self, path):
        """Write a DICOM Part 10 file atomically (mode 0600 when new)."""
        p = _path(path)
        with self._use() as h:
            api.diana_dataset_save(h, p)
