#!/bin/sh
# The emulator's pin_retries knob (tests/smartcard/README.md): a card made
# with 5 tries counts down from 5, not 3. Three wrong tries (which block the
# default card) leave two: the PIN is not locked and the flags say a wrong PIN
# was entered; a fourth leaves the final try, flagged by tokens and doctor,
# and doctor does not spend it; one good login restores all five.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_conf pin_retries=5
sc_start
pin_left() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pin_left"])' "$SC_STATE"; }
equals "$(pin_left)" 5 "a card made with pin_retries=5 has five tries"
PINF=$TMP/card.pin
pin_file "$PINF"
run 0 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$PINF" --id card
mkdir -p "$TMP/kasp"
C=$TMP/knot.conf
printf 'server:\n    rundir: %s\ndatabase:\n    kasp-db: %s/kasp\n%s\n' "$TMP" "$TMP" "$OUT" > "$C"
printf 'policy:\n  - id: card\n    keystore: card\n    manual: on\nzone:\n  - domain: example.com.\n    dnssec-policy: card\n' >> "$C"
run 0 "$KNOT_HSM" -c "$C" example.com generate

wrong() { p11 --login --pin 000000 --list-objects >/dev/null 2>&1 && fail "a wrong PIN was accepted"; :; }
wrong; wrong; wrong
equals "$(pin_left)" 2 "three wrong tries: two left of five"
run 0 "$KNOT_HSM" tokens
contains "$OUT" "user-pin-count-low" "tokens: a wrong PIN was entered"
lacks "$OUT" "user-pin-locked" "tokens: three wrong tries do not lock a five-try PIN"
lacks "$OUT" "user-pin-final-try" "tokens: nor is it the final try"
wrong
equals "$(pin_left)" 1 "four wrong tries: the final try"
run 0 "$KNOT_HSM" tokens
contains "$OUT" "user-pin-final-try" "tokens: the final try flagged"
fails=$(sc_log_count "verify fail")
oks=$(sc_log_count "verify ok")
run 1 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "FAIL  keystore card: pin flags:" "doctor flags the final try"
equals "$(sc_log_count "verify fail")" "$fails" "doctor did not spend the last try"
equals "$(sc_log_count "verify ok")" "$oks" "nor log in with it"
equals "$(pin_left)" 1 "the card still has its last try"
run 0 "$KNOT_HSM" doctor -c "$C" --force
contains "$OUT" "ok    keystore card: login" "doctor --force logs in with the right PIN"
equals "$(pin_left)" 5 "the good login restored all five tries"
