#!/bin/sh
# Messages on the real card stack (issue 11): doctor's pcscd check (running,
# not running, a reader without a card), the card pulled while it generates
# (the module loaded fine: the card stopped answering, a half-made key may be
# on it), and a card that answers every signature with 6F00 (the card kept
# failing, a device error, not only "busy").
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
C=$TMP/knot.conf
sc_card_conf "$C" example.com. example.net.

# -- doctor: pcscd ------------------------------------------------------------------
run 0 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "ok    keystore card: pcscd: answers on /run/pcscd/pcscd.comm" "doctor: pcscd answers"
pcscd_kill9
run 1 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "FAIL  keystore card: pcscd: pcscd is not running" "doctor: pcscd not running is a failed check"
contains "$OUT" "start it (systemctl start pcscd.socket)" "with the remedy"
lacks "$OUT" "card in reader" "no reader is blamed while pcscd is down"
pcscd_restart
card_remove
run 1 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "ok    keystore card: pcscd: answers" "doctor: pcscd runs, the card is out"
contains "$OUT" "FAIL  keystore card: card in reader: the module sees a reader" \
	"doctor: a reader without a card is a failed check"
contains "$OUT" "but no card in it: insert the card" \
	"doctor: a reader without a card says so"
card_insert
run 0 "$KNOT_HSM" doctor -c "$C"
lacks "$OUT" "card in reader" "the card back: no reader complaint"

# -- the card pulled while it generates ---------------------------------------------
sc_conf keygen_latency_ms=60000
sc_restart_emulator
KHSM_RETRY_MS=500 "$KNOT_HSM" -c "$C" example.com generate > "$TMP/gen.out" 2> "$TMP/gen.err" &
gen=$!
gen_logged() { [ "$(sc_log_count "generate 00 P-256")" -eq 1 ]; }
wait_until "the card never started generating" gen_logged
card_remove
set +e; wait $gen; rc=$?; set -e
gen_err=$(cat "$TMP/gen.err")
equals "$rc" 1 "generate fails when the card is pulled while it generates"
contains "$gen_err" "the card stopped answering during key generation (removed?)" "the card, not the module, is named"
lacks "$gen_err" "failed to load PKCS #11 module" "no module-loading failure is claimed"
contains "$gen_err" "may hold a half-made key pair that no PKCS #11 object shows" "the half-made key is explained"
contains "$gen_err" "Put the card back (if it was removed) and rerun the command" "with the remedy"

# -- a card that answers 6F00 to every signature ----------------------------------------
sc_conf 'sw={"sign": "6F00"}'
sc_restart_emulator
export KHSM_RETRY_MS=500   # a short retry budget: the card keeps failing
run 1 "$KNOT_HSM" -c "$C" example.net generate
unset KHSM_RETRY_MS
contains "$ERR" "the card kept failing while signing the self-test message: gave up after" \
	"a card failing every signature: it kept failing"
contains "$ERR" "device error, CKR_DEVICE_ERROR" "the device error is named"
lacks "$ERR" "stayed busy or absent" "not only busy or absent"
