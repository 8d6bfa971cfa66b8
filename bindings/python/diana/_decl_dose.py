# libdiana Python binding: ctypes declarations of include/diana/dose.h.
# SPDX-License-Identifier: MIT
"""Declarations of dose.h: name -> (restype, argtypes, errcheck?, since), merged
into diana._lib.DECLARATIONS (same rules, see _lib.py).

dose.h's types are defined here and registered in _lib.C_TYPES and
_lib.STRUCT_VERSIONS (this module is imported by _lib once those exist), so
that the header check (tests/python/headers.py) finds them."""

from ctypes import (POINTER, Structure, c_char_p, c_int, c_int32, c_int64,
                    c_size_t, c_uint32, c_uint64)

from ._lib import (C_TYPES, CHECKED, STRUCT_VERSIONS, P_dataset, P_owned,
                   diana_profile)


class diana_dose_sink(Structure):
    """Opaque ``struct diana_dose_sink``: only ever used through a POINTER."""


#: DIANA_DOSE_OPTIONS_VERSION this structure layout corresponds to
DOSE_OPTIONS_VERSION = 1


class diana_dose_options(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("flags", c_uint32),
        ("profile", POINTER(diana_profile)),
    ]


#: DIANA_DOSE_HEC_OPTIONS_VERSION this structure layout corresponds to
DOSE_HEC_OPTIONS_VERSION = 1


class diana_dose_hec_options(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("url", c_char_p),
        ("token", c_char_p),
        ("token_file", c_char_p),
        ("index", c_char_p),
        ("sourcetype", c_char_p),
        ("source", c_char_p),
        ("host", c_char_p),
        ("ca_file", c_char_p),
        ("batch_events", c_uint32),
        ("batch_bytes", c_uint32),
        ("retries", c_int32),
        ("retry_delay_ms", c_int64),
        ("timeout_ms", c_int64),
    ]


C_TYPES.update({
    "diana_dose_sink": diana_dose_sink,
    "diana_dose_options": diana_dose_options,
    "diana_dose_hec_options": diana_dose_hec_options,
})
STRUCT_VERSIONS.update({
    "DIANA_DOSE_OPTIONS_VERSION": (diana_dose_options, DOSE_OPTIONS_VERSION),
    "DIANA_DOSE_HEC_OPTIONS_VERSION": (diana_dose_hec_options, DOSE_HEC_OPTIONS_VERSION),
})

P_dose_sink = POINTER(diana_dose_sink)

DECLARATIONS = {
    "diana_dose_options_init": (c_int, [POINTER(diana_dose_options), c_uint32], CHECKED, (0, 1)),
    "diana_dose_from_dataset": (c_int, [P_owned, P_dataset, POINTER(diana_dose_options)], CHECKED, (0, 1)),
    "diana_dose_from_file": (c_int, [P_owned, c_char_p, POINTER(diana_dose_options)], CHECKED, (0, 1)),
    "diana_dose_from_memory": (c_int, [P_owned, c_char_p, c_size_t, POINTER(diana_dose_options)],
                               CHECKED, (0, 1)),
    "diana_dose_hec_options_init": (c_int, [POINTER(diana_dose_hec_options), c_uint32], CHECKED, (0, 1)),
    "diana_dose_sink_new_hec": (c_int, [POINTER(P_dose_sink), POINTER(diana_dose_hec_options)],
                                CHECKED, (0, 1)),
    "diana_dose_sink_new_jsonl": (c_int, [POINTER(P_dose_sink), c_char_p], CHECKED, (0, 1)),
    "diana_dose_sink_add": (c_int, [P_dose_sink, c_char_p], CHECKED, (0, 1)),
    "diana_dose_sink_flush": (c_int, [P_dose_sink], CHECKED, (0, 1)),
    "diana_dose_sink_delivered": (c_uint64, [P_dose_sink], False, (0, 1)),
    "diana_dose_sink_free": (None, [P_dose_sink], False, (0, 1)),
}
