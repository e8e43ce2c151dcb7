#!/bin/sh
# Faults on the real card stack: the card pulled from the reader while it
# generates (the answer never comes), and a card that fails to sign (status
# word 6F00). knot-hsm fails, leaves nothing in KASP and no key it can see on
# the card, and a rerun with a working card finishes with one key.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

# Slow key generation, so that the card can be pulled in the middle; pulled,
# the card ends the command at once without an answer.
sc_conf keygen_latency_ms=60000
sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
C=$TMP/knot.conf
sc_card_conf "$C" example.com. example.net.
card_keys() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["keys"]))' "$SC_STATE"; }
kasp_ksks() { # ZONE: its KSKs in KASP (keymgr opens the keystore: the card must be in)
	keymgr -c "$C" "$1" list > "$TMP/kasp.list" 2>&1 || { cat "$TMP/kasp.list" >&2; fail "keymgr list $1"; }
	grep -c ' KSK ' "$TMP/kasp.list" || true
}

# -- pulled during GENERATE ----------------------------------------------------
KHSM_RETRY_MS=500 "$KNOT_HSM" -c "$C" example.com generate > "$TMP/gen.out" 2> "$TMP/gen.err" &
gen=$!
gen_logged() { [ "$(sc_log_count "generate 00 P-256")" -eq 1 ]; }
wait_until "the card never started generating" gen_logged
card_remove
set +e; wait $gen; rc=$?; set -e
equals "$rc" 1 "generate fails when the card is pulled while it generates"
contains "$(cat "$TMP/gen.err")" "error: generate:" "the failure is reported as an error"
lacks "$(cat "$TMP/gen.out")" "key id:" "no key reported as made"
# The card made the key pair, but OpenSC never wrote its description (C4xx)
# nor its public key (CExx): the slot is used and no PKCS #11 object shows it.
equals "$(card_keys)" 1 "the card holds the half-made key pair"

sc_conf
sc_restart_emulator
equals "$(kasp_ksks example.com.)" 0 "nothing in KASP"
p11 --login --pin "$PIN" --list-objects --type privkey > "$TMP/objs" 2>&1 || true
lacks "$(cat "$TMP/objs")" "Private Key Object" "no PKCS #11 object for the half-made key"
run 0 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
lacks "$OUT" "used by no zone" "keys sees no orphan"
run 0 "$KNOT_HSM" -c "$C" example.com generate
equals "$(sc_log_count "generate 01 P-256")" 1 "the rerun makes the key pair in the next slot"
equals "$(kasp_ksks example.com.)" 1 "the rerun finishes with one KSK"
run 0 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
contains "$OUT" "zones: example.com. (KSK)" "keys lists the KSK"

# -- a card that answers 6F00 to SIGN ---------------------------------------------
sc_conf 'sw={"sign": "6F00"}'
sc_restart_emulator
before=$(card_keys)
export KHSM_RETRY_MS=500   # a short retry budget: the card keeps failing
run 1 "$KNOT_HSM" -c "$C" example.net generate
unset KHSM_RETRY_MS
contains "$ERR" "error: generate:" "generate fails when the card cannot sign"
contains "$ERR" "gave up after" "after its bounded retries"
contains "$ERR" "was removed, nothing is left half-done" "and says the new key was removed"
equals "$(kasp_ksks example.net.)" 0 "nothing in KASP"
equals "$(card_keys)" "$before" "the key the card could not sign with was removed again"
sc_conf
sc_restart_emulator
run 0 "$KNOT_HSM" -c "$C" example.net generate
equals "$(kasp_ksks example.net.)" 1 "with a working card the rerun finishes"
run 0 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
lacks "$OUT" "used by no zone" "no orphan left"
