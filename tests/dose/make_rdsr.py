#!/usr/bin/python3
"""make_rdsr.py - synthetic Radiation Dose Structured Reports for the dose tests.

  make_rdsr.py OUTDIR

Writes the files listed in FILES into OUTDIR (the committed copies live in
tests/data/dicom/rdsr/, MIT like libdiana). Deterministic: the same script
gives the same bytes. The values are invented; no real patient. They cover
what the vendor reports of the shared corpus (GPL, not redistributable with
libdiana) do not all cover:

* synth-ct-rdsr.dcm            CT (TID 10011), X-Ray Radiation Dose SR, explicit VR LE,
                               template id 10011, 3 events, a dual-source event, SSDE,
                               per-event DateTime Started, timezone offset
* synth-ct-esr-implicit.dcm    CT dose report stored as Enhanced SR, implicit VR LE,
                               no template id (found by Procedure reported, SCT code),
                               SCT target regions, patient characteristics only in the
                               content tree, no study time (time from the first event)
* synth-rf-rdsr-bigendian.dcm  projection X-ray fluoroscopy (TID 10001), explicit VR
                               big endian, SCT codes (44491008 Fluoroscopy), 5 events,
                               an event without DAP, the retired 113735 exposure time
* synth-xa-biplane-300.dcm     projection X-ray, Comprehensive SR, biplane (two
                               accumulated containers), 300 events
* synth-bad-no-value-type.dcm  a dose report whose content item lacks its Value Type
                               (valid DICOM, malformed SR: must be refused)

Uses Debian's python3-pydicom: run with /usr/bin/python3.
"""

import hashlib
import os
import sys

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian)

RDSR_CLASS = "1.2.840.10008.5.1.4.1.1.88.67"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def uid(*parts):
    h = hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()
    return "2.25.%d" % int(h, 16)


def code(value, scheme, meaning):
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = scheme
    c.CodeMeaning = meaning
    return c


def item(rel, vtype, concept):
    it = Dataset()
    if rel:
        it.RelationshipType = rel
    it.ValueType = vtype
    it.ConceptNameCodeSequence = Sequence([code(*concept)])
    return it


def container(rel, concept, children):
    it = item(rel, "CONTAINER", concept)
    it.ContinuityOfContent = "SEPARATE"
    it.ContentSequence = Sequence(children)
    return it


def num(concept, value, unit, rel="CONTAINS"):
    it = item(rel, "NUM", concept)
    mv = Dataset()
    mv.MeasurementUnitsCodeSequence = Sequence([code(unit, "UCUM", unit)])
    mv.NumericValue = value
    it.MeasuredValueSequence = Sequence([mv])
    return it


def coded(concept, value, rel="CONTAINS"):
    it = item(rel, "CODE", concept)
    it.ConceptCodeSequence = Sequence([code(*value)])
    return it


def text(concept, value, rel="CONTAINS"):
    it = item(rel, "TEXT", concept)
    it.TextValue = value
    return it


def uidref(concept, value, rel="CONTAINS"):
    it = item(rel, "UIDREF", concept)
    it.UID = value
    return it


def dtime(concept, value, rel="CONTAINS"):
    it = item(rel, "DATETIME", concept)
    it.DateTime = value
    return it


# concept names (PS3.16; as in DCMTK dcmsr/codes/dcm.h)
D = lambda v, m: (v, "DCM", m)  # noqa: E731
DOSE_REPORT = D("113701", "X-Ray Radiation Dose Report")
PROC_REPORTED = D("121058", "Procedure reported")
CT_ACCUM = D("113811", "CT Accumulated Dose Data")
TOTAL_EVENTS = D("113812", "Total Number of Irradiation Events")
DLP_TOTAL = D("113813", "CT Dose Length Product Total")
CT_ACQ = D("113819", "CT Acquisition")
ACQ_PROTOCOL = D("125203", "Acquisition Protocol")
TARGET_REGION = D("123014", "Target Region")
CT_ACQ_TYPE = D("113820", "CT Acquisition Type")
EVENT_UID = D("113769", "Irradiation Event UID")
DT_STARTED = D("111526", "DateTime Started")
CT_PARAMS = D("113822", "CT Acquisition Parameters")
EXPOSURE_TIME = D("113824", "Exposure Time")
SCAN_LENGTH = D("113825", "Scanning Length")
SINGLE_COLL = D("113826", "Nominal Single Collimation Width")
TOTAL_COLL = D("113827", "Nominal Total Collimation Width")
PITCH = D("113828", "Pitch Factor")
N_SOURCES = D("113823", "Number of X-Ray Sources")
SOURCE_PARAMS = D("113831", "CT X-Ray Source Parameters")
SOURCE_ID = D("113832", "Identification of the X-Ray Source")
KVP = D("113733", "KVP")
MAX_MA = D("113833", "Maximum X-Ray Tube Current")
MA = D("113734", "X-Ray Tube Current")
ROT_TIME = D("113834", "Exposure Time per Rotation")
CT_DOSE = D("113829", "CT Dose")
CTDIVOL = D("113830", "Mean CTDIvol")
PHANTOM = D("113835", "CTDIw Phantom Type")
DLP = D("113838", "DLP")
SSDE = D("113930", "Size Specific Dose Estimate")
XR_ACCUM = D("113702", "Accumulated X-Ray Dose Data")
ACQ_PLANE = D("113764", "Acquisition Plane")
DAP_TOTAL = D("113722", "Dose Area Product Total")
RP_TOTAL = D("113725", "Dose (RP) Total")
FL_DAP_TOTAL = D("113726", "Fluoro Dose Area Product Total")
ACQ_DAP_TOTAL = D("113727", "Acquisition Dose Area Product Total")
FL_RP_TOTAL = D("113728", "Fluoro Dose (RP) Total")
ACQ_RP_TOTAL = D("113729", "Acquisition Dose (RP) Total")
FLUORO_TIME_TOTAL = D("113730", "Total Fluoro Time")
FRAMES_TOTAL = D("113731", "Total Number of Radiographic Frames")
RP_DEFINITION = D("113780", "Reference Point Definition")
XR_EVENT = D("113706", "Irradiation Event X-Ray Data")
EVENT_TYPE = D("113721", "Irradiation Event Type")
DAP = D("122130", "Dose Area Product")
DOSE_RP = D("113738", "Dose (RP)")
PRIMARY_ANGLE = D("112011", "Positioner Primary Angle")
SECONDARY_ANGLE = D("112012", "Positioner Secondary Angle")
PULSE_RATE = D("113791", "Pulse Rate")
N_PULSES = D("113768", "Number of Pulses")
PULSE_WIDTH = D("113793", "Pulse Width")
EXPOSURE = D("113736", "Exposure")
EXPOSURE_TIME_RETIRED = D("113735", "Exposure Time")
SUBJECT_AGE = D("121033", "Subject Age")
SUBJECT_SEX = D("121032", "Subject Sex")
HEIGHT = ("8302-2", "LN", "Patient Height")
WEIGHT = ("29463-7", "LN", "Patient Weight")

CT_SCT = ("77477000", "SCT", "Computed Tomography X-Ray")
CT_SRT = ("P5-08000", "SRT", "Computed Tomography X-Ray")
PROJECTION = D("113704", "Projection X-Ray")
FLUORO_SCT = ("44491008", "SCT", "Fluoroscopy")
FLUORO_SRT = ("P5-06000", "SRT", "Fluoroscopy")
STATIONARY = D("113611", "Stationary Acquisition")
SPIRAL = ("P5-08001", "SRT", "Spiral Acquisition")
SPIRAL_SCT = ("116152004", "SCT", "Spiral Acquisition")
CONSTANT_ANGLE = D("113805", "Constant Angle Acquisition")
BODY_PHANTOM = D("113691", "IEC Body Dosimetry Phantom")
HEAD_PHANTOM = D("113690", "IEC Head Dosimetry Phantom")
PLANE_A = D("113620", "Plane A")
PLANE_B = D("113621", "Plane B")
SINGLE_PLANE = D("113622", "Single Plane")
RP_15CM = D("113860", "15cm from Isocenter toward Source")


def base(sop_class, ts, key, modality="SR", study_time="101500", tz="+0100"):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid(key, "sop")
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = "2.25.1234567890"
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = ts != ExplicitVRBigEndian
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(key, "sop")
    ds.StudyDate = "20240304"
    if study_time:
        ds.StudyTime = study_time
    ds.ContentDate = "20240304"
    ds.ContentTime = "113000"
    if tz:
        ds.TimezoneOffsetFromUTC = tz
    ds.AccessionNumber = "SYN-" + key.upper()
    ds.Modality = modality
    ds.Manufacturer = "libdiana synthetic"
    ds.InstitutionName = "Synthetic Hospital"
    ds.StationName = "SYNTH01"
    ds.ManufacturerModelName = "Make-RDSR 1"
    ds.DeviceSerialNumber = "SN-0001"
    ds.StudyDescription = "synthetic dose report"
    ds.PatientName = "SYNTHETIC^PATIENT"
    ds.PatientID = "SYN-PID-" + key.upper()
    ds.PatientBirthDate = "19600101"
    ds.StudyInstanceUID = uid(key, "study")
    ds.SeriesInstanceUID = uid(key, "series")
    ds.SeriesNumber = 999
    ds.InstanceNumber = 1
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([code(*DOSE_REPORT)])
    ds.ContinuityOfContent = "SEPARATE"
    return ds


def template(ds, tid):
    t = Dataset()
    t.MappingResource = "DCMR"
    t.TemplateIdentifier = tid
    ds.ContentTemplateSequence = Sequence([t])


def ct_event(key, n, kind, protocol, region, ctdivol, dlp, phantom, length, sources,
             pitch=None, ssde=None, started=None):
    params = [num(EXPOSURE_TIME, "%.2f" % (length / 40.0), "s"),
              num(SCAN_LENGTH, str(length), "mm"),
              num(SINGLE_COLL, "0.6", "mm"),
              num(TOTAL_COLL, "38.4", "mm")]
    if pitch is not None:
        params.append(num(PITCH, pitch, "{ratio}"))
    params.append(num(N_SOURCES, str(len(sources)), "{X-Ray sources}"))
    for sid, kv, mA, maxmA in sources:
        params.append(container("CONTAINS", SOURCE_PARAMS, [
            text(SOURCE_ID, sid), num(KVP, kv, "kV"), num(MAX_MA, maxmA, "mA"),
            num(MA, mA, "mA"), num(ROT_TIME, "0.5", "s")]))
    dose = [num(CTDIVOL, ctdivol, "mGy"), coded(PHANTOM, phantom), num(DLP, dlp, "mGy.cm")]
    if ssde is not None:
        dose.append(num(SSDE, ssde, "mGy"))
    kids = [text(ACQ_PROTOCOL, protocol), coded(TARGET_REGION, region),
            coded(CT_ACQ_TYPE, kind), uidref(EVENT_UID, uid(key, "event", n))]
    if started:
        kids.append(dtime(DT_STARTED, started))
    kids += [container("CONTAINS", CT_PARAMS, params), container("CONTAINS", CT_DOSE, dose)]
    return container("CONTAINS", CT_ACQ, kids)


def make_ct(out):
    key = "ct1"
    ds = base(RDSR_CLASS, ExplicitVRLittleEndian, key)
    template(ds, "10011")
    ds.PatientAge = "054Y"
    ds.PatientSex = "F"
    ds.PatientSize = "1.68"
    ds.PatientWeight = "71.5"
    events = [
        ct_event(key, 1, CONSTANT_ANGLE, "Topogram", ("T-D3000", "SRT", "Chest"),
                 "0.13", "6.5", BODY_PHANTOM, 500, [("A", "120", "35", "35")],
                 started="20240304101612.25"),
        ct_event(key, 2, SPIRAL, "Thorax 1.0", ("T-D3000", "SRT", "Chest"),
                 "7.81", "295.22", BODY_PHANTOM, 378, [("A", "100", "210", "300")],
                 pitch="1.2", ssde="9.6", started="20240304101730"),
        ct_event(key, 3, SPIRAL, "Thorax DS", ("T-D3000", "SRT", "Chest"),
                 "11.47", "412.9", BODY_PHANTOM, 360,
                 [("A", "100", "180", "250"), ("B", "140", "90", "150")],
                 pitch="0.6", started="20240304101905.5"),
    ]
    accum = container("CONTAINS", CT_ACCUM, [num(TOTAL_EVENTS, "3", "{events}"),
                                             num(DLP_TOTAL, "714.62", "mGy.cm")])
    ds.ContentSequence = Sequence(
        [coded(PROC_REPORTED, CT_SRT, rel="HAS CONCEPT MOD"), accum] + events)
    ds.save_as(os.path.join(out, "synth-ct-rdsr.dcm"), write_like_original=False)


def make_ct_esr(out):
    key = "ct2"
    ds = base(ENHANCED_SR, ImplicitVRLittleEndian, key, study_time=None, tz=None)
    events = [
        ct_event(key, i, SPIRAL_SCT, "Head %d" % i, ("69536005", "SCT", "Head"),
                 "%.2f" % (40 + i), "%.1f" % (800 + 10 * i), HEAD_PHANTOM, 150 + i,
                 [("A", "120", "300", "320")], pitch="0.55",
                 started="2024030409%02d00" % (10 + i))
        for i in (1, 2)
    ]
    accum = container("CONTAINS", CT_ACCUM, [num(TOTAL_EVENTS, "2", "{events}"),
                                             num(DLP_TOTAL, "1630", "mGy.cm")])
    patient = container("CONTAINS", ("121118", "DCM", "Patient Characteristics"), [
        num(SUBJECT_AGE, "7", "a"),
        coded(SUBJECT_SEX, ("M", "DCM", "Male")),
        num(HEIGHT, "124", "cm"),
        num(WEIGHT, "24.5", "kg")])
    ds.ContentSequence = Sequence(
        [coded(PROC_REPORTED, CT_SCT, rel="HAS CONCEPT MOD"), patient, accum] + events)
    ds.save_as(os.path.join(out, "synth-ct-esr-implicit.dcm"), write_like_original=False)


def xr_event(key, n, fluoro, dap, rp, kv, mA, angle1, angle2, started, plane=SINGLE_PLANE,
             retired_time=False, pulses=True, sct=True):
    etype = (FLUORO_SCT if sct else FLUORO_SRT) if fluoro else STATIONARY
    kids = [coded(ACQ_PLANE, plane), dtime(DT_STARTED, started), coded(EVENT_TYPE, etype),
            text(ACQ_PROTOCOL, "Fluoro low" if fluoro else "DSA 2fps"),
            uidref(EVENT_UID, uid(key, "event", n))]
    if dap is not None:
        kids.append(num(DAP, dap, "Gy.m2"))
    kids += [num(DOSE_RP, rp, "Gy"), coded(RP_DEFINITION, RP_15CM),
             num(PRIMARY_ANGLE, angle1, "deg"), num(SECONDARY_ANGLE, angle2, "deg")]
    if pulses:
        kids += [num(PULSE_RATE, "7.5", "{pulse}/s"), num(N_PULSES, "48", "1"),
                 num(PULSE_WIDTH, "6.4", "ms")]
    kids += [num(KVP, kv, "kV"), num(MA, mA, "mA")]
    kids.append(num(EXPOSURE_TIME_RETIRED if retired_time else EXPOSURE_TIME, "307.2", "ms"))
    kids.append(num(EXPOSURE, "4410", "uAs"))
    return container("CONTAINS", XR_EVENT, kids)


def xr_accum(plane, dap, rp, fdap, adap, frp, arp, ftime, frames):
    return container("CONTAINS", XR_ACCUM, [
        coded(ACQ_PLANE, plane),
        num(DAP_TOTAL, dap, "Gy.m2"), num(RP_TOTAL, rp, "Gy"),
        num(FL_DAP_TOTAL, fdap, "Gy.m2"), num(FL_RP_TOTAL, frp, "Gy"),
        num(ACQ_DAP_TOTAL, adap, "Gy.m2"), num(ACQ_RP_TOTAL, arp, "Gy"),
        num(FLUORO_TIME_TOTAL, ftime, "s"), num(FRAMES_TOTAL, frames, "{frames}"),
        coded(RP_DEFINITION, RP_15CM)])


def make_rf(out):
    key = "rf1"
    ds = base(RDSR_CLASS, ExplicitVRBigEndian, key, modality="SR")
    template(ds, "10001")
    ds.PatientAge = "081Y"
    ds.PatientSex = "M"
    events = [
        xr_event(key, 1, True, "0.00012", "0.0021", "71", "12.5", "-0.5", "1.2", "20240304102000"),
        xr_event(key, 2, False, "0.00047", "0.0093", "78", "305", "30", "-20", "20240304102130",
                 pulses=False),
        xr_event(key, 3, True, None, "0.0008", "70", "11.0", "2", "0", "20240304102305",
                 retired_time=True),
        xr_event(key, 4, True, "0.000031", "0.0004", "69", "10.2", "-45.5", "0.1", "20240304102410"),
        xr_event(key, 5, False, "0.00052", "0.0101", "80", "320", "0", "0", "20240304102530",
                 pulses=False),
    ]
    accum = xr_accum(SINGLE_PLANE, "0.001141", "0.0227", "0.000151", "0.00099", "0.0033", "0.0194",
                     "312.5", "64")
    ds.ContentSequence = Sequence(
        [coded(PROC_REPORTED, PROJECTION, rel="HAS CONCEPT MOD"), accum] + events)
    ds.save_as(os.path.join(out, "synth-rf-rdsr-bigendian.dcm"), write_like_original=False)


def make_xa_biplane(out, n=300):
    key = "xa1"
    ds = base(COMPREHENSIVE_SR, ExplicitVRLittleEndian, key, modality="SR")
    events = []
    for i in range(1, n + 1):
        plane = PLANE_A if i % 2 else PLANE_B
        fluoro = i % 3 != 0
        events.append(xr_event(key, i, fluoro, "%.6f" % (0.00001 * i), "%.5f" % (0.0001 * i), "75", "20",
                               str(i % 90), "0", "202403041%05d" % (i * 7 % 60 + 10000),
                               plane=plane, pulses=fluoro, sct=False))
    ds.ContentSequence = Sequence(
        [coded(PROC_REPORTED, PROJECTION, rel="HAS CONCEPT MOD"),
         xr_accum(PLANE_A, "0.4515", "4.515", "0.3", "0.1515", "3.0", "1.515", "1800", "300"),
         xr_accum(PLANE_B, "0.45", "4.5", "0.3", "0.15", "3.0", "1.5", "1700", "300")] + events)
    ds.save_as(os.path.join(out, "synth-xa-biplane-300.dcm"), write_like_original=False)


def make_bad(out):
    key = "bad1"
    ds = base(RDSR_CLASS, ExplicitVRLittleEndian, key)
    template(ds, "10011")
    ev = ct_event(key, 1, SPIRAL, "Abdomen", ("T-D4000", "SRT", "Abdomen"), "5", "200",
                  BODY_PHANTOM, 300, [("A", "120", "200", "250")])
    del ev.ContentSequence[0].ValueType
    ds.ContentSequence = Sequence([coded(PROC_REPORTED, CT_SRT, rel="HAS CONCEPT MOD"), ev])
    ds.save_as(os.path.join(out, "synth-bad-no-value-type.dcm"), write_like_original=False)


FILES = [make_ct, make_ct_esr, make_rf, make_xa_biplane, make_bad]

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(sys.argv[1], exist_ok=True)
    for f in FILES:
        f(sys.argv[1])
