#!/bin/sh
# knot-hsm keystore: the stanza opens through libdnssec, logs in, and Knot's
# own keymgr generates a key on the token with it.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

LABEL="SmartCard-HSM (UserPIN)"
token_init "$LABEL"
mkdir -p "$TMP/pins dir"
PINF="$TMP/pins dir/card.pin"
pin_file "$PINF"

run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF" --id card
stanza=$OUT
contains "$stanza" "backend: pkcs11" "pkcs11 backend"
contains "$stanza" "key-label: on" "Knot labels the keys it makes"
enc_pin=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$PINF")
contains "$stanza" "config: \"pkcs11:token=SmartCard-HSM%20%28UserPIN%29;pin-source=$enc_pin $SOFTHSM_MODULE\"" "config string with encoded pin-source"
lacks "$OUT$ERR" "$PIN" "the PIN is not printed"

# Knot accepts the stanza: keymgr generates a KSK on the token through it.
knot_conf "$TMP/knot.conf" policy=card example.com.
run 0 knotc -c "$TMP/knot.conf" conf-check
pass "knotc accepts the stanza"
run 0 keymgr -c "$TMP/knot.conf" example.com. generate algorithm=ecdsap256sha256 ksk=yes
lacks "$ERR" "error" "keymgr generates a key through the stanza"
keyid=$OUT
run 0 keymgr -c "$TMP/knot.conf" example.com. list
contains "$OUT" "$keyid" "the key is in KASP"
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" > "$TMP/privkeys" 2>/dev/null
contains "$(cat "$TMP/privkeys")" "Label: example.com. KSK" "the private key lives on the token"

# PIN file safety.
chmod 0644 "$PINF"
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF"
contains "$ERR" "mode 0644" "a PIN file readable by others is refused"
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF" --force
contains "$ERR" "warning: PIN file" "with --force it warns"
chmod 0600 "$PINF"
(umask 077; printf '%s\n' "$PIN" > "$TMP/newline.pin")
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/newline.pin"
contains "$ERR" "ends with a newline" "a trailing newline is caught before any login"
run 1 "$KNOT_HSM" keystore --token "$LABEL"
contains "$ERR" "--pin-file" "no PIN source: knotd needs a file"
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/missing.pin"
contains "$ERR" "cannot open PIN file" "missing PIN file"

# A wrong PIN fails once: exactly one C_Login reaches the module (OpenSC's
# pkcs11-spy counts them), and the error says it was not retried.
(umask 077; printf '%s' 000000 > "$TMP/wrong.pin")
SPY=$(ls /usr/lib/*/pkcs11-spy.so | head -1)
[ -f "$SPY" ] || fail "pkcs11-spy.so (opensc) missing"
PKCS11SPY=$SOFTHSM_MODULE PKCS11SPY_OUTPUT=$TMP/spy.log \
	run 1 "$KNOT_HSM" keystore --module "$SPY" --token "$LABEL" --pin-file "$TMP/wrong.pin"
contains "$ERR" "wrong PIN" "wrong PIN reported"
contains "$ERR" "not retried" "and not retried"
equals "$(grep -c 'C_Login' "$TMP/spy.log")" 1 "exactly one login attempt"
rm -f "$TMP/spy.log"

# --pin-in-config: PIN in the config, with a warning; Knot still works with it.
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-in-config --pin-fd 3 --id inline 3<"$PINF"
contains "$ERR" "warning: the PIN is written in clear text" "pin-value warns"
contains "$OUT" ";pin-value=$PIN " "pin-value only when asked"

# Bad input.
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF" --id "bad id"
contains "$ERR" "use letters, digits" "keystore id checked"
run 1 "$KNOT_HSM" keystore --token "No Such Token" --pin-file "$PINF"
contains "$ERR" "no token labelled 'No Such Token'" "unknown token"
run 2 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF" --object x
contains "$ERR" "does not take --object" "option of another command"
run 2 "$KNOT_HSM" keystore --token "$LABEL" --pin-fd x
contains "$ERR" "--pin-fd needs a descriptor number" "bad descriptor"
