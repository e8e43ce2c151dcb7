#!/bin/sh
# knot-hsm demo: the main job on a SoftHSM token labelled like a real
# SmartCard-HSM. Installs what is missing, builds, then: find the card, get its
# URI and keystore stanza, check the setup, generate the KSK on the card, let
# knotd (on 127.0.0.1, in a temporary directory) sign the zone, and print the
# DS for the registry.
set -eu
KHSM_TOP=$(cd "$(dirname "$0")/.." && pwd)
export KHSM_TOP
. "$KHSM_TOP/samples/deps.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Installing what is missing and building"
khsm_install_deps
mkdir -p "$KHSM_TOP/build"
khsm_build "$KHSM_TOP/build"
KNOT_HSM="$KHSM_TOP/build/keymgr-ext/knot-hsm"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/knot-hsm-demo.XXXXXX")
KNOTD_PID=""
cleanup() {
	if [ -n "$KNOTD_PID" ]; then
		knotc -c "$WORK/knot.conf" stop >/dev/null 2>&1 || kill "$KNOTD_PID" 2>/dev/null || true
		wait "$KNOTD_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

step "A SoftHSM token stands in for the card"
mkdir -p "$WORK/tokens" "$WORK/kasp" "$WORK/storage"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK" > "$WORK/softhsm2.conf"
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
# Demo PINs only; a real card is initialised with sc-hsm-tool (doc/guide.rst).
DEMO_PIN=648219
softhsm2-util --init-token --free --label "SmartCard-HSM (UserPIN)" \
	--pin "$DEMO_PIN" --so-pin 3537363231383830 >/dev/null
(umask 077; printf '%s' "$DEMO_PIN" > "$WORK/card.pin")
echo "token 'SmartCard-HSM (UserPIN)' ready; its PIN is in $WORK/card.pin (mode 0600, no newline)"

step "1. Find the card"
show "$KNOT_HSM" tokens --module "$(readlink -f /usr/lib/*/softhsm/libsofthsm2.so | head -1)" |
	awk '/^token: SmartCard-HSM/{p=1} /^$/{p=0} p'

step "2. Its PKCS #11 URI, percent-encoded (Knot splits the config at the first space)"
show "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)"

step "3. A keystore stanza, proven by opening it through libdnssec and logging in"
"$KNOT_HSM" keystore --token "SmartCard-HSM (UserPIN)" --pin-file "$WORK/card.pin" --id card | tee "$WORK/keystore.conf"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/example.com.zone" <<ZONE
\$ORIGIN example.com.
\$TTL 3600
@    SOA  ns1 hostmaster 1 7200 3600 1209600 3600
     NS   ns1
ns1  A    192.0.2.1
www  A    192.0.2.80
ZONE
cat > "$WORK/knot.conf" <<CONF
server:
    rundir: $WORK
    listen: 127.0.0.1@$PORT
database:
    storage: $WORK/storage
    kasp-db: $WORK/kasp
log:
  - target: $WORK/knotd.log
    any: info
$(cat "$WORK/keystore.conf")
policy:
  - id: card
    keystore: card
    manual: on
zone:
  - domain: example.com.
    file: $WORK/example.com.zone
    dnssec-signing: on
    dnssec-policy: card
CONF

step "4. Check the whole chain"
show "$KNOT_HSM" doctor -c "$WORK/knot.conf"

step "5. The KSK is generated on the card and registered in Knot's KASP"
show "$KNOT_HSM" -c "$WORK/knot.conf" example.com generate
# Knot 3.2 has one keystore per policy: here the ZSK is made by keymgr in the
# same keystore. The pinned-card-KSK + software-ZSK split is knot-hsm policy.
keymgr -c "$WORK/knot.conf" example.com. generate algorithm=ecdsap256sha256 zsk=yes ksk=no >/dev/null
show "$KNOT_HSM" -c "$WORK/knot.conf" keys

step "6. knotd serves the zone signed with the card KSK (127.0.0.1:$PORT)"
knotd -c "$WORK/knot.conf" >/dev/null 2>&1 &
KNOTD_PID=$!
i=0
until knotc -c "$WORK/knot.conf" zone-status example.com 2>/dev/null | grep -q "serial"; do
	i=$((i + 1)); [ $i -gt 100 ] && { echo "knotd did not start; see $WORK/knotd.log" >&2; exit 1; }
	sleep 0.1
done
i=0
until kdig @127.0.0.1 -p "$PORT" +dnssec +short example.com DNSKEY | grep -q '^DNSKEY '; do
	i=$((i + 1)); [ $i -gt 100 ] && { echo "zone not signed; see $WORK/knotd.log" >&2; exit 1; }
	sleep 0.1
done
show kdig @127.0.0.1 -p "$PORT" +dnssec +multiline +noall +answer example.com DNSKEY

step "7. The DS for the registry (also format=epp, format=json)"
show "$KNOT_HSM" -c "$WORK/knot.conf" example.com ds
