# libdiana Python binding: ctypes declarations of include/diana/pipeline.h.
# SPDX-License-Identifier: MIT
"""Declarations of pipeline.h: name -> (restype, argtypes, errcheck?, since), merged
into diana._lib.DECLARATIONS (same rules, see _lib.py)."""

from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int64,
                    c_uint32, c_uint64, c_void_p)

from ._lib import C_TYPES, CHECKED, STRUCT_VERSIONS, P_dataset


class diana_pipeline(Structure):
    """Opaque ``struct diana_pipeline``: only ever used through a POINTER."""


class diana_model_output(Structure):
    """Opaque ``struct diana_model_output``: only ever used through a POINTER."""


#: DIANA_MODEL_INPUT_VERSION this structure layout corresponds to
MODEL_INPUT_VERSION = 1


class diana_model_input(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("study_dir", c_char_p),
        ("header", P_dataset),
        ("study_uid", c_char_p),
        ("instances", c_uint32),
    ]


P_pipeline = POINTER(diana_pipeline)
P_model_output = POINTER(diana_model_output)
diana_model_fn = CFUNCTYPE(c_int, POINTER(diana_model_input), P_model_output, c_void_p)

#: DIANA_PIPELINE_OPTIONS_VERSION this structure layout corresponds to
PIPELINE_OPTIONS_VERSION = 1


class diana_pipeline_options(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("config_json", c_char_p),
        ("config_path", c_char_p),
        ("model", diana_model_fn),
        ("model_user_data", c_void_p),
    ]


#: DIANA_PIPELINE_STATS_VERSION this structure layout corresponds to
PIPELINE_STATS_VERSION = 1


class diana_pipeline_stats(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("seen", c_uint64),
        ("matched", c_uint64),
        ("processed", c_uint64),
        ("model_failures", c_uint64),
        ("retrieve_failures", c_uint64),
        ("delivered", c_uint64),
        ("pending", c_uint64),
        ("last_detect_ms", c_int64),
        ("last_retrieved_ms", c_int64),
        ("last_model_ms", c_int64),
        ("last_delivered_ms", c_int64),
        ("median_pipeline_ms", c_int64),
        ("median_total_ms", c_int64),
    ]


C_TYPES.update({
    "diana_pipeline": diana_pipeline,
    "diana_model_output": diana_model_output,
    "diana_model_input": diana_model_input,
    "diana_model_fn": diana_model_fn,
    "diana_pipeline_options": diana_pipeline_options,
    "diana_pipeline_stats": diana_pipeline_stats,
})
STRUCT_VERSIONS.update({
    "DIANA_MODEL_INPUT_VERSION": (diana_model_input, MODEL_INPUT_VERSION),
    "DIANA_PIPELINE_OPTIONS_VERSION": (diana_pipeline_options, PIPELINE_OPTIONS_VERSION),
    "DIANA_PIPELINE_STATS_VERSION": (diana_pipeline_stats, PIPELINE_STATS_VERSION),
})

_S = (0, 1)
DECLARATIONS = {
    "diana_model_output_set": (c_int, [P_model_output, c_char_p], CHECKED, _S),
    "diana_pipeline_options_init": (c_int, [POINTER(diana_pipeline_options), c_uint32], CHECKED, _S),
    "diana_pipeline_new": (c_int, [POINTER(P_pipeline), POINTER(diana_pipeline_options)], CHECKED, _S),
    "diana_pipeline_free": (None, [P_pipeline], False, _S),
    "diana_pipeline_run": (c_int, [P_pipeline], CHECKED, _S),
    "diana_pipeline_run_once": (c_int, [P_pipeline, POINTER(c_uint32)], CHECKED, _S),
    "diana_pipeline_start": (c_int, [P_pipeline], CHECKED, _S),
    "diana_pipeline_stop": (None, [P_pipeline], False, _S),
    "diana_pipeline_wait": (c_int, [P_pipeline], CHECKED, _S),
    "diana_pipeline_stats_get": (c_int, [P_pipeline, POINTER(diana_pipeline_stats)], CHECKED, _S),
}
