# Lab test of the Python binding's retrieval jobs (diana.pull, diana.Job)
# against the real Orthanc servers of tests/lab (run through with-lab.sh):
# a pull through the helper with de-identification and an unknown accession,
# the rerun, a dry run, progress and per-study callbacks, cancel and resume,
# a callback's exception, argument errors.
# Expected values come from synth.py's manifest.
# SPDX-License-Identifier: MIT
import base64
import csv
import os
import subprocess
import threading

import pydicom
import pytest

import diana

TMP = os.environ.get("DIANA_LAB_TMP")
pytestmark = pytest.mark.skipif(TMP is None, reason="needs the lab: run through tests/lab/with-lab.sh")


def env(name):
    v = os.environ.get(name)
    assert v, "%s is not set: run through tests/lab/with-lab.sh" % name
    return v


def helper_uri():
    return "orthanc+http://%s:%s@%s?modality=pacs" % (env("DIANA_LAB_HELPER_USER"),
                                                     env("DIANA_LAB_HELPER_PASSWORD"),
                                                     env("DIANA_LAB_HELPER_URL")[7:])


def seed(prefix, *args):
    data = os.path.join(TMP, "pull-py-" + prefix)
    subprocess.run([env("PYTHON"), os.path.join(env("DIANA_LAB_TOOLS"), "synth.py"), "--out", data,
                    "--prefix", prefix, "--quiet"] + list(args), check=True)
    subprocess.run([os.path.join(env("DIANA_LAB_DIR"), "seed.sh"), data], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(data, "manifest.csv"), newline="") as f:
        rows = list(csv.reader(f))[1:]
    return data, {r[0]: r for r in rows}


@pytest.fixture(scope="module")
def small():
    return seed("PPY", "--ct", "2", "--ct-slices", "3", "--ct-size", "128x128", "--xr", "1",
                "--xr-size", "128x128")


@pytest.fixture(scope="module")
def secret():
    path = os.path.join(TMP, "pull-py.secret")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(base64.b64encode(os.urandom(48)).decode())
    return path


def dcm_files(out):
    res = []
    for dp, dn, fn in os.walk(out):
        dn[:] = [d for d in dn if d != ".diana"]
        res += [os.path.join(dp, f) for f in fn if f.endswith(".dcm")]
    return sorted(res)


def test_pull_rerun_and_key(small, secret, tmp_path):
    data, rows = small
    accs = sorted(rows) + ["PPY-NOPE-1"]
    out = tmp_path / "out"
    key = tmp_path / "key.csv"
    seen = []
    stats = diana.pull(helper_uri(), accs, out, secret_file=secret, key=key, jobs=2,
                       progress=seen.append)
    ninst = sum(int(r[3]) for r in rows.values())
    assert (stats["items"], stats["ok"], stats["skipped"], stats["unknown"], stats["failed"]) == (4, 3, 0, 1, 0)
    assert stats["instances"] == ninst and stats["bytes"] > 0 and stats["elapsed_ms"] > 0
    assert stats["cancelled"] is False
    res = stats["results"]
    assert [r["index"] for r in res] == [1, 2, 3, 4]
    assert [r["accession"] for r in res] == accs
    assert [r["status"] for r in res] == ["ok", "ok", "ok", "unknown"]
    for r in res[:3]:
        assert r["pseudo_accession"] and r["pseudo_accession"] not in accs
        assert r["instances"] == r["expected"] == int(rows[r["accession"]][3])
    assert res[3]["reason"]
    # progress: the stages, the totals, the end
    assert seen and seen[-1]["stage"] == "done" and seen[-1]["items_total"] == 4
    assert {p["stage"] for p in seen} <= {"query", "retrieve", "wait", "done"}
    assert all(not p["current"].startswith("PPY-") for p in seen)
    files = dcm_files(out)
    assert len(files) == ninst
    pseudo = {r["pseudo_accession"] for r in res[:3]}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.AccessionNumber in pseudo
        assert os.path.basename(f) == ds.SOPInstanceUID + ".dcm"
    with open(key, newline="") as f:
        keyrows = list(csv.DictReader(f))
    assert sorted(r["OriginalAccessionNumber"] for r in keyrows) == sorted(rows)
    # the rerun: everything skipped, nothing written
    before = {f: os.stat(f).st_ino for f in files}
    again = diana.pull(helper_uri(), accs, out, secret_file=secret, key=key)
    assert (again["ok"], again["skipped"], again["unknown"], again["instances"]) == (0, 3, 1, 0)
    assert {f: os.stat(f).st_ino for f in dcm_files(out)} == before
    with open(key, newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    # the scanner finds nothing (told the secret: the engine's sham names,
    # drawn from common names, are its own even when they share a word with
    # a patient's real name)
    with diana.Profile(secret) as prof:
        sc = diana.Scanner(profile=prof)
        sc.add_key_file(key)
        for dp, _, fn in os.walk(data):  # the originals too (their shams are known)
            for f in fn:
                if f.endswith(".dcm"):
                    sc.add_dataset(os.path.join(dp, f))
        for f in files:
            assert not sc.scan_file(f), f


def test_accessions_file_and_dry_run(small, secret, tmp_path):
    data, rows = small
    lst = tmp_path / "list.csv"
    lst.write_text("AccessionNumber,comment\n# a comment\n%s\n\n%s,x\nPPY-NOPE-2\n" % tuple(sorted(rows)[:2]))
    out = tmp_path / "dry"
    got = []
    with diana.Job(helper_uri(), str(lst), out, secret_file=secret, key=tmp_path / "k.csv", dry_run=True,
                   on_study=got.append) as job:
        st = job.run()
    assert (st["items"], st["unknown"]) == (3, 1)
    statuses = sorted(g["status"] for g in got)
    assert statuses[2] == "unknown" and statuses[0] == statuses[1] and statuses[0] in ("ok", "skipped")
    assert sum(g["expected"] for g in got) == sum(int(rows[a][3]) for a in sorted(rows)[:2])
    assert not dcm_files(out)
    assert not (out / "report.csv").exists()
    assert not (tmp_path / "k.csv").exists()


def test_cancel_and_resume(secret, tmp_path):
    data, rows = seed("PPC", "--ct", "5", "--ct-slices", "6", "--ct-size", "128x128", "--xr", "0")
    accs = sorted(rows)
    out = tmp_path / "out"
    first = threading.Event()
    job = diana.Job(helper_uri(), accs, out, secret_file=secret, key=tmp_path / "key.csv",
                    max_studies_per_minute=120, on_study=lambda d: first.set())
    with job:
        job.start()
        assert job.running
        assert first.wait(120), "no study finished"
        job.cancel()
        st = job.wait()
        assert st["cancelled"] is True
        assert 1 <= st["ok"] < len(accs)
        assert not job.running
    st = diana.pull(helper_uri(), accs, out, secret_file=secret, key=tmp_path / "key.csv", jobs=2)
    assert st["ok"] + st["skipped"] == len(accs) and st["failed"] == st["unknown"] == 0
    assert st["skipped"] >= 1
    sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in dcm_files(out)]
    assert len(sops) == len(set(sops)) == sum(int(r[3]) for r in rows.values())
    with open(tmp_path / "key.csv", newline="") as f:
        assert sorted(r["OriginalAccessionNumber"] for r in csv.DictReader(f)) == accs


def test_callback_exception_stops_the_job(small, secret, tmp_path):
    data, rows = small

    def boom(p):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        diana.pull(helper_uri(), sorted(rows), tmp_path / "out", secret_file=secret, progress=boom)


def test_no_anonymize_and_errors(small, secret, tmp_path):
    data, rows = small
    acc = sorted(rows)[0]
    st = diana.pull(helper_uri(), [acc], tmp_path / "raw", anonymize=False)
    assert st["ok"] == 1
    ds = pydicom.dcmread(dcm_files(tmp_path / "raw")[0], stop_before_pixels=True)
    assert ds.AccessionNumber == acc  # as received
    with pytest.raises(ValueError):
        diana.Job(helper_uri(), [acc], tmp_path / "x")  # no secret
    with pytest.raises(ValueError):
        diana.Job(helper_uri(), [acc], tmp_path / "x", anonymize=False, key=tmp_path / "k.csv")
    with pytest.raises(diana.DianaError) as e:
        diana.pull(helper_uri(), tmp_path / "missing.txt", tmp_path / "x", secret_file=secret)
    assert e.value.code == diana.ENOTFOUND
    with diana.Session(helper_uri()) as s:  # a borrowed session
        with diana.Job(s, [acc], tmp_path / "b", secret_file=secret) as job:
            assert job.run()["ok"] == 1
        s.echo()  # still usable afterwards
