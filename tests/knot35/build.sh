#!/bin/sh
# Test-only: builds Knot DNS 3.5.x from Debian unstable's source package into
# $KHSM_KNOT35_DIR/inst (default /var/cache/knot-hsm/knot35/inst), for the
# online-mode integration test. The system's Knot is left alone: nothing is
# installed outside that prefix except the build dependencies (apt-get).
#
# The deb-src entry for unstable uses the mirror this machine's apt already uses
# for bookworm main; it lives in a private apt source list and list directory
# under a temporary directory that is removed on every exit, so the system's
# apt sources and indexes are never touched.
#
# Idempotent: does nothing when the prefix already holds a knotd >= 3.5.
# Prints the install prefix on stdout; progress goes to stderr.
set -eu

DIR=${KHSM_KNOT35_DIR:-/var/cache/knot-hsm/knot35}
PREFIX=$DIR/inst
BUILD_DEPS="gcc make pkg-config dpkg-dev libgnutls28-dev liburcu-dev liblmdb-dev libedit-dev"

say() { echo "knot35: $*" >&2; }
die() { echo "knot35: error: $*" >&2; exit 1; }

# "3.5.8" -> success when major.minor >= 3.5.
is_35_or_later() {
	printf '%s\n' "$1" | awk -F. '{ exit !($1 > 3 || ($1 == 3 && $2 >= 5)) }'
}

knotd_version() {
	# "knotd, Knot DNS 3.5.8" (3.5) or "knotd (Knot DNS), version 3.2.6" (3.2)
	"$PREFIX/sbin/knotd" --version 2>/dev/null | sed -n 's/.*[ ,]\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9.]*\).*/\1/p' | head -1
}

v=$(knotd_version || true)
if [ -n "$v" ] && is_35_or_later "$v"; then
	say "Knot $v already built"
	echo "$PREFIX"
	exit 0
fi

if [ "$(id -u)" = 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	die "not root and no sudo: cannot install build dependencies or write $DIR"
fi

case $DIR in /*) ;; *) die "KHSM_KNOT35_DIR must be an absolute path: $DIR" ;; esac
top=$(cd "$(dirname "$0")/../.." && pwd)
case "$DIR/" in "$top"/*) die "KHSM_KNOT35_DIR ($DIR) is inside the repository; use a directory outside it" ;; esac
if ! mkdir -p "$DIR" 2>/dev/null || [ ! -w "$DIR" ]; then
	$SUDO mkdir -p "$DIR" && $SUDO chown "$(id -u):$(id -g)" "$DIR" || die "cannot create $DIR"
fi

# The mirror (URI and Signed-By) apt uses for bookworm main, from one-line
# .list files and deb822 .sources files alike.
mirror() {
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '
			/^[[:space:]]*deb[[:space:]]/ {
				sub(/#.*/, ""); i = 2; opts = ""
				if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
				uri = $i; suite = $(i + 1); main = 0
				for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
				if (suite == "bookworm" && main) {
					key = ""
					if (match(opts, /signed-by=[^] ]+/)) key = substr(opts, RSTART + 10, RLENGTH - 10)
					print uri, key; exit
				}
			}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ &&
				    comps ~ /(^| )main( |$)/ && enabled != "no" && uri != "")
					{ print uri, key; found = 1; exit }
				types = suites = comps = uri = key = enabled = ""
			}
			/^#/ { next }
			/^[[:space:]]*$/ { flush(); next }
			/^[[:space:]]/ { next }
			{
				name = tolower($1); sub(/:$/, "", name); $1 = ""; sub(/^ +/, ""); sub(/ +$/, "")
				if (name == "types") types = $0
				else if (name == "suites") suites = $0
				else if (name == "components") comps = $0
				else if (name == "enabled") enabled = tolower($0)
				else if (name == "uris") { split($0, u, " "); uri = u[1] }
				else if (name == "signed-by" && $0 ~ /^\//) key = $0
			}
			END { if (!found) flush() }' "$f"
	done
}
set -- $(mirror | head -1)
URI=${1:-}
KEY=${2:-/usr/share/keyrings/debian-archive-keyring.gpg}
[ -n "$URI" ] || die "no 'deb ... bookworm main' entry in /etc/apt/sources.list or /etc/apt/sources.list.d/: cannot tell which Debian mirror to fetch the source from"

# Build dependencies, only those missing.
missing=""
for p in $BUILD_DEPS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing build dependencies:$missing"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null &&
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
		--no-install-recommends $missing >/dev/null ||
	die "apt-get install failed for:$missing"
fi

# The temporary deb-src entry for unstable, with its own list directory, removed on exit.
APT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/knot35-apt.XXXXXX")
trap 'rm -rf "$APT_TMP"' EXIT
trap 'exit 1' INT TERM HUP
mkdir -p "$APT_TMP/lists/partial" "$APT_TMP/parts"
echo "deb-src [signed-by=$KEY] $URI unstable main" > "$APT_TMP/sources.list"
APT="apt-get -q -o Dir::Etc::SourceList=$APT_TMP/sources.list -o Dir::Etc::SourceParts=$APT_TMP/parts
	-o Dir::State::Lists=$APT_TMP/lists -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
	-o APT::Sandbox::User=root"
say "fetching the knot source package from $URI unstable"
$APT update >"$APT_TMP/update.log" 2>&1 || { cat "$APT_TMP/update.log" >&2; die "apt-get update for $URI unstable failed"; }

src=$DIR/src
rm -rf "$src"
mkdir -p "$src"
(cd "$src" && $APT source knot) >"$APT_TMP/source.log" 2>&1 ||
	{ cat "$APT_TMP/source.log" >&2; die "apt-get source knot failed"; }
rm -rf "$APT_TMP"
srcdir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'knot-[0-9]*' | head -1)
[ -n "$srcdir" ] || die "apt-get source knot left no knot-<version> directory in $src"
v=${srcdir##*/knot-}
is_35_or_later "$v" || die "Debian unstable has knot $v; the online mode needs 3.5 or later"

say "building Knot $v in $srcdir (log: $DIR/build.log)"
(
	cd "$srcdir"
	# No static libraries and no fast zone parser (its generated C takes
	# minutes to compile). The utilities stay: keymgr is one of them.
	./configure --prefix="$PREFIX" --enable-pkcs11=yes --disable-modules \
		--disable-xdp --disable-quic --disable-documentation --disable-static \
		--disable-fastparser
) >"$DIR/build.log" 2>&1 || { tail -40 "$DIR/build.log" >&2; die "configure failed"; }
# The HSM is the point: refuse a build without PKCS#11.
grep -Eiq 'PKCS ?#?11 support:[[:space:]]*yes' "$DIR/build.log" ||
	{ grep -i pkcs "$DIR/build.log" >&2 || true; die "configure did not enable PKCS#11 support"; }
(cd "$srcdir" && make -j2 && make install) >>"$DIR/build.log" 2>&1 ||
	{ tail -40 "$DIR/build.log" >&2; die "make failed"; }

v=$(knotd_version || true)
[ -n "$v" ] && is_35_or_later "$v" || die "$PREFIX/sbin/knotd does not report 3.5 or later after the build"
for t in sbin/knotd sbin/knotc sbin/keymgr; do
	[ -x "$PREFIX/$t" ] || die "the build installed no $PREFIX/$t"
done
say "Knot $v installed in $PREFIX"
echo "$PREFIX"
