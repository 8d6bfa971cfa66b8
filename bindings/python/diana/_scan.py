# libdiana Python binding: key file lookups and the leak scanner
# (include/diana/profile.h, doc/deid-scan.md).
# SPDX-License-Identifier: MIT

import collections
import contextlib
import json
import os
import threading
from ctypes import byref, c_void_p

from . import _lib
from ._dataset import Dataset, _cstr, _key, _path
from ._deid import _ACTION_NAMES, ACTION_REPLACE, Profile, _option_bits
from ._lib import ERROR_CODES, DianaError, P_scanner, api

_ELEAK = ERROR_CODES["ELEAK"]

#: columns of a key file, in file order
KEY_COLUMNS = (
    "OriginalPatientName", "OriginalPatientID", "OriginalPatientBirthDate",
    "OriginalAccessionNumber", "OriginalStudyInstanceUID", "OriginalStudyDate",
    "PseudoPatientName", "PseudoPatientID", "PseudoPatientBirthDate",
    "PseudoAccessionNumber", "PseudoStudyInstanceUID", "PseudoStudyDate",
)


class Finding(collections.namedtuple("Finding", "where kind")):
    """Where a protected value was found, never the value itself.

    ``where``: a dataset key ("00081115[0].0020000E"), "file meta 00020016",
    "raw bytes of 00111001", "file name" or "preamble"; ``kind``: "name",
    "id", "date", "uid" or "text".
    """

    __slots__ = ()


def key_lookup(key_file, column, value):
    """The first row of a key file whose ``column`` (e.g. "PseudoPatientID")
    equals ``value``, as a dict of the 12 columns; None when no row matches.
    Raises DianaError (EINVAL for an unknown column or a file that is not a
    key file, ENOTFOUND for a missing file)."""
    if column not in KEY_COLUMNS:
        raise ValueError("unknown key file column %r" % (column,))
    if not os.path.exists(key_file):
        raise DianaError(ERROR_CODES["ENOTFOUND"], "no such key file")
    out = c_void_p()
    try:
        api.diana_key_lookup(_path(key_file), column.encode("ascii"),
                             _cstr(value.encode("utf-8"), "value"), byref(out))
    except DianaError as e:
        if e.code == ERROR_CODES["ENOTFOUND"]:
            return None
        raise
    return json.loads(_lib.take_string(out))


class Scanner:
    """A leak scanner: protected values searched for in de-identified files.

        with diana.Scanner(key_files=["key.csv"], originals=["in/"]) as s:
            for f in s.scan_file("out/1.dcm"):
                print(f.where, f.kind)

    Protected values come from :meth:`add_value` (a person name as
    "Family^Given" is also searched word by word and as "Given Family"),
    :meth:`add_key_file` (the Original* columns) and :meth:`add_dataset`
    (every value the basic profile changes in an original). Matching ignores
    case and diacritics; see doc/deid-scan.md for what is searched where.

    When the outputs were made with options or overrides, say so first
    (``options=["retain-long-full-dates"]``, ``overrides={"StationName":
    "keep"}`` or ``profile=the_profile``): the values they retain on purpose
    are then not protected; everything else still is.

    :meth:`scan_file` returns the findings (an empty list: clean); a file
    that cannot be scanned raises DianaError (EDICOM, ENOTFOUND...): it
    fails closed. Scans may run on several threads at once; adding values
    waits for them.
    """

    def __init__(self, *, values=(), key_files=(), originals=(), options=(), overrides=None,
                 profile=None):
        self._handle = None
        self._cond = threading.Condition(threading.Lock())
        self._scans = 0
        self._writing = False
        out = P_scanner()
        api.diana_scanner_new(byref(out))
        self._handle = out
        try:
            if profile is not None:
                self.set_profile(profile)
            if options:
                self.set_options(options)
            for k, action in (overrides or {}).items():
                self.set_action(k, action)
            for v in values:
                self.add_value(v)
            for k in key_files:
                self.add_key_file(k)
            for o in originals:
                self.add_dataset(o)
        except BaseException:
            self.close()
            raise

    # -- lifetime -----------------------------------------------------------

    @contextlib.contextmanager
    def _write(self):
        with self._cond:
            while self._scans or self._writing:
                self._cond.wait()
            if self._handle is None:
                raise ValueError("operation on a closed Scanner")
            self._writing = True
        try:
            yield self._handle
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    @contextlib.contextmanager
    def _read(self):
        with self._cond:
            while self._writing:
                self._cond.wait()
            if self._handle is None:
                raise ValueError("operation on a closed Scanner")
            self._scans += 1
        try:
            yield self._handle
        finally:
            with self._cond:
                self._scans -= 1
                self._cond.notify_all()

    def close(self):
        """Release the scanner (idempotent); waits for scans in progress."""
        cond = getattr(self, "_cond", None)
        if cond is None:
            return
        with cond:
            while self._scans or self._writing:
                cond.wait()
            handle, self._handle = self._handle, None
        if handle:
            api.diana_scanner_free(handle)

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        if self._handle is None:
            raise ValueError("operation on a closed Scanner")
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle:
            self._handle = None
            try:
                api.diana_scanner_free(handle)
            except Exception:
                pass

    def __reduce_ex__(self, protocol):
        raise TypeError("Scanner cannot be copied or pickled")

    def __repr__(self):
        return "<diana.Scanner%s>" % (" closed" if self.closed else "")

    # -- how the outputs were made (before any value is added) --------------

    def set_options(self, options):
        """The options the outputs were made with: names ("retain-uids", the
        names of ``diana anon --option``) or ``DEID_*`` bits. Values they
        retain are not protected. Only before values are added."""
        bits = _option_bits(options)
        with self._write() as h:
            api.diana_scanner_set_options(h, bits)

    def set_action(self, key, action):
        """An override of the outputs' profile: "keep" (not protected),
        "remove", "empty", ``("replace", text)`` or "default"."""
        if isinstance(action, tuple):
            if len(action) != 2 or action[0] != "replace":
                raise ValueError("a replacement is ('replace', text)")
            action = ACTION_REPLACE  # the text itself is not needed
        elif isinstance(action, str):
            if action not in _ACTION_NAMES:
                raise ValueError("unknown action %r (keep, remove, empty, default, ('replace', text))"
                                 % action)
            action = _ACTION_NAMES[action]
        with self._write() as h:
            api.diana_scanner_set_action(h, _key(key), int(action))

    def set_profile(self, profile):
        """The outputs were made with this :class:`Profile` (its options and
        overrides). Only before values are added."""
        if not isinstance(profile, Profile):
            raise TypeError("profile must be a diana.Profile")
        with self._write() as h, profile._use() as p:
            api.diana_scanner_set_profile(h, p)

    # -- protected values ---------------------------------------------------

    def add_value(self, value):
        """Protect one value (str, at least 3 bytes of UTF-8)."""
        if not isinstance(value, str):
            raise TypeError("value must be str, not %s" % type(value).__name__)
        data = _cstr(value.encode("utf-8"), "value")
        with self._write() as h:
            api.diana_scanner_add_value(h, data)

    def add_key_file(self, path):
        """Protect the Original* columns of every row of a key file."""
        with self._write() as h:
            api.diana_scanner_add_key_file(h, _path(path))

    def add_dataset(self, original):
        """Protect every value the basic profile changes in an original: a
        :class:`Dataset`, or the path of a file (opened leniently)."""
        if isinstance(original, Dataset):
            with self._write() as h, original._use() as d:
                api.diana_scanner_add_dataset(h, d)
            return
        with Dataset(original, lenient=True) as ds:
            self.add_dataset(ds)

    # -- scanning -----------------------------------------------------------

    def scan_file(self, path):
        """Scan one output file: a list of :class:`Finding` (empty: clean).
        Raises DianaError when the file cannot be scanned (EDICOM: not
        readable DICOM; ENOTFOUND; EINVAL: the scanner holds no value)."""
        report = c_void_p()
        with self._read() as h:
            rc = api.diana_scanner_scan_file(h, _path(path), byref(report))
            if rc < 0 and rc != _ELEAK:
                err = _lib.last_error(rc)
                if report.value:
                    api.diana_free(report)
                raise err
        text = _lib.take_string(report)
        return [Finding(f["where"], f["kind"]) for f in json.loads(text)]
