#!/bin/sh
# knot-hsm uri: labels to RFC 7512 URIs that p11-kit and GnuTLS parse back.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

check_label() { # label expected-token-uri
	token_init "$1"
	run 0 "$KNOT_HSM" uri --token "$1"
	equals "$OUT" "$2" "uri for label '$1'"
	# GnuTLS (p11tool) names the same token with the same encoded label.
	p11tool --list-token-urls 2>/dev/null | grep -F "token=${2#pkcs11:token=}" | grep -q "serial=$(token_serial "$1")" ||
		fail "GnuTLS does not list '$2'"
	pass "GnuTLS agrees on '$1'"
}

check_label "SmartCard-HSM (UserPIN)" "pkcs11:token=SmartCard-HSM%20%28UserPIN%29"
check_label "with space"              "pkcs11:token=with%20space"
check_label "a/b#c"                   "pkcs11:token=a%2Fb%23c"
check_label "50%;x?y=z&w"             "pkcs11:token=50%25%3Bx%3Fy%3Dz%26w"
check_label "Žluť"                    "pkcs11:token=%C5%BDlu%C5%A5"

# Labels compare exactly: a prefix or other case does not match.
run 1 "$KNOT_HSM" uri --token "SmartCard-HSM"
contains "$ERR" "no token labelled 'SmartCard-HSM'" "prefix does not match"
contains "$ERR" "'SmartCard-HSM (UserPIN)' (serial" "no match lists the tokens that exist"
run 1 "$KNOT_HSM" uri --token "smartcard-hsm (userpin)"
contains "$ERR" "no token labelled" "case matters"

# Two tokens with one label: refused, each listed with a serial-qualified URI.
token_init "twin"
token_init "twin"
run 1 "$KNOT_HSM" uri --token twin
contains "$ERR" "2 tokens are labelled 'twin'" "duplicate label refused"
serial_uri=$(printf '%s' "$ERR" | grep -o 'pkcs11:serial=[^ ;]*;token=twin' | head -1)
[ -n "$serial_uri" ] || fail "no serial-qualified URI in: $ERR"
pass "serial-qualified URIs offered"
run 0 "$KNOT_HSM" uri --token "$serial_uri"
equals "$OUT" "$serial_uri" "a serial-qualified URI selects one token"

# Objects: the public key is found without any PIN (stdin is no terminal).
keygen_p11tool "SmartCard-HSM (UserPIN)" "example.com. KSK" 0a0b0c
run 0 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object "example.com. KSK" </dev/null
equals "$OUT" "pkcs11:token=SmartCard-HSM%20%28UserPIN%29;id=%0A%0B%0C;object=example.com.%20KSK" "object URI without login"
obj_uri=$OUT
run 0 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --id 0a:0b:0c </dev/null
equals "$OUT" "$obj_uri" "lookup by id gives the same URI"
run 0 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object "example.com. KSK" --type public </dev/null
equals "$OUT" "$obj_uri;type=public" "public object URI"

# GnuTLS resolves the printed URI to exactly that key pair.
GNUTLS_PIN=$PIN p11tool --login --list-all "$obj_uri" > "$TMP/p11tool.out" 2>/dev/null
equals "$(grep -c 'Label: example.com. KSK' "$TMP/p11tool.out")" 2 "GnuTLS finds the private and public object"

# The private object needs a login, hence a PIN.
run 1 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object "example.com. KSK" --type private </dev/null
contains "$ERR" "--pin-file" "private lookup without a PIN explains how to give one"
pin_file "$TMP/pin"
run 0 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object "example.com. KSK" --type private --pin-file "$TMP/pin"
equals "$OUT" "$obj_uri;type=private" "private object URI after one login"
run 0 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object "example.com. KSK" --type private --pin-fd 3 3<"$TMP/pin"
equals "$OUT" "$obj_uri;type=private" "PIN from a descriptor"

# Several keys with one label are refused.
keygen_p11tool "SmartCard-HSM (UserPIN)" "dup key" 01
keygen_p11tool "SmartCard-HSM (UserPIN)" "dup key" 02
run 1 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object "dup key" </dev/null
contains "$ERR" "several keys match" "ambiguous object label"

# Bad input.
run 1 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --id zz
contains "$ERR" "'zz' is not hex" "id that is not hex"
run 2 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --id 01 --object x
contains "$ERR" "not both" "object and id together"
run 2 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object x --type secret
contains "$ERR" "--type is private or public" "bad type"
run 2 "$KNOT_HSM" uri
contains "$ERR" "needs --token" "missing token"
run 1 "$KNOT_HSM" uri --token "pkcs11:token=%zz"
contains "$ERR" "not a PKCS #11 URI" "malformed token URI"
run 1 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object "no such key" </dev/null
contains "$ERR" "no public key object labelled 'no such key'" "object not found without login"
contains "$ERR" "give --pin-file" "says a login could show private objects"
run 1 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --object "no such key" --pin-file "$TMP/pin"
contains "$ERR" "no key object labelled 'no such key'" "object not found after login"
lacks "$OUT$ERR" "$PIN" "the PIN appears nowhere"
