# libdiana Python binding: sessions (include/diana/session.h, doc/session.md).
# SPDX-License-Identifier: MIT

import json
import os
import threading
from ctypes import POINTER, byref, c_char_p, c_int, c_int64, c_size_t, c_void_p, cast

from . import _lib
from ._dataset import _cstr, _path
from ._decl_session import (P_session, diana_change_fn, diana_find_fn,
                            diana_instance_fn, diana_session_options,
                            diana_store_fn, diana_transfer_stats)
from ._lib import ERROR_CODES, DianaError, api

SESSION_ORTHANC = 1
SESSION_DIMSE = 2
SESSION_DICOMWEB = 3
SESSION_FOLDER = 4

LEVEL_PATIENT = 0
LEVEL_STUDY = 1
LEVEL_SERIES = 2
LEVEL_INSTANCE = 3

RETRIEVE_DEFAULT = 0
RETRIEVE_GET = 1
RETRIEVE_MOVE = 2

_KINDS = {SESSION_ORTHANC: "orthanc", SESSION_DIMSE: "dicom",
          SESSION_DICOMWEB: "dicomweb", SESSION_FOLDER: "folder"}
_LEVELS = {"patient": LEVEL_PATIENT, "study": LEVEL_STUDY, "series": LEVEL_SERIES,
           "instance": LEVEL_INSTANCE, "image": LEVEL_INSTANCE}
_RETRIEVE = {None: RETRIEVE_DEFAULT, "get": RETRIEVE_GET, "move": RETRIEVE_MOVE}


def _stats_dict(st):
    return {"instances": st.instances, "bytes": st.bytes, "failed": st.failed,
            "warnings": st.warnings, "status": st.status, "elapsed_ms": st.elapsed_ms}


def _answer_dict(ptr):
    """{keyword (or tag "GGGGEEEE"): text value} of a borrowed answer dataset;
    sequences as lists of such dicts."""
    out = c_void_p()
    api.diana_dataset_to_json(ptr, 0, byref(out))
    doc = json.loads(_lib.take_string(out))
    return _from_dicom_json(doc)


def _from_dicom_json(doc):
    from . import _dataset  # noqa: F401  (keyword lookup through a dataset)
    res = {}
    for tag, el in doc.items():
        name = _keyword(tag)
        vr = el.get("vr")
        vals = el.get("Value")
        if vr == "SQ":
            res[name] = [_from_dicom_json(item) for item in (vals or [])]
            continue
        if vals is None:
            res[name] = ""
            continue
        texts = []
        for v in vals:
            if v is None:
                texts.append("")
            elif isinstance(v, dict):
                texts.append(v.get("Alphabetic", ""))
            elif isinstance(v, float) and v.is_integer():
                texts.append(str(int(v)))
            else:
                texts.append(str(v))
        res[name] = "\\".join(texts)
    return res


_keywords = {}
_keywords_lock = threading.Lock()


def _keyword(tag):
    """Keyword of a tag "GGGGEEEE" (from libdiana's dictionary), or the tag."""
    with _keywords_lock:
        if tag in _keywords:
            return _keywords[tag]
    kw = tag
    # one-element dataset: its element callback gives the keyword
    from ._dataset import Dataset
    try:
        with Dataset.from_json({tag: {"vr": "UN"}}) as ds:
            for el in ds.elements():
                kw = el.keyword or tag
                break
    except Exception:
        kw = tag
    with _keywords_lock:
        _keywords[tag] = kw
    return kw


class Instance:
    """A retrieved instance handed to a :meth:`Session.retrieve` callback.

    ``path`` is a file holding it, valid during the callback only (a
    temporary file, removed afterwards unless :meth:`keep` moved it)."""

    __slots__ = ("path", "sop_instance_uid", "sop_class_uid", "transfer_syntax_uid",
                 "size", "temporary", "_ptr")

    def __init__(self, ptr):
        c = ptr.contents
        self._ptr = ptr
        self.path = os.fsdecode(c.path)
        self.sop_instance_uid = (c.sop_instance_uid or b"").decode("ascii", "replace")
        self.sop_class_uid = (c.sop_class_uid or b"").decode("ascii", "replace")
        self.transfer_syntax_uid = (c.transfer_syntax_uid or b"").decode("ascii", "replace")
        self.size = c.size
        self.temporary = bool(c.temporary)

    def keep(self, dest):
        """Keep the instance at ``dest`` (its folder must exist): a rename when
        possible, else a copy; atomic either way."""
        if self._ptr is None:
            raise ValueError("Instance.keep() is only valid inside the callback")
        api.diana_instance_keep(self._ptr, _path(dest))

    def __repr__(self):
        return "<diana.Instance %s (%d bytes)>" % (self.sop_instance_uid, self.size)


class Session:
    """Where images live, opened from a URI (see doc/session.md):

        with diana.Session("orthanc+http://u:p@127.0.0.1:8042?modality=pacs") as s:
            s.echo()
            studies = s.find("study", AccessionNumber="A123", PatientName="")
            s.get(study=studies[0]["StudyInstanceUID"], out="/data/study")

    URIs: ``orthanc+http(s)://[user:pass@]host:port[?modality=NAME]``,
    ``dicom://CALLED_AET@host:port?aet=CALLING_AET[&port=LOCAL_PORT]``,
    ``dicomweb+http(s)://[user:pass@]host:port/path``, ``file:///dir`` or a
    folder path. Keyword options map to diana_session_options: ``timeout``
    and ``connect_timeout`` (seconds), ``retries``, ``netrc``, ``ca_file``,
    ``insecure``, ``aet``, ``local_port``, ``retrieve`` ("get"/"move"),
    ``temp_dir``, ``username``, ``password``.

    Failures raise DianaError (``e.code``: ECONNECT, EAUTH, ETIMEDOUT, EPACS,
    ENOTFOUND...). A session is used by one thread at a time; :meth:`cancel`
    may be called from any thread.
    """

    def __init__(self, uri, *, timeout=None, connect_timeout=None, retries=None, netrc=None,
                 ca_file=None, insecure=False, aet=None, local_port=None, retrieve=None,
                 temp_dir=None, username=None, password=None):
        self._handle = None
        self._lock = threading.Lock()
        o = diana_session_options()
        api.diana_session_options_init(byref(o), _lib_version())
        keep = []  # bytes objects referenced by the struct during the call

        def s(v):
            if v is None:
                return None
            b = _cstr(os.fsencode(v) if not isinstance(v, bytes) else v, "option")
            keep.append(b)
            return b

        o.username = s(username)
        o.password = s(password)
        o.netrc_file = s(netrc)
        o.ca_file = s(ca_file)
        o.insecure = 1 if insecure else 0
        if connect_timeout is not None:
            o.connect_timeout_ms = int(connect_timeout * 1000)
        if timeout is not None:
            o.timeout_ms = int(timeout * 1000)
        if retries is not None:
            o.retries = -1 if retries == 0 else int(retries)
        o.calling_aet = s(aet)
        if local_port is not None:
            o.local_port = int(local_port)
        if retrieve not in _RETRIEVE:
            raise ValueError("retrieve must be None, 'get' or 'move'")
        o.retrieve = _RETRIEVE[retrieve]
        o.temp_dir = s(temp_dir)
        out = P_session()
        api.diana_session_open(byref(out), _cstr(os.fsencode(uri), "uri"), byref(o))
        self._handle = out

    # -- lifetime -------------------------------------------------------

    def close(self):
        """Close the session (idempotent)."""
        with self._lock:
            h, self._handle = self._handle, None
        if h:
            api.diana_session_free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        h = getattr(self, "_handle", None)
        if h:
            self._handle = None
            try:
                api.diana_session_free(h)
            except Exception:
                pass

    def _h(self):
        if self._handle is None:
            raise ValueError("operation on a closed Session")
        return self._handle

    @property
    def kind(self):
        """"orthanc", "dicom", "dicomweb" or "folder"."""
        return _KINDS[api.diana_session_kind(self._h())]

    @property
    def uri(self):
        """The URI without credentials."""
        return api.diana_session_uri(self._h()).decode("utf-8", "replace")

    def __repr__(self):
        return "<diana.Session %s>" % (self.uri if self._handle else "closed")

    def cancel(self):
        """Make the running operation stop soon with ECANCELLED (any thread)."""
        h = self._handle
        if h:
            api.diana_session_cancel(h)

    # -- operations -----------------------------------------------------

    def echo(self):
        """Check that the other side answers (raises DianaError otherwise)."""
        api.diana_session_echo(self._h())

    def find(self, level="study", keys=None, *, as_json=False, **kw):
        """Query at ``level`` ("patient", "study", "series", "instance").
        Keys: ``AccessionNumber="A1"`` matches, ``PatientName=""`` asks for it
        back; ``keys`` may be a list of "Name=Value" strings or a dict (for
        tags or names that are not identifiers). Returns a list of dicts
        {keyword: text value} (DICOM JSON objects with ``as_json=True``)."""
        if level not in _LEVELS:
            raise ValueError("level must be one of %s" % ", ".join(sorted(_LEVELS)))
        items = []
        if isinstance(keys, dict):
            items += ["%s=%s" % (k, "" if v is None else v) for k, v in keys.items()]
        elif keys:
            items += list(keys)
        items += ["%s=%s" % (k, "" if v is None else v) for k, v in kw.items()]
        arr = (c_char_p * max(1, len(items)))(*[_cstr(i.encode("utf-8"), "key") for i in items])
        results = []
        errors = []

        def cb(ptr, ud):
            try:
                if as_json:
                    out = c_void_p()
                    api.diana_dataset_to_json(ptr, 0, byref(out))
                    results.append(json.loads(_lib.take_string(out)))
                else:
                    results.append(_answer_dict(ptr))
                return 0
            except BaseException as e:  # noqa: B902 - re-raised below
                errors.append(e)
                return 1

        fn = diana_find_fn(cb)
        count = c_size_t()
        try:
            api.diana_session_find(self._h(), _LEVELS[level], cast(arr, POINTER(c_char_p)), len(items),
                                   fn, None, byref(count))
        except DianaError:
            if errors:
                raise errors[0]
            raise
        return results

    def retrieve(self, study, series=None, instance=None, callback=None):
        """Retrieve a study (or a series, or an instance) and call
        ``callback(Instance)`` for each instance, one at a time (keep it with
        ``inst.keep(path)``). Returns the transfer stats as a dict."""
        if callback is None:
            raise TypeError("retrieve() needs a callback; use get() to write a folder")
        errors = []

        def cb(ptr, ud):
            inst = Instance(ptr)
            try:
                callback(inst)
                return 0
            except BaseException as e:  # noqa: B902
                errors.append(e)
                return 1
            finally:
                inst._ptr = None

        fn = diana_instance_fn(cb)
        st = diana_transfer_stats()
        st.version = _decl().TRANSFER_STATS_VERSION
        try:
            api.diana_session_retrieve(self._h(), _uid(study), _uid(series), _uid(instance), fn, None,
                                       byref(st))
        except DianaError:
            if errors:
                raise errors[0]
            raise
        return _stats_dict(st)

    def get(self, study, series=None, instance=None, *, out):
        """Retrieve into the folder ``out`` as
        out/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm.
        Returns the transfer stats as a dict."""
        st = diana_transfer_stats()
        st.version = _decl().TRANSFER_STATS_VERSION
        api.diana_session_retrieve_to_folder(self._h(), _uid(study), _uid(series), _uid(instance),
                                             _path(out), byref(st))
        return _stats_dict(st)

    def store(self, paths):
        """Send DICOM files. Returns the stats as a dict with ``errors``: a
        list of (path, DianaError) for the files that failed (the others are
        stored). Raises DianaError when the session itself failed."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        paths = [os.fspath(p) for p in paths]
        enc = [_path(p) for p in paths]
        arr = (c_char_p * max(1, len(enc)))(*enc)
        failures = []

        def cb(index, path, status, ud):
            if status < 0:
                failures.append((paths[index], _lib.last_error(status)))
            return 0

        fn = diana_store_fn(cb)
        st = diana_transfer_stats()
        st.version = _decl().TRANSFER_STATS_VERSION
        try:
            api.diana_session_store(self._h(), cast(arr, POINTER(c_char_p)), len(enc), fn, None,
                                    byref(st))
        except DianaError:
            if not failures or st.instances + len(failures) < len(paths):
                raise
        res = _stats_dict(st)
        res["errors"] = failures
        return res

    def changes(self, since=0, limit=0):
        """Orthanc's change log after ``since`` (-1: only the current last
        number). Returns (changes, last, done): a list of dicts (seq,
        change_type, resource_type, id, path, date), the number to pass as
        ``since`` next time, and whether the end was reached."""
        got = []

        def cb(ptr, ud):
            c = ptr.contents
            got.append({"seq": c.seq,
                        "change_type": c.change_type.decode("utf-8", "replace"),
                        "resource_type": c.resource_type.decode("utf-8", "replace"),
                        "id": c.id.decode("utf-8", "replace"),
                        "path": c.path.decode("utf-8", "replace"),
                        "date": c.date.decode("utf-8", "replace")})
            return 0

        fn = diana_change_fn(cb)
        last = c_int64()
        done = c_int()
        api.diana_session_changes(self._h(), int(since), int(limit), fn, None, byref(last), byref(done))
        return got, last.value, bool(done.value)


def _uid(v):
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError("UIDs are str")
    return _cstr(v.encode("ascii"), "UID")


def _decl():
    from . import _decl_session
    return _decl_session


def _lib_version():
    return _decl().SESSION_OPTIONS_VERSION


__all__ = ["Session", "Instance", "SESSION_ORTHANC", "SESSION_DIMSE", "SESSION_DICOMWEB",
           "SESSION_FOLDER", "LEVEL_PATIENT", "LEVEL_STUDY", "LEVEL_SERIES", "LEVEL_INSTANCE",
           "RETRIEVE_DEFAULT", "RETRIEVE_GET", "RETRIEVE_MOVE", "ERROR_CODES"]
