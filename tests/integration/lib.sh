# Shared fixture for integration tests: a temporary directory with its own
# SoftHSM token store, assertions, and cleanup that runs on every exit.
# Each test sources this file, then calls the helpers. Nothing here is skipped:
# a missing tool is a failure.
set -eu

: "${KNOT_HSM:?KNOT_HSM must name the built knot-hsm}"

# Only the PKCS #11 modules the test registers itself (p11_register): the test
# re-runs itself, whole, in a private mount namespace where empty tmpfs hide
# the host's p11-kit registries, so a token of the same label elsewhere (a
# real SmartCard-HSM plugged in, any OpenSC token) changes nothing. Needs root.
# KHSM_HOST_P11KIT=1 (set by the test before sourcing) keeps the host's
# registries: for test_package.sh, which installs into the real system.
P11_REGISTRIES="/usr/share/p11-kit/modules /etc/pkcs11/modules ${HOME:-/root}/.config/pkcs11/modules"
P11_REGISTRY=/usr/share/p11-kit/modules
if [ "${KHSM_HOST_P11KIT:-0}" != 1 ] && [ -z "${KHSM_P11_PRIVATE:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "FAIL: the integration tests need root: each runs in a private mount namespace that hides the host's PKCS #11 modules (run them as root)" >&2; exit 1; }
	command -v unshare >/dev/null 2>&1 || { echo "FAIL: unshare missing (install util-linux)" >&2; exit 1; }
	KHSM_P11_PRIVATE=1 exec unshare --mount --propagation private sh "$0" "$@"
fi
# p11_hide: every p11-kit registry of the host an empty tmpfs (in this test's
# mount namespace only); p11_register NAME MODULE: MODULE registered as NAME.
p11_hide() {
	for reg in $P11_REGISTRIES; do
		[ -d "$reg" ] || continue
		mount -t tmpfs -o mode=0755 tmpfs "$reg" || { echo "FAIL: cannot hide $reg" >&2; exit 1; }
	done
	mkdir -p "$P11_REGISTRY"
}
p11_register() {
	printf 'module: %s\n' "$2" > "$P11_REGISTRY/$1.module"
}
PIN=648219
SO_PIN=3537363231383830

TESTS_RUN=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/knot-hsm-test.XXXXXX")
CLEANUP_HOOKS=""
# The card lock of this test alone: parallel runs on one machine never share
# it, and no test touches /run/knot-hsm.
export KHSM_LOCK_FILE="$TMP/knot-hsm.lock"
# The audit log keystore --guard would create for a new guard configuration:
# in this test's directory, never /var/lib/knot.
export KHSM_GUARD_AUDIT_LOG="$TMP/knot-hsm-audit.log"

khsm_cleanup() {
	status=$?
	for hook in $CLEANUP_HOOKS; do
		$hook || true
	done
	if [ "$status" -eq 0 ] && [ "$TESTS_RUN" -eq 0 ]; then
		echo "FAIL: the test ran no assertion" >&2
		status=1
	fi
	rm -rf "$TMP"
	exit "$status"
}
trap khsm_cleanup EXIT
trap 'exit 1' INT TERM

on_cleanup() { CLEANUP_HOOKS="$1 $CLEANUP_HOOKS"; }

SOFTHSM_MODULE=""
for m in /usr/lib/*/softhsm/libsofthsm2.so /usr/lib/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && SOFTHSM_MODULE=$m && break
done
[ -n "$SOFTHSM_MODULE" ] || { echo "FAIL: libsofthsm2.so not found (install softhsm2)" >&2; exit 1; }
SOFTHSM_MODULE=$(readlink -f "$SOFTHSM_MODULE")
# The tests' own registry: SoftHSM alone, under its Debian name.
if [ "${KHSM_HOST_P11KIT:-0}" != 1 ]; then
	p11_hide
	p11_register softhsm2 "$SOFTHSM_MODULE"
fi

mkdir -p "$TMP/tokens"
cat > "$TMP/softhsm2.conf" <<CONF
directories.tokendir = $TMP/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF="$TMP/softhsm2.conf"

# Initialise a SoftHSM token with a label; prints nothing.
token_init() {
	softhsm2-util --init-token --free --label "$1" --pin "$PIN" --so-pin "$SO_PIN" >/dev/null
}

# Serial number of the (first) token with that label.
token_serial() {
	softhsm2-util --show-slots | awk -v want="$1" '
		/^[[:space:]]*Serial number:/ { serial = $3 }
		/^[[:space:]]*Label:/ { sub(/^[[:space:]]*Label:[[:space:]]*/, ""); sub(/[[:space:]]+$/, "");
		                         if ($0 == want && !done) { print serial; done = 1 } }'
}

# Write the user PIN to a file the way knotd needs it: no newline, mode 0600.
pin_file() {
	(umask 077; printf '%s' "$PIN" > "$1")
}

# card_keystore: the SoftHSM token the tests call the card, its PIN file and
# the knot.conf keystore stanza (id card) knot-hsm prints for them; sets
# LABEL, PINF and stanza.
card_keystore() {
	LABEL="SmartCard-HSM (UserPIN)"
	token_init "$LABEL"
	PINF="$TMP/card.pin"
	pin_file "$PINF"
	run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF" --id card
	stanza=$OUT
}

# card_keystore_also TOKEN ID [PINFILE]: another card's keystore ID appended
# to $stanza (one "keystore:" section): TOKEN is made, with its PIN in
# $TMP/ID.pin, unless PINFILE names the PIN of a TOKEN that exists already.
card_keystore_also() {
	cka_pin=${3:-$TMP/$2.pin}
	if [ $# -lt 3 ]; then
		token_init "$1"
		pin_file "$cka_pin"
	fi
	run 0 "$KNOT_HSM" keystore --token "$1" --pin-file "$cka_pin" --id "$2"
	stanza="$stanza
$(printf '%s\n' "$OUT" | sed '1{/^keystore:$/d}')"
}

# two_cards_conf ZONE...: the card and "Card Two" (keystore card2) in
# $stanza, and knot.conf $CONF in $D=$TMP/knot listing the zones, not yet
# signing; $KSKC is where policy --write puts the KSK side.
two_cards_conf() {
	card_keystore
	card_keystore_also "Card Two" card2
	D=$TMP/knot
	mkdir -p "$D/keys"
	CONF=$D/knot.conf
	KSKC=$D/knot-hsm-ksk.conf
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" stanza="$stanza" template="    storage: $D" "$@"
}

# A key pair made outside knot-hsm, with pkcs11-tool as operators do.
keygen_p11tool() { # token label, object label, hex id
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$1" --login --pin "$PIN" \
		--keypairgen --key-type EC:prime256v1 --label "$2" ${3:+--id "$3"} >/dev/null 2>&1
}

pass() { TESTS_RUN=$((TESTS_RUN + 1)); echo "ok $TESTS_RUN - $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# run EXPECTED_STATUS CMD... : runs, keeps stdout in $OUT and stderr in $ERR.
run() {
	want=$1; shift
	set +e
	"$@" >"$TMP/out" 2>"$TMP/err"
	got=$?
	set -e
	OUT=$(cat "$TMP/out"); ERR=$(cat "$TMP/err")
	if [ "$got" -ne "$want" ]; then
		echo "--- stdout:" >&2; cat "$TMP/out" >&2
		echo "--- stderr:" >&2; cat "$TMP/err" >&2
		fail "exit $got, expected $want: $*"
	fi
}

contains() { # haystack needle description
	case "$1" in
		*"$2"*) pass "$3" ;;
		*) echo "--- text:" >&2; printf '%s\n' "$1" >&2; fail "$3: missing '$2'" ;;
	esac
}

lacks() { # haystack needle description
	case "$1" in
		*"$2"*) echo "--- text:" >&2; printf '%s\n' "$1" >&2; fail "$3: unexpected '$2'" ;;
		*) pass "$3" ;;
	esac
}

equals() { # got want description
	[ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"
	pass "$3"
}

# A free TCP/UDP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# delv_ask PORT ANCHOR-FILE ZONE QUERY...: BIND's delv against the test's own
# server on 127.0.0.1@PORT, with ZONE as the root of trust. delv 9.18 has been
# seen to hang for good in a futex wait (once in many runs; CI timed out on
# it): a run still going after 30 s is killed and asked once more, and a second
# hang is printed as such, so it is never taken for a verdict or a pass.
delv_ask() {
	da_port=$1 da_anchor=$2 da_zone=$3
	shift 3
	# (|| keeps set -e from ending the test on delv's or timeout's status)
	da_rc=0
	da_out=$(timeout -k 5 30 delv @127.0.0.1 -p "$da_port" -a "$da_anchor" +root="$da_zone" "$@" 2>&1) ||
		da_rc=$?
	if [ "$da_rc" -ge 124 ]; then
		echo "note: delv hung (killed after 30 s), asked once more: $*" >&2
		da_rc=0
		da_out=$(timeout -k 5 30 delv @127.0.0.1 -p "$da_port" -a "$da_anchor" +root="$da_zone" "$@" 2>&1) ||
			da_rc=$?
		if [ "$da_rc" -ge 124 ]; then da_out="delv hung twice: $da_out"; fi
	fi
	printf '%s\n' "$da_out"
}

# keymgr_wrapper PATH LINES: a keymgr at PATH that sets conf (the -c file),
# zone and sub (its command) from its arguments, runs the shell LINES (a test
# records what it wants to count), then execs keymgr.
keymgr_wrapper() {
	cat > "$1" <<'SH'
#!/bin/sh
conf= zone= sub= prev=
for a; do
	if [ "$prev" = -c ]; then conf=$a
	elif [ "$a" = -c ] || [ "${a#-}" != "$a" ]; then :
	elif [ -n "$conf" ] && [ -z "$zone" ]; then zone=$a
	elif [ -n "$zone" ] && [ -z "$sub" ]; then sub=$a; fi
	prev=$a
done
SH
	printf '%s\nexec keymgr "$@"\n' "$2" >> "$1"
	chmod +x "$1"
}

# onboard_conf SHARED PREFIX N: N fresh zones PREFIX1.example ... ($ZONES)
# in $D=$TMP/knot-SHARED: knot.conf with $stanza's keystore, the knot-hsm
# policy (shared-ksk=SHARED) written and included, no KSK made yet.
onboard_conf() {
	ZONES=$(seq -f "$2%g.example" 1 "$3")
	oc_fqdn=$(for z in $ZONES; do printf '%s. ' "$z"; done)
	D=$TMP/knot-$1
	mkdir -p "$D/run" "$D/zones" "$D/keys"
	# shellcheck disable=SC2086
	zone_files "$D/zones" 60 $ZONES
	oc_conf() {
		# shellcheck disable=SC2086
		knot_conf "$D/knot.conf" rundir="$D/run" storage="$D" kasp="$D/keys" include="$2" \
			template="    storage: $D/zones
    file: %s.zone
$1" $oc_fqdn
	}
	oc_conf "" ""
	# shellcheck disable=SC2086
	run 0 "$KNOT_HSM" -c "$D/knot.conf" $ZONES policy shared-ksk="$1" --write "$D/knot-hsm.conf"
	oc_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf"
}

# zone_files DIR TTL ZONE...: DIR/ZONE.zone for each ZONE, the small zone the
# signing tests serve: SOA (minimum TTL), NS ns1, ns1 A, www A, all with TTL.
zone_files() {
	zf_dir=$1; zf_ttl=$2; shift 2
	for zf_zone; do
		cat > "$zf_dir/$zf_zone.zone" <<ZONE
\$ORIGIN $zf_zone.
\$TTL $zf_ttl
@    SOA  ns1 hostmaster 1 60 60 600 $zf_ttl
@    NS   ns1
ns1  A    127.0.0.1
www  A    192.0.2.1
ZONE
	done
}

# knot_conf FILE [OPTION=VALUE...] [--] ZONE...: the knot.conf of the tests,
# written once here. Sections in this order: server (rundir, listen on
# 127.0.0.1), database (storage, kasp-db, created), log, the keystore stanza,
# an include, a manual policy on the card keystore, the default template and
# the zones. Options:
#   rundir=DIR      default $TMP
#   listen=PORT     knotd listens on 127.0.0.1@PORT (default: no listen)
#   server=LINE     one more line of the server section (e.g. background-workers: 1)
#   storage=DIR     database storage (default: none)
#   kasp=DIR        kasp-db, default $TMP/kasp (created)
#   log=FILE        log target, any: info
#   stanza=TEXT     keystore stanza(s), default $stanza
#   include=FILE    an include: line (e.g. what policy --write wrote)
#   policy=ID       a policy ID on keystore card with manual: on, given to
#                   each zone (a zone written nopolicy:NAME gets none)
#   sections=TEXT   more sections, written before the template (e.g. an acl)
#   template=LINES  a default template with these lines
knot_conf() {
	kc_file=$1; shift
	kc_rundir=$TMP; kc_listen=; kc_server=; kc_sections=; kc_storage=; kc_kasp=$TMP/kasp; kc_log=
	kc_stanza=${stanza:-}; kc_include=; kc_policy=; kc_template=
	while [ $# -gt 0 ]; do
		case $1 in
			--) shift; break ;;
			rundir=*) kc_rundir=${1#rundir=} ;;
			listen=*) kc_listen=${1#listen=} ;;
			server=*) kc_server=${1#server=} ;;
			sections=*) kc_sections=${1#sections=} ;;
			storage=*) kc_storage=${1#storage=} ;;
			kasp=*) kc_kasp=${1#kasp=} ;;
			log=*) kc_log=${1#log=} ;;
			stanza=*) kc_stanza=${1#stanza=} ;;
			include=*) kc_include=${1#include=} ;;
			policy=*) kc_policy=${1#policy=} ;;
			template=*) kc_template=${1#template=} ;;
			*=*) fail "knot_conf: unknown option '${1%%=*}'" ;;
			*) break ;;
		esac
		shift
	done
	mkdir -p "$kc_kasp"
	{
		printf 'server:\n    rundir: %s\n' "$kc_rundir"
		[ -z "$kc_listen" ] || printf '    listen: 127.0.0.1@%s\n' "$kc_listen"
		[ -z "$kc_server" ] || printf '    %s\n' "$kc_server"
		printf 'database:\n'
		[ -z "$kc_storage" ] || printf '    storage: %s\n' "$kc_storage"
		printf '    kasp-db: %s\n' "$kc_kasp"
		[ -z "$kc_log" ] || printf 'log:\n  - target: %s\n    any: info\n' "$kc_log"
		printf '%s\n' "$kc_stanza"
		[ -z "$kc_include" ] || printf 'include: %s\n' "$kc_include"
		[ -z "$kc_policy" ] || printf 'policy:\n  - id: %s\n    keystore: card\n    manual: on\n' "$kc_policy"
		[ -z "$kc_sections" ] || printf '%s\n' "$kc_sections"
		[ -z "$kc_template" ] || printf 'template:\n  - id: default\n%s\n' "$kc_template"
		[ $# -eq 0 ] || printf 'zone:\n'
		for kc_zone; do
			case $kc_zone in
				nopolicy:*) printf '  - domain: %s\n' "${kc_zone#nopolicy:}" ;;
				*) printf '  - domain: %s\n' "$kc_zone"
				   [ -z "$kc_policy" ] || printf '    dnssec-policy: %s\n' "$kc_policy" ;;
			esac
		done
	} > "$kc_file"
}

# KNOT_HSM_TEMPLATE: the template lines of a zone signed by the policy that
# `knot-hsm policy --write` renders (include it with include=).
KNOT_HSM_TEMPLATE="    dnssec-signing: on
    dnssec-policy: knot-hsm"
