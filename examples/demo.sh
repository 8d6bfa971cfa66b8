#!/bin/sh
# libdiana demo on a fresh Debian 12 machine, one command:
#  1. installs what is missing (apt-get) and builds libdiana (build/),
#  2. generates synthetic studies (with fake PHI), starts a local Orthanc
#     "hospital PACS" and the DIANA helper on 127.0.0.1, uploads the studies
#     to the PACS,
#  3. makes a project secret (mode 0600) and pulls the studies of an
#     accession list through the helper with `diana pull`, de-identified,
#     into a folder, with a key file; shows the summary, the files and the
#     first lines of the key,
#  4. checks the output with the leak scanner (`diana scan`): it must be clean,
#  5. stops the servers (always, also on failure or Ctrl-C).
# DIANA_DEMO_OUT=DIR keeps everything in DIR (default: a new temporary folder).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
. tests/deps.sh

say() { printf '\n== %s\n' "$*"; }

say "checking Debian packages"
diana_ensure_packages $DIANA_BUILD_PACKAGES libcriterion-dev orthanc orthanc-dicomweb dcmtk \
	python3 python3-pydicom python3-numpy curl iproute2

# DIANA_DEMO_BUILD: an existing build folder to use as it is (the test
# suite runs this demo against its own build)
build=${DIANA_DEMO_BUILD:-build}
if [ -z "${DIANA_DEMO_BUILD:-}" ]; then
	say "building libdiana (build/)"
	diana_build build >/dev/null
fi
case $build in /*) ;; *) build=$top/$build ;; esac
DIANA=$build/examples/cli/diana
"$DIANA" --version

out=${DIANA_DEMO_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/diana-demo-XXXXXX")}
mkdir -p "$out"
say "generating synthetic studies with fake PHI in $out/studies"
/usr/bin/python3 tests/tools/synth.py --out "$out/studies" --ct 2 --ct-slices 10 --xr 3 --xr-size 512x512 >/dev/null
cat "$out/studies/manifest.csv"

say "starting the lab (Orthanc PACS + helper on 127.0.0.1)"
DIANA_BINDSHIM=$build/tests/lab/libdiana-bindshim.so
export DIANA_BINDSHIM
trap 'tests/lab/lab.sh stop >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
lab_env=$(tests/lab/lab.sh start)
eval "$lab_env"
echo "PACS: $DIANA_LAB_PACS_URL (AET $DIANA_LAB_PACS_AET)   helper: $DIANA_LAB_HELPER_URL"

say "uploading the studies to the PACS"
tests/lab/seed.sh "$out/studies"

say "a project secret ($out/project.secret, mode 0600): it keys every pseudonym"
if [ ! -s "$out/project.secret" ]; then
	(umask 077 && head -c 48 /dev/urandom | base64 >"$out/project.secret")
fi
chmod 600 "$out/project.secret"
ls -l "$out/project.secret"

awk -F, 'NR > 1 { print $1 }' "$out/studies/manifest.csv" >"$out/accessions.txt"
# the PACS through the helper: orthanc+http://diana:diana-secret@127.0.0.1:28042?modality=pacs
HELPER="orthanc+http://$DIANA_LAB_HELPER_USER:$DIANA_LAB_HELPER_PASSWORD@${DIANA_LAB_HELPER_URL#http://}?modality=pacs"

say "diana pull --dry-run: what would be fetched"
"$DIANA" pull "$HELPER" --accessions "$out/accessions.txt" --secret-file "$out/project.secret" \
	-o "$out/pulled" --dry-run

say "diana pull: $(wc -l <"$out/accessions.txt") accession numbers -> $out/pulled (de-identified)"
"$DIANA" pull "$HELPER" --accessions "$out/accessions.txt" --secret-file "$out/project.secret" \
	--key "$out/key.csv" -o "$out/pulled" -j 2

say "the output folder (<pseudo PatientID>/<pseudo AccessionNumber>/<series>/<SOP>.dcm)"
(cd "$out/pulled" && find . -name '*.dcm' | sort | head -8 && echo "... $(find . -name '*.dcm' | wc -l) files")
echo
cat "$out/pulled/report.csv"

say "the key ($out/key.csv, mode 0600: originals -> pseudonyms; keep it apart from the images)"
head -n 3 "$out/key.csv"

say "diana scan: are any of the originals' values left in the output?"
"$DIANA" scan --secret-file "$out/project.secret" --key "$out/key.csv" --original "$out/studies" \
	-j 2 "$out/pulled"/*/
echo "clean: no protected value found"

say "stopping the lab"
tests/lab/lab.sh stop >/dev/null
trap - EXIT INT TERM
say "done"
echo "synthetic studies (fake PHI): $out/studies"
echo "de-identified studies:        $out/pulled"
echo "key file:                     $out/key.csv"
echo "rerun the same pull and it skips what is complete: diana pull ... -o $out/pulled"
