#!/bin/sh
# The offline ceremony on the real card stack meets a dead pcscd: it waits
# (bounded by pcscd-wait=, with a progress line) and finishes once pcscd is
# back; with pcscd still dead at the end of the wait it fails cleanly (nothing
# imported, the remedy named) and the rerun with pcscd back finishes the zone.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
run 0 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$PINF" --id card
stanza=$OUT
D=$TMP/z
mkdir -p "$D/zones" "$D/keys"
CONF=$D/knot.conf
KSKC=$D/knot-hsm-ksk.conf
zone_files "$D/zones" 60 example.com example.net
write() { # zone lines, include line
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" include="${2#include: }" \
		template="    storage: $D/zones
    file: %s.zone
$1" example.com. example.net.
}
write "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy mode=offline --write "$D/knot-hsm.conf"
write "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $D/knot-hsm.conf"
for z in example.com example.net; do
	run 0 "$KNOT_HSM" -c "$KSKC" $z generate
	contains "$OUT" "$z. DNSKEY 257 3 13 " "KSK of $z on the emulated card"
done
presigned() { keymgr -c "$CONF" "$1" show-offline 2>/dev/null | grep -c 'DNSKEY' || true; }

# -- pcscd dead when the ceremony starts, back while it waits ------------------------------
pcscd_kill9
"$KNOT_HSM" -c "$CONF" example.com ceremony until=+14d pcscd-wait=60 > "$TMP/c1.out" 2> "$TMP/c1.err" &
cer=$!
waiting() { grep -q "note: waiting for pcscd (nothing answers on /run/pcscd/pcscd.comm), up to 60 s" "$TMP/c1.err"; }
wait_until "the ceremony printed no waiting line" waiting
kill -0 "$cer" 2>/dev/null || fail "the ceremony did not wait: $(cat "$TMP/c1.err")"
pass "the ceremony waits for pcscd and says so"
pcscd_restart
set +e; wait $cer; rc=$?; set -e
[ "$rc" -eq 0 ] || { cat "$TMP/c1.out" "$TMP/c1.err" >&2; fail "the ceremony failed after pcscd came back (exit $rc)"; }
pass "the ceremony finishes once pcscd is back"
contains "$(cat "$TMP/c1.out")" "example.com.: pre-signed " "example.com. is pre-signed"

# -- pcscd still dead at the end of the wait: a clean failure, then the rerun ----------------
pcscd_kill9
run 1 "$KNOT_HSM" -c "$CONF" example.net ceremony until=+14d pcscd-wait=1
contains "$ERR" "pcscd is not running (nothing answered on /run/pcscd/pcscd.comm, waited 1 s)" \
	"without pcscd the ceremony fails and says why"
contains "$ERR" "start it (systemctl start pcscd.socket), then rerun" "with the remedy"
lacks "$OUT" "example.net.: pre-signed" "nothing pre-signed"
run 0 keymgr -c "$CONF" example.net. show-offline
lacks "$OUT$ERR" "DNSKEY" "nothing imported for example.net."
pcscd_restart
run 0 "$KNOT_HSM" -c "$CONF" example.net ceremony until=+14d
contains "$OUT" "example.net.: pre-signed " "the rerun with pcscd back finishes example.net."
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+14d
contains "$OUT" "example.com.: skipped: pre-signed" "example.com. stays done"
contains "$OUT" "example.net.: skipped: pre-signed" "example.net. is done"
