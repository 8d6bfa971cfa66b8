# libdiana Python binding: ctypes declarations of include/diana/session.h.
# SPDX-License-Identifier: MIT
"""Declarations of session.h: name -> (restype, argtypes, errcheck?, since), merged
into diana._lib.DECLARATIONS (same rules, see _lib.py)."""

from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int64,
                    c_size_t, c_uint32, c_uint64, c_void_p)

from . import _lib
from ._lib import CHECKED, P_dataset


class diana_session(Structure):
    """Opaque ``struct diana_session``: only ever used through a POINTER."""


#: DIANA_SESSION_OPTIONS_VERSION this structure layout corresponds to
SESSION_OPTIONS_VERSION = 1


class diana_session_options(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("username", c_char_p),
        ("password", c_char_p),
        ("netrc_file", c_char_p),
        ("ca_file", c_char_p),
        ("insecure", c_int),
        ("connect_timeout_ms", c_int64),
        ("timeout_ms", c_int64),
        ("retries", c_int),
        ("retry_delay_ms", c_int64),
        ("calling_aet", c_char_p),
        ("local_port", c_int),
        ("retrieve", c_int),
        ("temp_dir", c_char_p),
    ]


#: DIANA_INSTANCE_VERSION this structure layout corresponds to
INSTANCE_VERSION = 1


class diana_instance(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("path", c_char_p),
        ("sop_instance_uid", c_char_p),
        ("sop_class_uid", c_char_p),
        ("transfer_syntax_uid", c_char_p),
        ("size", c_uint64),
        ("temporary", c_int),
    ]


#: DIANA_TRANSFER_STATS_VERSION this structure layout corresponds to
TRANSFER_STATS_VERSION = 1


class diana_transfer_stats(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("instances", c_uint64),
        ("bytes", c_uint64),
        ("failed", c_uint32),
        ("warnings", c_uint32),
        ("status", c_uint32),
        ("elapsed_ms", c_int64),
    ]


#: DIANA_CHANGE_VERSION this structure layout corresponds to
CHANGE_VERSION = 1


class diana_change(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("seq", c_int64),
        ("change_type", c_char_p),
        ("resource_type", c_char_p),
        ("id", c_char_p),
        ("path", c_char_p),
        ("date", c_char_p),
    ]


P_session = POINTER(diana_session)
diana_find_fn = CFUNCTYPE(c_int, P_dataset, c_void_p)
diana_instance_fn = CFUNCTYPE(c_int, POINTER(diana_instance), c_void_p)
diana_store_fn = CFUNCTYPE(c_int, c_size_t, c_char_p, c_int, c_void_p)
diana_change_fn = CFUNCTYPE(c_int, POINTER(diana_change), c_void_p)

_lib.C_TYPES.update({
    "diana_session": diana_session,
    "diana_session_options": diana_session_options,
    "diana_instance": diana_instance,
    "diana_transfer_stats": diana_transfer_stats,
    "diana_change": diana_change,
    "diana_find_fn": diana_find_fn,
    "diana_instance_fn": diana_instance_fn,
    "diana_store_fn": diana_store_fn,
    "diana_change_fn": diana_change_fn,
})
_lib.STRUCT_VERSIONS.update({
    "DIANA_SESSION_OPTIONS_VERSION": (diana_session_options, SESSION_OPTIONS_VERSION),
    "DIANA_INSTANCE_VERSION": (diana_instance, INSTANCE_VERSION),
    "DIANA_TRANSFER_STATS_VERSION": (diana_transfer_stats, TRANSFER_STATS_VERSION),
    "DIANA_CHANGE_VERSION": (diana_change, CHANGE_VERSION),
})

_S = (0, 1)
DECLARATIONS = {
    "diana_session_options_init": (c_int, [POINTER(diana_session_options), c_uint32], CHECKED, _S),
    "diana_session_open": (c_int, [POINTER(P_session), c_char_p, POINTER(diana_session_options)],
                           CHECKED, _S),
    "diana_session_free": (None, [P_session], False, _S),
    "diana_session_kind": (c_int, [P_session], CHECKED, _S),
    "diana_session_uri": (c_char_p, [P_session], False, _S),
    "diana_session_cancel": (None, [P_session], False, _S),
    "diana_session_echo": (c_int, [P_session], CHECKED, _S),
    "diana_session_find": (c_int, [P_session, c_int, POINTER(c_char_p), c_size_t, diana_find_fn,
                                   c_void_p, POINTER(c_size_t)], CHECKED, _S),
    "diana_instance_keep": (c_int, [POINTER(diana_instance), c_char_p], CHECKED, _S),
    "diana_session_retrieve": (c_int, [P_session, c_char_p, c_char_p, c_char_p, diana_instance_fn,
                                       c_void_p, POINTER(diana_transfer_stats)], CHECKED, _S),
    "diana_session_retrieve_to_folder": (c_int, [P_session, c_char_p, c_char_p, c_char_p, c_char_p,
                                                 POINTER(diana_transfer_stats)], CHECKED, _S),
    "diana_session_store": (c_int, [P_session, POINTER(c_char_p), c_size_t, diana_store_fn, c_void_p,
                                    POINTER(diana_transfer_stats)], CHECKED, _S),
    "diana_session_changes": (c_int, [P_session, c_int64, c_uint32, diana_change_fn, c_void_p,
                                      POINTER(c_int64), POINTER(c_int)], CHECKED, _S),
}
