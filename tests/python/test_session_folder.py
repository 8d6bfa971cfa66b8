# Folder sessions through the Python binding (diana.Session on a path).
# SPDX-License-Identifier: MIT
import csv
import os
import pathlib
import subprocess
import sys

import pytest

import diana

HERE = pathlib.Path(__file__).resolve().parent
SYNTH = HERE.parents[0] / "tools" / "synth.py"


@pytest.fixture
def synth(tmp_path):
    """4 CT studies of 3 slices and 4 XR studies; returns (folder, manifest rows)."""
    out = tmp_path / "src"
    subprocess.run([sys.executable, str(SYNTH), "--out", str(out), "--ct", "4", "--ct-slices", "3",
                    "--ct-size", "16x16", "--xr", "4", "--xr-size", "16x16", "-q"], check=True)
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return out, rows


def test_find_and_get(synth, tmp_path):
    src, rows = synth
    with diana.Session(str(src)) as s:
        assert s.kind == "folder"
        s.echo()
        for row in rows:
            found = s.find("study", AccessionNumber=row["accession"], PatientName=None,
                           NumberOfStudyRelatedInstances=None, ModalitiesInStudy=None)
            assert len(found) == 1
            st = found[0]
            assert st["StudyInstanceUID"] == row["study_uid"]
            assert st["PatientName"] == row["patient_name"]
            assert int(st["NumberOfStudyRelatedInstances"]) == int(row["instances"])
            assert st["ModalitiesInStudy"] == row["modality"]
        assert len(s.find("study", PatientName="MUSTER*")) == 2
        assert len(s.find("study", StudyDate="20240401-")) == 4
        assert len(s.find("patient")) == 6

        ct = next(r for r in rows if r["accession"] == "DIANA-CT-002")
        stats = s.get(ct["study_uid"], out=tmp_path / "out")
        assert stats["instances"] == 3
        files = sorted((tmp_path / "out" / ct["study_uid"]).rglob("*.dcm"))
        assert len(files) == 3
        # the copies hold the same bytes as the folder's files
        originals = sorted(p.read_bytes() for p in (src / "DIANA-CT-002").glob("*.dcm"))
        assert sorted(p.read_bytes() for p in files) == originals

        seen = []
        s.retrieve(ct["study_uid"], callback=lambda inst: seen.append(inst))
        assert len(seen) == 3


def test_store_with_a_bad_file(synth, tmp_path):
    src, rows = synth
    dest = tmp_path / "dest"
    dest.mkdir()
    bad = tmp_path / "notes.dcm"
    bad.write_text("not DICOM\n")
    paths = sorted((src / "DIANA-CT-001").glob("*.dcm")) + [bad]
    with diana.Session("file://" + str(dest)) as s:
        res = s.store(paths)
        assert res["instances"] == 3
        assert len(res["errors"]) == 1
        path, err = res["errors"][0]
        assert path == str(bad)
        assert err.code == diana.EDICOM
        # twice: still one copy each
        s.store(paths[:3])
        found = s.find("instance")
        assert len(found) == 3
    assert len([p for p in dest.rglob("*") if p.is_file()]) == 3
    with diana.Session(str(dest)) as s:
        ct = next(r for r in rows if r["accession"] == "DIANA-CT-001")
        assert [st["StudyInstanceUID"] for st in s.find("study")] == [ct["study_uid"]]


def test_missing_folder(tmp_path):
    with pytest.raises(diana.DianaError) as e:
        diana.Session(str(tmp_path / "nope"))
    assert e.value.code == diana.ENOTFOUND
