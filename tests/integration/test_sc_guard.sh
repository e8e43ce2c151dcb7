#!/bin/sh
# The guard (lib/guard) in front of OpenSC on the real card stack: `knot-hsm
# keystore --guard` names the guard with opensc-pkcs11.so behind it, doctor
# logs in through it, `knot-hsm generate` makes the KSK on the emulated card
# through it, and the audit log holds the login and exactly the signatures
# the card made (the card's own log), in a chain `audit verify` accepts.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"

sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
mkdir -p "$TMP/audit"
LOG=$TMP/audit/audit.log
export KHSM_GUARD_CONF="$TMP/guard.conf"
printf 'module = %s\naudit_log = %s\n' "$OPENSC_MODULE" "$LOG" > "$KHSM_GUARD_CONF"
log_sigs() {
	"$KNOT_HSM" audit verify "$LOG" --json > "$TMP/sum.json" || fail "audit verify: $(cat "$TMP/sum.json")"
	python3 -c 'import json, sys; print(sum(s["count"] for s in json.load(open(sys.argv[1]))["signatures"]))' "$TMP/sum.json"
}

run 0 "$KNOT_HSM" keystore --module "$OPENSC_MODULE" --token "$SC_LABEL" --pin-file "$PINF" --id card --guard
contains "$OUT" "config: \"$SC_URI;pin-source=" "keystore --guard: the card's URI"
contains "$OUT" " $KHSM_GUARD_MODULE\"" "with the guard module as the module"
contains "$OUT" "# through the knot-hsm guard ($KHSM_GUARD_CONF): audit log $LOG" "names the guard configuration"
stanza=$(printf '%s\n' "$OUT" | grep -v '^#')
C=$TMP/knot.conf
knot_conf "$C" policy=card example.com.
run 0 "$KNOT_HSM" -c "$C" doctor
contains "$OUT" "guard card module: $OPENSC_MODULE loads" "doctor: OpenSC loads behind the guard"
contains "$OUT" "login: one login through GnuTLS succeeded" "doctor: login through the guard"
grep -q '"fn":"C_Login".*"user":"CKU_USER".*"rv":"CKR_OK"' "$LOG" || fail "no C_Login line in $LOG"
pass "the login on the card is in the audit log"
[ "$(sc_log_count "verify ok")" -ge 1 ] || fail "the card saw no login"
pass "the login reached the card"

g0=$(sc_log_count "generate 00 P-256")
s0=$(grep -c '^sign ' "$SC_LOG" || true)
l0=$(log_sigs)
run 0 "$KNOT_HSM" -c "$C" example.com generate
contains "$OUT" "example.com. DNSKEY 257 3 13 " "generate through the guard"
equals "$(sc_log_count "generate 00 P-256")" $((g0 + 1)) "the KSK was made by the emulated card"
made=$(( $(grep -c '^sign ' "$SC_LOG" || true) - s0 ))
[ "$made" -ge 1 ] || fail "generate made no card signature (its self-test)"
equals "$(( $(log_sigs) - l0 ))" "$made" "every card signature of generate ($made) is in the audit log"
grep -q '"fn":"C_GenerateKeyPair".*"rv":"CKR_OK"' "$LOG" || fail "no C_GenerateKeyPair line in $LOG"
pass "the key generation is in the audit log"
lacks "$(cat "$LOG")" "$PIN" "no PIN in the audit log"
run 0 "$KNOT_HSM" audit verify "$LOG"
pass "the audit chain verifies"
