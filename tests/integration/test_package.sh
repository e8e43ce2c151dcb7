#!/bin/sh
# Installable like Knot itself: the Debian package built from a clean copy of
# the source (dpkg-buildpackage, lintian), installed with apt-get on this
# machine, what it installs (binary, guard, conffile, man page, completion,
# units), apt-get remove leaving only the conffile and purge removing it; and
# meson install of the build directory into a DESTDIR, with the same set and
# the paths of its prefix.
#
# The package is installed on the machine itself, not in a throwaway root: a
# root that apt can install into needs a whole Debian system (debootstrap,
# the network), and dpkg -x would not run the maintainer scripts nor handle
# the conffile. The machine stays as it was: every dependency is installed
# already (samples/deps.sh), recommends are not installed, the package list is
# compared before and after, and the package is purged on every exit. Other
# tests run $KNOT_HSM from the build directory, never /usr/bin/knot-hsm.
# It installs into the real system: the host's p11-kit registries stay visible
# (lib.sh hides them from every other test).
KHSM_HOST_P11KIT=1
. "$(dirname "$0")/lib.sh"
: "${KHSM_SRCDIR:?KHSM_SRCDIR must name the source tree}"
: "${KHSM_BUILDDIR:?KHSM_BUILDDIR must name the build directory}"

for tool in dpkg-buildpackage dh lintian apt-get dpkg-query dpkg-deb man systemd-analyze bash \
	rst2man python3 meson; do
	command -v "$tool" >/dev/null 2>&1 ||
		fail "$tool not found: install the packaging tools (KHSM_TEST_PKGS in samples/deps.sh)"
done
[ -f /usr/share/bash-completion/bash_completion ] ||
	fail "bash-completion not installed (KHSM_TEST_PKGS in samples/deps.sh)"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	sudo -n true 2>/dev/null || fail "installing the package needs root (or sudo without a password)"
	SUDO="sudo -n"
fi
APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600"
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ARCH=$(dpkg --print-architecture)

pkg_status() { dpkg-query -W -f='${Status}' knot-hsm 2>/dev/null || true; }
# Refuse to touch a knot-hsm this test did not install.
[ -z "$(pkg_status)" ] || [ "$(pkg_status)" = "unknown ok not-installed" ] ||
	fail "knot-hsm is installed on this machine ($(pkg_status)); the test installs and purges its own: apt-get purge knot-hsm first"
[ ! -e /etc/knot/knot-hsm-guard.conf ] ||
	fail "/etc/knot/knot-hsm-guard.conf exists and is not the package's: move it away first"
INSTALLED=""
pkg_cleanup() {
	[ -n "$INSTALLED" ] || return 0
	case $(pkg_status) in
		*installed*|*config-files*) $APT purge -y knot-hsm >/dev/null 2>&1 ||
			echo "warning: apt-get purge knot-hsm failed; remove it by hand" >&2 ;;
	esac
}
on_cleanup pkg_cleanup

# --- a clean copy of the source, then the package ---------------------------
SRC=$TMP/src/knot-hsm
mkdir -p "$SRC"
if git -C "$KHSM_SRCDIR" rev-parse --git-dir >/dev/null 2>&1; then
	# The tracked files as they are now (a clone would miss uncommitted edits).
	(cd "$KHSM_SRCDIR" && git ls-files -z --cached | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\n" "$f"; done' sh |
		tar -cf - -T - ) | tar -xf - -C "$SRC"
else
	(cd "$KHSM_SRCDIR" && tar -cf - --exclude='./build*' --exclude='./obj-*' .) | tar -xf - -C "$SRC"
fi
[ -f "$SRC/debian/rules" ] || fail "the copy of the source has no debian/rules"
[ ! -e "$SRC/build" ] || fail "the copy of the source is not clean: it has build/"

VERSION=$(cd "$SRC" && dpkg-parsechangelog -SVersion)
MESON_VERSION=$(meson introspect --projectinfo "$KHSM_BUILDDIR" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
equals "$VERSION" "$MESON_VERSION" "debian/changelog has the version of meson.build"

(cd "$SRC" && dpkg-buildpackage -us -uc -b >"$TMP/build.log" 2>&1) ||
	{ tail -n 60 "$TMP/build.log" >&2; fail "dpkg-buildpackage -us -uc -b failed"; }
DEB=$TMP/src/knot-hsm_${VERSION}_$ARCH.deb
[ -f "$DEB" ] || { ls "$TMP/src" >&2; fail "no knot-hsm_${VERSION}_$ARCH.deb"; }
pass "dpkg-buildpackage -us -uc -b builds $(basename "$DEB") from a clean copy"
contains "$(cat "$TMP/build.log")" "-Dtests=disabled" "the package build builds no tests"
lacks "$(cat "$TMP/build.log")" "meson test" "the package build runs no tests"

run 0 lintian --fail-on error "$DEB"
printf '%s\n' "$OUT" | grep -v '^$' | sed 's/^/lintian: /' || true
lacks "$OUT" "E: " "lintian: no errors"
# No warning is kept either (none is overridden in debian/): any new one fails.
lacks "$OUT" "W: " "lintian: no warnings"

# What the .deb holds, and its relationships.
dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' >"$TMP/deb.list"
for f in /usr/bin/knot-hsm "/usr/lib/$MA/knot-hsm/libknothsm-guard.so" \
	"/usr/lib/$MA/knot-hsm/knot-hsm-guard.conf" /etc/knot/knot-hsm-guard.conf \
	/usr/share/man/man1/knot-hsm.1.gz /usr/share/bash-completion/completions/knot-hsm \
	/lib/systemd/system/knot-hsm-ceremony.service /lib/systemd/system/knot-hsm-ceremony.timer \
	/lib/systemd/system/knot-hsm-status.service /lib/systemd/system/knot-hsm-status.timer \
	/lib/systemd/system/knot-hsm-heal.service /lib/systemd/system/knot-hsm-heal.timer \
	/usr/share/doc/knot-hsm/guide.rst.gz /usr/share/doc/knot-hsm/samples/knot-offline.conf \
	/usr/share/doc/knot-hsm/samples/opensc.module /usr/share/doc/knot-hsm/samples/knot-hsm-guard.conf \
	/usr/share/doc/knot-hsm/samples/knot-hsm-p11-kit-server.service \
	/usr/share/doc/knot-hsm/samples/knot-hsm-remote-tunnel.service \
	/usr/share/doc/knot-hsm/samples/knot-hsm-remote.conf; do
	grep -qx "$f" "$TMP/deb.list" || { cat "$TMP/deb.list" >&2; fail "the package lacks $f"; }
done
pass "the package holds the binary, the guard, the conffile, man page, completion, units and docs"
run 0 dpkg-deb -f "$DEB" Depends Recommends Suggests
lacks "$OUT" "knot-dnsutils" "no dependency on kdig's package: submitted asks the parent with libknot"
for want in libknot libdnssec libgnutls libp11-kit "knot (>= 3.2)" \
	"Recommends: opensc, pcscd" "Suggests: softhsm2, bind9-dnsutils"; do
	contains "$OUT" "$want" "package relationships: $want"
done
mkdir "$TMP/ctrl"
dpkg-deb -e "$DEB" "$TMP/ctrl"
equals "$(cat "$TMP/ctrl/conffiles")" /etc/knot/knot-hsm-guard.conf "the guard configuration is the only conffile"

# --- install -----------------------------------------------------------------
dpkg-query -W -f='${Package} ${Version} ${Status}\n' | sort >"$TMP/pkgs.before"
INSTALLED=1
$APT install -y --no-install-recommends "$DEB" >"$TMP/apt.log" 2>&1 ||
	{ cat "$TMP/apt.log" >&2; fail "apt-get install ./$(basename "$DEB") failed"; }
dpkg-query -W -f='${Package} ${Version} ${Status}\n' | sort >"$TMP/pkgs.after"
equals "$(comm -13 "$TMP/pkgs.before" "$TMP/pkgs.after")" "knot-hsm $VERSION install ok installed" \
	"apt-get install adds knot-hsm and nothing else"
equals "$(comm -23 "$TMP/pkgs.before" "$TMP/pkgs.after")" "" "apt-get install changes no other package"
dpkg -L knot-hsm | sort >"$TMP/files"

run 0 /usr/bin/knot-hsm --version
equals "$OUT" "knot-hsm $VERSION" "the installed knot-hsm --version"
run 0 man -w knot-hsm
equals "$OUT" /usr/share/man/man1/knot-hsm.1.gz "man -w knot-hsm"
run 0 env MANWIDTH=80 LC_ALL=C.UTF-8 man -P cat knot-hsm
contains "$OUT" "GUARD MODULE" "the man page renders the manual"

# Completion as bash loads it on demand (bash-completion's loader), and alone.
printf 'server:\n    rundir: %s\nzone:\n  - domain: example.com.\n  - domain: example.net\n' "$TMP" >"$TMP/knot.conf"
token_init "SmartCard-HSM (UserPIN)"
complete_line() { # LOADER LINE: COMPREPLY for the end of LINE, one per line
	bash --norc --noprofile -c '
		if [ "$1" = loader ]; then
			. /usr/share/bash-completion/bash_completion
			_completion_loader knot-hsm
		else
			. /usr/share/bash-completion/completions/knot-hsm
		fi
		fn=$(complete -p knot-hsm | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
		[ -n "$fn" ] || { echo "no completion for knot-hsm" >&2; exit 1; }
		COMP_LINE=$2; COMP_POINT=${#2}
		read -ra COMP_WORDS <<<"$2"
		case $2 in *" ") COMP_WORDS+=("") ;; esac
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		"$fn" knot-hsm "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		printf "%s\n" "${COMPREPLY[@]}"' sh "$@"
}
for how in loader alone; do
	run 0 complete_line $how "knot-hsm example.com cer"
	equals "$OUT" ceremony "completion ($how): ceremony after knot-hsm example.com cer"
	run 0 complete_line $how "knot-hsm -c $TMP/knot.conf exa"
	equals "$(printf '%s\n' "$OUT" | sort | tr '\n' ' ')" "example.com example.net " \
		"completion ($how): zones of knot.conf"
	run 0 complete_line $how "knot-hsm example.com generate "
	contains "$OUT" "algorithm=" "completion ($how): key= names of generate"
	lacks "$OUT" "digest=" "completion ($how): no key of another command"
	run 0 complete_line $how "knot-hsm --module $SOFTHSM_MODULE --token Smart"
	equals "$OUT" 'SmartCard-HSM\ \(UserPIN\)' "completion ($how): token label, quoted"
done

# Units: valid for systemd, the installed path, not enabled.
run 0 systemd-analyze verify /lib/systemd/system/knot-hsm-ceremony.service \
	/lib/systemd/system/knot-hsm-ceremony.timer /lib/systemd/system/knot-hsm-status.service \
	/lib/systemd/system/knot-hsm-status.timer /lib/systemd/system/knot-hsm-heal.service \
	/lib/systemd/system/knot-hsm-heal.timer
equals "$ERR" "" "systemd-analyze verify accepts the installed units without a warning"
contains "$(cat /lib/systemd/system/knot-hsm-status.service)" "ExecStart=/usr/bin/knot-hsm " \
	"the status unit runs the installed knot-hsm"
contains "$(cat /lib/systemd/system/knot-hsm-ceremony.service)" "exec /usr/bin/knot-hsm " \
	"the ceremony unit runs the installed knot-hsm"
contains "$(cat /lib/systemd/system/knot-hsm-ceremony.service)" "ReadWritePaths=/var/lib/knot /run/knot /run/knot-hsm" \
	"the ceremony unit may take the card lock in /run/knot-hsm"
contains "$(cat /lib/systemd/system/knot-hsm-heal.service)" \
	"exec /usr/bin/knot-hsm -c /etc/knot/knot.conf \$KNOT_HSM_ZONES heal" \
	"the heal unit runs the installed knot-hsm heal for the zones of /etc/default/knot-hsm"
contains "$(cat /lib/systemd/system/knot-hsm-heal.timer)" "OnUnitActiveSec=30s" \
	"the heal timer runs every 30 s"
# The card lock's directory: made by the package's tmpfiles.d entry, 2770
# root:knot, the only place knot-hsm (as root or knot) takes the card lock.
contains "$(cat "$TMP/files")" /usr/lib/tmpfiles.d/knot-hsm.conf "the tmpfiles.d entry is installed"
rm -rf /run/knot-hsm
run 0 systemd-tmpfiles --create /usr/lib/tmpfiles.d/knot-hsm.conf
equals "$(stat -c '%a %U %G' /run/knot-hsm)" "2770 root knot" "systemd-tmpfiles makes /run/knot-hsm 2770 root:knot"
enabled=$(ls /etc/systemd/system/timers.target.wants/ 2>/dev/null | grep knot-hsm || true)
equals "$enabled" "" "the timers are installed disabled"
[ -e /etc/systemd/system/timers.target.wants/knot-hsm-heal.timer ] &&
	fail "the heal timer is enabled on install" || pass "the heal timer is installed disabled"

# The guard: off as shipped (every line a comment); keystore --guard sets it
# up in one step, writing /etc/knot's file through the package's link.
grep -v '^#' /etc/knot/knot-hsm-guard.conf | grep -q . && fail "the shipped guard configuration sets something"
pass "the shipped guard configuration leaves the guard off"
PINF=$TMP/card.pin
pin_file "$PINF"
cp /etc/knot/knot-hsm-guard.conf "$TMP/shipped.conf"
mkdir -p "$TMP/knotd-lib"; chown knot:knot "$TMP/knotd-lib"
run 0 env -u KHSM_GUARD_MODULE -u KHSM_GUARD_CONF KHSM_GUARD_AUDIT_LOG="$TMP/knotd-lib/audit.log" \
	/usr/bin/knot-hsm keystore --token "SmartCard-HSM (UserPIN)" --pin-file "$PINF" --guard
contains "$ERR" "note: wrote the guard configuration /etc/knot/knot-hsm-guard.conf (module = " \
	"keystore --guard writes the conffile through the package's link"
[ -L "/usr/lib/$MA/knot-hsm/knot-hsm-guard.conf" ] || fail "the package's link was replaced"
contains "$OUT" "through the knot-hsm guard (/usr/lib/$MA/knot-hsm/knot-hsm-guard.conf)" "and checks through the guard"
[ -s "$TMP/knotd-lib/audit.log" ] || fail "the guard wrote no audit line"
pass "the installed guard logs"
cp "$TMP/shipped.conf" /etc/knot/knot-hsm-guard.conf   # as shipped again, for remove and purge
sed -e "s|^#module = .*|module = $SOFTHSM_MODULE|" -e "s|^#audit_log = .*|audit_log = $TMP/audit.log|" \
	/etc/knot/knot-hsm-guard.conf >"$TMP/guard.conf"
run 0 env -u KHSM_GUARD_MODULE KHSM_GUARD_CONF="$TMP/guard.conf" /usr/bin/knot-hsm keystore \
	--token "SmartCard-HSM (UserPIN)" --pin-file "$PINF" --guard
contains "$OUT" " /usr/lib/$MA/knot-hsm/libknothsm-guard.so\"" "the installed knot-hsm names the installed guard"
contains "$OUT" "through the knot-hsm guard ($TMP/guard.conf)" "the example, uncommented, configures the guard"
[ -s "$TMP/audit.log" ] || fail "the guard wrote no audit line"
pass "the example's guard logs"

# --- remove, then purge ------------------------------------------------------
$APT remove -y knot-hsm >"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log" >&2; fail "apt-get remove failed"; }
equals "$(pkg_status)" "deinstall ok config-files" "apt-get remove keeps only the configuration"
left=""
while IFS= read -r f; do
	[ ! -d "$f" ] || continue   # directories (and /lib -> usr/lib) may be shared
	if [ -e "$f" ] || [ -L "$f" ]; then left="$left $f"; fi
done <"$TMP/files"
equals "$left" " /etc/knot/knot-hsm-guard.conf" "apt-get remove leaves no file but the conffile"
for d in "/usr/lib/$MA/knot-hsm" /usr/share/doc/knot-hsm; do
	[ ! -e "$d" ] || fail "apt-get remove left $d"
done
pass "apt-get remove leaves none of the package's directories"
$APT purge -y knot-hsm >"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log" >&2; fail "apt-get purge failed"; }
[ ! -e /etc/knot/knot-hsm-guard.conf ] || fail "apt-get purge left the conffile"
case $(pkg_status) in *installed*|*config-files*) fail "knot-hsm still known to dpkg: $(pkg_status)" ;; esac
INSTALLED=""
pass "apt-get purge removes the conffile"

# --- meson install of the build directory: the same set, its own prefix ------
opt() { # a meson option of the build directory
	meson introspect --buildoptions "$KHSM_BUILDDIR" |
		python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]][0])' "$1"
}
abs() { case $1 in /*) echo "$1" ;; *) echo "$PREFIX/$1" ;; esac; }
PREFIX=$(opt prefix)
BINDIR=$(abs "$(opt bindir)")
LIBDIR=$(abs "$(opt libdir)")
SYSCONFDIR=$(abs "$(opt sysconfdir)")
MANDIR=$(abs "$(opt mandir)")
DATADIR=$(abs "$(opt datadir)")
UNITDIR=$(opt systemdsystemunitdir)
[ -n "$UNITDIR" ] || UNITDIR=$PREFIX/lib/systemd/system
D=$TMP/destdir
run 0 meson install -C "$KHSM_BUILDDIR" --no-rebuild --destdir "$D"
for f in "$BINDIR/knot-hsm" "$LIBDIR/knot-hsm/libknothsm-guard.so" "$SYSCONFDIR/knot/knot-hsm-guard.conf" \
	"$MANDIR/man1/knot-hsm.1" "$DATADIR/bash-completion/completions/knot-hsm" \
	"$UNITDIR/knot-hsm-ceremony.service" "$UNITDIR/knot-hsm-ceremony.timer" \
	"$UNITDIR/knot-hsm-status.service" "$UNITDIR/knot-hsm-status.timer" \
	"$UNITDIR/knot-hsm-heal.service" "$UNITDIR/knot-hsm-heal.timer" \
	"$DATADIR/doc/knot-hsm/guide.rst" "$DATADIR/doc/knot-hsm/samples/knot-offline.conf"; do
	[ -f "$D$f" ] || { find "$D" >&2; fail "meson install did not install $f"; }
done
pass "meson install installs the package's set under prefix $PREFIX"
equals "$(readlink "$D$LIBDIR/knot-hsm/knot-hsm-guard.conf")" "$SYSCONFDIR/knot/knot-hsm-guard.conf" \
	"meson install: the guard finds the configuration of its sysconfdir"
contains "$(cat "$D$UNITDIR/knot-hsm-status.service")" "ExecStart=$BINDIR/knot-hsm " \
	"meson install: the units run knot-hsm of the prefix"
grep -aq "$LIBDIR/knot-hsm/libknothsm-guard.so" "$D$BINDIR/knot-hsm" ||
	fail "meson install: knot-hsm does not name the guard at $LIBDIR/knot-hsm"
pass "meson install: knot-hsm names the guard of its libdir"
echo "module = /edited.so" >>"$D$SYSCONFDIR/knot/knot-hsm-guard.conf"
run 0 meson install -C "$KHSM_BUILDDIR" --no-rebuild --destdir "$D"
contains "$(cat "$D$SYSCONFDIR/knot/knot-hsm-guard.conf")" "module = /edited.so" \
	"meson install keeps a guard configuration that exists"
