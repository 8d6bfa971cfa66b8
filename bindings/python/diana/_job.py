# libdiana Python binding: retrieval jobs (include/diana/job.h, doc/pull.md).
# SPDX-License-Identifier: MIT

import os
import threading
from ctypes import byref, c_size_t

from . import _lib
from ._dataset import _cstr, _path
from ._decl_job import (JOB_OPTIONS_VERSION, JOB_STATS_VERSION, P_job,
                        diana_job_options, diana_job_progress_fn,
                        diana_job_stats, diana_job_study_fn)
from ._lib import ERROR_CODES, DianaError, api

JOB_STAGE_QUERY = 1
JOB_STAGE_RETRIEVE = 2
JOB_STAGE_WAIT = 3
JOB_STAGE_DONE = 4

STUDY_OK = 0
STUDY_SKIPPED = 1
STUDY_UNKNOWN = 2
STUDY_FAILED = 3

JOB_NO_ANONYMIZE = 1 << 0
JOB_DRY_RUN = 1 << 1
JOB_KEEP_IN_HELPER = 1 << 2

_STAGES = {JOB_STAGE_QUERY: "query", JOB_STAGE_RETRIEVE: "retrieve", JOB_STAGE_WAIT: "wait",
           JOB_STAGE_DONE: "done"}
_STATUSES = {STUDY_OK: "ok", STUDY_SKIPPED: "skipped", STUDY_UNKNOWN: "unknown",
             STUDY_FAILED: "failed"}
_EPACS = ERROR_CODES["EPACS"]
_ECANCELLED = ERROR_CODES["ECANCELLED"]


def _text(b):
    return b.decode("utf-8", "replace") if b else ""


def _stats_dict(st):
    return {"items": st.items, "ok": st.ok, "skipped": st.skipped, "unknown": st.unknown,
            "failed": st.failed, "studies": st.studies, "instances": st.instances,
            "bytes": st.bytes, "elapsed_ms": st.elapsed_ms,
            "ms_per_instance": st.ms_per_instance}


def _progress_dict(p):
    c = p.contents
    return {"stage": _STAGES.get(c.stage, str(c.stage)), "items_done": c.items_done,
            "items_total": c.items_total, "instances": c.instances, "bytes": c.bytes,
            "elapsed_ms": c.elapsed_ms, "current": _text(c.current)}


def _study_dict(p):
    c = p.contents
    return {"index": c.index, "status": _STATUSES.get(c.status, str(c.status)), "error": c.error,
            "reason": _text(c.reason), "accession": _text(c.accession),
            "pseudo_accession": _text(c.pseudo_accession),
            "pseudo_patient_id": _text(c.pseudo_patient_id), "studies": c.studies,
            "instances": c.instances, "expected": c.expected, "bytes": c.bytes}


def _rate(name, v):
    if v is None:
        return 0.0
    v = float(v)
    if not v > 0:
        raise ValueError("%s must be a positive number" % name)
    return v


class Job:
    """A retrieval job: accession numbers in, de-identified DICOM files out
    (OUTDIR/<pseudo PatientID>/<pseudo AccessionNumber>/<Series>/<SOP>.dcm),
    with OUTDIR/report.csv and a journal that makes it resumable (see
    doc/pull.md and doc/job.md)::

        with diana.Job("orthanc+http://u:p@127.0.0.1:8042?modality=pacs",
                       ["A1", "A2"], "/data/out", secret_file="project.secret",
                       key="key.csv", jobs=2) as job:
            job.start()
            ...
            stats = job.wait()

    ``source``: a URI (a :class:`Session` is opened with the remaining
    keyword arguments: ``timeout``, ``netrc``, ``aet``... and
    ``http_retries`` for the session's ``retries``) or an open
    :class:`Session` (borrowed; do not use it while the job runs).
    ``accessions``: a list of accession numbers, or the path of a file (one
    per line, or the first CSV column). ``study_uids``: Study Instance UIDs;
    ``patients``: (patient_id, date_from, date_to) tuples.

    De-identification: ``secret_file`` (required unless ``anonymize=False``
    or ``profile`` is given), ``key`` (key file, one row per study),
    ``options`` (names such as "retain-uids" or ``DEID_*`` bits),
    ``date_shift_max_days``; or a ready :class:`Profile` as ``profile``.

    ``jobs``: studies in parallel. PACS protection:
    ``max_queries_per_second``, ``max_studies_per_minute``,
    ``max_mb_per_second``, ``window`` ("19:00-07:00"), ``retries`` (attempts
    after a failed study, 0: none), ``retry_delay`` (seconds).
    ``keep_in_helper``: leave the studies in the Orthanc helper.
    ``dry_run``: only query (counts, nothing written).

    ``progress(dict)``: stage ("query", "retrieve", "wait", "done"),
    items_done, items_total, instances, bytes, elapsed_ms, current.
    ``on_study(dict)``: once per finished work item: index (from 1), status
    ("ok", "skipped", "unknown", "failed"), error, reason, accession (the
    original: patient data), pseudo_accession, pseudo_patient_id, studies,
    instances, expected, bytes. Both run on worker threads, one call at a
    time; return True to cancel the job; an exception cancels it and is
    raised again by :meth:`wait`.
    """

    def __init__(self, source, accessions=None, out=None, *, secret_file=None, key=None,
                 options=(), profile=None, date_shift_max_days=0, jobs=1, progress=None,
                 on_study=None, anonymize=True, dry_run=False, keep_in_helper=False,
                 max_queries_per_second=None, max_studies_per_minute=None,
                 max_mb_per_second=None, window=None, retries=None, retry_delay=None,
                 study_uids=(), patients=(), **session_kw):
        from ._deid import Profile
        from ._session import Session

        self._handle = None
        self._session = None
        self._own_session = False
        self._profile = None
        self._own_profile = False
        self._lock = threading.Lock()
        self._errors = []
        self._results = []
        self._running = False
        self._done = threading.Event()
        self._rc = None
        self._waiter = None
        self._cancelled = False
        if out is None:
            raise TypeError("Job() needs an output folder: out=")
        if not anonymize and (secret_file is not None or key is not None or options or
                              profile is not None or date_shift_max_days):
            raise ValueError("anonymize=False excludes secret_file, key, options and profile")
        if anonymize and profile is None and secret_file is None:
            raise ValueError("secret_file is required (there is no default secret), "
                             "or anonymize=False")
        if jobs is None or not 1 <= int(jobs) <= 64:
            raise ValueError("jobs must be 1..64")
        self.out = os.fspath(out)
        try:
            if isinstance(source, Session):
                if session_kw:
                    raise TypeError("session options given with an open Session: %s"
                                    % ", ".join(sorted(session_kw)))
                self._session = source
            else:
                kw = dict(session_kw)
                if "http_retries" in kw:
                    kw["retries"] = kw.pop("http_retries")
                self._session = Session(source, **kw)
                self._own_session = True
            if anonymize:
                if profile is not None:
                    if not isinstance(profile, Profile):
                        raise TypeError("profile must be a diana.Profile")
                    self._profile = profile
                else:
                    self._profile = Profile(secret_file, options=options,
                                            key=None if dry_run else key,
                                            date_shift_max_days=date_shift_max_days)
                    self._own_profile = True
            self._open(accessions, study_uids, patients, jobs, progress, on_study, anonymize,
                       dry_run, keep_in_helper, max_queries_per_second, max_studies_per_minute,
                       max_mb_per_second, window, retries, retry_delay)
        except BaseException:
            self.close()
            raise

    def _open(self, accessions, study_uids, patients, jobs, progress, on_study, anonymize,
              dry_run, keep_in_helper, max_q, max_s, max_mb, window, retries, retry_delay):
        o = diana_job_options()
        api.diana_job_options_init(byref(o), JOB_OPTIONS_VERSION)
        flags = 0
        if not anonymize:
            flags |= JOB_NO_ANONYMIZE
        if dry_run:
            flags |= JOB_DRY_RUN
        if keep_in_helper:
            flags |= JOB_KEEP_IN_HELPER
        o.flags = flags
        self._out_b = _path(self.out)
        o.out_dir = self._out_b
        if self._profile is not None:
            o.profile = self._profile._handle
        o.workers = int(jobs)
        o.max_queries_per_s = _rate("max_queries_per_second", max_q)
        o.max_studies_per_min = _rate("max_studies_per_minute", max_s)
        o.max_mb_per_s = _rate("max_mb_per_second", max_mb)
        self._window_b = None if window is None else _cstr(str(window).encode("ascii"), "window")
        o.window = self._window_b
        if retries is not None:
            o.retries = -1 if int(retries) == 0 else int(retries)
        if retry_delay is not None:
            o.retry_delay_ms = max(1, int(float(retry_delay) * 1000))

        def progress_cb(ptr, ud):
            if progress is None or self._errors:
                return 1 if self._errors else 0
            try:
                return 1 if progress(_progress_dict(ptr)) is True else 0
            except BaseException as e:  # noqa: B902 - raised again by wait()
                self._errors.append(e)
                return 1

        def study_cb(ptr, ud):
            try:
                d = _study_dict(ptr)
                with self._lock:
                    self._results.append(d)
                if on_study is not None and not self._errors:
                    return 1 if on_study(dict(d)) is True else 0
                return 1 if self._errors else 0
            except BaseException as e:  # noqa: B902
                self._errors.append(e)
                return 1

        # referenced as long as the job lives: C calls them from its threads
        self._progress_fn = diana_job_progress_fn(progress_cb)
        self._study_fn = diana_job_study_fn(study_cb)
        o.progress = self._progress_fn
        o.on_study = self._study_fn
        self._opts = o
        out = P_job()
        api.diana_job_new(byref(out), self._session._h(), byref(o))
        self._handle = out
        if accessions is not None:
            if isinstance(accessions, (str, bytes, os.PathLike)):
                n = c_size_t()
                api.diana_job_add_accessions_file(out, _path(accessions), byref(n))
            else:
                for a in accessions:
                    if not isinstance(a, str):
                        raise TypeError("accession numbers are str")
                    api.diana_job_add_accession(out, _cstr(a.encode("utf-8"), "accession"))
        for u in study_uids or ():
            api.diana_job_add_study_uid(out, _cstr(str(u).encode("ascii"), "UID"))
        for item in patients or ():
            if isinstance(item, str):
                item = (item, None, None)
            pid, d0, d1 = (tuple(item) + (None, None))[:3]
            api.diana_job_add_patient(out, _cstr(str(pid).encode("utf-8"), "patient ID"),
                                      None if d0 is None else _cstr(str(d0).encode("ascii"), "date"),
                                      None if d1 is None else _cstr(str(d1).encode("ascii"), "date"))

    # -- running --------------------------------------------------------

    def _h(self):
        if self._handle is None:
            raise ValueError("operation on a closed Job")
        return self._handle

    def start(self):
        """Run the job in the background; :meth:`wait` for its end."""
        h = self._h()
        with self._lock:
            if self._running:
                raise DianaError(ERROR_CODES["EEXISTS"], "the job is already running")
            self._errors.clear()
            self._results.clear()
            self._cancelled = False
            self._rc = None
            self._done.clear()
            api.diana_job_start(h)
            self._running = True

        def waiter():
            # diana_job_wait releases the GIL (ctypes); the main thread stays
            # free to take KeyboardInterrupt in wait()
            self._rc = api.diana_job_wait(h)
            self._done.set()

        self._waiter = threading.Thread(target=waiter, name="diana-job-wait", daemon=True)
        self._waiter.start()
        return self

    @property
    def running(self):
        """True between :meth:`start` and the end of the job."""
        return self._running and not self._done.is_set()

    def wait(self, timeout=None):
        """Wait for the started job to end and return its stats (see
        :meth:`stats`) with ``results`` (one dict per finished work item, in
        work-list order, as handed to ``on_study``) and ``cancelled``.
        Unknown or failed items do not raise: look at ``stats["unknown"]``,
        ``stats["failed"]`` and ``results``. Raises the exception of a
        callback, or DianaError when the job stopped on an error (EIO,
        ENOSPC, ECONNECT ...). With ``timeout`` (seconds), returns None if
        the job still runs then. Ctrl-C while waiting cancels the job."""
        if not self._running:
            raise ValueError("wait() without start()")
        try:
            if timeout is not None:
                if not self._done.wait(timeout):
                    return None
            else:
                while not self._done.wait(0.2):
                    pass
        except BaseException:
            self.cancel()
            self._done.wait()
            self._finish()
            raise
        return self._finish()

    def _finish(self):
        if self._waiter is not None:
            self._waiter.join()
            self._waiter = None
        self._running = False
        rc = self._rc
        if self._errors:
            raise self._errors[0]
        if rc is not None and rc < 0 and rc not in (_EPACS, _ECANCELLED):
            raise _lib.last_error(rc)
        if rc == _ECANCELLED and not self._cancelled:
            raise DianaError(rc, _lib.strerror(rc))
        res = self.stats()
        with self._lock:
            res["results"] = sorted(self._results, key=lambda d: d["index"])
        res["cancelled"] = rc == _ECANCELLED
        return res

    def run(self):
        """start() and wait(): run the job to its end, return its stats."""
        self.start()
        return self.wait()

    def cancel(self):
        """Ask the job to stop soon (any thread): no new study is started;
        the ones in hand are left incomplete, and a rerun over the same
        folder finishes them."""
        h = self._handle
        if h:
            self._cancelled = True
            api.diana_job_cancel(h)

    def stats(self):
        """Counters of this run as a dict: items, ok, skipped, unknown,
        failed, studies, instances, bytes, elapsed_ms, ms_per_instance."""
        st = diana_job_stats()
        st.version = JOB_STATS_VERSION
        api.diana_job_stats_get(self._h(), byref(st))
        return _stats_dict(st)

    # -- lifetime -------------------------------------------------------

    def close(self):
        """Cancel a running job, wait for it, release everything (idempotent)."""
        h = self._handle
        if h is not None and self._running:
            self.cancel()
            self._done.wait()
            if self._waiter is not None:
                self._waiter.join()
                self._waiter = None
            self._running = False
        self._handle = None
        if h is not None:
            api.diana_job_free(h)
        if self._own_session and self._session is not None:
            self._session.close()
        self._session = None
        if self._own_profile and self._profile is not None:
            self._profile.close()
        self._profile = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<diana.Job %s%s>" % (self.out, " running" if self.running else "")


def pull(uri, accessions, out, secret_file=None, key=None, options=(), jobs=1, progress=None,
         anonymize=True, dry_run=False, **kw):
    """Retrieve the studies of ``accessions`` (a list, or the path of a file)
    from ``uri`` into ``out``, de-identified with ``secret_file`` (and
    ``key``, ``options``), ``jobs`` studies in parallel; returns the stats
    dict of :meth:`Job.wait` (counts, ``results`` per accession number).
    Rerunning it over the same ``out`` finishes an interrupted pull.
    Other keyword arguments: those of :class:`Job` (``max_studies_per_minute``,
    ``window``, ``retries``, ``on_study``, ...) and of :class:`Session`
    (``timeout``, ``aet``, ``http_retries``, ...)."""
    with Job(uri, accessions, out, secret_file=secret_file, key=key, options=options, jobs=jobs,
             progress=progress, anonymize=anonymize, dry_run=dry_run, **kw) as job:
        return job.run()


__all__ = ["Job", "pull", "JOB_STAGE_QUERY", "JOB_STAGE_RETRIEVE", "JOB_STAGE_WAIT",
           "JOB_STAGE_DONE", "STUDY_OK", "STUDY_SKIPPED", "STUDY_UNKNOWN", "STUDY_FAILED",
           "JOB_NO_ANONYMIZE", "JOB_DRY_RUN", "JOB_KEEP_IN_HELPER"]
