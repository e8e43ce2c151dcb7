#!/bin/sh
# pcscd and the reader on the real card stack: pcscd killed (kill -9) and
# restarted between two commands (the second works, nothing lost); doctor and
# keystore with pcscd not running and with the reader empty say so.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
C=$TMP/knot.conf
sc_card_conf "$C" example.com. example.net.

run 0 "$KNOT_HSM" -c "$C" example.com generate
id=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
[ ${#id} -eq 40 ] || fail "no key id in: $OUT"
pass "first command: generate on the card"

# -- pcscd dies (kill -9) and is restarted ---------------------------------------
old_pcscd=$PCSCD_PID
pcscd_kill9
kill -0 "$old_pcscd" 2>/dev/null && fail "pcscd survived kill -9"
pass "pcscd killed with SIGKILL"

# While it is down: doctor and keystore fail and name pcscd.
run 1 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "FAIL  keystore card: token present: not found" "doctor: no token without pcscd"
contains "$OUT" "pcscd running" "doctor: says to check pcscd"
run 1 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$PINF"
contains "$ERR" "no token labelled 'SmartCard-HSM (UserPIN)'; tokens present: none" "keystore: no token without pcscd"
contains "$ERR" "pcscd running" "keystore: says to check pcscd"

pcscd_restart
[ "$PCSCD_PID" != "$old_pcscd" ] || fail "no new pcscd"
pass "a new pcscd runs and sees the card"
run 0 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
contains "$OUT" "$id  tag " "second command after the restart: keys lists the card key"
contains "$OUT" "zones: example.com. (KSK)" "with its zone"
run 0 "$KNOT_HSM" -c "$C" example.net generate
equals "$(sc_log_count "generate 01 P-256")" 1 "generate works on the card after the restart"
run 0 keymgr -c "$C" example.com. list
equals "$(printf '%s\n' "$OUT" | grep -c ' KSK ')" 1 "example.com. still has one KSK: nothing lost, no duplicate"
run 0 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "0 failed" "doctor passes after the restart"

# -- the reader is there but the card is not ------------------------------------
card_remove
opensc-tool -l > "$TMP/readers" 2>&1 || true
contains "$(cat "$TMP/readers")" "Virtual PCD 00 00" "the reader stays"
run 1 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "FAIL  keystore card: token present: not found" "doctor: no token in the empty reader"
contains "$OUT" "is the card inserted" "doctor: asks whether the card is inserted"
run 1 "$KNOT_HSM" -c "$C" example.net generate label=absent zsk=yes
contains "$ERR" "is the card inserted" "generate: asks whether the card is inserted"
equals "$(sc_log_count "generate 02 P-256")" 0 "no key made while the card was out"
card_insert
run 0 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "0 failed" "doctor passes once the card is back"
run 0 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
contains "$OUT" "$id  tag " "the key is still on the card after the reinsertion"
