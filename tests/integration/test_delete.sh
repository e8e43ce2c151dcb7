#!/bin/sh
# knot-hsm ZONE delete on the KSK side of the offline mode (Knot 3.2): a key
# in the DNSKEY set (signing, or published and waiting), or shared with
# another zone, is refused with the reason and the way on; an unused key
# (future timers) leaves the KASP and the card, by id= or by label=.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
KSKC=$D/knot-hsm-ksk.conf
knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" template="    storage: $D" \
	example.com. example.net. example.org.
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net example.org policy --write "$D/knot-hsm.conf"
card_objects() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$LABEL" --login --pin "$PIN" --list-objects \
		> "$TMP/objects" 2> "$TMP/objects.err" || fail "listing the card: $(cat "$TMP/objects.err")"
	cat "$TMP/objects"
}
key_id() { printf '%s\n' "$OUT" | sed -n 's/^key id: //p'; }

# The signing KSK: refused, rollover named; still in KASP and on the card.
run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
active=$(key_id)
run 1 "$KNOT_HSM" -c "$KSKC" example.com delete id="$active"
contains "$ERR" "is the signing KSK of example.com." "the signing KSK is not deleted"
contains "$ERR" "knot-hsm -c $KSKC example.com. rollover" "rollover named"
contains "$(keymgr -c "$KSKC" example.com. list)" "$active" "still in KASP"
contains "$(card_objects)" "ID:         $active" "still on the card"

# Published, waiting for its DS (never active): refused too.
run 0 "$KNOT_HSM" -c "$KSKC" example.net generate publish=+0 active=0
published=$(key_id)
run 1 "$KNOT_HSM" -c "$KSKC" example.net delete id="$published"
contains "$ERR" "is published in the DNSKEY set of example.net." "a published key is not deleted"
contains "$(card_objects)" "ID:         $published" "the published key stays on the card"

# Unused (future timers): deleted from KASP and the card.
run 0 "$KNOT_HSM" -c "$KSKC" example.org generate publish=+1000d active=+1000d
unused=$(key_id)
contains "$(card_objects)" "ID:         $unused" "control: the listing shows the new key"
run 0 "$KNOT_HSM" -c "$KSKC" example.org delete id="$unused"
contains "$OUT" "deleted KSK $unused" "delete says what it deleted"
lacks "$(keymgr -c "$KSKC" example.org. list)" "$unused" "gone from KASP"
lacks "$(card_objects)" "$unused" "gone from the card (both objects)"
contains "$(cat "$TMP/objects")" "ID:         $active" "the other keys stay on the card"
run 1 "$KNOT_HSM" -c "$KSKC" example.org delete id="$unused"
contains "$ERR" "example.org. has no key $unused in its KASP" "a deleted id is not found again"

# By label: an unused key adopted from the card (imported with future timers).
keygen_p11tool "$LABEL" "spare ksk" 5a5a
run 0 "$KNOT_HSM" -c "$KSKC" example.org import id=5a5a publish=+1000d active=+1000d
run 1 "$KNOT_HSM" -c "$KSKC" example.org delete label="no such key"
contains "$ERR" "no private key labelled 'no such key'" "an unknown label is an error"
run 0 "$KNOT_HSM" -c "$KSKC" example.org delete label="spare ksk"
contains "$OUT" "deleted KSK 5a5a" "deleted by label"
lacks "$(card_objects)" "spare ksk" "the labelled key left the card"
lacks "$(keymgr -c "$KSKC" example.org. list)" "5a5a" "and the KASP"

# keymgr delete failing with the key still in KASP is an error, the key and
# its card objects stay (a keymgr in front of the real one refuses delete).
keygen_p11tool "$LABEL" "kept ksk" 6b6b
run 0 "$KNOT_HSM" -c "$KSKC" example.org import id=6b6b publish=+1000d active=+1000d
REAL_KEYMGR=$(command -v keymgr)
cat > "$TMP/keymgr-nodelete" <<SHIM
#!/bin/sh
case " \$* " in *" delete "*) echo "error: no delete today" >&2; exit 1 ;; esac
exec "$REAL_KEYMGR" "\$@"
SHIM
chmod +x "$TMP/keymgr-nodelete"
KHSM_KEYMGR=$TMP/keymgr-nodelete run 1 "$KNOT_HSM" -c "$KSKC" example.org delete id=6b6b
contains "$ERR" "no delete today" "keymgr's own error is shown when the key stays in KASP"
contains "$(keymgr -c "$KSKC" example.org. list)" "6b6b" "the key is still in KASP"
contains "$(card_objects)" "kept ksk" "and on the card"
run 0 "$KNOT_HSM" -c "$KSKC" example.org delete id=6b6b
contains "$OUT" "from KASP and the card" "deleted for real afterwards"

# Shared with another zone: refused on the zone that does not sign with it.
run 0 "$KNOT_HSM" -c "$KSKC" example.org import id="$active" publish=+1000d active=+1000d
run 1 "$KNOT_HSM" -c "$KSKC" example.org delete id="$active"
contains "$ERR" "is shared with example.com.; delete it there first" "a shared key is not deleted"
contains "$(keymgr -c "$KSKC" example.org. list)" "$active" "the shared entry stays"

# Usage.
run 1 "$KNOT_HSM" -c "$KSKC" example.com delete id=0123abcd
contains "$ERR" "example.com. has no key 0123abcd in its KASP" "id not found"
run 2 "$KNOT_HSM" -c "$KSKC" example.com delete id="$active" label="example.com. KSK"
contains "$ERR" "give id=HEX or label=TEXT (one of them)" "id= and label= together refused"
run 2 "$KNOT_HSM" -c "$KSKC" example.com delete
contains "$ERR" "give id=HEX or label=TEXT" "neither refused"
run 2 "$KNOT_HSM" -c "$KSKC" example.com example.net delete id="$active"
contains "$ERR" "delete takes one zone" "one zone only"
lacks "$(cat "$TMP/out" "$TMP/err")" "$PIN" "no PIN in any output"
