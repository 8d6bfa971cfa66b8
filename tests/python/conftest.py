# Shared fixtures of the Python binding tests.
# SPDX-License-Identifier: MIT
#
# Run by meson (suite 'python') with DIANA_LIBRARY set to the built library
# and PYTHONPATH to bindings/python. Run by hand:
#   DIANA_LIBRARY=build/lib/libdiana.so.0 python3 -m pytest tests/python

import os
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
INCLUDE_DIR = REPO / "include" / "diana"

if not any((pathlib.Path(p) / "diana" / "__init__.py").is_file() for p in sys.path if p):
    sys.path.insert(0, str(REPO / "bindings" / "python"))

import diana  # noqa: E402


def data_file(rel, required=True):
    """A test file from tests/data, else from the shared corpus
    (DIANA_SHARED_DATA or ../shared/data) when that is present."""
    bases = [os.environ.get("DIANA_TEST_DATA") or REPO / "tests" / "data",
             os.environ.get("DIANA_SHARED_DATA") or REPO.parent / "shared" / "data"]
    for base in bases:
        p = pathlib.Path(base) / rel
        if p.is_file():
            return p
    if required:
        pytest.fail("test file %s is in neither tests/data nor the shared corpus" % rel)
    pytest.skip("optional test file %s not available" % rel)


@pytest.fixture
def ct_path():
    return data_file("dicom/ct/CT_small.dcm")


@pytest.fixture
def ct(ct_path):
    with diana.Dataset(ct_path) as ds:
        yield ds


@pytest.fixture
def log_records():
    """Install a recording log handler at DEBUG; restore the previous state."""
    records = []
    previous = diana.set_log_handler(lambda *r: records.append(r))
    previous_level = diana.set_log_level(diana.LOG_DEBUG)
    try:
        yield records
    finally:
        diana.set_log_handler(previous)
        diana.set_log_level(previous_level)
