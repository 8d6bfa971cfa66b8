#!/usr/bin/python3
# A stand-in model for the pipeline tests: counts the DICOM files of the study
# folder (its last argument) and prints a result as JSON. Its behaviour comes
# from DIANA_TEST_MODEL_MODE: ok (default), fail (exit 1), sleep (hangs), garbage.
# SPDX-License-Identifier: MIT
import json
import os
import sys
import time

mode = os.environ.get("DIANA_TEST_MODEL_MODE", "ok")
folder = sys.argv[-1]
n = sum(len([f for f in files if f.endswith(".dcm")]) for _, _, files in os.walk(folder))
if mode == "fail":
    print("model crashed on purpose", file=sys.stderr)
    sys.exit(1)
if mode == "sleep":
    time.sleep(60)
if mode == "garbage":
    print("not json")
    sys.exit(0)
print(json.dumps({"summary": "no hemorrhage (%d images)" % n,
                  "items": [{"type": "num", "name": "Images", "value": n, "unit": "{images}"},
                            {"type": "text", "name": "Finding", "value": "none"}]}))
