#!/bin/sh
# knot-hsm generate / import / keys on SoftHSM: keys made on the token, in
# Knot's KASP, proven through libdnssec, shared between zones, rolled back on
# failure.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

LABEL="SmartCard-HSM (UserPIN)"
token_init "$LABEL"
pin_file "$TMP/card.pin"
mkdir -p "$TMP/kasp"
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/card.pin" --id card
knot_conf "$TMP/knot.conf" stanza="$OUT" policy=card example.com. example.net. example.org. example.info. nopolicy:nocard.example.
C="$TMP/knot.conf"
TOKEN_URI="pkcs11:token=SmartCard-HSM%20%28UserPIN%29"

# ECDSA P-256 (the default) with the KSK label Knot itself would use.
run 0 "$KNOT_HSM" -c "$C" Example.COM generate
id256=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
tag256=$(printf '%s\n' "$OUT" | sed -n 's/^key tag: //p')
[ ${#id256} -eq 40 ] || fail "no 40-digit key id in: $OUT"
pass "generate prints the key id"
contains "$OUT" "example.com. DNSKEY 257 3 13 " "prints the DNSKEY"
contains "$OUT" "knotd: not running" "says knotd was not asked to reload"
run 0 keymgr -c "$C" example.com. list
equals "$(printf '%s\n' "$OUT" | awk -v id="$id256" '$1 == id { print $2, $3, $4 }')" \
	"$tag256 KSK ECDSAP256SHA256" "the KSK is in Knot's KASP with its tag"
run 0 keymgr -c "$C" example.com. ds
ds_line=$(printf '%s\n' "$OUT" | grep " $tag256 13 2 ")
run 2 "$KNOT_HSM" -c "$C" example.com keys
contains "$ERR" "'keys' takes no zone" "keys is token-wide"
# A zone with an active KSK gets no second one: rollover replaces a KSK;
# --force does not override, and the card is not touched.
before=$(keymgr -c "$C" example.com. list | wc -l)
run 1 "$KNOT_HSM" -c "$C" example.com generate algorithm=ecdsap384sha384 label="p384 key"
contains "$ERR" "example.com. already has an active KSK (tag $tag256, id $id256)" "second active KSK refused"
contains "$ERR" "use 'knot-hsm -c $C example.com. rollover'" "points at rollover"
run 1 "$KNOT_HSM" -c "$C" example.com generate algorithm=ecdsap384sha384 label="p384 key" --force
contains "$ERR" "--force does not override this" "--force does not make a second active KSK"
equals "$(keymgr -c "$C" example.com. list | wc -l)" "$before" "KASP untouched by the refusals"
run 0 "$KNOT_HSM" -c "$C" example.org generate algorithm=ecdsap384sha384 label="p384 key"
contains "$OUT" "example.org. DNSKEY 257 3 14 " "a KSK for a zone without one"
id384=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
contains "$OUT" "DNSKEY 257 3 14 " "ECDSA P-384 key"

# Timers go to keymgr: a KSK published and ready, waiting for its DS (active unset).
run 0 "$KNOT_HSM" -c "$C" example.info generate label="timed ksk" publish=+0 ready=+0 active=0
timed=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
# A KSK that never signs (no active timer) stands in nobody's way.
run 0 "$KNOT_HSM" -c "$C" example.info generate label="second timed" publish=+0 active=+1000d
second=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
# ... but one scheduled to sign does.
run 1 "$KNOT_HSM" -c "$C" example.info generate label="third"
contains "$ERR" "example.info. already has a KSK on its way to signing (tag " "a scheduled KSK refuses a second"
contains "$ERR" "delete id=$second" "and says how to take it out"
run 0 keymgr -c "$C" example.info. delete "$second"
run 0 keymgr -c "$C" -e example.info. list
timers=$(printf '%s\n' "$OUT" | grep "^$timed " | tr -s ' ' '\n' | grep -E '^(ready|active)=' | tr '\n' ' ')
case "$timers" in
	"ready=0 "*|*"active=1"*|*"active=2"*) fail "timers not applied: $timers" ;;
	"ready="*" active=0 ") pass "publish/ready/active timers applied" ;;
	*) fail "unexpected timers: $timers" ;;
esac
# A timer keymgr would reject halfway (after importing) is refused up front.
before=$(keymgr -c "$C" example.com. list | wc -l)
run 2 "$KNOT_HSM" -c "$C" example.com generate label="bad timer" active=yesterday
contains "$ERR" "active= takes a UNIX time" "bad timer refused before the card"
run 2 "$KNOT_HSM" -c "$C" example.com generate label="bad timer" ready=+5x
equals "$(keymgr -c "$C" example.com. list | wc -l)" "$before" "KASP untouched by refused timers"
run 0 keymgr -c "$C" example.info. delete "$timed"

# What the token holds: labelled, private, sensitive, never extractable, sign only.
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$LABEL" --login --pin "$PIN" --list-objects > "$TMP/objects" 2>/dev/null
obj=$(cat "$TMP/objects")
contains "$obj" "label:      example.com. KSK" "Knot's label on the card"
contains "$obj" "label:      p384 key" "label= honoured"
# Every key knot-hsm made is checked, not just one of them: one object per
# record, each judged on its own. Two are left (the timed key was deleted).
nkeys=$(grep -c '^Private Key Object' "$TMP/objects" || true)
equals "$nkeys" 2 "two private keys on the card, both made by knot-hsm generate"
priv=$(awk '/^Private Key Object/{p=1} /^Public Key Object/{p=0} p' "$TMP/objects")
lacks "$priv" "decrypt" "no private key decrypts"
# all_keys TYPE TEXT DESCRIPTION: every "TYPE Key Object" record of the
# listing has a line holding TEXT.
all_keys() {
	n=$(awk -v type="$1 Key Object" -v want="$2" '
		/^[^ \t].*[Oo]bject/ { if (p) n += ok; p = index($0, type) == 1; ok = 0; next }
		p && index($0, want) { ok = 1 }
		END { if (p) n += ok; print n + 0 }' "$TMP/objects")
	equals "$n" "$nkeys" "$3"
}
all_keys Private "Usage:      sign" "every private key signs"
all_keys Private "Access:     sensitive, always sensitive, never extractable, local" "every private key never leaves the card"
equals "$(grep -c '^Public Key Object' "$TMP/objects" || true)" "$nkeys" "one public key per private key"
all_keys Public "verify" "every public key verifies"

# The earlier KSK DS still matches keymgr's output byte for byte.
run 0 keymgr -c "$C" example.com. ds
contains "$OUT" "$ds_line" "keymgr ds unchanged for the first key"

# A key made with pkcs11-tool without CKA_ID: explained, then fixed on request.
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$LABEL" --login --pin "$PIN" \
	--keypairgen --key-type EC:prime256v1 --label "legacy" >/dev/null 2>&1
run 1 "$KNOT_HSM" -c "$C" example.net import label=legacy
contains "$ERR" "has no CKA_ID" "missing CKA_ID explained"
contains "$ERR" "fix-id=yes" "remedy named"
run 0 keymgr -c "$C" example.net. list
equals "$OUT" "" "nothing was imported"
run 0 "$KNOT_HSM" -c "$C" example.net import label=legacy fix-id=yes
contains "$OUT" "CKA_ID set on both objects" "fix-id sets the id"
legacy_id=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
run 0 keymgr -c "$C" example.net. list
contains "$OUT" "$legacy_id" "adopted key in KASP"
contains "$OUT" "KSK ECDSAP256SHA256" "algorithm inferred from the key"
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$LABEL" --login --pin "$PIN" --list-objects 2>/dev/null |
	grep -A3 "label:      legacy" | grep -c "ID:         $legacy_id" > "$TMP/n" || true
equals "$(cat "$TMP/n")" 2 "both objects carry the new id"
run 0 "$KNOT_HSM" -c "$C" example.net import label=legacy fix-id=yes
contains "$OUT" "already in the KASP of example.net.; nothing to do" "rerun is a no-op"
run 1 "$KNOT_HSM" -c "$C" example.net import id=$legacy_id algorithm=ecdsap384sha384
contains "$ERR" "but the key on the card is ecdsap256sha256" "given algorithm is checked"

# Sharing: the P-256 card KSK of example.com serves example.net too.
run 0 "$KNOT_HSM" -c "$C" example.net import id="$id256"
contains "$OUT" "shared with example.com." "second zone shares the card key"
run 0 keymgr -c "$C" example.net. list
contains "$OUT" "$id256" "the shared key is in example.net's KASP"
run 0 "$KNOT_HSM" -c "$C" keys
contains "$OUT" "$id256  tag $tag256  ecdsap256sha256 256 bits  label 'example.com. KSK'" "keys lists the card key"
contains "$OUT" "zones: example.com. (KSK), example.net. (KSK)" "keys shows the sharing"
run 0 "$KNOT_HSM" -c "$C" keys --json
printf '%s' "$OUT" > "$TMP/keys.json"
python3 - "$TMP/keys.json" "$id256" "$id384" <<'PY' || fail "keys --json content"
import json, sys
data = json.load(open(sys.argv[1]))
keys = {k["id"]: k for k in data[0]["keys"]}
assert keys[sys.argv[2]]["zones"] == ["example.com.", "example.net."], keys[sys.argv[2]]
assert keys[sys.argv[3]]["zones"] == ["example.org."]
assert keys[sys.argv[3]]["bits"] == 384
assert data[0]["missing"] == []
PY
pass "keys --json"

# A card key no zone uses, and a KASP key whose card object is gone.
keygen_p11tool "$LABEL" "spare" 5a5a
run 0 "$KNOT_HSM" -c "$C" keys
contains "$OUT" "5a5a  tag " "unused key listed with its tag"
contains "$OUT" "none: on the card, used by no zone" "unused key marked"
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$LABEL" --login --pin "$PIN" \
	--delete-object --type privkey --id "$(printf '%s' "$id384")" >/dev/null 2>&1
run 0 "$KNOT_HSM" -c "$C" keys
contains "$OUT" "MISSING: example.org. $id384" "KASP key missing on the card"

# Rollback: keymgr fails (here: prints error: and exits 0, as keymgr does)
# after the card made the key: the card key is removed, KASP untouched.
cat > "$TMP/keymgr" <<'SH'
#!/bin/sh
for a; do [ "$a" = import-pkcs11 ] && { echo "error: simulated failure" >&2; exit 0; }; done
exec keymgr "$@"
SH
chmod +x "$TMP/keymgr"
before=$(keymgr -c "$C" example.info. list | wc -l)
KHSM_KEYMGR="$TMP/keymgr" run 1 "$KNOT_HSM" -c "$C" example.info generate label=doomed
contains "$ERR" "simulated failure" "keymgr's error is shown"
contains "$ERR" "was removed, nothing is left half-done" "card key removed after a failed import"
equals "$(keymgr -c "$C" example.info. list | wc -l)" "$before" "KASP unchanged"
# keymgr that writes KASP and then reports an error (as it does for a bad
# timer): the entry is taken out again, together with the card key.
cat > "$TMP/keymgr-half" <<'SH'
#!/bin/sh
for a; do [ "$a" = import-pkcs11 ] && { keymgr "$@" >/dev/null 2>&1; echo "error: simulated late failure" >&2; exit 0; }; done
exec keymgr "$@"
SH
chmod +x "$TMP/keymgr-half"
KHSM_KEYMGR="$TMP/keymgr-half" run 1 "$KNOT_HSM" -c "$C" example.info generate label=halfway
contains "$ERR" "nothing is left half-done" "half-imported key rolled back"
equals "$(keymgr -c "$C" example.info. list | wc -l)" "$before" "KASP entry taken out again"
# The listing must work and show the card's keys, so that "lacks" below
# judges a real listing, not an empty output.
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$LABEL" --login --pin "$PIN" --list-objects \
	> "$TMP/objects" 2> "$TMP/objects.err" || fail "listing the card's objects: $(cat "$TMP/objects.err")"
contains "$(cat "$TMP/objects")" "label:      example.com. KSK" "the card listing shows the zone's keys"
lacks "$(cat "$TMP/objects")" "label:      halfway" "and no card key left"
lacks "$(cat "$TMP/objects")" "label:      doomed" "no orphan on the card"

# An interrupted run's orphan is finished by import, not duplicated.
keygen_p11tool "$LABEL" "example.info. KSK" 0badc0de
run 1 "$KNOT_HSM" -c "$C" example.info generate
contains "$ERR" "in no zone's KASP" "orphan detected before generating"
contains "$ERR" "knot-hsm -c $C example.info. import id=0badc0de" "remedy names the key"
run 0 "$KNOT_HSM" -c "$C" example.info import id=0badc0de
contains "$OUT" "key id: 0badc0de" "import finishes the job"

# Refusals before touching the card, and bad input.
run 1 "$KNOT_HSM" -c "$C" example.com generate algorithm=ed25519
contains "$ERR" "cannot generate ed25519 keys" "algorithm the token cannot do, with what it can"
run 1 "$KNOT_HSM" -c "$C" unknown.example generate
contains "$ERR" "zone unknown.example. is not in" "unknown zone"
run 1 "$KNOT_HSM" -c "$C" nocard.example generate
contains "$ERR" "has no dnssec-policy" "zone without a pkcs11 keystore"
run 2 "$KNOT_HSM" -c "$C" example.com generate ksk=on
contains "$ERR" "ksk= takes yes or no" "ksk=on refused (keymgr would read it as no)"
run 2 "$KNOT_HSM" -c "$C" example.com generate colour=blue
contains "$ERR" "does not take 'colour='" "unknown key"
run 2 "$KNOT_HSM" -c "$C" example.com generate size=2048
contains "$ERR" "size= applies to RSA only" "size for EC"
run 2 "$KNOT_HSM" -c "$C" example.com generate algorithm=rsasha256 size=12x
contains "$ERR" "size= must be a number" "trailing garbage in a number"
run 1 "$KNOT_HSM" -c "$C" example.com import id=xyz
contains "$ERR" "'xyz' is not hex" "id that is not hex"
keygen_p11tool "$LABEL" "twin key" 7701
keygen_p11tool "$LABEL" "twin key" 7702
run 1 "$KNOT_HSM" -c "$C" example.com import label="twin key"
contains "$ERR" "several keys are labelled 'twin key'" "label matching several keys"
mv "$TMP/kasp" "$TMP/kasp.away"
run 1 "$KNOT_HSM" -c "$C" example.com generate
contains "$ERR" "KASP database directory $TMP/kasp does not exist" "missing KASP directory"
mv "$TMP/kasp.away" "$TMP/kasp"
run 2 "$KNOT_HSM" -c "$C" generate
contains "$ERR" "needs at least one zone" "generate without a zone"
lacks "$(cat "$TMP/out" "$TMP/err")" "$PIN" "no PIN in any output"
