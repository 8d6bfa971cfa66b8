#!/usr/bin/python3
"""Checks tests/tools/synth.py (meson test 'lab-synth', no server needed).

Determinism (same bytes twice), --seed changes pixels only, sizes, the PHI
that the de-identification tests rely on, character sets, the manifest.
"""
import csv
import filecmp
import os
import subprocess
import sys
import tempfile
import time

import pydicom

HERE = os.path.dirname(os.path.abspath(__file__))
SYNTH = os.path.join(HERE, "synth.py")
PY = sys.executable

PHI_KEYWORDS = [
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "PatientAge", "PatientAddress", "OtherPatientIDs", "OtherPatientIDsSequence",
    "PatientTelephoneNumbers", "AccessionNumber", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "PerformingPhysicianName",
    "OperatorsName", "RequestingPhysician", "StationName", "DeviceSerialNumber",
    "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
    "ContentDate", "ContentTime", "InstanceCreationDate", "StudyID", "StudyInstanceUID",
    "SeriesInstanceUID", "SOPInstanceUID", "ReferencedStudySequence",
    "ReferencedPatientSequence", "RequestAttributesSequence",
]

failures = 0


def check(cond, what):
    global failures
    print("%s - %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures += 1


def synth(out, *args):
    t0 = time.monotonic()
    subprocess.run([PY, SYNTH, "--out", out, "--quiet"] + list(args), check=True)
    return time.monotonic() - t0


def files_of(d):
    out = []
    for root, _, names in os.walk(d):
        out += [os.path.relpath(os.path.join(root, n), d) for n in names]
    return sorted(out)


def main():
    with tempfile.TemporaryDirectory(prefix="diana-synth-test.") as tmp:
        a, b, c, big = (os.path.join(tmp, x) for x in "abcd")
        args = ["--ct", "2", "--ct-slices", "3", "--ct-size", "64x48", "--xr", "6",
                "--xr-size", "40x30", "--seed", "5"]
        synth(a, *args)
        synth(b, *args)
        fa, fb = files_of(a), files_of(b)
        check(fa == fb and len(fa) == 2 * 3 + 6 + 1, "same file list twice (%d files)" % len(fa))
        _, mismatch, errors = filecmp.cmpfiles(a, b, fa, shallow=False)
        check(not mismatch and not errors, "same bytes twice (%d differ)" % len(mismatch))

        synth(c, *(args[:-1] + ["6"]))
        pa = pydicom.dcmread(os.path.join(a, "DIANA-CT-001", "2.dcm"))
        pc = pydicom.dcmread(os.path.join(c, "DIANA-CT-001", "2.dcm"))
        check(pa.SOPInstanceUID == pc.SOPInstanceUID, "--seed keeps UIDs")
        check(pa.PixelData != pc.PixelData, "--seed changes pixels")

        with open(os.path.join(a, "manifest.csv"), encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        check([r["accession"] for r in rows] ==
              ["DIANA-CT-001", "DIANA-CT-002"] + ["DIANA-XR-%03d" % i for i in range(1, 7)],
              "manifest lists the accessions in order")
        check(list(rows[0].keys())[:4] == ["accession", "patient_id", "study_uid", "instances"],
              "manifest columns start accession,patient_id,study_uid,instances")
        check(len({r["patient_id"] for r in rows}) >= 4, "studies spread over several patients")
        charsets = {r["specific_character_set"] for r in rows}
        check({"", "ISO_IR 100", "ISO_IR 192"} <= charsets,
              "default, ISO_IR 100 and ISO_IR 192 all present (%s)" % sorted(charsets))

        seen_uids = set()
        for r in rows:
            d = os.path.join(a, r["accession"])
            names = sorted(os.listdir(d), key=lambda n: int(n.split(".")[0]))
            check(len(names) == int(r["instances"]) and names[0] == "1.dcm",
                  "%s: %s files named <n>.dcm" % (r["accession"], r["instances"]))
            for n in names:
                ds = pydicom.dcmread(os.path.join(d, n))
                where = "%s/%s" % (r["accession"], n)
                missing = [k for k in PHI_KEYWORDS if not ds.get(k)]
                if missing:
                    check(False, "%s: PHI missing: %s" % (where, missing))
                if ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.1":
                    check(False, "%s: not Explicit VR Little Endian" % where)
                block = ds.private_block(0x0011, "DIANA LAB")
                if (block[0x01].value != "private copy of " + str(ds.PatientName)
                        or block[0x02].value != ds.PatientID):
                    check(False, "%s: private block (0011,xx01/02) wrong" % where)
                if ds.RequestAttributesSequence[0].AccessionNumber != r["accession"]:
                    check(False, "%s: accession missing in RequestAttributesSequence" % where)
                if str(ds.PatientName) != r["patient_name"]:
                    check(False, "%s: PatientName %r != manifest %r" % (where, str(ds.PatientName),
                                                                      r["patient_name"]))
                if ds.get("SpecificCharacterSet", "") != r["specific_character_set"]:
                    check(False, "%s: SpecificCharacterSet" % where)
                if ds.StudyInstanceUID != r["study_uid"] or not ds.SOPInstanceUID.startswith("2.25."):
                    check(False, "%s: UIDs" % where)
                seen_uids.add(ds.SOPInstanceUID)
                if r["modality"] == "CT":
                    ok = (ds.Rows, ds.Columns, ds.PixelRepresentation, ds.BitsStored,
                          float(ds.RescaleIntercept), ds.Modality) == (48, 64, 1, 16, -1024.0, "CT")
                    ok = ok and len(ds.PixelData) == 48 * 64 * 2 and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
                else:
                    ok = (ds.Rows, ds.Columns, ds.PixelRepresentation, ds.BitsStored,
                          ds.PresentationIntentType, ds.Modality) == (30, 40, 0, 12, "FOR PRESENTATION", "DX")
                    ok = ok and len(ds.PixelData) == 30 * 40 * 2 and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
                if not ok:
                    check(False, "%s: image attributes / size" % where)
        check(len(seen_uids) == 12, "12 distinct SOPInstanceUIDs")
        check(failures == 0, "every file: PHI, private block, sequences, charset, UIDs, image attributes")

        # the lab's standard small set must be quick
        dt = synth(big, "--ct", "5", "--ct-slices", "20", "--xr", "10", "--xr-size", "256x256")
        n = len(files_of(big)) - 1
        ds = pydicom.dcmread(os.path.join(big, "DIANA-CT-001", "1.dcm"))
        check(n == 110 and (ds.Rows, ds.Columns) == (512, 512), "5 CT x 20 (512x512) + 10 XR 256x256: %d files" % n)
        check(dt < 30, "... written in %.2f s" % dt)
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
