#!/usr/bin/python3
"""Exported symbols of libdiana.so must be exactly the DIANA_API functions
declared in include/diana/*.h, all named diana_*, all in a DIANA_x.y node of
the version script. Prints TAP-free text; exit status is the verdict."""
import pathlib
import re
import subprocess
import sys

lib, incdir, mapfile = sys.argv[1:4]

declared = set()
for h in sorted(pathlib.Path(incdir).glob("*.h")):
    text = re.sub(r"/\*.*?\*/", "", h.read_text(), flags=re.S)
    for m in re.finditer(r"DIANA_API\s+[^;{]*?\b(diana_\w+)\s*\(", text):
        declared.add(m.group(1))

nodes = set(re.findall(r"^(DIANA_\d+\.\d+)\s*\{", pathlib.Path(mapfile).read_text(), flags=re.M))

out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                     capture_output=True, text=True).stdout
exported, problems = set(), []
for line in out.splitlines():
    parts = line.split()
    if len(parts) < 3:
        continue
    kind, name = parts[1], parts[2]
    base, _, version = name.partition("@@")
    if kind == "A" and base in nodes:
        continue  # the version node itself
    if not base.startswith("diana_"):
        problems.append(f"exported symbol outside the API: {name}")
        continue
    if version not in nodes:
        problems.append(f"{base} is not in a version node of {mapfile} (has '{version}')")
    exported.add(base)

for name in sorted(declared - exported):
    problems.append(f"declared with DIANA_API but not exported: {name}")
for name in sorted(exported - declared):
    problems.append(f"exported but not declared in include/diana: {name}")
if not declared:
    problems.append("no DIANA_API declarations found")

for p in problems:
    print(p)
print(f"{len(exported)} exported, {len(declared)} declared, {len(problems)} problems")
sys.exit(1 if problems else 0)
