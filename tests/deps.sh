# Shell functions shared by tests/run.sh and examples/demo.sh (source it).
# Installs the Debian 12 packages libdiana needs, only when missing.

DIANA_BUILD_PACKAGES="meson ninja-build pkg-config cmake gcc g++ libgdcm-dev libcurl4-openssl-dev
libcjson-dev libssl-dev zlib1g-dev libdcmtk-dev"
DIANA_TEST_PACKAGES="libcriterion-dev orthanc orthanc-dicomweb dcmtk abigail-tools python3 python3-pytest
python3-pydicom python3-numpy curl iproute2 binutils"

diana_missing_packages() {
	missing=""
	for p in "$@"; do
		status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
		case "$status" in
		*" installed") ;;
		*) missing="$missing $p" ;;
		esac
	done
	echo "$missing"
}

# diana_ensure_packages PKG...: apt-get install what is missing (non-interactive).
diana_ensure_packages() {
	missing=$(diana_missing_packages "$@")
	[ -z "$missing" ] && return 0
	echo "installing:$missing"
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			SUDO="sudo"
		else
			echo "error: packages missing ($missing) and not root (no sudo)" >&2
			return 1
		fi
	fi
	# Installing orthanc would start the stock service on 0.0.0.0:8042/4242 on a
	# machine with an init system: forbid service starts during the install.
	added_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null &&
			$SUDO chmod 755 /usr/sbin/policy-rc.d && added_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	rc=0
	$SUDO apt-get update -qq || rc=$?
	# shellcheck disable=SC2086
	[ $rc -eq 0 ] && { $SUDO apt-get install -y -qq --no-install-recommends $missing || rc=$?; }
	[ -n "$added_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
	if [ $rc -ne 0 ]; then
		echo "error: apt-get failed ($rc)" >&2
		return 1
	fi
	still=$(diana_missing_packages "$@")
	if [ -n "$still" ]; then
		echo "error: still missing:$still" >&2
		return 1
	fi
}

# diana_build DIR [meson options...]: configure (or reconfigure) and compile.
diana_build() {
	dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null || return 1
	else
		meson setup "$dir" "$@" >/dev/null || return 1
	fi
	meson compile -C "$dir"
}
