# libdiana Python binding.
# SPDX-License-Identifier: MIT
"""Python binding of libdiana (pure ctypes).

libdiana gets medical images out of hospital PACS safely; de-identify them
with :class:`Profile` and :func:`anonymize`. This package
loads ``libdiana.so.0`` (or the file named by the environment variable
``DIANA_LIBRARY``), initialises it on import and shuts it down at exit.

    import diana
    with diana.Dataset("ct.dcm") as ds:
        rows = ds["Rows"]
        doc = ds.to_dict()

Failures raise :class:`DianaError`; its ``code`` is one of the ``E*``
constants of this module (``err.code == diana.ENOTFOUND``).
"""

import atexit
import enum

from . import _lib
from ._dataset import (FOREACH_META, JSON_META, JSON_NO_BULK, JSON_PRETTY,
                       OPEN_LENIENT, OPEN_SKIP_PIXELS, UNDEFINED_LENGTH,
                       Dataset, Element)
from ._deid import (ANON_NO_SYNC, ANON_NO_WRITEBACK, ACTION_DEFAULT, ACTION_EMPTY, ACTION_KEEP, ACTION_REMOVE,
                    ACTION_REPLACE, DEID_CLEAN_DESCRIPTORS, DEID_CLEAN_GRAPHICS,
                    DEID_CLEAN_STRUCTURED_CONTENT, DEID_RETAIN_DEVICE_IDENTITY,
                    DEID_RETAIN_INSTITUTION_IDENTITY, DEID_RETAIN_LONG_FULL_DATES,
                    DEID_RETAIN_LONG_MODIFIED_DATES,
                    DEID_RETAIN_PATIENT_CHARACTERISTICS, DEID_RETAIN_SAFE_PRIVATE,
                    DEID_RETAIN_UIDS, Profile, anonymize, option_names,
                    sync_folder)
from ._dose import DOSE_PRETTY, HecSink, JsonlSink, dose, dose_json
from ._job import (JOB_DRY_RUN, JOB_KEEP_IN_HELPER, JOB_NO_ANONYMIZE, JOB_STAGE_DONE,
                   JOB_STAGE_QUERY, JOB_STAGE_RETRIEVE, JOB_STAGE_WAIT, STUDY_FAILED,
                   STUDY_OK, STUDY_SKIPPED, STUDY_UNKNOWN, Job, pull)
from ._lib import DianaError
from ._scan import KEY_COLUMNS, Finding, Scanner, key_lookup
from ._session import (LEVEL_INSTANCE, LEVEL_PATIENT, LEVEL_SERIES, LEVEL_STUDY,
                       RETRIEVE_DEFAULT, RETRIEVE_GET, RETRIEVE_MOVE, SESSION_DICOMWEB,
                       SESSION_DIMSE, SESSION_FOLDER, SESSION_ORTHANC, Instance, Session)
from ._pipeline import ModelInput, Pipeline
from ._log import (LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_NONE, LOG_WARNING,
                   get_log_handler, logging_handler, set_log_handler,
                   set_log_level)

__all__ = [
    "DianaError", "Dataset", "Element", "Feature",
    "version", "version_info", "features", "strerror",
    "set_log_handler", "get_log_handler", "set_log_level", "logging_handler",
    "OK", "ERROR", "EINVAL", "ENOMEM", "EUNSUPPORTED", "ENOTFOUND", "EIO",
    "EDICOM", "ETIMEDOUT", "ECANCELLED", "EAUTH", "ETLS", "ECONNECT", "EPACS",
    "EUSER", "ENOTINIT", "EEXISTS", "ELEAK", "ENOSPC",
    "LOG_NONE", "LOG_ERROR", "LOG_WARNING", "LOG_INFO", "LOG_DEBUG",
    "FEATURE_THREADS", "FEATURE_HTTPS", "FEATURE_ICONV",
    "OPEN_LENIENT", "OPEN_SKIP_PIXELS", "FOREACH_META",
    "JSON_PRETTY", "JSON_NO_BULK", "JSON_META", "UNDEFINED_LENGTH",
    "Profile", "anonymize", "option_names", "sync_folder", "ANON_NO_SYNC", "ANON_NO_WRITEBACK",
    "Scanner", "Finding", "key_lookup", "KEY_COLUMNS",
    "DEID_RETAIN_SAFE_PRIVATE", "DEID_RETAIN_UIDS", "DEID_RETAIN_DEVICE_IDENTITY",
    "DEID_RETAIN_INSTITUTION_IDENTITY", "DEID_RETAIN_PATIENT_CHARACTERISTICS",
    "DEID_RETAIN_LONG_FULL_DATES", "DEID_RETAIN_LONG_MODIFIED_DATES", "DEID_CLEAN_DESCRIPTORS",
    "DEID_CLEAN_STRUCTURED_CONTENT", "DEID_CLEAN_GRAPHICS",
    "ACTION_DEFAULT", "ACTION_KEEP", "ACTION_REMOVE", "ACTION_EMPTY", "ACTION_REPLACE",
    "Pipeline", "ModelInput",
    "dose", "dose_json", "HecSink", "JsonlSink", "DOSE_PRETTY",
    "Session", "Instance", "SESSION_ORTHANC", "SESSION_DIMSE", "SESSION_DICOMWEB", "SESSION_FOLDER",
    "LEVEL_PATIENT", "LEVEL_STUDY", "LEVEL_SERIES", "LEVEL_INSTANCE",
    "RETRIEVE_DEFAULT", "RETRIEVE_GET", "RETRIEVE_MOVE",
    "Job", "pull", "JOB_STAGE_QUERY", "JOB_STAGE_RETRIEVE", "JOB_STAGE_WAIT", "JOB_STAGE_DONE",
    "STUDY_OK", "STUDY_SKIPPED", "STUDY_UNKNOWN", "STUDY_FAILED",
    "JOB_NO_ANONYMIZE", "JOB_DRY_RUN", "JOB_KEEP_IN_HELPER",
]

# Error codes (diana_error_t): DianaError.code is one of these.
OK = 0
ERROR = -1
EINVAL = -2
ENOMEM = -3
EUNSUPPORTED = -4
ENOTFOUND = -5
EIO = -6
EDICOM = -7
ETIMEDOUT = -8
ECANCELLED = -9
EAUTH = -10
ETLS = -11
ECONNECT = -12
EPACS = -13
EUSER = -14
ENOTINIT = -15
EEXISTS = -16
ELEAK = -17
ENOSPC = -18


class Feature(enum.IntFlag):
    """Bits of :func:`features` (diana_feature_t)."""
    THREADS = 1 << 0  #: thread-safe build (always set)
    HTTPS = 1 << 1    #: libcurl with TLS support
    ICONV = 1 << 2    #: character set conversion available


FEATURE_THREADS = Feature.THREADS
FEATURE_HTTPS = Feature.HTTPS
FEATURE_ICONV = Feature.ICONV


def version():
    """Version of the loaded libdiana, e.g. "0.1.0"."""
    return _lib.version_string


def version_info():
    """Version of the loaded libdiana as (major, minor, patch)."""
    return _lib.version_info


def features():
    """Features compiled into the loaded libdiana, as a :class:`Feature` flag
    (``diana.FEATURE_HTTPS in diana.features()``)."""
    return Feature(_lib.api.diana_features())


def strerror(code):
    """Static English description of an error code."""
    return _lib.strerror(code)


try:
    _lib.api.diana_init()
except DianaError as _e:
    raise ImportError("diana_init() failed: %s" % _e) from _e


@atexit.register
def _shutdown():
    from . import _log
    _log._uninstall()
    _lib.api.diana_shutdown()
