# libdiana Python binding: prospective pipelines (include/diana/pipeline.h,
# doc/pipeline.md).
# SPDX-License-Identifier: MIT

import json
import os
import threading
from ctypes import byref, c_uint32, c_void_p

from . import _lib
from ._decl_pipeline import (P_pipeline, diana_model_fn, diana_pipeline_options,
                             diana_pipeline_stats, PIPELINE_OPTIONS_VERSION,
                             PIPELINE_STATS_VERSION)
from ._lib import DianaError, api
from ._session import _from_dicom_json


class ModelInput:
    """What a Python model gets: ``study_dir`` (a folder with the study's
    files), ``study_uid``, ``instances`` and ``header`` (a dict of one
    instance's attributes, keyword -> text)."""

    __slots__ = ("study_dir", "study_uid", "instances", "header")

    def __repr__(self):
        return "<diana.ModelInput %s (%d instances)>" % (self.study_dir, self.instances)


class Pipeline:
    """A prospective pipeline: source + filter + model + sinks (doc/pipeline.md).

        def model(study):               # a diana.ModelInput
            return {"summary": "no bleed", "items": []}
        with diana.Pipeline("watch.json", model=model) as p:
            p.run()                     # until p.stop() from another thread

    ``config`` is a path to a JSON file (relative paths in it resolve against
    its folder), a JSON string or a dict. ``model`` replaces the
    configuration's "model" with a Python callable that returns the result
    as a dict (or raises: the failure is reported and the pipeline goes on).
    """

    def __init__(self, config, model=None):
        self._handle = None
        self._errors = []
        o = diana_pipeline_options()
        api.diana_pipeline_options_init(byref(o), PIPELINE_OPTIONS_VERSION)
        keep = []
        if isinstance(config, dict):
            text = json.dumps(config).encode("utf-8")
            keep.append(text)
            o.config_json = text
        elif isinstance(config, (str, bytes, os.PathLike)) and os.path.exists(config):
            path = os.fsencode(config)
            keep.append(path)
            o.config_path = path
        elif isinstance(config, str) and config.lstrip().startswith("{"):
            text = config.encode("utf-8")
            keep.append(text)
            o.config_json = text
        else:
            raise FileNotFoundError("no such configuration file: %r" % (config,))
        self._model = model
        self._cb = diana_model_fn(self._call_model) if model else diana_model_fn()
        o.model = self._cb
        out = P_pipeline()
        api.diana_pipeline_new(byref(out), byref(o))
        self._handle = out
        self._thread = None

    def _call_model(self, inp_ptr, out_ptr, ud):
        try:
            c = inp_ptr.contents
            mi = ModelInput()
            mi.study_dir = os.fsdecode(c.study_dir)
            mi.study_uid = (c.study_uid or b"").decode("ascii", "replace")
            mi.instances = c.instances
            js = c_void_p()
            api.diana_dataset_to_json(c.header, 0, byref(js))
            mi.header = _from_dicom_json(json.loads(_lib.take_string(js)))
            res = self._model(mi)
            if not isinstance(res, dict):
                raise TypeError("a model returns a dict, not %s" % type(res).__name__)
            api.diana_model_output_set(out_ptr, json.dumps(res).encode("utf-8"))
            return 0
        except BaseException as e:  # noqa: B902 - reported, the pipeline goes on
            self._errors.append(e)
            return 1

    def _h(self):
        if self._handle is None:
            raise ValueError("operation on a closed Pipeline")
        return self._handle

    def run(self):
        """Run until :meth:`stop` (from another thread or a signal handler)."""
        api.diana_pipeline_run(self._h())

    def run_once(self):
        """Handle what the source has now, deliver, return the number of studies handled."""
        n = c_uint32()
        api.diana_pipeline_run_once(self._h(), byref(n))
        return n.value

    def start(self):
        """Run in a background thread (see :meth:`stop`, :meth:`wait`)."""
        api.diana_pipeline_start(self._h())

    def stop(self):
        """Stop after the study in hand (any thread)."""
        if self._handle:
            api.diana_pipeline_stop(self._handle)

    def wait(self):
        api.diana_pipeline_wait(self._h())

    def stats(self):
        """Counters and latencies (ms; -1 when unknown) as a dict."""
        st = diana_pipeline_stats()
        st.version = PIPELINE_STATS_VERSION
        api.diana_pipeline_stats_get(self._h(), byref(st))
        return {k: getattr(st, k) for k, _ in st._fields_ if k != "version"}

    @property
    def model_errors(self):
        """Exceptions raised by the Python model so far (the pipeline went on)."""
        return list(self._errors)

    def close(self):
        h, self._handle = self._handle, None
        if h:
            api.diana_pipeline_free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


__all__ = ["Pipeline", "ModelInput", "DianaError"]
