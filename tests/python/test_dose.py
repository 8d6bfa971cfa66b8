# Tests of diana.dose and the dose sinks (include/diana/dose.h).
# SPDX-License-Identifier: MIT
#
# The expected numbers are read independently with pydicom: its own walk of
# the SR content tree by concept codes (PS3.16), compared with libdiana's
# document for every report of tests/data/dicom/rdsr and, when present, of
# the shared vendor corpus.

import calendar
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

import diana
from conftest import REPO, data_file

pydicom = pytest.importorskip("pydicom")

RDSR_DIRS = [pathlib.Path(os.environ.get("DIANA_TEST_DATA") or REPO / "tests" / "data") / "dicom" / "rdsr",
             pathlib.Path(os.environ.get("DIANA_SHARED_DATA") or REPO.parent / "shared" / "data")
             / "dicom" / "rdsr"]


def reports():
    out = []
    for d in RDSR_DIRS:
        if d.is_dir():
            out += sorted(p for p in d.glob("*.dcm") if not p.name.startswith("synth-bad-"))
    return out


# --- an independent reading with pydicom ------------------------------------

def concept(item):
    seq = getattr(item, "ConceptNameCodeSequence", None)
    if not seq:
        return None
    c = seq[0]
    return (getattr(c, "CodeValue", None) or getattr(c, "LongCodeValue", None), c.CodingSchemeDesignator)


def children(item):
    return list(getattr(item, "ContentSequence", []) or [])


def walk(items):
    for it in items:
        yield it
        yield from walk(children(it))


def first(items, code):
    for it in walk(items):
        if concept(it) and concept(it)[0] == code and concept(it)[1] == "DCM":
            return it
    return None


def measure(item):
    if item is None or not getattr(item, "MeasuredValueSequence", None):
        return None
    mv = item.MeasuredValueSequence[0]
    if "NumericValue" not in mv:
        return None
    unit = mv.MeasurementUnitsCodeSequence[0].CodeValue if "MeasurementUnitsCodeSequence" in mv else None
    return {"value": float(mv.NumericValue), "unit": unit}


EVENT_CONTAINERS = {"113819", "113706", "113502"}  # CT Acquisition, Irradiation Event X-Ray Data, RP Administration


def pydicom_events(ds):
    events = []

    def collect(items):
        for it in items:
            c = concept(it)
            if c and c[1] == "DCM" and c[0] in EVENT_CONTAINERS:
                events.append(it)
            else:
                collect(children(it))
    collect(children(ds))
    return events


# JSON member -> DCM concept code (PS3.16, as DCMTK's dcmsr/codes/dcm.h)
EVENT_NUMS = {
    "ctdivol": "113830", "dlp": "113838", "ssde": "113930", "scanning_length": "113825",
    "pitch_factor": "113828", "kvp": "113733", "tube_current": "113734",
    "dose_area_product": "122130", "dose_rp": "113738", "pulse_width": "113793",
    "number_of_pulses": "113768", "positioner_primary_angle": "112011",
    "positioner_secondary_angle": "112012", "exposure": "113736", "administered_activity": "113507",
}
CT_TOTALS = {"ct_dlp_total": "113813", "total_number_of_irradiation_events": "113812"}
XR_TOTALS = {"dose_area_product_total": "113722", "dose_rp_total": "113725",
             "total_fluoro_time": "113730", "fluoro_dose_area_product_total": "113726",
             "acquisition_dose_area_product_total": "113727"}


def close(a, b):
    if a is None or b is None:
        return a is b
    return a["unit"] == b["unit"] and abs(a["value"] - b["value"]) <= 1e-12 * max(1.0, abs(b["value"]))


@pytest.mark.parametrize("path", reports(), ids=lambda p: p.name)
def test_report_matches_pydicom(path):
    doc = diana.dose(path)
    ds = pydicom.dcmread(str(path))
    assert doc["sop_instance_uid"] == ds.SOPInstanceUID
    assert doc["accession_number"] == (ds.get("AccessionNumber") or None)
    evs = pydicom_events(ds)
    assert len(doc["events"]) == len(evs) == doc["totals"]["event_count"]
    assert len(evs) > 0
    checked = 0
    for mine, theirs in zip(doc["events"], evs):
        uid_item = first(children(theirs), "113769") or first(children(theirs), "113503")
        assert mine["irradiation_event_uid"] == (uid_item.UID if uid_item else None)
        for key, code in EVENT_NUMS.items():
            if key not in mine:
                continue
            want = measure(first(children(theirs), code))
            assert close(mine[key], want), (key, mine[key], want)
            checked += want is not None
    assert checked > 0
    totals = doc["totals"]
    if doc["template"]["id"] == "10011":
        acc = first(children(ds), "113811")
        for key, code in CT_TOTALS.items():
            assert close(totals[key], measure(first(children(acc), code) if acc else None)), key
    elif doc["template"]["id"] == "10001":
        accs = [it for it in children(ds) if concept(it) == ("113702", "DCM")]
        assert len(totals["planes"]) == len(accs)
        for plane, acc in zip(totals["planes"], accs):
            for key, code in XR_TOTALS.items():
                assert close(plane[key], measure(first(children(acc), code))), key
        if len(accs) == 1:
            for key, code in XR_TOTALS.items():
                assert close(totals[key], measure(first(children(accs[0]), code))), key


def test_ct_report_values():
    """One CT report, numbers read from the file with pydicom by hand."""
    path = data_file("dicom/rdsr/synth-ct-rdsr.dcm")
    ds = pydicom.dcmread(str(path))
    doc = diana.dose(path)
    ctdi, dlp = [], []
    for ev in pydicom_events(ds):
        for it in walk(children(ev)):
            if concept(it) == ("113830", "DCM"):
                ctdi.append(float(it.MeasuredValueSequence[0].NumericValue))
            if concept(it) == ("113838", "DCM"):
                dlp.append(float(it.MeasuredValueSequence[0].NumericValue))
    assert [e["ctdivol"]["value"] for e in doc["events"]] == ctdi == [0.13, 7.81, 11.47]
    assert [e["dlp"]["value"] for e in doc["events"]] == dlp
    assert doc["totals"]["ct_dlp_total"]["value"] == 714.62
    assert doc["totals"]["event_count"] == 3
    assert doc["events"][2]["xray_sources"][1]["kvp"] == {"value": 140.0, "unit": "kV"}
    assert doc["time"] == calendar.timegm((2024, 3, 4, 9, 15, 0))


def test_fluoroscopy_report_values():
    """One fluoroscopy report: DAP per event, totals, counts, by hand."""
    shared = RDSR_DIRS[1] / "RF-RDSR-Siemens-Zee.dcm"
    path = shared if shared.is_file() else data_file("dicom/rdsr/synth-rf-rdsr-bigendian.dcm")
    ds = pydicom.dcmread(str(path))
    doc = diana.dose(path)
    daps = []
    for ev in pydicom_events(ds):
        m = measure(first(children(ev), "122130"))
        daps.append(m and m["value"])
    assert [e["dose_area_product"] and e["dose_area_product"]["value"] for e in doc["events"]] == daps
    acc = first(children(ds), "113702")
    for key, code in (("dose_area_product_total", "113722"), ("dose_rp_total", "113725"),
                      ("total_fluoro_time", "113730")):
        assert doc["totals"][key] == measure(first(children(acc), code))
    fluoro = sum(1 for e in doc["events"] if e["type"]["code"] in ("P5-06000", "44491008"))
    assert doc["totals"]["fluoro_event_count"] == fluoro
    assert doc["totals"]["event_count"] == len(daps)


def test_sources_agree():
    path = data_file("dicom/rdsr/synth-rf-rdsr-bigendian.dcm")
    a = diana.dose(path)
    b = diana.dose(path.read_bytes())
    with diana.Dataset(path) as ds:
        c = diana.dose(ds)
    assert a == b == c
    assert json.loads(diana.dose_json(path, pretty=True)) == a


def test_refusals():
    with pytest.raises(diana.DianaError) as e:
        diana.dose(data_file("dicom/sr/reportsi.dcm"))
    assert e.value.code == diana.EUNSUPPORTED
    with pytest.raises(diana.DianaError) as e:
        diana.dose(data_file("dicom/rdsr/synth-bad-no-value-type.dcm"))
    assert e.value.code == diana.EDICOM
    raw = data_file("dicom/rdsr/synth-ct-rdsr.dcm").read_bytes()
    with pytest.raises(diana.DianaError) as e:
        diana.dose(raw[: len(raw) // 2])
    assert e.value.code == diana.EDICOM
    with pytest.raises(TypeError):
        diana.dose(42)


def test_pseudonyms_with_profile(tmp_path):
    path = data_file("dicom/rdsr/synth-ct-rdsr.dcm")
    secret = b"python dose test secret 0123456789abcdef"
    with diana.Profile(secret=secret, options=["clean-structured-content",
                                               "retain-long-modified-dates"]) as p:
        doc = diana.dose(path, profile=p)
        res = p.anonymize_file(path, tmp_path / "a.dcm")
    assert doc["accession_number"] == res["AccessionNumber"] != "SYN-CT1"
    assert doc["patient_id"] == res["PatientID"]
    assert doc["study_instance_uid"] == res["StudyInstanceUID"]
    assert doc["events"][1]["ctdivol"] == {"value": 7.81, "unit": "mGy"}
    with diana.Profile(secret=secret) as p:
        with pytest.raises(diana.DianaError) as e:
            diana.dose(path, profile=p)
    assert e.value.code == diana.EINVAL


def test_jsonl_sink(tmp_path):
    out = tmp_path / "dose.jsonl"
    doc = diana.dose(data_file("dicom/rdsr/synth-ct-rdsr.dcm"))
    with diana.JsonlSink(out) as s:
        s.add(doc)
        s.add(json.dumps(doc))
        assert s.delivered == 2
    lines = out.read_text().splitlines()
    assert [json.loads(l) for l in lines] == [doc, doc]
    assert s.closed


def test_hec_sink(tmp_path):
    port, log = tmp_path / "port", tmp_path / "hec.log"
    script = pathlib.Path(__file__).resolve().parents[1] / "dose" / "hec_receiver.py"
    proc = subprocess.Popen(["/usr/bin/python3", str(script), str(port), str(log)])
    try:
        for _ in range(200):
            if port.exists():
                break
            time.sleep(0.025)
        url = "http://127.0.0.1:%s" % port.read_text()
        doc = diana.dose(data_file("dicom/rdsr/synth-ct-rdsr.dcm"))
        with diana.HecSink(url, token="py-token", index="dose", host="h1", batch_events=10,
                           retry_delay_ms=20) as s:
            s.add(doc)
            s.add(doc)
        assert s.closed
        reqs = [json.loads(l) for l in log.read_text().splitlines()]
        assert len(reqs) == 1
        assert reqs[0]["auth"] == "Splunk py-token" and reqs[0]["status"] == 200
        body, dec, i, evs = reqs[0]["body"], json.JSONDecoder(), 0, []
        while i < len(body):
            o, i = dec.raw_decode(body, i)
            evs.append(o)
        assert [e["time"] for e in evs] == [doc["time"]] * 2
        assert evs[0]["event"] == doc and evs[0]["index"] == "dose" and evs[0]["host"] == "h1"
        with pytest.raises(diana.DianaError) as e:
            with diana.HecSink(url, token="bad-token", retries=0) as s:
                s.add(doc)
        assert e.value.code == diana.EAUTH
        assert "bad-token" not in str(e.value)
    finally:
        proc.terminate()
        proc.wait()
