#!/bin/sh
# generate, keys and ds on the real card stack: the KSK is made by the
# emulated SmartCard-HSM through opensc-pkcs11.so, cannot leave it, signs on
# it, and its DS is keymgr's; P-384; a full card; C_DestroyObject.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
C=$TMP/knot.conf
sc_card_conf "$C" example.com. example.net.

# -- ECDSA P-256 KSK --------------------------------------------------------------
run 0 "$KNOT_HSM" -c "$C" example.com generate
id=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
tag=$(printf '%s\n' "$OUT" | sed -n 's/^key tag: //p')
[ ${#id} -eq 40 ] || fail "no 40-digit key id in: $OUT"
pass "generate prints the key id"
contains "$OUT" "example.com. DNSKEY 257 3 13 " "a P-256 KSK"
gen_ds=$(printf '%s\n' "$OUT" | grep " DS ")
equals "$(sc_log_count "generate 00 P-256")" 1 "the card made the key pair (GENERATE ASYMMETRIC KEY PAIR, P-256)"
[ "$(sc_log_count "sign 00")" -ge 1 ] || fail "the new key was not proven by a signature on the card"
pass "knot-hsm proved the key with a signature made by the card"

run 0 keymgr -c "$C" example.com. list
equals "$(printf '%s\n' "$OUT" | awk -v id="$id" '$1 == id {print $2, $3, $4}')" \
	"$tag KSK ECDSAP256SHA256" "KASP holds the card key with its id and tag"

# On the card: a private key with that id, sensitive and never extractable.
GNUTLS_PIN=$PIN p11tool --login --list-privkeys --only-urls "$SC_URI" > "$TMP/privs" 2>/dev/null || true
equals "$(grep -c "id=" "$TMP/privs")" 1 "one private key on the card"
GNUTLS_PIN=$PIN p11tool --login --list-all-privkeys "$SC_URI" > "$TMP/privinfo" 2>/dev/null || true
contains "$(cat "$TMP/privinfo")" "CKA_SENSITIVE" "the card key is sensitive"
contains "$(cat "$TMP/privinfo")" "CKA_NEVER_EXTRACTABLE" "the card key was never extractable"
lacks "$(cat "$TMP/privinfo")" "CKA_EXTRACTABLE" "the card key is not extractable"
id_colons=$(printf '%s' "$id" | sed 's/../&:/g; s/:$//')
contains "$(cat "$TMP/privinfo")" "ID: $id_colons" "the card key has the KASP id"

# keys: the card key and the zone using it.
run 0 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
contains "$OUT" "$id  tag $tag  ecdsap256sha256 256 bits  label 'example.com. KSK'" "keys lists the card key"
contains "$OUT" "zones: example.com. (KSK)" "with the zone that uses it"
lacks "$OUT" "used by no zone" "no orphan"

# ds: keymgr's own DS for the card key, as generate printed it.
run 0 "$KNOT_HSM" -c "$C" example.com ds
kh_ds=$OUT
run 0 keymgr -c "$C" example.com. ds
km_ds=$(printf '%s\n' "$OUT" | grep " $tag 13 2 ")
[ -n "$km_ds" ] || fail "keymgr ds has no SHA-256 DS for tag $tag: $OUT"
equals "$kh_ds" "$km_ds" "knot-hsm ds equals keymgr ds"
equals "$gen_ds" "$km_ds" "the DS generate printed equals keymgr ds"

# The card signs and software verifies: pkcs11-tool signs a SHA-256 hash with
# the card key (raw ECDSA), OpenSSL checks it with the public key from the card.
printf 'signed on the card\n' > "$TMP/data"
openssl dgst -sha256 -binary "$TMP/data" > "$TMP/hash"
signs=$(sc_log_count "sign 00")
p11 --login --pin "$PIN" --sign --id "$id" -m ECDSA --signature-format openssl \
	--input-file "$TMP/hash" --output-file "$TMP/sig" >/dev/null 2>&1 || fail "pkcs11-tool --sign on the card"
equals "$(sc_log_count "sign 00")" "$((signs + 1))" "one SIGN on the card"
p11 --read-object --type pubkey --id "$id" --output-file "$TMP/pub.der" >/dev/null 2>&1 || fail "reading the public key"
openssl pkey -pubin -inform DER -in "$TMP/pub.der" -out "$TMP/pub.pem" || fail "public key is no SPKI"
openssl dgst -sha256 -verify "$TMP/pub.pem" -signature "$TMP/sig" "$TMP/data" > "$TMP/verify.out" 2>&1 ||
	{ cat "$TMP/verify.out" >&2; fail "the card's signature does not verify"; }
pass "the card's ECDSA signature verifies in OpenSSL"
# The DNSKEY knot-hsm printed is that public key.
point_b64=$(openssl pkey -pubin -in "$TMP/pub.pem" -outform DER | tail -c 64 | base64 -w0)
equals "$point_b64" "$(keymgr -c "$C" example.com. dnskey | grep ' 257 3 13 ' | awk '{print $NF}')" "the DNSKEY is the card's public point"

# -- ECDSA P-384 ---------------------------------------------------------------
run 0 "$KNOT_HSM" -c "$C" example.net generate algorithm=ecdsap384sha384
contains "$OUT" "example.net. DNSKEY 257 3 14 " "a P-384 KSK"
id384=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
equals "$(sc_log_count "generate 01 P-384")" 1 "made by the card in key slot 1 (P-384)"
run 0 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
contains "$OUT" "$id384  tag " "keys lists the P-384 key"
contains "$OUT" "ecdsap384sha384 384 bits" "as P-384"

# -- C_DestroyObject: a scratch key made and deleted with pkcs11-tool ----------
p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --label scratch --id 5c >/dev/null 2>&1 ||
	fail "pkcs11-tool --keypairgen"
p11 --login --pin "$PIN" --delete-object --type privkey --id 5c >/dev/null 2>&1 || fail "pkcs11-tool --delete-object"
p11 --login --pin "$PIN" --list-objects --type privkey > "$TMP/objs" 2>&1
lacks "$(cat "$TMP/objs")" "scratch" "the deleted key is gone from the card"
contains "$(cat "$TMP/objs")" "example.com. KSK" "the KSK stays"
python3 - "$SC_STATE" <<'PY' || fail "the card's key store after DELETE FILE"
import json, sys
keys = json.load(open(sys.argv[1]))["keys"]
assert sorted(keys) == ["0", "1"], keys
PY
pass "DELETE FILE freed the key slot on the card"

# -- a full card: the card's own status word, nothing in KASP --------------------
sc_conf key_slots=2
sc_restart_emulator
run 1 "$KNOT_HSM" -c "$C" example.net generate label="no room" zsk=yes
contains "$ERR" "the card has no room for another key pair" "full card said in words"
contains "$ERR" "Nothing was written to KASP" "full card: KASP untouched, said"
equals "$(sc_log_count "generate full")" 1 "the card refused once (6A84), not retried"
run 0 keymgr -c "$C" example.net. list
lacks "$OUT" "no room" "full card: nothing in KASP"
equals "$(printf '%s\n' "$OUT" | grep -c ' KSK ')" 1 "full card: example.net. keeps its one KSK"
