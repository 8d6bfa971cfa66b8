# Lab test of the Python binding's Session (diana.Session) against the real
# Orthanc servers of tests/lab (run through with-lab.sh): echo, find, get,
# retrieve with a callback, store, changes, errors, context manager.
# Expected values come from synth.py's manifest and the PACS's REST API.
# SPDX-License-Identifier: MIT
import base64
import csv
import json
import os
import subprocess
import urllib.request

import pytest

import diana

TMP = os.environ.get("DIANA_LAB_TMP")
pytestmark = pytest.mark.skipif(TMP is None, reason="needs the lab: run through tests/lab/with-lab.sh")


def env(name):
    v = os.environ.get(name)
    assert v, "%s is not set: run through tests/lab/with-lab.sh" % name
    return v


def rest(who, method, path, body=None):
    url = env("DIANA_LAB_%s_URL" % who) + path
    auth = base64.b64encode(("%s:%s" % (env("DIANA_LAB_%s_USER" % who),
                                        env("DIANA_LAB_%s_PASSWORD" % who))).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
    return json.loads(text) if text else None


def orthanc_uri(who, query=""):
    return "orthanc+http://%s:%s@%s%s" % (env("DIANA_LAB_%s_USER" % who), env("DIANA_LAB_%s_PASSWORD" % who),
                                         env("DIANA_LAB_%s_URL" % who)[7:], query)


def dicom_uri():
    return "dicom://%s@%s:%s?aet=DIANA_P" % (env("DIANA_LAB_PACS_AET"), env("DIANA_LAB_PACS_HOST"),
                                            env("DIANA_LAB_PACS_DICOM_PORT"))


@pytest.fixture(scope="module")
def seeded():
    data = os.path.join(TMP, "session-py-data")
    subprocess.run([env("PYTHON"), os.path.join(env("DIANA_LAB_TOOLS"), "synth.py"), "--out", data,
                    "--ct", "1", "--ct-slices", "5", "--xr", "1", "--xr-size", "256x256",
                    "--prefix", "SPY", "--quiet"], check=True)
    subprocess.run([os.path.join(env("DIANA_LAB_DIR"), "seed.sh"), data], check=True,
                   stdout=subprocess.DEVNULL)
    rest("PACS", "PUT", "/modalities/session-py", {"AET": "DIANA_P", "Host": "127.0.0.1", "Port": 14291})
    with open(os.path.join(data, "manifest.csv"), newline="") as f:
        rows = {r[0]: r for r in csv.reader(f) if r and not r[0].startswith("accession")}
    return data, rows


def pacs_sops(study_uid):
    ids = rest("PACS", "POST", "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
    assert len(ids) == 1
    return sorted(i["MainDicomTags"]["SOPInstanceUID"]
                  for i in rest("PACS", "GET", "/studies/%s/instances" % ids[0]))


@pytest.mark.parametrize("uri", ["pacs", "helper", "dicom"])
def test_echo_find_get(seeded, tmp_path, uri):
    data, rows = seeded
    acc, pid, study_uid, n = rows["SPY-CT-001"][:4]
    u = {"pacs": orthanc_uri("PACS"), "helper": orthanc_uri("HELPER", "?modality=pacs"),
         "dicom": dicom_uri()}[uri]
    with diana.Session(u, timeout=60) as s:
        assert s.kind == ("dicom" if uri == "dicom" else "orthanc")
        assert "secret" not in s.uri
        s.echo()
        res = s.find("study", AccessionNumber=acc, PatientID=None, NumberOfStudyRelatedInstances="")
        assert len(res) == 1
        assert res[0]["PatientID"] == pid
        assert res[0]["StudyInstanceUID"] == study_uid
        assert int(res[0]["NumberOfStudyRelatedInstances"]) == int(n)
        js = s.find("study", ["AccessionNumber=" + acc], as_json=True)
        assert js[0]["0020000D"]["Value"] == [study_uid]
        st = s.get(study=study_uid, out=str(tmp_path / "out"))
        assert st["instances"] == int(n)
        files = sorted(p.name[:-4] for p in (tmp_path / "out" / study_uid).rglob("*.dcm"))
        assert files == pacs_sops(study_uid)


def test_retrieve_callback_keep_and_errors(seeded, tmp_path):
    data, rows = seeded
    study_uid, n = rows["SPY-CT-001"][2], int(rows["SPY-CT-001"][3])
    seen = []
    with diana.Session(orthanc_uri("PACS")) as s:
        def cb(inst):
            assert inst.temporary and os.path.exists(inst.path)
            seen.append(inst.sop_instance_uid)
            inst.keep(str(tmp_path / (inst.sop_instance_uid + ".dcm")))
        st = s.retrieve(study_uid, callback=cb)
        assert st["instances"] == n
        assert sorted(seen) == pacs_sops(study_uid)
        assert sorted(p.name[:-4] for p in tmp_path.glob("*.dcm")) == sorted(seen)
        # an exception in the callback stops the retrieve and comes back as is
        class Boom(Exception):
            pass

        def bad(inst):
            raise Boom()
        with pytest.raises(Boom):
            s.retrieve(study_uid, callback=bad)
        with pytest.raises(diana.DianaError) as e:
            s.get("1.2.3.999", out=str(tmp_path / "none"))
        assert e.value.code == diana.ENOTFOUND
        with pytest.raises(ValueError):
            s.find("galaxy")
    with pytest.raises(diana.DianaError) as e:
        diana.Session("orthanc+http://u:p@127.0.0.1:1", connect_timeout=2).echo()
    assert e.value.code == diana.ECONNECT
    with pytest.raises(diana.DianaError) as e:
        diana.Session(orthanc_uri("PACS").replace("pacs-secret", "nope")).echo()
    assert e.value.code == diana.EAUTH


def test_store_and_changes(seeded, tmp_path):
    data, rows = seeded
    folder = os.path.join(data, "SPY-XR-001")
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom")
    with diana.Session(orthanc_uri("HELPER")) as s:
        _, last, _ = s.changes(-1)
        st = s.store(files + [str(bad)])
        assert st["instances"] == len(files)
        assert [p for p, _ in st["errors"]] == [str(bad)]
        assert st["errors"][0][1].code == diana.EDICOM
        ch, last2, done = s.changes(last)
        assert done and last2 > last
        assert any(c["change_type"] == "NewInstance" for c in ch)
        assert s.find("study", AccessionNumber="SPY-XR-001")
