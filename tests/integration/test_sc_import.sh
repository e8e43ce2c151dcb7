#!/bin/sh
# import on the real card stack: a key pair made on the emulated card by
# pkcs11-tool (OpenSC chooses CKA_ID = SHA-1 of the public point's X
# coordinate) is imported into KASP under that id; its DS is keymgr's.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
PINF=$TMP/card.pin
pin_file "$PINF"
C=$TMP/knot.conf
sc_card_conf "$C" example.com. example.net.

# x_id LABEL: SHA-1 of the X coordinate of the EC point of the public key
# labelled LABEL on the card, computed here from the point.
x_id() {
	p11 --list-objects --type pubkey 2>/dev/null | awk -v lbl="$1" '
		/^Public Key Object/ { point = "" }
		$1 == "EC_POINT:" { point = $2 }
		$1 == "label:" { sub(/^[[:space:]]*label:[[:space:]]*/, ""); if ($0 == lbl) print point }' |
		head -1 | python3 -c 'import sys, hashlib
der = bytes.fromhex(sys.stdin.read().strip())
point = der[2:] if der[1] < 0x80 else der[3:]   # the DER OCTET STRING around the point
assert point[0] == 4, point.hex()
n = (len(point) - 1) // 2
print(hashlib.sha1(point[1:1 + n]).hexdigest())'
}

p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --label "made by pkcs11-tool" > "$TMP/gen" 2>&1 ||
	{ cat "$TMP/gen" >&2; fail "pkcs11-tool --keypairgen on the card"; }
equals "$(sc_log_count "generate 00 P-256")" 1 "the card made the key pair"
xid=$(x_id "made by pkcs11-tool")
[ ${#xid} -eq 40 ] || fail "no EC point for the pkcs11-tool key"
contains "$(cat "$TMP/gen")" "ID:         $xid" "OpenSC set CKA_ID to SHA-1 of X"

run 0 "$KNOT_HSM" -c "$C" example.com import label="made by pkcs11-tool"
contains "$OUT" "key id: $xid" "import finds the key under OpenSC's id"
contains "$OUT" "example.com. DNSKEY 257 3 13 " "imported as a P-256 KSK"
tag=$(printf '%s\n' "$OUT" | sed -n 's/^key tag: //p')
run 0 keymgr -c "$C" example.com. list
equals "$(printf '%s\n' "$OUT" | awk -v id="$xid" '$1 == id {print $2, $3, $4}')" \
	"$tag KSK ECDSAP256SHA256" "KASP holds OpenSC's id"
run 0 "$KNOT_HSM" -c "$C" example.com ds
kh_ds=$OUT
run 0 keymgr -c "$C" example.com. ds
equals "$kh_ds" "$(printf '%s\n' "$OUT" | grep " $tag 13 2 ")" "ds of the imported key equals keymgr ds"
run 0 "$KNOT_HSM" -c "$C" keys --pin-file "$PINF"
contains "$OUT" "$xid  tag $tag" "keys lists the imported key"
contains "$OUT" "zones: example.com. (KSK)" "with its zone"

# By id, a P-384 key: the same rule, 48-byte X.
p11 --login --pin "$PIN" --keypairgen --key-type EC:secp384r1 --label "p384 by pkcs11-tool" >/dev/null 2>&1 ||
	fail "pkcs11-tool --keypairgen P-384"
xid384=$(x_id "p384 by pkcs11-tool")
[ ${#xid384} -eq 40 ] || fail "no EC point for the P-384 key"
run 0 "$KNOT_HSM" -c "$C" example.net import id="$xid384"
contains "$OUT" "key id: $xid384" "import by OpenSC's id"
contains "$OUT" "example.net. DNSKEY 257 3 14 " "imported as a P-384 KSK"

# Importing the same key again does nothing: no duplicate in KASP.
run 0 "$KNOT_HSM" -c "$C" example.com import label="made by pkcs11-tool"
contains "$OUT" "key $xid is already in the KASP of example.com.; nothing to do" "a second import says so"
run 0 keymgr -c "$C" example.com. list
equals "$(printf '%s\n' "$OUT" | grep -c "^$xid ")" 1 "a second import makes no duplicate"
run 1 "$KNOT_HSM" -c "$C" example.com import label="no such key"
contains "$ERR" "no such key" "a missing label is named"
