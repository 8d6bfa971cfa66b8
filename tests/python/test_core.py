# Version, features and errors.
# SPDX-License-Identifier: MIT

import re
import threading

import pytest

import diana
from conftest import REPO
from diana import _lib


def project_version():
    text = (REPO / "meson.build").read_text(encoding="utf-8")
    return re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", text, re.S).group(1)


def test_version():
    pyproject = (REPO / "bindings" / "python" / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^version = \"([^\"]+)\"", pyproject, re.M).group(1) == project_version()
    assert diana.version() == project_version()
    assert diana.version_info() == tuple(int(x) for x in project_version().split("."))
    assert diana.version() == "%d.%d.%d" % diana.version_info()
    assert diana.version_info()[0] == _lib.API_MAJOR


def test_features():
    f = diana.features()
    assert isinstance(f, diana.Feature)
    assert diana.FEATURE_THREADS in f  # always set
    assert int(f) == _lib.api.diana_features()
    assert int(f) & ~0b111 == 0  # only known bits today


def test_strerror():
    assert diana.strerror(diana.OK) == "success"
    assert diana.strerror(diana.ENOTFOUND) == "not found"
    assert diana.strerror(diana.EDICOM) == "invalid DICOM data"
    assert diana.strerror(-1000) == "unknown error"
    descriptions = [diana.strerror(c) for c in range(diana.ENOSPC, 1)]
    assert "unknown error" not in descriptions
    assert len(set(descriptions)) == len(descriptions)


def test_error_constants_are_distinct_and_named():
    codes = {n: getattr(diana, n) for n in diana.__all__ if re.fullmatch(r"E[A-Z]+|OK|ERROR", n)}
    assert len(codes) == 19
    assert len(set(codes.values())) == len(codes)
    for name, code in codes.items():
        assert diana.DianaError(code, "x").name == name


def test_dianaerror():
    e = diana.DianaError(diana.ENOTFOUND, "file not found")
    assert isinstance(e, Exception)
    assert e.code == diana.ENOTFOUND and e.message == "file not found"
    assert e.args == (diana.ENOTFOUND, "file not found")
    assert str(e) == "file not found [ENOTFOUND]"
    assert str(diana.DianaError(-1000, "")) == "unknown error [-1000]"


def test_missing_file(tmp_path):
    missing = tmp_path / "absent.dcm"
    with pytest.raises(diana.DianaError) as info:
        diana.Dataset(missing)
    e = info.value
    assert e.code == diana.ENOTFOUND
    assert e.message and "\n" not in e.message and "\r" not in e.message
    assert e.message == _lib._decode(_lib.api.diana_error_message())
    assert _lib.api.diana_error_code() == diana.ENOTFOUND
    _lib.api.diana_error_clear()
    assert _lib.api.diana_error_code() == 0 and _lib.api.diana_error_message() == b""


def test_message_is_not_stale():
    # a code that libdiana did not record gets its description, not an old message
    with pytest.raises(diana.DianaError):
        diana.Dataset("/nonexistent/x.dcm")
    e = _lib.last_error(diana.EUSER)
    assert e.code == diana.EUSER and e.message == diana.strerror(diana.EUSER)


def failing_operations(ct_path):
    ds = diana.Dataset(ct_path)  # shared, read-only: safe on several threads
    opts = _lib.diana_dataset_options()
    return {
        "missing file": lambda: diana.Dataset("/nonexistent/dir/absent.dcm"),
        "json array of two": lambda: diana.Dataset.from_json("[{}, {}]"),
        "bad json": lambda: diana.Dataset.from_json('{"00100020": nope}'),
        "options version": lambda: _lib.api.diana_dataset_options_init(opts, 99),
        "bad key": lambda: ds.get("NoSuchKeywordAtAll"),
        "binary as text": lambda: ds.get("PixelData"),
        "garbage bytes": lambda: diana.Dataset.from_bytes(b"\x01\x02" * 64),
    }, ds


def outcome(op):
    try:
        op()
    except diana.DianaError as e:
        return e.code, e.message
    return None


def test_thread_local_errors(ct_path):
    ops, ds = failing_operations(ct_path)
    # reference outcomes, one thread at a time
    expected = {name: outcome(op) for name, op in ops.items()}
    assert None not in expected.values()
    codes = [c for c, _ in expected.values()]
    assert {diana.ENOTFOUND, diana.EDICOM, diana.EUNSUPPORTED, diana.EINVAL} <= set(codes)
    assert len({m for _, m in expected.values()}) == len(expected)  # distinguishable

    names = sorted(ops)
    barrier = threading.Barrier(4)
    wrong = []

    def worker(i):
        barrier.wait()
        for n in range(300):
            name = names[(i + n) % len(names)] if i % 2 else names[i]
            got = outcome(ops[name])
            if got != expected[name]:
                wrong.append((i, name, got, expected[name]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ds.close()
    assert wrong == []


def test_thread_local_errors_same_function():
    # every thread fails in the same function, at a different byte offset
    texts = ['{"00100020": {"vr": "LO", "Value": [' + '"x",' * (2000 + 100 * i) + "oops"
             for i in range(4)]
    expected = [outcome(lambda t=t: diana.Dataset.from_json(t)) for t in texts]
    assert len(set(expected)) == 4
    barrier = threading.Barrier(4)
    wrong = []

    def worker(i):
        barrier.wait()
        for _ in range(4000):
            got = outcome(lambda: diana.Dataset.from_json(texts[i]))
            if got != expected[i]:
                wrong.append((i, got))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
