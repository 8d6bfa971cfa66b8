#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Extract PS3.15 Table E.3.10-1 (Safe Private Attributes) from the
reStructuredText of PS3.15 Annex E into lib/deid/ps3.15-e3-10-1.tsv.

    extract_e3_10_1.py chapter_E.rst OUTPUT.tsv "SOURCE LINE"

Run by hand when the table is refreshed (the TSV is committed; the build
reads only the TSV, through gen_safe_private.py). Cells are copied:
multi-line cells joined with single spaces, the reStructuredText
superscript role reduced to its text ("1\\ :s up:`st`\\ value" -> "1st
value"); nothing is retyped. Used with github chsasank/dicom_standard
source/part15/chapter_E.rst @2384a799ebf3.
"""
import re
import sys

SUP = re.compile(r"\\ :s up:`([^`]*)`\\ ")

src, out, source_line = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(src, encoding="utf-8").read().split("\n")
start = next(i for i, l in enumerate(text) if l.strip() == ".. table:: Safe Private Attributes")
rows, cur, header_done = [], None, False
for line in text[start + 1:]:
    s = line.strip()
    if not s:
        if cur is None and rows:
            break
        continue
    if s.startswith("+"):
        if cur is not None and any(c for c in cur):
            rows.append([" ".join(SUP.sub(r"\1 ", c).split()) for c in cur])
        cur = None
        continue
    if not s.startswith("|"):
        break
    cells = [c for c in s.strip("|").split("|")]
    if cur is None:
        cur = ["" for _ in cells]
    if len(cells) != len(cur):
        sys.exit("ragged row: %r" % s)
    cur = [a + " " + b.strip() for a, b in zip(cur, cells)]
header, body = rows[0], rows[1:]
header = [h.replace("*", "").strip() for h in header]
if header != ["Data Element", "Private Creator", "VR", "VM", "Meaning"]:
    sys.exit("unexpected header %r" % header)
tag = re.compile(r"^\(([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})\)$")
with open(out, "w", encoding="utf-8") as f:
    f.write("# " + source_line + "; %d rows\n" % len(body))
    f.write("tag\tprivate_creator\tvr\tvm\tmeaning\n")
    for r in body:
        if not tag.match(r[0]):
            sys.exit("unexpected tag %r" % r[0])
        f.write("\t".join(r) + "\n")
print(len(body), "rows")
