# libdiana Python binding: de-identification (include/diana/profile.h).
# SPDX-License-Identifier: MIT

import contextlib
import concurrent.futures
import os
import threading
from ctypes import byref, c_size_t, c_uint32, c_void_p

from . import _lib
from ._dataset import _cstr, _key, _path
from ._lib import (PROFILE_OPTIONS_VERSION, DianaError, P_profile, P_result,
                   api, diana_profile_options)

# diana_deid_option_t
DEID_RETAIN_SAFE_PRIVATE = 1 << 0
DEID_RETAIN_UIDS = 1 << 1
DEID_RETAIN_DEVICE_IDENTITY = 1 << 2
DEID_RETAIN_INSTITUTION_IDENTITY = 1 << 3
DEID_RETAIN_PATIENT_CHARACTERISTICS = 1 << 4
DEID_RETAIN_LONG_FULL_DATES = 1 << 5
DEID_RETAIN_LONG_MODIFIED_DATES = 1 << 6
DEID_CLEAN_DESCRIPTORS = 1 << 7
DEID_CLEAN_STRUCTURED_CONTENT = 1 << 8
DEID_CLEAN_GRAPHICS = 1 << 9

# diana_deid_action_t
ACTION_DEFAULT = 0
ACTION_KEEP = 1
ACTION_REMOVE = 2
ACTION_EMPTY = 3
ACTION_REPLACE = 4

# diana_anon_flag_t
ANON_NO_SYNC = 1 << 0
ANON_NO_WRITEBACK = 1 << 1

_ACTION_NAMES = {"default": ACTION_DEFAULT, "keep": ACTION_KEEP, "remove": ACTION_REMOVE,
                 "empty": ACTION_EMPTY}

#: fields of a result (the new values); "Original" + field gives the original
RESULT_FIELDS = ("PatientID", "PatientName", "PatientBirthDate", "AccessionNumber",
                 "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate")


def sync_folder(path):
    """Flush everything written under `path` to disk (after
    :meth:`Profile.anonymize_into` with ``sync=False``)."""
    api.diana_anonymize_sync(_path(path))


def option_names():
    """The names of the standard options, in bit order ("retain-safe-private", ...)."""
    return [api.diana_deid_option_name(1 << i).decode("ascii") for i in range(10)]


def _option_bits(options):
    bits = 0
    for o in options or ():
        if isinstance(o, int) and not isinstance(o, bool):
            bits |= o
            continue
        if not isinstance(o, str):
            raise TypeError("options are names (str) or DEID_* bits (int)")
        out = c_uint32()
        api.diana_deid_option_from_name(_cstr(o.encode("utf-8"), "option"), byref(out))
        bits |= out.value
    return bits


def _take_result(res):
    """dict of a diana_deid_result (absent fields left out); frees it."""
    try:
        out = {}
        for f in RESULT_FIELDS:
            for name in (f, "Original" + f):
                v = api.diana_deid_result_get(res, name.encode("ascii"))
                if v is not None:
                    out[name] = v.decode("utf-8", "replace")
        return out
    finally:
        api.diana_deid_result_free(res)


class Profile:
    """A de-identification profile: PS3.15 Basic Profile + options, keyed by
    the project secret (there is no default secret).

    ``Profile(secret_file="project.key", options=["retain-uids"],
    key="key.csv", overrides={"StudyDescription": "keep"})``

    ``options``: names ("retain-long-modified-dates", "clean_descriptors",
    ...) or ``DEID_*`` bits. ``overrides``: {keyword or tag: action} where
    action is "keep", "remove", "empty", an ``ACTION_*`` constant, or
    ``("replace", text)``. ``secret``: the secret as bytes instead of a file.
    ``key``: CSV key file, one row per study. ``date_shift_max_days``: range
    of Retain Long Modified Dates shifts (default 365).

    Once built, a profile may be used by several threads at once.
    """

    def __init__(self, secret_file=None, *, secret=None, options=(), key=None, overrides=None,
                 date_shift_max_days=0):
        self._handle = None
        self._lock = threading.Lock()
        opts = diana_profile_options()
        api.diana_profile_options_init(byref(opts), PROFILE_OPTIONS_VERSION)
        opts.options = _option_bits(options)
        if secret_file is not None:
            opts.secret_file = _path(secret_file)
        if secret is not None:
            secret = bytes(secret)
            opts.secret = secret
            opts.secret_len = len(secret)
        if key is not None:
            opts.key_file = _path(key)
        opts.date_shift_max_days = int(date_shift_max_days)
        out = P_profile()
        api.diana_profile_new(byref(out), byref(opts))
        self._handle = out
        try:
            for k, action in (overrides or {}).items():
                self.set_action(k, action)
        except BaseException:
            self.close()
            raise

    def set_action(self, key, action, value=None):
        """Override one attribute (keyword or tag) wherever it occurs."""
        if isinstance(action, tuple):
            if len(action) != 2 or action[0] != "replace":
                raise ValueError("a replacement is ('replace', text)")
            action, value = ACTION_REPLACE, action[1]
        elif isinstance(action, str):
            if action not in _ACTION_NAMES:
                raise ValueError("unknown action %r (keep, remove, empty, default, ('replace', text))"
                                 % action)
            action = _ACTION_NAMES[action]
        v = None if value is None else _cstr(str(value).encode("utf-8"), "value")
        with self._use() as h:
            api.diana_profile_set_action(h, _key(key), int(action), v)

    @contextlib.contextmanager
    def _use(self):
        h = self._handle
        if h is None:
            raise ValueError("operation on a closed Profile")
        yield h

    def anonymize_file(self, in_path, out_path):
        """De-identify a file into `out_path` (written atomically); returns
        the result dict (new values and their "Original*" counterparts)."""
        res = P_result()
        with self._use() as h:
            api.diana_anonymize_file(h, _path(in_path), _path(out_path), byref(res))
        return _take_result(res)

    def anonymize_bytes(self, data):
        """De-identify a DICOM file held in memory: (bytes, result dict)."""
        if not isinstance(data, bytes):
            data = memoryview(data).tobytes()
        out = c_void_p()
        n = c_size_t()
        res = P_result()
        with self._use() as h:
            api.diana_anonymize_memory(h, data, len(data), byref(out), byref(n), byref(res))
        result = _take_result(res)
        return _lib.take_bytes(out, n.value), result

    def anonymize_into(self, in_path, out_dir, sync=True, writeback=True):
        """De-identify a file into the tree
        OUT_DIR/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm:
        (output path, result dict), or (None, None) for a DICOMDIR (nothing
        written). ``sync=False`` skips the per-file fsync (the output is
        handed to the kernel's writeback at once); call :func:`sync_folder`
        once at the end. ``writeback=False`` (with ``sync=False``) does not
        start the writeback either: for scratch outputs never synced."""
        out = c_void_p()
        res = P_result()
        flags = 0 if sync else ANON_NO_SYNC | (0 if writeback else ANON_NO_WRITEBACK)
        with self._use() as h:
            rc = api.diana_anonymize_into(h, _path(in_path), _path(out_dir), flags, byref(out), byref(res))
        if rc == 1:
            return None, None
        result = _take_result(res)
        return _lib.take_string(out), result

    def anonymize_dataset(self, ds):
        """De-identify a :class:`Dataset` in place; returns the result dict."""
        res = P_result()
        with self._use() as h, ds._use() as d:
            api.diana_anonymize_dataset(h, d, byref(res))
        return _take_result(res)

    def close(self):
        """Release the profile (idempotent): closes its key file."""
        with self._lock:
            h, self._handle = self._handle, None
        if h:
            api.diana_profile_free(h)

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        if self._handle is None:
            raise ValueError("operation on a closed Profile")
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        h = getattr(self, "_handle", None)
        if h:
            self._handle = None
            try:
                api.diana_profile_free(h)
            except Exception:
                pass

    def __reduce_ex__(self, protocol):
        raise TypeError("Profile cannot be copied or pickled")


def _inputs(path_or_dir):
    p = os.fspath(path_or_dir)
    if os.path.isdir(p):
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for f in sorted(files):
                yield os.path.join(root, f)
    else:
        yield p


def anonymize(path_or_dir, out, *, secret_file=None, secret=None, key=None, options=(),
              overrides=None, date_shift_max_days=0, jobs=None):
    """De-identify a file or every file under a folder into the folder `out`,
    as OUT/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
    (the new values; the same tree as ``diana anon``). Returns one dict per
    input file, in input order: {"input", "output", "result"} on success,
    {"input", "error"} (a DianaError) for a file that is not valid DICOM,
    {"input", "skipped": "DICOMDIR"} for media directories. Outputs appear
    whole (renamed into place) and are flushed to disk once at the end. A bad
    profile (no secret...) raises. ``jobs``: threads (default: one per CPU,
    at most 8, as ``diana anon``; the library runs without the GIL)."""
    with Profile(secret_file, secret=secret, options=options, key=key, overrides=overrides,
                 date_shift_max_days=date_shift_max_days) as profile:
        def one(path):
            entry = {"input": path}
            try:
                dest, result = profile.anonymize_into(path, out, sync=False)
                if dest is None:
                    entry["skipped"] = "DICOMDIR"
                else:
                    entry.update(output=dest, result=result)
            except DianaError as e:
                entry["error"] = e
            return entry

        paths = list(_inputs(path_or_dir))
        if jobs is None:
            jobs = min(8, os.cpu_count() or 1)
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        if jobs == 1 or len(paths) < 2:
            results = [one(p) for p in paths]
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
                results = list(pool.map(one, paths))
        if any("output" in r for r in results):
            api.diana_anonymize_sync(_path(out))
    return results
