# libdiana Python binding: radiation dose reports (include/diana/dose.h).
# SPDX-License-Identifier: MIT
"""RDSR -> dict (:func:`dose`), and the sinks that deliver dose documents to a
Splunk HTTP Event Collector (:class:`HecSink`) or a JSON Lines file
(:class:`JsonlSink`). The document's members are described in doc/dose.md."""

import json
import os
import threading
from ctypes import byref, c_void_p

from ._dataset import Dataset, _cstr, _path
from ._decl_dose import (DOSE_HEC_OPTIONS_VERSION, DOSE_OPTIONS_VERSION,
                         P_dose_sink, diana_dose_hec_options,
                         diana_dose_options)
from ._lib import api, take_string

# diana_dose_flag_t
DOSE_PRETTY = 1 << 0


def _options(pretty):
    opts = diana_dose_options()
    api.diana_dose_options_init(byref(opts), DOSE_OPTIONS_VERSION)
    if pretty:
        opts.flags |= DOSE_PRETTY
    return opts


def dose_json(source, *, profile=None, pretty=False):
    """The dose document of a report as JSON text (see :func:`dose`)."""
    opts = _options(pretty)
    out = c_void_p()

    def call(profile_handle):
        if profile_handle is not None:
            opts.profile = profile_handle
        if isinstance(source, Dataset):
            with source._use() as h:
                api.diana_dose_from_dataset(byref(out), h, byref(opts))
        elif isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            api.diana_dose_from_memory(byref(out), data, len(data), byref(opts))
        elif isinstance(source, (str, os.PathLike)):
            api.diana_dose_from_file(byref(out), _path(source), byref(opts))
        else:
            raise TypeError("dose() takes a path, bytes or a Dataset, not %s" % type(source).__name__)
        return take_string(out)

    if profile is None:
        return call(None)
    with profile._use() as h:
        return call(h)


def dose(source, *, profile=None):
    """Read a Radiation Dose Structured Report into a dict.

    ``source``: a path, the file's bytes, or a :class:`Dataset`.
    ``profile``: a :class:`Profile` (with the ``clean-structured-content``
    option) to pseudonymize accession number, patient ID, UIDs and dates as
    the images de-identified with the same secret.

    Top level: sop_instance_uid, template {"id", "name"}, accession_number,
    study fields, patient_id/age/sex/size/weight, "time" (epoch seconds);
    "events": one flat dict per irradiation event; "totals". Measurements are
    {"value": float, "unit": UCUM code}; a missing item is None.
    Raises DianaError: EUNSUPPORTED for another object or SR, EDICOM for a
    malformed report."""
    return json.loads(dose_json(source, profile=profile))


def _doc_text(doc):
    if isinstance(doc, dict):
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if isinstance(doc, str):
        return doc.encode("utf-8")
    if isinstance(doc, bytes):
        return doc
    raise TypeError("a dose document is a dict or JSON text, not %s" % type(doc).__name__)


class _Sink:
    """Common part of the sinks: add(), flush(), delivered, close()."""

    def __init__(self):
        self._handle = None
        self._lock = threading.Lock()

    def _h(self):
        if self._handle is None:
            raise ValueError("operation on a closed sink")
        return self._handle

    def add(self, doc):
        """Queue one dose document (dict from :func:`dose`, or its JSON)."""
        with self._lock:
            api.diana_dose_sink_add(self._h(), _cstr(_doc_text(doc), "document"))

    def flush(self):
        """Deliver what is queued (HEC: POST with retries; JSONL: fsync)."""
        with self._lock:
            api.diana_dose_sink_flush(self._h())

    @property
    def delivered(self):
        """Documents delivered so far."""
        with self._lock:
            return api.diana_dose_sink_delivered(self._h())

    def close(self):
        """Deliver what is queued (best effort: call flush() first to see
        errors) and release the sink. Idempotent."""
        with self._lock:
            h, self._handle = self._handle, None
        if h:
            api.diana_dose_sink_free(h)

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        self._h()
        return self

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class HecSink(_Sink):
    """Splunk HTTP Event Collector: ``HecSink("https://splunk:8088",
    token_file="hec.token", index="dose")``. One event per document, "time"
    from the report (study or first irradiation), batched, retried with
    backoff after connection errors and 5xx; TLS always verified
    (``ca_file`` for a private CA)."""

    def __init__(self, url, *, token=None, token_file=None, index=None, sourcetype=None,
                 source=None, host=None, ca_file=None, batch_events=0, batch_bytes=0,
                 retries=3, retry_delay_ms=500, timeout_ms=30000):
        super().__init__()
        o = diana_dose_hec_options()
        api.diana_dose_hec_options_init(byref(o), DOSE_HEC_OPTIONS_VERSION)

        def s(v):
            return None if v is None else _cstr(str(v).encode("utf-8"), "option")
        o.url = s(url)
        o.token = s(token)
        o.token_file = None if token_file is None else _path(token_file)
        o.index, o.sourcetype, o.source, o.host = s(index), s(sourcetype), s(source), s(host)
        o.ca_file = None if ca_file is None else _path(ca_file)
        o.batch_events, o.batch_bytes = int(batch_events), int(batch_bytes)
        o.retries, o.retry_delay_ms, o.timeout_ms = int(retries), int(retry_delay_ms), int(timeout_ms)
        out = P_dose_sink()
        api.diana_dose_sink_new_hec(byref(out), byref(o))
        self._handle = out


class JsonlSink(_Sink):
    """JSON Lines file: one line per document, appended (file mode 0600 when
    created), fsync'd by flush() and close()."""

    def __init__(self, path):
        super().__init__()
        out = P_dose_sink()
        api.diana_dose_sink_new_jsonl(byref(out), _path(path))
        self._handle = out
