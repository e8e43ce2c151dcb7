# Installs what knot-hsm needs on Debian 12, only what is missing.
# Sourced by samples/demo.sh and tests/run.sh; uses sudo when not root.

# libknot-dev also ships libdnssec and libzscanner (headers, pkg-config): Debian 12
# has no separate libzscanner-dev.
KHSM_BUILD_PKGS="meson ninja-build gcc pkg-config libgnutls28-dev libp11-kit-dev libknot-dev libcmocka-dev"
KHSM_RUN_PKGS="knot knot-dnssecutils knot-dnsutils softhsm2 p11-kit gnutls-bin opensc python3"
# A card on another host (knot-hsm keystore --remote): p11-kit-client.so on the
# signer host; the card host runs `p11-kit server` (package p11-kit). Also what
# keymgr loads when a run serves it the card with its own login (lib/serve.h).
KHSM_RUN_PKGS="$KHSM_RUN_PKGS p11-kit-modules"
KHSM_TEST_PKGS="bind9-dnsutils ldnsutils clang libclang-rt-14-dev"
# The real card stack tests (tests/integration/test_sc_*.sh): their own pcscd
# in a private namespace (the package's own pcscd service is never used), the
# vpcd reader driver, OpenSC and the emulated card's crypto; as root.
KHSM_TEST_PKGS="$KHSM_TEST_PKGS pcscd vsmartcard-vpcd opensc opensc-pkcs11 python3-cryptography iproute2 openssl"
# samples/demo.sh adds these to KHSM_RUN_PKGS: delv validates the demo zone.
KHSM_DEMO_PKGS="bind9-dnsutils"
# The man page is built with rst2man. tests/integration/test_package.sh builds
# and checks the Debian package: dpkg-buildpackage, lintian, man, completion, units.
KHSM_BUILD_PKGS="$KHSM_BUILD_PKGS python3-docutils"
KHSM_TEST_PKGS="$KHSM_TEST_PKGS build-essential dpkg-dev debhelper lintian bash-completion man-db systemd git"

khsm_install_deps() {
	missing=""
	for p in $KHSM_BUILD_PKGS $KHSM_RUN_PKGS ${KHSM_WITH_TEST_PKGS:+$KHSM_TEST_PKGS}; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
			missing="$missing $p"
		fi
	done
	[ -z "$missing" ] && return 0

	if [ "$(id -u)" = 0 ]; then
		sudo=""
	elif command -v sudo >/dev/null 2>&1; then
		sudo="sudo"
	else
		echo "error: missing packages:$missing; run as root or install sudo" >&2
		return 1
	fi
	echo "installing:$missing" >&2
	# The knot package would start a system knotd; tests and the demo run their own.
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null ||
	{ echo "error: apt-get install failed for:$missing" >&2; return 1; }
}

# Configure (once) and build knot-hsm in $1.
khsm_build() {
	builddir=$1
	if [ ! -f "$builddir/build.ninja" ]; then
		meson setup "$builddir" "$KHSM_TOP" >"$builddir.setup.log" 2>&1 ||
		{ cat "$builddir.setup.log" >&2; return 1; }
	fi
	ninja -C "$builddir" >"$builddir.build.log" 2>&1 || { tail -50 "$builddir.build.log" >&2; return 1; }
}
