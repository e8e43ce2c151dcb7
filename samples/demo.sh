#!/bin/sh
# knot-hsm demo: the pinned-KSK zone on a SoftHSM token labelled like a real
# SmartCard-HSM, in the mode of the installed Knot (offline before Knot 3.5,
# online from 3.5). Installs what is missing, builds, then: find the card,
# get its URI and keystore stanza, check the setup, render the policy with
# lifetimes in seconds, put the KSK on the card (offline: knot-hsm generate
# on the KSK side and a ceremony; online: knotd itself), start knotd on
# 127.0.0.1 in a temporary directory, wait for one automatic ZSK rollover
# while BIND's delv validates the zone with the DS as trust anchor, show
# where the keys are and knot-hsm status, and print the DS for the registry.
# Runs in about a minute once built. Everything but build/ lives in a
# temporary directory that is removed at the end, knotd included.
set -eu
KHSM_TOP=$(cd "$(dirname "$0")/.." && pwd)
export KHSM_TOP
. "$KHSM_TOP/samples/deps.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
N=0
numbered() { N=$((N + 1)); step "$N. $*"; }
say() { printf '%s\n' "$*"; }
# Print a command as one would type it, then run it.
cmdline() {
	printf '$'
	for a; do
		case $a in
			*[!A-Za-z0-9_./:=@+,%-]*|'') printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")" ;;
			*) printf ' %s' "$a" ;;
		esac
	done
	printf '\n'
}
show() { cmdline "$@"; "$@"; }
# show, with the command's output (not the "$ command" line) also kept in file $1
show_to() { f=$1; shift; cmdline "$@"; "$@" | tee "$f"; }
die() { printf 'demo failed: %s\n' "$*" >&2; exit 1; }

# Knot's tools: the installed ones, or those named by the variables knot-hsm
# itself honours (KHSM_KNOTD, KHSM_KNOTC, KHSM_KEYMGR).
KNOTD=${KHSM_KNOTD:-knotd}
KNOTC=${KHSM_KNOTC:-knotc}
KEYMGR=${KHSM_KEYMGR:-keymgr}

T0=$(date +%s)
step "Installing what is missing and building"
KHSM_RUN_PKGS="$KHSM_RUN_PKGS $KHSM_DEMO_PKGS"
khsm_install_deps
mkdir -p "$KHSM_TOP/build"
khsm_build "$KHSM_TOP/build"
PATH=$KHSM_TOP/build/keymgr-ext:$PATH
export PATH
KNOT_HSM=knot-hsm
say "built $KHSM_TOP/build/keymgr-ext/knot-hsm; Knot: $("$KNOTD" --version)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/knot-hsm-demo.XXXXXX")
KNOTD_PID=""
cleanup() {
	if [ -n "$KNOTD_PID" ]; then
		kill "$KNOTD_PID" 2>/dev/null || true
		i=0
		while kill -0 "$KNOTD_PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$KNOTD_PID" 2>/dev/null || true
		wait "$KNOTD_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
# From here on the demo works in $WORK; paths inside knot.conf are absolute.
cd "$WORK"
say "working in $WORK"

step "A SoftHSM token stands in for the card"
mkdir -p "$WORK/tokens" "$WORK/kasp" "$WORK/run"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK" > "$WORK/softhsm2.conf"
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
# Demo PINs only; a real card is initialised with sc-hsm-tool (doc/guide.rst).
DEMO_PIN=648219
softhsm2-util --init-token --free --label "SmartCard-HSM (UserPIN)" \
	--pin "$DEMO_PIN" --so-pin 3537363231383830 >/dev/null
(umask 077; printf '%s' "$DEMO_PIN" > "$WORK/card.pin")
say "token 'SmartCard-HSM (UserPIN)' ready; its PIN is in card.pin (mode 0600, no newline)"

numbered "Find the card"
show "$KNOT_HSM" tokens --module "$(readlink -f /usr/lib/*/softhsm/libsofthsm2.so | head -n 1)" |
	awk '/^token: SmartCard-HSM/{p=1} /^$/{p=0} p'

numbered "Its PKCS #11 URI, percent-encoded (Knot splits the config at the first space)"
show "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)"

numbered "A keystore stanza, proven by opening it through libdnssec and logging in"
show_to "$WORK/keystore.conf" "$KNOT_HSM" keystore --token "SmartCard-HSM (UserPIN)" --pin-file card.pin --id card

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/example.com.zone" <<ZONE
\$ORIGIN example.com.
\$TTL 2
@    SOA  ns1 hostmaster 1 60 60 600 2
     NS   ns1
ns1  A    127.0.0.1
www  A    192.0.2.80
ZONE
write_conf() { # $1: lines added for the policy (include, zone settings)
	cat > "$WORK/knot.conf" <<CONF
server:
    rundir: $WORK/run
    listen: 127.0.0.1@$PORT
database:
    storage: $WORK
    kasp-db: $WORK/kasp
log:
  - target: $WORK/knotd.log
    any: info
$(cat "$WORK/keystore.conf")
$1
CONF
}
write_conf "zone:
  - domain: example.com.
    file: $WORK/example.com.zone"

numbered "Check the whole chain"
say "knot.conf: the keystore above and the zone, not signed yet; knotd on 127.0.0.1@$PORT"
show "$KNOT_HSM" doctor -c knot.conf

numbered "The policy: KSK pinned on the card, software ZSK rolled by knotd"
say "Lifetimes in seconds so that a ZSK rollover happens within the demo: the ZSK"
say "signs for 30 s, TTLs are 2 s, signatures last 60 s and are refreshed 20 s"
say "before they expire (the defaults are 30 days, 1 hour/1 day, 21 and 10 days)."
show "$KNOT_HSM" -c knot.conf example.com policy \
	zsk-lifetime=30s rrsig-lifetime=60s rrsig-refresh=20s \
	dnskey-ttl=2s zone-max-ttl=2s propagation-delay=2s \
	--write knot-hsm.conf 2>&1 | tee "$WORK/policy.out"
MODE=$(sed -n 's/^mode: \([a-z]*\) .*/\1/p' "$WORK/policy.out")
[ -n "$MODE" ] || die "knot-hsm policy did not write the policy"
say ""
say "Doing the next steps it names: include the file, sign the zone with policy knot-hsm."
write_conf "include: $WORK/knot-hsm.conf
zone:
  - domain: example.com.
    file: $WORK/example.com.zone
    dnssec-signing: on
    dnssec-policy: knot-hsm"
show "$KNOTC" -c knot.conf conf-check
show cat knot-hsm.conf

KSKC=knot-hsm-ksk.conf
if [ "$MODE" = offline ]; then
	say "The KSK side is for keymgr during the ceremony; knotd never reads it:"
	show cat "$KSKC"

	numbered "The KSK is generated on the card, on the KSK side"
	show "$KNOT_HSM" -c "$KSKC" example.com generate

	numbered "Ceremony: the card KSK signs the DNSKEY sets of the next 5 minutes"
	say "(In production: until=+90d, monthly, by samples/knot-hsm-ceremony.timer.)"
	show "$KNOT_HSM" -c knot.conf example.com ceremony until=+5m
	DSCONF=$KSKC
else
	say "Online mode: knotd generates the KSK on the card itself when it first signs"
	say "the zone (the card keystore is listed first, with ksk-only: on), and the ZSKs"
	say "in the PEM keystore. There is no KSK side and no ceremony. (The warning above"
	say "is about the demo's 20 s rrsig-refresh: online, knotd needs the card to"
	say "refresh the DNSKEY signature; with the defaults it survives 10 days without it.)"
	DSCONF=knot.conf
fi

numbered "knotd signs and serves the zone (127.0.0.1@$PORT)"
cmdline "$KNOTD" -c knot.conf
"$KNOTD" -c knot.conf > knotd.out 2>&1 &
KNOTD_PID=$!
i=0
until kdig @127.0.0.1 -p "$PORT" +dnssec +short www.example.com A 2>/dev/null | grep -q '^A '; do
	i=$((i + 1))
	[ $i -le 100 ] || { cat "$WORK/knotd.log" >&2; die "knotd did not serve example.com signed within 10 s"; }
	kill -0 "$KNOTD_PID" 2>/dev/null || { cat "$WORK/knotd.out" "$WORK/knotd.log" >&2; die "knotd exited"; }
	sleep 0.1
done
ROLL_START=$(date +%s)
show kdig @127.0.0.1 -p "$PORT" +dnssec +multiline +noall +answer example.com DNSKEY

numbered "The DS from the card KSK is the trust anchor for BIND's delv"
show_to "$WORK/ds" "$KNOT_HSM" -c "$DSCONF" example.com ds
DS=$(grep ' DS ' "$WORK/ds" | head -n 1)
[ -n "$DS" ] || die "knot-hsm ds printed no DS"
printf '%s\n' "$DS" | awk '{ printf "trust-anchors {\n  %s initial-ds %s %s %s \"%s\";\n};\n", $1, $3, $4, $5, $6 }' > "$WORK/anchor.conf"
show cat anchor.conf
show delv @127.0.0.1 -p "$PORT" -a anchor.conf +root=example.com www.example.com A

# Key tags in the DNSKEY set ("KSK 4711 ZSK 1234 …"), the tag of the ZSK that
# signs www, and delv's verdict (delv exits 0 whatever the result).
dnskey_tags() {
	kdig @127.0.0.1 -p "$PORT" +multiline +noall +answer example.com DNSKEY |
		sed -n 's/.*; \([KZ]SK\), .* id = \([0-9]*\)$/\1 \2/p' | sort | tr '\n' ' '
}
signer() { kdig @127.0.0.1 -p "$PORT" +dnssec +short www.example.com A | awk '$1 == "A" { print $7; exit }'; }
valid() {
	for q in "www.example.com A" "example.com DNSKEY"; do
		delv @127.0.0.1 -p "$PORT" -a anchor.conf +root=example.com $q 2>&1 |
			grep -q '^; fully validated' || return 1
	done
}

numbered "Waiting for knotd to roll the ZSK by itself (90 s at most)"
say "Every 3 s: the DNSKEY set, the ZSK signing www.example.com, and delv's verdict"
say "on www.example.com A and on the DNSKEY set under the DS of the card KSK."
FIRST=$(signer)
say "ZSK signing now: $FIRST"
rolled=""
phase=""
while [ $(( $(date +%s) - ROLL_START )) -lt 90 ]; do
	sleep 3
	tags=$(dnskey_tags)
	sig=$(signer)
	if valid; then v="fully validated"; else v="NOT VALIDATED"; fi
	nzsk=$(printf '%s\n' "$tags" | grep -o ZSK | wc -l)
	# What the change since the last line means, once per phase.
	note=""
	if [ "$nzsk" -ge 2 ] && [ "$sig" = "$FIRST" ] && [ "$phase" != pub ]; then
		phase=pub; note="<- new ZSK published, not signing yet"
	elif [ "$nzsk" -ge 2 ] && [ "$sig" != "$FIRST" ] && [ "$phase" != act ]; then
		phase=act; note="<- new ZSK signs; the old one stays published a while"
	elif [ "$nzsk" -eq 1 ] && [ "$sig" != "$FIRST" ]; then
		note="<- old ZSK removed"
	fi
	printf 't+%3ss  DNSKEY: %-30s www signed by ZSK %-6s delv: %s  %s\n' \
		"$(( $(date +%s) - ROLL_START ))" "$tags" "$sig" "$v" "$note"
	[ "$v" = "fully validated" ] || { tail -n 30 "$WORK/knotd.log" >&2; die "the zone does not validate"; }
	if [ -n "$sig" ] && [ "$sig" != "$FIRST" ] && [ "$nzsk" -eq 1 ]; then
		rolled=$sig
		break
	fi
done
[ -n "$rolled" ] || { tail -n 30 "$WORK/knotd.log" >&2; die "no ZSK rollover within 90 s"; }
say "One ZSK rollover by knotd alone: ZSK $FIRST -> ZSK $rolled, and the zone validated throughout."
show kdig @127.0.0.1 -p "$PORT" +dnssec +multiline +noall +answer example.com DNSKEY
show delv @127.0.0.1 -p "$PORT" -a anchor.conf +root=example.com www.example.com A

numbered "Where the keys are: the KSK only on the card, the ZSKs only in software"
if [ "$MODE" = offline ]; then
	show "$KNOT_HSM" -c "$KSKC" keys
	say "knotd's KASP (ZSK side) has ZSKs only, those of the whole pre-signed period:"
	show "$KEYMGR" -c knot.conf example.com. list
else
	show "$KNOT_HSM" -c knot.conf keys
	show "$KEYMGR" -c knot.conf example.com. list
fi
say "the PEM keystore (kasp-db/keys) holds one file per ZSK, named by key id:"
show ls kasp/keys

numbered "Monitoring"
set +e
show "$KNOT_HSM" -c knot.conf status
st=$?
set -e
say "exit $st (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN): the demo's signatures last"
say "minutes, not weeks, so this is below --crit (7 days). With the default"
if [ "$MODE" = offline ]; then
	say "lifetimes and the monthly ceremony (until=+90d) it says OK."
else
	say "lifetimes (rrsig-lifetime 21d, rrsig-refresh 10d) it says OK."
fi

numbered "The DS for the registry (also format=epp, format=json)"
show "$KNOT_HSM" -c "$DSCONF" example.com ds
say ""
say "demo done in $(( $(date +%s) - T0 )) s ($MODE mode); knotd stopped, $WORK removed."
