#!/bin/sh
# knot-hsm doctor: a good setup passes; each broken one fails with a remedy.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

LABEL="SmartCard-HSM (UserPIN)"
token_init "$LABEL"
PINF="$TMP/card.pin"
pin_file "$PINF"

run 0 "$KNOT_HSM" doctor --token "$LABEL" --pin-file "$PINF"
contains "$OUT" "ok    login: one login through GnuTLS succeeded" "good token: login"
contains "$OUT" "ok    libdnssec: keystore opens as knotd opens it" "good token: libdnssec"
contains "$OUT" "ok    dnssec mechanisms: ECDSA P-256" "good token: mechanisms"
contains "$OUT" "0 failed" "good token: nothing failed"

write_conf() { # config-string
	cat > "$TMP/knot.conf" <<CONF
keystore:
  - id: card
    backend: pkcs11
    config: "$1"
    key-label: on
CONF
}

run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF" --id card
printf '%s\n' "$OUT" > "$TMP/knot.conf"
run 0 "$KNOT_HSM" doctor -c "$TMP/knot.conf"
contains "$OUT" "ok    keystore card: login" "good knot.conf passes"

# Unencoded label: Knot would say "failed to load PKCS #11 module".
write_conf "pkcs11:token=SmartCard-HSM (UserPIN);pin-source=$PINF $SOFTHSM_MODULE"
run 1 "$KNOT_HSM" doctor -c "$TMP/knot.conf"
contains "$OUT" "FAIL  keystore card: uri encoding: the token URI has an unencoded space" "unencoded space found"
contains "$OUT" "knot-hsm uri --token" "remedy for the encoding"

# Wrong module path.
write_conf "pkcs11:token=SmartCard-HSM%20%28UserPIN%29;pin-source=$PINF /usr/lib/nope/libnope.so"
run 1 "$KNOT_HSM" doctor -c "$TMP/knot.conf"
contains "$OUT" "FAIL  keystore card: module path: /usr/lib/nope/libnope.so does not exist" "wrong module path"

# PIN in clear text in knot.conf: flagged, and never echoed.
write_conf "pkcs11:token=SmartCard-HSM%20%28UserPIN%29;pin-value=$PIN $SOFTHSM_MODULE"
run 1 "$KNOT_HSM" doctor -c "$TMP/knot.conf"
contains "$OUT" "FAIL  keystore card: pin source: the PIN is in clear text" "pin-value flagged"
lacks "$OUT$ERR" "$PIN" "doctor does not print the PIN"

# PIN file mode 0644.
chmod 0644 "$PINF"
run 1 "$KNOT_HSM" doctor --token "$LABEL" --pin-file "$PINF"
contains "$OUT" "FAIL  pin source: $PINF (mode 0644) readable by group or others" "PIN file mode"
chmod 0600 "$PINF"

# A PIN file that is known to be wrong is never tried on the card: each try
# counts towards the lock. pkcs11-spy counts the C_Login calls (none).
(umask 077; printf '%s\n' "$PIN" > "$TMP/newline.pin")
SPY=$(ls /usr/lib/*/pkcs11-spy.so | head -1)
PKCS11SPY=$SOFTHSM_MODULE PKCS11SPY_OUTPUT=$TMP/spy.log \
	run 1 "$KNOT_HSM" doctor --module "$SPY" --token "$LABEL" --pin-file "$TMP/newline.pin"
contains "$OUT" "FAIL  pin source: $TMP/newline.pin (mode 0600) ends with a newline" "newline in the PIN file"
contains "$OUT" "FAIL  login: not attempted" "no login with a bad PIN file"
equals "$(grep -c C_Login "$TMP/spy.log" || true)" 0 "no C_Login reached the token"
rm -f "$TMP/spy.log"

# A serial-qualified token URI selects the token, as in uri and keystore.
run 0 "$KNOT_HSM" doctor --token "pkcs11:token=SmartCard-HSM%20%28UserPIN%29;serial=$(token_serial "$LABEL")" --pin-file "$PINF"
contains "$OUT" "0 failed" "doctor takes a token URI"

# Wrong PIN: one failed login.
(umask 077; printf '%s' 111111 > "$TMP/wrong.pin")
run 1 "$KNOT_HSM" doctor --token "$LABEL" --pin-file "$TMP/wrong.pin"
contains "$OUT" "FAIL  login: wrong PIN" "wrong PIN"
run 0 "$KNOT_HSM" doctor --token "$LABEL" --pin-file "$PINF"
contains "$OUT" "ok    login" "right PIN works again afterwards"

# No token / ambiguous label / bad config file.
run 1 "$KNOT_HSM" doctor --token "Missing" --pin-file "$PINF"
contains "$OUT" "FAIL  token present: not found: no token labelled 'Missing'" "missing token"
token_init "twin"
token_init "twin"
run 1 "$KNOT_HSM" doctor --token twin --pin-file "$PINF"
contains "$OUT" "FAIL  label unique" "ambiguous label"
printf 'server:\n  bogus-item: 1\n' > "$TMP/broken.conf"
run 1 "$KNOT_HSM" doctor -c "$TMP/broken.conf"
contains "$OUT" "FAIL  knot.conf" "broken knot.conf"
printf 'server:\n  listen: 127.0.0.1@53\n' > "$TMP/nokeystore.conf"
run 1 "$KNOT_HSM" doctor -c "$TMP/nokeystore.conf"
contains "$OUT" "has no pkcs11 keystore" "knot.conf without a pkcs11 keystore"
run 2 "$KNOT_HSM" doctor
contains "$ERR" "doctor needs --token LABEL or -c knot.conf" "doctor without a target"
