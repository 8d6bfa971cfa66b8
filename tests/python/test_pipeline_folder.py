# A pipeline watching a plain folder (no server): files settled for quiet_s are
# taken and grouped by study; a study is handled once nothing was added to it
# for quiet_s; exactly once across restarts; files that are not DICOM stay.
# SPDX-License-Identifier: MIT
import json
import os
import shutil
import subprocess
import time

import diana

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def synth(out, prefix):
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "tools", "synth.py"), "--out", str(out),
                    "--ct", "1", "--ct-slices", "3", "--ct-size", "64x64", "--xr", "1", "--xr-size", "64x64",
                    "--prefix", prefix, "--quiet"], check=True)


def test_folder_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DIANA_TEST_MODEL_MODE", "ok")
    data = tmp_path / "data"
    synth(data, "PFOL")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cfg = {
        "source": {"folder": str(inbox), "quiet_s": 0.5},
        "state": str(tmp_path / "state"),
        "filter": {"tag": "Modality", "equals": "CT"},
        "model": {"command": [os.path.join(ROOT, "tests", "pipeline", "model.py")], "timeout_s": 30},
        "sinks": [{"type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
    }
    # a CT in a nested folder, a radiograph, and a file that is not DICOM
    shutil.copytree(data / "PFOL-CT-001", inbox / "drop" / "ct")
    shutil.copytree(data / "PFOL-XR-001", inbox / "xr")
    (inbox / "notes.txt").write_text("not dicom")
    with diana.Pipeline(cfg) as p:
        t0 = time.time()
        while time.time() - t0 < 20:
            p.run_once()
            st = p.stats()
            if st["seen"] >= 2:
                break
            time.sleep(0.3)
        assert st["seen"] == 2 and st["matched"] == 1 and st["processed"] == 1, st
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["result"]["summary"].startswith("no hemorrhage (3 images)")
    assert (inbox / "notes.txt").exists(), "files that are not DICOM are left alone"
    assert not list((inbox / "drop" / "ct").iterdir()), "taken files are moved out of the folder"
    # the same study dropped again after a restart: not processed twice
    shutil.copytree(data / "PFOL-CT-001", inbox / "again")
    with diana.Pipeline(cfg) as p:
        for _ in range(8):
            p.run_once()
            time.sleep(0.3)
        assert p.stats()["processed"] == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 1
