# Tests of diana.Scanner and diana.key_lookup (leak scanner, key file).
# SPDX-License-Identifier: MIT

import csv
import json
import os
import pathlib
import subprocess
import sys
import threading

import pytest

import diana
from conftest import REPO, data_file

SYNTH = REPO / "tests" / "tools" / "synth.py"

ERIKA = ("MUSTERMANN", "ERIKA", "PID-000456", "19710203", "DIANA-CT-001")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    subprocess.run(["/usr/bin/python3", str(SYNTH), "--out", str(out), "--ct", "2",
                    "--ct-slices", "2", "--ct-size", "32x32", "--quiet"], check=True)
    return out


def clean_copy(src, dst, plant=None):
    """A de-identified stand-in: only safe attributes, new UIDs, then `plant`
    ({keyword or tag: (vr, value)}) to simulate leaks."""
    with diana.Dataset(src) as ds:
        doc = ds.to_dict(meta=True)
    keep = {"00020001", "00020002", "00020010", "00080008", "00080016", "00080060",
            "00280002", "00280004", "00280010", "00280011", "00280100", "00280101",
            "00280102", "00280103", "7FE00010"}
    doc = {k: v for k, v in doc.items() if k in keep}
    doc["00080018"] = {"vr": "UI", "Value": ["2.25.%d" % (abs(hash(str(dst))) % 10**20)]}
    doc["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "SHAM^PERSON"}]}
    for tag, (vr, value) in (plant or {}).items():
        doc[tag] = {"vr": vr, "Value": [value]}
    with diana.Dataset.from_json(doc) as ds:
        ds.save(dst)
    return dst


def test_key_columns_match_the_c_library(tmp_path):
    key = tmp_path / "key.csv"
    with open(key, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(diana.KEY_COLUMNS)
        w.writerow(["DOE^JOHN, \"JR\"", "PID-1", "19580717", "ACC-1", "1.2.3", "20240101",
                    "SHAM^A", "X1", "19580101", "A1", "2.25.1", "20230101"])
    row = diana.key_lookup(key, "PseudoPatientID", "X1")
    assert list(row) == list(diana.KEY_COLUMNS)
    assert row["OriginalPatientName"] == "DOE^JOHN, \"JR\""
    assert diana.key_lookup(key, "PseudoPatientID", "nope") is None
    with pytest.raises(ValueError):
        diana.key_lookup(key, "PatientID", "X1")
    with pytest.raises(diana.DianaError) as e:
        diana.key_lookup(tmp_path / "missing.csv", "PseudoPatientID", "X1")
    assert e.value.code == diana.ENOTFOUND
    (tmp_path / "foreign.csv").write_text("a,b\r\n1,2\r\n")
    with pytest.raises(diana.DianaError) as e:
        diana.key_lookup(tmp_path / "foreign.csv", "PseudoPatientID", "X1")
    assert e.value.code == diana.EINVAL


def test_clean_output_gives_an_empty_list(synth, tmp_path):
    orig = synth / "DIANA-CT-001" / "1.dcm"
    out = clean_copy(orig, tmp_path / "out.dcm")
    with diana.Scanner(originals=[orig]) as s:
        assert s.scan_file(orig), "the original leaks"
        assert s.scan_file(out) == []


def test_findings_name_place_and_kind_never_the_value(synth, tmp_path):
    orig = synth / "DIANA-CT-001" / "1.dcm"
    out = clean_copy(orig, tmp_path / "out.dcm", {
        "00204000": ("LT", "Erika Mustermann, born 03.02.1971"),
        "00081030": ("LO", "DIANA-CT-001"),
    })
    with diana.Dataset(orig) as ds, diana.Scanner() as s:
        s.add_dataset(ds)
        findings = s.scan_file(out)
    assert diana.Finding("00204000", "name") in findings
    assert diana.Finding("00204000", "date") in findings
    assert diana.Finding("00081030", "id") in findings
    assert all(isinstance(f, diana.Finding) for f in findings)
    text = repr(findings).upper()
    for v in ERIKA:
        assert v not in text


def test_values_and_key_files(synth, tmp_path):
    orig = synth / "DIANA-CT-002" / "1.dcm"
    leak = clean_copy(orig, tmp_path / "DOE_JOHN.dcm")
    with diana.Scanner(values=["DOE^JOHN^Q"]) as s:
        assert s.scan_file(leak) == [diana.Finding("file name", "name")]
    key = tmp_path / "key.csv"
    with open(key, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(diana.KEY_COLUMNS)
        w.writerow(["DOE^JOHN^Q", "PID-000123", "19580717", "DIANA-CT-002", "1.2.3", "20240302",
                    "SHAM^PERSON", "X1", "19580101", "A1", "2.25.1", "20230101"])
    with diana.Scanner(key_files=[key]) as s:
        assert s.scan_file(leak) == [diana.Finding("file name", "name")]
        clean = clean_copy(orig, tmp_path / "ok.dcm")
        assert s.scan_file(clean) == []


def test_fails_closed(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not DICOM")
    with diana.Scanner() as s:
        with pytest.raises(diana.DianaError) as e:
            s.scan_file(data_file("dicom/ct/CT_small.dcm"))
        assert e.value.code == diana.EINVAL, "an empty scanner vouches for nothing"
        s.add_value("SOMEONE^ELSE")
        with pytest.raises(diana.DianaError) as e:
            s.scan_file(notes)
        assert e.value.code == diana.EDICOM
        with pytest.raises(diana.DianaError) as e:
            s.scan_file(data_file("dicom/malformed/MR_truncated.dcm"))
        assert e.value.code == diana.EDICOM
        with pytest.raises(diana.DianaError) as e:
            s.scan_file(tmp_path / "missing.dcm")
        assert e.value.code == diana.ENOTFOUND
        with pytest.raises(diana.DianaError) as e:
            s.add_value("ab")
        assert e.value.code == diana.EINVAL
        with pytest.raises(TypeError):
            s.add_value(b"bytes")
        with pytest.raises(ValueError):
            s.add_value("a\0bc")
        with pytest.raises(diana.DianaError):
            s.add_key_file(tmp_path / "missing.csv")
    with pytest.raises(ValueError):
        s.scan_file(notes)  # closed
    s.close()  # idempotent


def test_concurrent_scans(synth):
    orig = synth / "DIANA-CT-001" / "1.dcm"
    errors = []
    with diana.Scanner(originals=[orig]) as s:
        expected = s.scan_file(orig)

        def work():
            try:
                for _ in range(10):
                    assert s.scan_file(orig) == expected
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors


def test_cannot_be_copied():
    import copy
    with diana.Scanner() as s:
        with pytest.raises(TypeError):
            copy.copy(s)


# -- the outputs' options ----------------------------------------------------

SECRET = b"python scanner options test secret, 32 bytes+"


def test_options_retained_values_are_no_finding(synth, tmp_path):
    src = synth / "DIANA-CT-001" / "1.dcm"
    out = tmp_path / "out.dcm"
    opts = ["retain-long-full-dates", "retain-device-identity"]
    with diana.Profile(secret=SECRET, options=opts, overrides={"StudyDescription": "keep"}) as p:
        p.anonymize_file(src, out)
        # not told: the retained values are findings
        with diana.Scanner(originals=[src]) as s:
            found = s.scan_file(out)
        assert diana.Finding("00080020", "date") in found
        assert diana.Finding("00181000", "id") in found
        assert diana.Finding("00081030", "text") in found
        # told: by names, bits and overrides, or by the profile itself
        with diana.Scanner(originals=[src], options=opts, overrides={"StudyDescription": "keep"}) as s:
            assert s.scan_file(out) == []
        with diana.Scanner(options=[diana.DEID_RETAIN_LONG_FULL_DATES | diana.DEID_RETAIN_DEVICE_IDENTITY],
                           overrides={"(0008,1030)": "keep"}) as s:
            s.add_dataset(str(src))
            assert s.scan_file(out) == []
        with diana.Scanner(profile=p, originals=[src]) as s:
            assert s.scan_file(out) == []
        # an option alone: the override's value is still found
        with diana.Scanner(originals=[src], options=opts) as s:
            assert s.scan_file(out) == [diana.Finding("00081030", "text")]


def test_options_still_find_what_they_do_not_retain(synth, tmp_path):
    src = synth / "DIANA-CT-001" / "1.dcm"
    leaky = clean_copy(src, tmp_path / "leaky.dcm", {
        "00100010": ("PN", {"Alphabetic": "MUSTERMANN^ERIKA"}),
        "00080050": ("SH", "DIANA-CT-001"),
        "00100030": ("DA", "19710203"),
        "00080020": ("DA", "20240301"),  # Study Date: retained with full dates
    })
    with diana.Scanner(originals=[src], options=["retain-long-full-dates", "retain-uids"]) as s:
        found = set(s.scan_file(leaky))
    assert {diana.Finding("00100010", "name"), diana.Finding("00080050", "id"),
            diana.Finding("00100030", "date")} <= found
    assert diana.Finding("00080020", "date") not in found


def test_options_must_come_first(synth):
    with diana.Scanner(values=["SOMEONE^ELSE"]) as s:
        with pytest.raises(diana.DianaError) as e:
            s.set_options(["retain-uids"])
        assert e.value.code == diana.EINVAL
        with pytest.raises(diana.DianaError):
            s.set_action("StationName", "keep")
    with pytest.raises(diana.DianaError):
        diana.Scanner(options=["retain-long-full-dates", "retain-long-modified-dates"])
    with pytest.raises(diana.DianaError):
        diana.Scanner(options=["retain-everything"])
    with pytest.raises(ValueError):
        diana.Scanner(overrides={"StationName": "hide"})
    with pytest.raises(TypeError):
        diana.Scanner(profile="not a profile")
