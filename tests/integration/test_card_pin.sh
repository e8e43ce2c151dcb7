#!/bin/sh
# The card's PIN counter (cardsim: 3 tries, then locked). A wrong PIN costs
# exactly one try and is never retried; the message says how many are left; at
# the final try knot-hsm logs in only with --force; a locked PIN is never
# tried and the SO-PIN unblock is named. cardsim's counter file records every
# C_Login, so "no login attempt" is checked, not assumed.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

card_conf "pin_tries = 3"
C=$TMP/knot.conf
card_knot_conf "$C" example.com.
(umask 077; printf '%s' 000000 > "$TMP/wrong.pin")
: > "$COUNTER"

# -- one wrong PIN -----------------------------------------------------------------
run 1 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/wrong.pin"
contains "$ERR" "wrong PIN" "wrong PIN reported"
contains "$ERR" "it was not retried" "not retried, said"
contains "$ERR" "few tries left" "tries left reported (count-low)"
equals "$(count "login fail")" 1 "exactly one failed login"
equals "$(count "login ok")" 0 "and no other login"

# -- second wrong PIN: the final try is next ----------------------------------------
run 1 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/wrong.pin"
contains "$ERR" "Only ONE try is left before the token locks" "final try announced"
equals "$(count "login fail")" 2 "two failed logins in all"

# -- at the final try: no login without --force, even with the right PIN ------------
: > "$COUNTER"
run 1 "$KNOT_HSM" -c "$C" example.com generate
contains "$ERR" "final PIN try: one more wrong PIN locks the token" "generate: final try named"
contains "$ERR" "rerun with --force" "generate: --force named"
run 1 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin"
contains "$ERR" "knot-hsm will not log in; check the PIN, then rerun with --force" "keystore refuses at the final try"
run 1 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "FAIL  keystore card: pin flags: final try: one more wrong PIN locks the token; login check skipped (use --force)" "doctor: final try"
contains "$OUT" "FAIL  keystore card: login: not attempted" "doctor: no login"
equals "$(count "login")" 0 "no login attempt at the final try"
run 0 keymgr -c "$C" example.com. list
equals "$OUT" "" "nothing generated"

# -- --force with the right PIN works and resets the counter ------------------------
"$KNOT_HSM" -c "$C" --force example.com generate > "$TMP/out" 2> "$TMP/err" &
gen=$!
wait $gen || fail "generate --force with the right PIN: $(cat "$TMP/err")"
contains "$(cat "$TMP/out")" "key id: " "--force and the right PIN: generate works"
# knot-hsm logs in once for the whole command (keymgr import-pkcs11 logs in on its own).
equals "$(count "login ok" $gen)" 1 "knot-hsm logged in once"
equals "$(count "login fail")" 0 "no failed login"
run 0 "$KNOT_HSM" doctor -c "$C"
contains "$OUT" "ok    keystore card: pin flags: no failed logins reported" "the counter is reset"

# -- three wrong PINs lock it; locked means no login attempt at all ----------------
run 1 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/wrong.pin"
run 1 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/wrong.pin"
run 1 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/wrong.pin"
contains "$ERR" "rerun with --force" "the final try needs --force even for keystore"
run 1 "$KNOT_HSM" keystore --force --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/wrong.pin"
contains "$ERR" "the token refused the PIN and is now locked" "the third wrong PIN locks, said"
contains "$ERR" "the security officer must unblock it with the SO-PIN" "SO-PIN unblock named"
equals "$(count "login fail")" 3 "three failed logins in all"
: > "$COUNTER"
for force in "" --force; do
	run 1 "$KNOT_HSM" -c "$C" $force example.com generate zsk=yes
	contains "$ERR" "user PIN is locked" "generate $force: locked"
	contains "$ERR" "--login-type so --init-pin" "generate $force: the unblock procedure is named"
	run 1 "$KNOT_HSM" keystore $force --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin"
	contains "$ERR" "user PIN is locked after too many wrong PINs; the security officer must unblock it with the SO-PIN" "keystore $force: locked"
	run 1 "$KNOT_HSM" doctor $force -c "$C"
	contains "$OUT" "FAIL  keystore card: pin flags: user PIN is locked" "doctor $force: locked"
	contains "$OUT" "FAIL  keystore card: login: not attempted" "doctor $force: no login"
done
equals "$(count "login")" 0 "locked: no login attempt, even with --force"

# The SO-PIN procedure the message names unblocks the card.
pkcs11-tool --module "$CARDSIM" --login --login-type so --so-pin "$SO_PIN" --init-pin --new-pin "$PIN" \
	>/dev/null 2>&1 || fail "SO unblock through cardsim"
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin"
contains "$OUT" "backend: pkcs11" "after the SO unblock the right PIN works"
lacks "$(cat "$TMP/out" "$TMP/err")" "$PIN" "no PIN in any output"
