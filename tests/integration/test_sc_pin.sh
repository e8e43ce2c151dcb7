#!/bin/sh
# The PIN blocked by the card itself: three wrong tries from another program
# (pkcs11-tool) make the emulated SmartCard-HSM answer 6983; every knot-hsm
# command then refuses to log in, sends no PIN to the card, and says how to
# unblock (doctor, keystore, generate, keys, ceremony, import); the SO-PIN
# unblocks it (RESET RETRY COUNTER) and all works again.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
pin_left() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pin_left"])' "$SC_STATE"; }
C=$TMP/knot.conf
sc_card_conf "$C" example.com.
run 0 "$KNOT_HSM" -c "$C" example.com generate
# The offline-KSK pair of tests/smartcard/ceremony.sh (its KSK on the card),
# for the ceremony on the blocked card below.
. "$KHSM_SRCDIR/tests/smartcard/ceremony.sh"
sc_offline_conf "$TMP/o" 0 example.org
run 0 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "0 failed" "doctor: a good setup passes"

# One wrong try: OpenSC reports a low count, doctor warns, and its one
# login with the right PIN restores the card's counter.
p11 --login --pin 000000 --list-objects >/dev/null 2>&1 && fail "a wrong PIN was accepted"
equals "$(pin_left)" 2 "one wrong try: two left on the card"
run 0 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "warn  keystore card: pin flags: a wrong PIN was entered recently" "doctor warns after a wrong try"
contains "$OUT" "ok    keystore card: login" "doctor logs in once"
equals "$(pin_left)" 3 "the good login restored the card's counter"

# Two wrong tries: the card counts down to its final try.
for i in 1 2; do
	p11 --login --pin 000000 --list-objects >/dev/null 2>&1 && fail "a wrong PIN was accepted"
done
equals "$(pin_left)" 1 "two wrong tries: one left on the card"
p11 --list-token-slots > "$TMP/slots" 2>&1
contains "$(cat "$TMP/slots")" "final user PIN try" "OpenSC sees the final try (63C1)"
fails=$(sc_log_count "verify fail")
oks=$(sc_log_count "verify ok")
run 1 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "FAIL  keystore card: pin flags:" "doctor flags the final try"
equals "$(sc_log_count "verify fail")" "$fails" "doctor did not spend the last try"
equals "$(sc_log_count "verify ok")" "$oks" "nor log in with it"
equals "$(pin_left)" 1 "the card still has its last try"

# The third wrong try blocks the PIN: the card answers 6983.
p11 --login --pin 000000 --list-objects >/dev/null 2>&1 && fail "a wrong PIN was accepted"
equals "$(pin_left)" 0 "three wrong tries: the card blocked the PIN"
p11 --list-token-slots > "$TMP/slots" 2>&1
contains "$(cat "$TMP/slots")" "user PIN locked" "OpenSC reports the PIN locked"
p11 --login --pin "$PIN" --list-objects >/dev/null 2>&1 && fail "the right PIN works on a blocked card"
pass "the right PIN is refused by the card too"
fails=$(sc_log_count "verify fail")
oks=$(sc_log_count "verify ok")
blocked=$(sc_log_count "verify blocked")
gens=$(sc_log_count_prefix "generate ")

run 1 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "FAIL  keystore card: pin flags: user PIN is locked" "doctor: the PIN is locked"
contains "$OUT" "with the SO-PIN" "doctor: unblock with the SO-PIN"
contains "$OUT" "--login-type so --init-pin" "doctor: the command that unblocks"
contains "$OUT" "login: not attempted" "doctor: no login on a blocked card"
run 1 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$PINF"
contains "$ERR" "user PIN is locked" "keystore refuses"
contains "$ERR" "--init-pin" "keystore: how to unblock"
run 1 "$KNOT_HSM" -c "$C" example.com generate label=second zsk=yes
contains "$ERR" "user PIN is locked" "generate refuses"
contains "$ERR" "--init-pin" "generate: how to unblock"
run 1 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
contains "$ERR" "user PIN is locked" "keys refuses"
signs=$(sc_log_count_prefix "sign ")
run 1 "$KNOT_HSM" -c "$CONF" example.org ceremony until=+5d
contains "$OUT$ERR" "user PIN is locked" "ceremony refuses"
contains "$OUT$ERR" "--init-pin" "ceremony: how to unblock"
equals "$(sc_log_count_prefix "sign ")" "$signs" "ceremony: nothing signed on the blocked card"
run 1 "$KNOT_HSM" -c "$C" example.com import label=outside
contains "$ERR" "user PIN is locked" "import refuses"
contains "$ERR" "--init-pin" "import: how to unblock"
equals "$(sc_log_count "verify fail")" "$fails" "no knot-hsm command sent a wrong PIN"
equals "$(sc_log_count "verify blocked")" "$blocked" "no knot-hsm command sent a PIN to the blocked card"
equals "$(sc_log_count "verify ok")" "$oks" "and none logged in"
equals "$(sc_log_count_prefix "generate ")" "$gens" "no key made"
run 0 keymgr -c "$C" example.com. list
equals "$(printf '%s\n' "$OUT" | grep -c ' KSK ')" 1 "KASP unchanged"

# The SO-PIN unblocks (RESET RETRY COUNTER on the card) and sets the PIN again.
p11 --login --login-type so --so-pin "$SO_PIN" --init-pin --new-pin "$PIN" > "$TMP/unblock" 2>&1 ||
	{ cat "$TMP/unblock" >&2; fail "unblocking with the SO-PIN"; }
equals "$(sc_log_count unblock)" 1 "the card reset its retry counter"
equals "$(pin_left)" 3 "three tries again"
run 0 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "0 failed" "doctor passes after the unblock"
run 0 "$KNOT_HSM" -c "$C" example.com generate label=second zsk=yes
equals "$(sc_log_count_prefix "generate ")" $((gens + 1)) "generate works after the unblock"
