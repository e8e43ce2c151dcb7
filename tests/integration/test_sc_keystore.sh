#!/bin/sh
# keystore on the real card stack: the stanza knot-hsm prints opens through
# libdnssec and logs in through opensc-pkcs11.so, Knot's keymgr makes a key on
# the emulated card with it, and a wrong PIN costs the card exactly one try.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
pin_left() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pin_left"])' "$SC_STATE"; }

run 0 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$PINF" --id card
stanza=$OUT
enc_pin=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$PINF")
contains "$stanza" "config: \"pkcs11:token=SmartCard-HSM%20%28UserPIN%29;pin-source=$enc_pin $OPENSC_MODULE\"" "config string names OpenSC's module"
lacks "$OUT$ERR" "$PIN" "the PIN is not printed"
[ "$(sc_log_count "verify ok")" -ge 1 ] || fail "keystore did not log in on the card"
pass "keystore logged in on the card (VERIFY with the PIN answered 9000)"
equals "$(sc_log_count "verify fail")" 0 "no wrong PIN reached the card"

knot_conf "$TMP/knot.conf" policy=card example.com.
run 0 knotc -c "$TMP/knot.conf" conf-check
pass "knotc accepts the stanza"
run 0 keymgr -c "$TMP/knot.conf" example.com. generate algorithm=ecdsap256sha256 ksk=yes
lacks "$ERR" "error" "Knot's keymgr generates through the stanza"
keyid=$OUT
equals "$(sc_log_count "generate 00 P-256")" 1 "the key pair was made by the card (GENERATE ASYMMETRIC KEY PAIR)"
p11 --list-objects --type privkey --login --pin "$PIN" > "$TMP/objs" 2>&1 || { cat "$TMP/objs" >&2; fail "pkcs11-tool lists the card's keys"; }
contains "$(cat "$TMP/objs")" "ID:         $keyid" "the private key Knot made is on the card under its KASP id"
contains "$(cat "$TMP/objs")" "label:      example.com. KSK" "with Knot's label"

# A wrong PIN: one try on the card, its counter goes from 3 to 2, and the
# error says it was not retried.
equals "$(pin_left)" 3 "the card's retry counter is full"
(umask 077; printf '%s' 000000 > "$TMP/wrong.pin")
run 1 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$TMP/wrong.pin"
contains "$ERR" "wrong PIN" "wrong PIN reported"
contains "$ERR" "not retried" "and not retried"
equals "$(sc_log_count "verify fail")" 1 "exactly one wrong VERIFY reached the card"
equals "$(pin_left)" 2 "the card counted one failed try"
# The right PIN resets the card's counter.
run 0 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$PINF"
equals "$(pin_left)" 3 "a good login resets the card's retry counter"

run 1 "$KNOT_HSM" keystore --token "No Such Card" --pin-file "$PINF"
contains "$ERR" "no token labelled 'No Such Card'" "unknown label refused"
contains "$ERR" "SmartCard-HSM (UserPIN)" "and the card present is named"
