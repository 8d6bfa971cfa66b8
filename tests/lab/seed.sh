#!/bin/bash
# tests/lab/seed.sh [--to pacs|helper] [--json] DIR|FILE... - upload DICOM files into the lab.
#
# Uploads every .dcm under DIR (recursively, sorted) to the lab PACS (default)
# or the helper with POST /instances over one keep-alive HTTP connection
# (tests/tools/upload.py), checks that every answer says "Success" or
# "AlreadyStored", and prints the counts and throughput.  Exit 0 when all
# files were accepted.
#
# Server address and credentials: DIANA_LAB_{PACS,HELPER}_{URL,USER,PASSWORD}
# (set by with-lab.sh / `eval "$(lab.sh start)"`); otherwise those of the
# running lab (lab.sh env); otherwise the fixed lab defaults.
#
#   eval "$(tests/lab/lab.sh start)"
#   /usr/bin/python3 tests/tools/synth.py --out /tmp/synth --ct 5 --ct-slices 100 --xr 20
#   tests/lab/seed.sh /tmp/synth
# SPDX-License-Identifier: MIT
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$(cd "$LAB_DIR/../tools" && pwd)
PY=${PYTHON:-/usr/bin/python3}
to=pacs
extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--to) to=$2; shift 2 ;;
	--to=*) to=${1#--to=}; shift ;;
	--json|-q|--quiet) extra+=("$1"); shift ;;
	-h|--help) sed -n '2,/^# SPDX/p' "$0" | sed 's/^# \{0,1\}//; /^SPDX/d' >&2; exit 0 ;;
	--) shift; break ;;
	-*) echo "seed.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { echo "usage: seed.sh [--to pacs|helper] [--json] DIR|FILE..." >&2; exit 2; }

case "$to" in
pacs) S=PACS def_url=http://127.0.0.1:18042 def_user=pacs def_pw=pacs-secret ;;
helper) S=HELPER def_url=http://127.0.0.1:28042 def_user=diana def_pw=diana-secret ;;
*) echo "seed.sh: --to pacs|helper" >&2; exit 2 ;;
esac

url_var=DIANA_LAB_${S}_URL
if [ -z "${!url_var:-}" ]; then
	# not in the environment: ask the running lab
	if lab_env=$("$LAB_DIR/lab.sh" env 2>/dev/null); then
		eval "$lab_env"
	fi
fi
url_var=DIANA_LAB_${S}_URL user_var=DIANA_LAB_${S}_USER pw_var=DIANA_LAB_${S}_PASSWORD
url=${!url_var:-$def_url}
user=${!user_var:-$def_user}
pw=${!pw_var:-$def_pw}

exec "$PY" "$TOOLS/upload.py" --url "$url" --user "$user" --password "$pw" "${extra[@]}" "$@"
