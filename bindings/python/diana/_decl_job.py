# libdiana Python binding: ctypes declarations of include/diana/job.h.
# SPDX-License-Identifier: MIT
"""Declarations of job.h: name -> (restype, argtypes, errcheck?, since), merged
into diana._lib.DECLARATIONS (same rules, see _lib.py).

job.h's types are defined here and registered in _lib.C_TYPES and
_lib.STRUCT_VERSIONS (this module is imported by _lib once those exist, after
_decl_session whose session type it uses), so that the header check
(tests/python/headers.py) finds them."""

from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_int,
                    c_int64, c_size_t, c_uint32, c_uint64, c_void_p)

from ._decl_session import P_session
from ._lib import C_TYPES, CHECKED, STRUCT_VERSIONS, P_profile


class diana_job(Structure):
    """Opaque ``struct diana_job``: only ever used through a POINTER."""


#: DIANA_JOB_PROGRESS_VERSION this structure layout corresponds to
JOB_PROGRESS_VERSION = 1


class diana_job_progress(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("stage", c_int),
        ("items_done", c_uint64),
        ("items_total", c_uint64),
        ("instances", c_uint64),
        ("bytes", c_uint64),
        ("elapsed_ms", c_int64),
        ("current", c_char_p),
    ]


#: DIANA_JOB_STUDY_VERSION this structure layout corresponds to
JOB_STUDY_VERSION = 1


class diana_job_study(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("index", c_uint64),
        ("status", c_int),
        ("error", c_int),
        ("reason", c_char_p),
        ("accession", c_char_p),
        ("pseudo_accession", c_char_p),
        ("pseudo_patient_id", c_char_p),
        ("studies", c_uint32),
        ("instances", c_uint64),
        ("expected", c_uint64),
        ("bytes", c_uint64),
    ]


diana_job_progress_fn = CFUNCTYPE(c_int, POINTER(diana_job_progress), c_void_p)
diana_job_study_fn = CFUNCTYPE(c_int, POINTER(diana_job_study), c_void_p)

#: DIANA_JOB_OPTIONS_VERSION this structure layout corresponds to
JOB_OPTIONS_VERSION = 1


class diana_job_options(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("flags", c_uint32),
        ("out_dir", c_char_p),
        ("profile", P_profile),
        ("dest", P_session),
        ("workers", c_int),
        ("max_queries_per_s", c_double),
        ("max_studies_per_min", c_double),
        ("max_mb_per_s", c_double),
        ("window", c_char_p),
        ("retries", c_int),
        ("retry_delay_ms", c_int64),
        ("progress", diana_job_progress_fn),
        ("progress_user_data", c_void_p),
        ("on_study", diana_job_study_fn),
        ("study_user_data", c_void_p),
    ]


#: DIANA_JOB_STATS_VERSION this structure layout corresponds to
JOB_STATS_VERSION = 1


class diana_job_stats(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("items", c_uint64),
        ("ok", c_uint64),
        ("skipped", c_uint64),
        ("unknown", c_uint64),
        ("failed", c_uint64),
        ("studies", c_uint64),
        ("instances", c_uint64),
        ("bytes", c_uint64),
        ("elapsed_ms", c_int64),
        ("ms_per_instance", c_double),
    ]


P_job = POINTER(diana_job)

C_TYPES.update({
    "diana_job": diana_job,
    "diana_job_progress": diana_job_progress,
    "diana_job_study": diana_job_study,
    "diana_job_options": diana_job_options,
    "diana_job_stats": diana_job_stats,
    "diana_job_progress_fn": diana_job_progress_fn,
    "diana_job_study_fn": diana_job_study_fn,
})
STRUCT_VERSIONS.update({
    "DIANA_JOB_PROGRESS_VERSION": (diana_job_progress, JOB_PROGRESS_VERSION),
    "DIANA_JOB_STUDY_VERSION": (diana_job_study, JOB_STUDY_VERSION),
    "DIANA_JOB_OPTIONS_VERSION": (diana_job_options, JOB_OPTIONS_VERSION),
    "DIANA_JOB_STATS_VERSION": (diana_job_stats, JOB_STATS_VERSION),
})

_S = (0, 1)
DECLARATIONS = {
    "diana_job_options_init": (c_int, [POINTER(diana_job_options), c_uint32], CHECKED, _S),
    "diana_job_new": (c_int, [POINTER(P_job), P_session, POINTER(diana_job_options)], CHECKED, _S),
    "diana_job_free": (None, [P_job], False, _S),
    "diana_job_add_accession": (c_int, [P_job, c_char_p], CHECKED, _S),
    "diana_job_add_study_uid": (c_int, [P_job, c_char_p], CHECKED, _S),
    "diana_job_add_patient": (c_int, [P_job, c_char_p, c_char_p, c_char_p], CHECKED, _S),
    "diana_job_add_accessions_file": (c_int, [P_job, c_char_p, POINTER(c_size_t)], CHECKED, _S),
    # not CHECKED: DIANA_EPACS (some items unknown or failed) is an outcome, not an
    # exception, and a callback's exception must win over DIANA_ECANCELLED
    "diana_job_run": (c_int, [P_job], False, _S),
    "diana_job_start": (c_int, [P_job], CHECKED, _S),
    "diana_job_wait": (c_int, [P_job], False, _S),
    "diana_job_cancel": (None, [P_job], False, _S),
    "diana_job_stats_get": (c_int, [P_job, POINTER(diana_job_stats)], CHECKED, _S),
}
