#!/bin/sh
# A KSK on a second card (Knot 3.2, offline mode): the KSK side names two
# pkcs11 keystores, its policy the first; generate keystore=card2 makes the
# key on the second card and registers it in the KSK side's KASP (keymgr
# 3.2 looks for an imported key in the policy's keystore only, so knot-hsm
# registers it through a copy of the configuration whose policy names the
# keystore the key is on). And the rollover to card 2, started offline.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

two_cards_conf example.com. example.net.
run 0 knotc -c "$CONF" conf-check
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy keystore=card --write "$D/knot-hsm.conf"
contains "$(cat "$KSKC")" "  - id: card2" "the KSK side names the second card's keystore too"
run 0 knotc -c "$KSKC" conf-check

run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
first=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
# example.net.'s KSK on card 2.
mkdir "$TMP/tmpd"
TMPDIR=$TMP/tmpd run 0 "$KNOT_HSM" -c "$KSKC" example.net generate keystore=card2 label="example.net. KSK card2"
second=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
[ ${#second} -eq 40 ] || fail "no key id for the KSK on card 2: $OUT"
contains "$(keymgr -c "$KSKC" example.net. list)" "$second" "the KSK on card 2 is in the KSK side's KASP"
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=Card%20Two" > "$TMP/card2" 2>/dev/null
contains "$(cat "$TMP/card2")" "Label: example.net. KSK card2" "its private key is on card 2"
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" > "$TMP/card1" 2>/dev/null
lacks "$(cat "$TMP/card1")" "KSK card2" "and not on card 1"
equals "$(grep -c 'Label:' "$TMP/card1")" 1 "card 1 holds the first KSK only"
equals "$(ls -A "$TMP/tmpd")" "" "the private configuration for keymgr is removed again"
lacks "$(cat "$KSKC")" "knot-hsm-import" "the KSK side itself is unchanged"
# A key on the policy's own card still goes through the KSK side as it is.
run 0 keymgr -c "$KSKC" example.com. list
contains "$OUT" "$first" "the first card's KSK registered as before"

# Offline, rollover keystore=card2 for a zone whose KSK side policy signs
# with card: the new KSK is made on card 2 and registered (the ceremony signs
# with each KSK from the card it is on: test_rollover_cards); card 1 keeps
# the signing KSK.
knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" stanza="$stanza" include="$D/knot-hsm.conf" template="    storage: $D
$KNOT_HSM_TEMPLATE" example.com. example.net.
run 0 knotc -c "$CONF" conf-check
run 0 "$KNOT_HSM" -c "$CONF" example.com rollover keystore=card2
contains "$OUT" "example.com.: step published: new KSK" "rollover to another card starts offline"
new=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: step published: new KSK \([0-9a-f]*\) .*/\1/p')
[ -n "$new" ] || fail "no new KSK id: $OUT"
GNUTLS_PIN=$PIN p11tool --login --list-all "pkcs11:token=Card%20Two" > "$TMP/card2.after" 2>/dev/null
contains "$(cat "$TMP/card2.after")" "Label: example.com. KSK after" "the new KSK is on card 2"
run 0 keymgr -c "$KSKC" example.com. list
contains "$OUT" "$new" "the new KSK is in the KSK side's KASP"
contains "$OUT" "$first" "beside the signing one"
