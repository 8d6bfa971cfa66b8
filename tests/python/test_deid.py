# Tests of the de-identification binding (diana.Profile, diana.anonymize).
# SPDX-License-Identifier: MIT

import os
import re
import stat
import threading

import pytest

import diana
from conftest import data_file

SECRET = b"python binding test secret 0123456789abcdef"
UID = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")


@pytest.fixture
def secret_file(tmp_path):
    p = tmp_path / "project.key"
    p.write_bytes(SECRET + b"\n")
    p.chmod(0o600)
    return p


def test_profile_needs_a_secret(tmp_path):
    with pytest.raises(diana.DianaError) as e:
        diana.Profile()
    assert e.value.code == diana.EINVAL
    with pytest.raises(diana.DianaError) as e:
        diana.Profile(secret=b"short")
    assert e.value.code == diana.EINVAL
    p = tmp_path / "open.key"
    p.write_bytes(SECRET)
    p.chmod(0o644)
    with pytest.raises(diana.DianaError) as e:
        diana.Profile(secret_file=p)
    assert e.value.code == diana.EAUTH
    assert SECRET.decode() not in e.value.message


def test_option_names():
    names = diana.option_names()
    assert names[0] == "retain-safe-private" and names[-1] == "clean-graphics"
    assert len(names) == 10
    with pytest.raises(diana.DianaError):
        diana.Profile(secret=SECRET, options=["retain-everything"])
    with pytest.raises(diana.DianaError):
        diana.Profile(secret=SECRET, options=["retain-long-full-dates", "retain_long_modified_dates"])


def test_anonymize_file(secret_file, tmp_path, ct_path):
    out = tmp_path / "out.dcm"
    with diana.Profile(secret_file=secret_file) as p:
        r = p.anonymize_file(ct_path, out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    with diana.Dataset(ct_path) as orig, diana.Dataset(out) as ds:
        assert r["OriginalSOPInstanceUID"] == orig["SOPInstanceUID"]
        assert r["SOPInstanceUID"] == ds["SOPInstanceUID"] != orig["SOPInstanceUID"]
        assert UID.match(ds["SOPInstanceUID"]) and len(ds["SOPInstanceUID"]) <= 64
        assert ds["MediaStorageSOPInstanceUID"] == ds["SOPInstanceUID"]
        assert r["PatientID"] == ds["PatientID"] and len(r["PatientID"]) == 16
        assert ds["PatientIdentityRemoved"] == "YES"
        assert ds.get_bytes("PixelData") == orig.get_bytes("PixelData")
        assert orig["PatientName"] not in ds.to_json(bulk=False)
    assert p.closed
    with pytest.raises(ValueError):
        p.anonymize_file(ct_path, out)


def test_anonymize_bytes_deterministic(secret_file, ct_path):
    data = ct_path.read_bytes()
    with diana.Profile(secret_file=secret_file) as p, diana.Profile(secret=SECRET) as q:
        a, ra = p.anonymize_bytes(data)
        b, rb = q.anonymize_bytes(bytearray(data))
    assert a == b and ra == rb
    with diana.Profile(secret=SECRET + b"!") as other:
        c, rc = other.anonymize_bytes(data)
    assert rc["SOPInstanceUID"] != ra["SOPInstanceUID"]
    assert rc["PatientID"] != ra["PatientID"]


def test_options_and_overrides(ct_path):
    with diana.Profile(secret=SECRET, options=["retain-uids", diana.DEID_CLEAN_DESCRIPTORS],
                       overrides={"Modality": "remove", "InstitutionName": ("replace", "Site 7"),
                                  "StudyDescription": "keep"}) as p:
        with diana.Dataset(ct_path) as ds:
            orig_uid, orig_desc = ds["SOPInstanceUID"], ds.get("StudyDescription")
            r = p.anonymize_dataset(ds)
            assert ds["SOPInstanceUID"] == orig_uid == r["SOPInstanceUID"]
            assert "Modality" not in ds
            assert ds["InstitutionName"] == "Site 7"
            assert ds.get("StudyDescription") == orig_desc
            assert ds.get("SeriesDescription") in (None, "ANONYMIZED")
            codes = {ds["DeidentificationMethodCodeSequence[%d].CodeValue" % i] for i in range(3)}
            assert codes == {"113100", "113110", "113105"}
        with pytest.raises(ValueError):
            p.set_action("Modality", "frobnicate")
        with pytest.raises(diana.DianaError) as e:
            p.set_action("PixelData", "remove")
        assert e.value.code == diana.EINVAL


def test_threads_share_a_profile(ct_path):
    data = ct_path.read_bytes()
    with diana.Profile(secret=SECRET) as p:
        want = p.anonymize_bytes(data)[0]
        got, errors = [], []

        def run():
            try:
                for _ in range(5):
                    got.append(p.anonymize_bytes(data)[0])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        ts = [threading.Thread(target=run) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert not errors and len(got) == 20 and all(g == want for g in got)


def test_anonymize_folder(tmp_path, secret_file):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for rel in ("dicom/ct/CT_small.dcm", "dicom/mr/MR_small.dcm"):
        (src / "sub" / os.path.basename(rel)).write_bytes(data_file(rel).read_bytes())
    (src / "bad.dcm").write_bytes(data_file("dicom/malformed/MR_truncated.dcm").read_bytes())
    (src / "DICOMDIR").write_bytes(data_file("dicom/dicomdir/pydicom_dicomdirtests/DICOMDIR").read_bytes())
    key = tmp_path / "key.csv"
    out = tmp_path / "out"
    results = diana.anonymize(src, out, secret_file=secret_file, key=key,
                              options=["retain-long-modified-dates"])
    by_name = {os.path.basename(r["input"]): r for r in results}
    assert set(by_name) == {"CT_small.dcm", "MR_small.dcm", "bad.dcm", "DICOMDIR"}
    assert by_name["bad.dcm"]["error"].code == diana.EDICOM
    assert by_name["DICOMDIR"]["skipped"] == "DICOMDIR"
    for name in ("CT_small.dcm", "MR_small.dcm"):
        r = by_name[name]
        res = r["result"]
        rel = os.path.relpath(r["output"], out).split(os.sep)
        assert rel == [res["PatientID"], res["StudyInstanceUID"], res["SeriesInstanceUID"],
                       res["SOPInstanceUID"] + ".dcm"]
        with diana.Dataset(r["output"]) as ds:
            assert ds["LongitudinalTemporalInformationModified"] == "MODIFIED"
    assert key.read_text().count("\n") == 3  # header + two studies


def test_anonymize_jobs(tmp_path, secret_file):
    """Threads (the default) and one thread: the same results, in input order,
    and the same bytes."""
    src = data_file("dicom/ct/CT_small.dcm").parent.parent  # the whole corpus folder
    one = diana.anonymize(src, tmp_path / "one", secret_file=secret_file, jobs=1)
    many = diana.anonymize(src, tmp_path / "many", secret_file=secret_file, jobs=4)
    assert [r["input"] for r in one] == [r["input"] for r in many]
    assert len(one) > 50
    for a, b in zip(one, many):
        assert set(a) == set(b), a["input"]
        if "output" in a:
            ra = os.path.relpath(a["output"], tmp_path / "one")
            assert ra == os.path.relpath(b["output"], tmp_path / "many")
            assert a["result"] == b["result"]
            with open(a["output"], "rb") as fa, open(b["output"], "rb") as fb:
                assert fa.read() == fb.read(), ra
    with pytest.raises(ValueError):
        diana.anonymize(src, tmp_path / "zero", secret_file=secret_file, jobs=0)


def test_anonymize_into(tmp_path, ct_path):
    with diana.Profile(secret=SECRET) as p:
        out, r = p.anonymize_into(ct_path, tmp_path / "tree")
        with open(out, "rb") as f:
            first = f.read()
        out2, r2 = p.anonymize_into(ct_path, tmp_path / "tree", sync=False)
        diana.sync_folder(tmp_path / "tree")
        assert out == out2 and r == r2
        out3, r3 = p.anonymize_into(ct_path, tmp_path / "tree", sync=False, writeback=False)
        assert out3 == out and r3 == r
        with open(out3, "rb") as f:
            assert f.read() == first
        rel = os.path.relpath(out, tmp_path / "tree").split(os.sep)
        assert rel == [r["PatientID"], r["StudyInstanceUID"], r["SeriesInstanceUID"],
                       r["SOPInstanceUID"] + ".dcm"]
        skipped = p.anonymize_into(data_file("dicom/dicomdir/pydicom_dicomdirtests/DICOMDIR"),
                                   tmp_path / "tree")
        assert skipped == (None, None)
