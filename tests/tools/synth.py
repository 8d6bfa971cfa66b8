#!/usr/bin/python3
"""synth.py - deterministic synthetic DICOM studies WITH PHI for the libdiana lab.

  synth.py --out DIR [--ct N] [--ct-slices K] [--ct-size WxH]
           [--xr N] [--xr-size WxH] [--seed S] [--prefix P] [--quiet]

Writes DIR/<accession>/<n>.dcm (n = InstanceNumber, from 1) and DIR/manifest.csv
(accession,patient_id,study_uid,instances,modality,patient_name,study_date,
specific_character_set,bytes).

* CT: N studies (P-CT-001, ...) of K axial slices, 512x512 (--ct-size), int16 signed,
  RescaleIntercept -1024, a noisy elliptic thorax phantom, CT Image Storage.
* XR: N studies (P-XR-001, ...) of one Digital X-Ray image For Presentation,
  uint16 with 12 bits stored; --xr-size WxH is Columns x Rows (default 2000x2500:
  2500 rows x 2000 columns, ~10 MB, as in LAB.md); tests use e.g. 256x256.
* Explicit VR Little Endian, no compression.
* PHI in every file: patient name/ID/issuer/birth date/sex/age/address/other IDs,
  accession, institution name/address/department, referring/performing/requesting
  physicians, operators, station, device serial number, study/series/acquisition/
  content/instance-creation dates and times, StudyID, all UIDs; sequences holding
  PHI (OtherPatientIDsSequence, RequestAttributesSequence with the accession,
  ReferencedStudySequence, ReferencedPatientSequence with patient name and ID);
  a private block (0011,0010) "DIANA LAB" with (0011,1001) "private copy of <name>"
  and (0011,1002) the PatientID.
* Studies are spread over six fake patients; character sets vary: default
  repertoire (no SpecificCharacterSet), ISO_IR 100 (Latin-1: MÜLLER^JÜRGEN,
  DUPONT^RENÉE) and ISO_IR 192 (UTF-8: ŁUKASIEWICZ^ZOFIA, ΠΑΠΑΔΟΠΟΥΛΟΥ^ΕΛΕΝΗ).
* Deterministic: the same arguments give the same bytes.  UIDs are
  2.25.<int of md5> of prefix-free accession/series/instance keys, so they depend
  on the accession (and instance number) only, not on --seed or sizes; --seed
  changes the pixel noise only.  Regenerating an accession at another size gives
  the same UIDs (Orthanc then answers AlreadyStored).

Uses Debian's python3-pydicom (2.3) and python3-numpy: run with /usr/bin/python3.
"""

import argparse
import csv
import datetime
import hashlib
import os
import sys
import time

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
STUDY_COMPONENT_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired), used in refs
PATIENT_SOP_CLASS = "1.2.840.10008.3.1.2.1.1"  # Detached Patient Management (retired)

# Fake patients.  charset None = default repertoire (no SpecificCharacterSet).
PATIENTS = [
    dict(name="MUSTERMANN^ERIKA", id="PID-000456", birth="19710203", sex="F",
         address="Musterweg 12, 10115 Berlin", other="KIS-77120456", phone="+49 30 5550456",
         charset="ISO_IR 100", inst=0),
    dict(name="DOE^JOHN^Q", id="PID-000123", birth="19580717", sex="M",
         address="12 Elm Street, Springfield IL 62701", other="MRN-5550123", phone="+1 217 5550123",
         charset=None, inst=1),
    dict(name="MÜLLER^JÜRGEN", id="PID-000789", birth="19640229", sex="M",
         address="Königstraße 3, 70173 Stuttgart", other="KIS-77120789", phone="+49 711 5550789",
         charset="ISO_IR 100", inst=0),
    dict(name="ŁUKASIEWICZ^ZOFIA", id="PID-001024", birth="19851111", sex="F",
         address="ul. Żółkiewskiego 7, 31-000 Kraków", other="PESEL-85111101024", phone="+48 12 5551024",
         charset="ISO_IR 192", inst=2),
    dict(name="DUPONT^RENÉE", id="PID-002048", birth="19490530", sex="F",
         address="5 rue de l'Église, 75004 Paris", other="NIR-249057500204", phone="+33 1 55502048",
         charset="ISO_IR 100", inst=0),
    dict(name="ΠΑΠΑΔΟΠΟΥΛΟΥ^ΕΛΕΝΗ", id="PID-004096", birth="19920914", sex="F",
         address="Οδός Αθηνάς 21, 105 54 Αθήνα", other="AMKA-14099204096", phone="+30 21 05554096",
         charset="ISO_IR 192", inst=2),
]

INSTITUTIONS = [
    dict(name="Universitätsklinikum DIANA-Lab", address="Klinikstraße 1, 12345 Labstadt",
         dept="Radiologie"),  # Latin-1
    dict(name="DIANA LAB GENERAL HOSPITAL", address="1 Hospital Road, Testville",
         dept="RADIOLOGY"),  # ASCII
    dict(name="Szpital Ćwiczebny DIANA", address="ul. Szpitalna 1, 00-001 Łódź",
         dept="Radiologia"),  # needs UTF-8
]

IMPLEMENTATION_VERSION = "DIANA_SYNTH_1"


def uid(*parts):
    """2.25.<decimal md5> of the parts: deterministic, <= 44 characters."""
    h = hashlib.md5("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return "2.25." + str(int(h, 16))


IMPLEMENTATION_UID = uid("libdiana", "tests/tools/synth.py", IMPLEMENTATION_VERSION)


def rng_for(seed, *parts):
    h = hashlib.md5("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return np.random.default_rng([seed & 0xFFFFFFFF, int.from_bytes(h[:8], "little")])


def parse_size(text):
    try:
        w, h = text.lower().split("x")
        w, h = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError("size must be WxH, e.g. 256x256")
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise argparse.ArgumentTypeError("size out of range 8..8192")
    return w, h


def age(birth, date):
    b = datetime.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
    years = date.year - b.year - ((date.month, date.day) < (b.month, b.day))
    return "%03dY" % years


# ---------------------------------------------------------------- pixels

class CtPhantom:
    """Elliptic thorax phantom in HU; stored = HU + 1024 (int16)."""

    def __init__(self, cols, rows):
        y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
        self.x = (x - cols / 2.0) / (cols / 512.0)
        self.y = (y - rows / 2.0) / (rows / 512.0)
        self.shape = (rows, cols)

    def ellipse(self, cx, cy, a, b):
        return ((self.x - cx) / a) ** 2 + ((self.y - cy) / b) ** 2 <= 1.0

    def slice(self, z, rng):
        """z in [0, 1] from top to bottom of the scanned range."""
        img = np.full(self.shape, -1000.0, dtype=np.float32)
        img[self.ellipse(0, 0, 210, 150 + 10 * np.sin(np.pi * z))] = 40.0       # body
        img[self.ellipse(0, 0, 200, 140 + 10 * np.sin(np.pi * z))] = 20.0       # soft tissue
        lung_b = 80 + 30 * np.sin(np.pi * z)
        img[self.ellipse(-90, -10, 70, lung_b)] = -850.0                        # lungs
        img[self.ellipse(90, -10, 70, lung_b)] = -850.0
        img[self.ellipse(20, 10, 45 * (1 - 0.5 * z), 40 * (1 - 0.5 * z))] = 50.0  # heart
        img[self.ellipse(0, 110, 22, 22)] = 700.0                               # spine
        img[self.ellipse(0, 110, 10, 10)] = 40.0                                # canal
        img[self.ellipse(-90 + 40 * z, -20, 6, 6)] = 60.0                        # a "lesion"
        img += rng.normal(0.0, 15.0, self.shape).astype(np.float32)
        return np.clip(img + 1024.0, -1024, 3071).astype(np.int16)


def xr_pixels(cols, rows, rng):
    """Chest-radiograph-like 12-bit image, MONOCHROME2 (bright bone)."""
    y = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, cols, dtype=np.float32)[None, :]
    img = 2600.0 - 900.0 * (x * x) + 0 * y                                  # soft tissue
    lungs = (((x + 0.38) / 0.28) ** 2 + ((y + 0.05) / 0.62) ** 2 <= 1) | \
            (((x - 0.38) / 0.28) ** 2 + ((y + 0.05) / 0.62) ** 2 <= 1)
    img = np.where(lungs, 900.0 + 300.0 * (y + 1), img)
    img = np.where(np.abs(x) < 0.06, 3400.0, img)                            # spine
    img = np.where((x * x) / 0.9 + ((y + 0.95) ** 2) / 0.02 <= 1, 3200.0, img)  # clavicles
    img = np.where(np.abs(x) > 0.92, 150.0, img)                             # air outside
    img = img + rng.normal(0.0, 40.0, (rows, cols)).astype(np.float32)
    return np.clip(img, 0, 4095).astype(np.uint16)


# ---------------------------------------------------------------- datasets

def study_info(modality, index, prefix, patients):
    """Everything shared by the files of one study."""
    acc = "%s-%s-%03d" % (prefix, "CT" if modality == "CT" else "XR", index)
    if modality == "CT":
        pat = patients[(index - 1) % len(patients)]
        date = datetime.date(2024, 3, 1) + datetime.timedelta(days=index - 1)
        tm = datetime.time(8 + (index * 7 // 60) % 10, (index * 7) % 60, 0)
    else:
        pat = patients[(index + 2) % len(patients)]
        date = datetime.date(2024, 4, 1) + datetime.timedelta(days=index - 1)
        tm = datetime.time(9 + (index * 11 // 60) % 9, (index * 11) % 60, 30)
    inst = INSTITUTIONS[pat["inst"]]
    # the character set the file needs: the patient's, widened for the institution
    text = pat["name"] + pat["address"] + inst["name"] + inst["address"] + inst["dept"]
    if all(ord(c) < 128 for c in text):
        charset = pat["charset"]
    else:
        try:
            text.encode("latin-1")
            charset = "ISO_IR 100" if pat["charset"] != "ISO_IR 192" else "ISO_IR 192"
        except UnicodeEncodeError:
            charset = "ISO_IR 192"
    return dict(acc=acc, pat=pat, inst=inst, charset=charset, date=date.strftime("%Y%m%d"),
                time=tm.strftime("%H%M%S"), age=age(pat["birth"], date),
                study_uid=uid(acc, "study"), modality=modality, index=index)


def base_dataset(st, sop_class, sop_uid, series_no, instance_no, series_uid):
    pat, inst = st["pat"], st["inst"]
    acc = st["acc"]

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION

    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False

    if st["charset"]:
        ds.SpecificCharacterSet = st["charset"]

    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = st["date"]
    ds.InstanceCreationTime = st["time"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = st["date"]
    ds.SeriesDate = st["date"]
    ds.AcquisitionDate = st["date"]
    ds.ContentDate = st["date"]
    ds.StudyTime = st["time"]
    ds.SeriesTime = st["time"]
    t = int(st["time"])
    ds.AcquisitionTime = "%06d.%03d" % (t, instance_no % 1000)
    ds.ContentTime = "%06d.%03d" % (t, instance_no % 1000)
    ds.AccessionNumber = acc
    ds.Modality = st["modality"]
    ds.Manufacturer = "DIANA LAB SYNTHETIC"
    ds.InstitutionName = inst["name"]
    ds.InstitutionAddress = inst["address"]
    ds.ReferringPhysicianName = "HAUSARZT^HANS^^DR."
    ds.StationName = "%s-DIANA-%02d" % (st["modality"], 1 + st["index"] % 3)
    ds.StudyDescription = "CT THORAX SYNTHETIC" if st["modality"] == "CT" else "XR CHEST PA SYNTHETIC"
    ds.SeriesDescription = "CT AXIAL 1.0mm" if st["modality"] == "CT" else "CHEST PA"
    ds.InstitutionalDepartmentName = inst["dept"]
    ds.PerformingPhysicianName = "RADIOLOGE^RITA"
    ds.OperatorsName = "MTRA^MARTIN"
    ds.ManufacturerModelName = "SYNTH-%s" % st["modality"]
    ds.ReferencedStudySequence = Sequence([_ref(STUDY_COMPONENT_SOP_CLASS, st["study_uid"])])
    ds.ReferencedPatientSequence = Sequence([_ref(PATIENT_SOP_CLASS, uid(pat["id"], "patient"))])
    ds.PatientName = pat["name"]
    ds.PatientID = pat["id"]
    ds.IssuerOfPatientID = "DIANA-LAB-KIS"
    ds.PatientBirthDate = pat["birth"]
    ds.PatientSex = pat["sex"]
    ds.OtherPatientIDs = pat["other"]
    other = Dataset()
    other.PatientID = pat["other"]
    other.IssuerOfPatientID = "NATIONAL-REGISTRY"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientAge = st["age"]
    ds.PatientAddress = pat["address"]
    ds.PatientTelephoneNumbers = pat["phone"]
    ds.DeviceSerialNumber = "SN-%s-%04d" % (st["modality"], 4711 + st["index"] % 3)
    ds.SoftwareVersions = "synth.py 1"
    ds.ProtocolName = ds.SeriesDescription
    ds.StudyInstanceUID = st["study_uid"]
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "S%05d" % (st["index"] + (0 if st["modality"] == "CT" else 50000))
    ds.SeriesNumber = series_no
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance_no
    ds.RequestingPhysician = "ZUWEISER^ZOE"
    ds.RequestedProcedureDescription = ds.StudyDescription
    req = Dataset()
    req.AccessionNumber = acc
    req.RequestedProcedureID = "RP-" + acc
    req.ScheduledProcedureStepID = "SPS-" + acc
    req.RequestedProcedureDescription = ds.StudyDescription
    req.ScheduledProcedureStepDescription = ds.SeriesDescription
    ds.RequestAttributesSequence = Sequence([req])
    ds.PerformedProcedureStepStartDate = st["date"]
    ds.PerformedProcedureStepStartTime = st["time"]
    ds.PerformedProcedureStepID = "PPS-" + acc

    block = ds.private_block(0x0011, "DIANA LAB", create=True)
    block.add_new(0x01, "LO", "private copy of " + pat["name"])
    block.add_new(0x02, "LO", pat["id"])
    return ds


def _ref(sop_class, sop_uid):
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_uid
    return item


def set_pixels(ds, arr, bits_stored, signed):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = arr.astype("<i2" if signed else "<u2").tobytes()
    ds["PixelData"].VR = "OW"


def write(ds, path):
    ds.save_as(path, write_like_original=False)
    return os.path.getsize(path)


def make_ct(st, out, slices, size, seed, phantom):
    series_uid = uid(st["acc"], "series", 1)
    frame_uid = uid(st["acc"], "frame-of-reference")
    cols, rows = size
    spacing = 1.0
    total = 0
    for n in range(1, slices + 1):
        sop_uid = uid(st["acc"], "instance", 1, n)
        ds = base_dataset(st, CT_IMAGE_STORAGE, sop_uid, 1, n, series_uid)
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = "1.0"
        ds.KVP = "120"
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        z = 0.0 - float(n - 1) * spacing + 0.0
        ds.ImagePositionPatient = ["%.1f" % (-cols / 2.0 * 0.7), "%.1f" % (-rows / 2.0 * 0.7), "%.1f" % z]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = "%.1f" % z
        ds.PixelSpacing = ["0.7", "0.7"]
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        zf = (n - 1) / max(1, slices - 1)
        set_pixels(ds, phantom.slice(zf, rng_for(seed, st["acc"], n)), 16, True)
        total += write(ds, os.path.join(out, "%d.dcm" % n))
    return slices, total


def make_xr(st, out, size, seed):
    cols, rows = size
    series_uid = uid(st["acc"], "series", 1)
    sop_uid = uid(st["acc"], "instance", 1, 1)
    ds = base_dataset(st, DX_PRESENTATION_STORAGE, sop_uid, 1, 1, series_uid)
    ds.Modality = "DX"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.KVP = "125"
    ds.DetectorType = "SCINTILLATOR"
    ds.ImagerPixelSpacing = ["0.175", "0.175"]
    ds.PixelSpacing = ["0.175", "0.175"]
    ds.AcquisitionDateTime = st["date"] + st["time"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    ds.PresentationLUTShape = "IDENTITY"
    set_pixels(ds, xr_pixels(cols, rows, rng_for(seed, st["acc"], 1)), 12, False)
    return 1, write(ds, os.path.join(out, "1.dcm"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--ct", type=int, default=0, metavar="N", help="CT studies (default 0)")
    ap.add_argument("--ct-slices", type=int, default=20, metavar="K", help="slices per CT study (20)")
    ap.add_argument("--ct-size", type=parse_size, default=(512, 512), metavar="WxH",
                    help="CT Columns x Rows (512x512)")
    ap.add_argument("--xr", type=int, default=0, metavar="N", help="XR studies, one image each (0)")
    ap.add_argument("--xr-size", type=parse_size, default=(2000, 2500), metavar="WxH",
                    help="XR Columns x Rows (2000x2500 = 10 MB; tests: 256x256)")
    ap.add_argument("--seed", type=int, default=0, help="pixel noise seed (0)")
    ap.add_argument("--prefix", default="DIANA",
                    help="accession prefix: PREFIX-CT-001, PREFIX-XR-001 (DIANA)")
    ap.add_argument("--quiet", "-q", action="store_true")
    a = ap.parse_args(argv)
    if a.ct < 0 or a.xr < 0 or a.ct_slices < 1 or a.ct > 999 or a.xr > 999:
        ap.error("need 0 <= --ct, --xr <= 999 and --ct-slices >= 1")

    t0 = time.monotonic()
    os.makedirs(a.out, exist_ok=True)
    rows = []
    files = total = 0
    phantom = CtPhantom(*a.ct_size) if a.ct else None
    jobs = [("CT", i) for i in range(1, a.ct + 1)] + [("XR", i) for i in range(1, a.xr + 1)]
    for modality, i in jobs:
        st = study_info(modality, i, a.prefix, PATIENTS)
        d = os.path.join(a.out, st["acc"])
        os.makedirs(d, exist_ok=True)
        if modality == "CT":
            n, b = make_ct(st, d, a.ct_slices, a.ct_size, a.seed, phantom)
        else:
            n, b = make_xr(st, d, a.xr_size, a.seed)
        files += n
        total += b
        rows.append([st["acc"], st["pat"]["id"], st["study_uid"], n,
                     "CT" if modality == "CT" else "DX", st["pat"]["name"], st["date"],
                     st["charset"] or "", b])
    with open(os.path.join(a.out, "manifest.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["accession", "patient_id", "study_uid", "instances", "modality",
                    "patient_name", "study_date", "specific_character_set", "bytes"])
        w.writerows(rows)
    if not a.quiet:
        dt = time.monotonic() - t0
        print("synth: %d studies, %d files, %.1f MB in %.2f s -> %s"
              % (len(rows), files, total / 1e6, dt, a.out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
