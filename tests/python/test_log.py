# The log handler.
# SPDX-License-Identifier: MIT

import gc
import logging
import threading

import pytest

import diana


def fail_open(tmp_path, name="absent.dcm"):
    with pytest.raises(diana.DianaError) as e:
        diana.Dataset(tmp_path / name)
    return e.value


def test_errors_are_logged_at_debug(log_records, tmp_path):
    e = fail_open(tmp_path)
    assert e.code == diana.ENOTFOUND
    errors = [r for r in log_records if r[1] == "error"]
    assert errors, log_records
    level, domain, message = errors[-1]
    assert level == diana.LOG_DEBUG
    assert message.startswith(e.message) and "not found" in message
    assert all(isinstance(d, str) and isinstance(m, str) for _, d, m in log_records)


def test_level_filters(log_records, tmp_path):
    assert diana.set_log_level(diana.LOG_ERROR) == diana.LOG_DEBUG
    fail_open(tmp_path)
    assert log_records == []
    diana.set_log_level(diana.LOG_DEBUG)
    fail_open(tmp_path)
    assert log_records


def test_remove_handler(log_records, tmp_path):
    handler = diana.get_log_handler()
    assert diana.set_log_handler(None) is handler
    assert diana.get_log_handler() is None
    fail_open(tmp_path)
    assert log_records == []


def test_set_handler_with_level(tmp_path):
    got = []
    previous_level = diana.set_log_level(diana.LOG_NONE)
    previous = diana.set_log_handler(lambda *r: got.append(r), level=diana.LOG_DEBUG)
    try:
        fail_open(tmp_path)
        assert got
    finally:
        diana.set_log_handler(previous)
        diana.set_log_level(previous_level)


def test_exception_in_handler_is_reported_not_raised(tmp_path, caplog):
    calls = []

    def handler(level, domain, message):
        calls.append(domain)
        if len(calls) == 1:
            raise RuntimeError("handler bug")

    previous = diana.set_log_handler(handler, level=diana.LOG_DEBUG)
    try:
        with caplog.at_level(logging.ERROR, logger="diana"):
            e = fail_open(tmp_path)
            assert e.code == diana.ENOTFOUND  # the C call completed normally
            fail_open(tmp_path)  # and the handler keeps being called
    finally:
        diana.set_log_handler(previous)
    assert len(calls) >= 2
    reports = [r for r in caplog.records if r.name == "diana"]
    assert len(reports) == 1
    assert "exception in the diana log handler" in reports[0].getMessage()
    assert isinstance(reports[0].exc_info[1], RuntimeError)


def test_base_exception_in_handler_does_not_escape(tmp_path, caplog):
    def handler(level, domain, message):
        raise SystemExit(3)

    previous = diana.set_log_handler(handler, level=diana.LOG_DEBUG)
    try:
        with caplog.at_level(logging.ERROR, logger="diana"):
            assert fail_open(tmp_path).code == diana.ENOTFOUND
    finally:
        diana.set_log_handler(previous)
    assert any(isinstance(r.exc_info[1], SystemExit) for r in caplog.records if r.exc_info)


def test_handler_survives_garbage_collection(tmp_path):
    got = []
    previous = diana.set_log_handler(lambda *r: got.append(r), level=diana.LOG_DEBUG)
    try:
        gc.collect()
        fail_open(tmp_path)
        assert got
    finally:
        diana.set_log_handler(previous)


def test_handler_from_several_threads(log_records, tmp_path):
    seen = set()
    lock = threading.Lock()
    previous = diana.get_log_handler()

    def handler(level, domain, message):
        with lock:
            seen.add(threading.get_ident())
        previous(level, domain, message)

    diana.set_log_handler(handler)
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        for _ in range(50):
            fail_open(tmp_path)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in log_records if r[1] == "error"]) == 200
    assert {t.ident for t in threads} <= seen


def test_invalid_arguments():
    with pytest.raises(TypeError):
        diana.set_log_handler("not callable")
    with pytest.raises(ValueError):
        diana.set_log_level(5)
    with pytest.raises(ValueError):
        diana.set_log_level(-1)
    handler = diana.get_log_handler()
    with pytest.raises(ValueError):
        diana.set_log_handler(print, level=7)
    assert diana.get_log_handler() is handler  # nothing changed


def test_logging_handler(tmp_path, caplog):
    previous = diana.set_log_handler(diana.logging_handler(), level=diana.LOG_DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="diana"):
            e = fail_open(tmp_path)
    finally:
        diana.set_log_handler(previous)
    records = [r for r in caplog.records if r.name == "diana.error"]
    assert records and records[-1].levelno == logging.DEBUG
    assert records[-1].getMessage().startswith(e.message)

