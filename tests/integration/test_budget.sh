#!/bin/sh
# The card budget (offline, Knot 3.2): policy key-slots=N records the card's
# capacity in the KSK side's header and keeps it across runs; policy and
# status --json report each card's zones, signatures per year and on the
# busiest day, whether it keeps up, and its key slots read from the card;
# generate refuses before the card is full (the last slot is kept for a
# rollover) and names the other card and the keys that can go.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

two_cards_conf example.com. example.net. example.org. example.edu.
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net example.org example.edu policy keystore=card key-slots=3 \
	--write "$D/knot-hsm.conf"
contains "$(sed -n '1,6p' "$KSKC")" "# knot-hsm: key-slots=card:3" "the KSK side's header records the card's slots"
per_year=$(printf '%s\n' "$OUT" | sed -n 's/^card signatures per zone and year: //p')
peak=$(printf '%s\n' "$OUT" | sed -n 's/^card signatures per zone on its busiest day: \([0-9]*\) (a ceremony)$/\1/p')
[ -n "$per_year" ] && [ -n "$peak" ] || fail "no per-zone figures: $OUT"
# four zones of one policy: four times a zone's figures, the card read (empty)
contains "$OUT" "card card: 4 zone(s), $((4 * per_year)) signatures per year, $((4 * peak)) on the busiest day" \
	"policy's budget covers the four zones"
contains "$OUT" "at 6 signatures/s): keeps up" "a few zones keep a SmartCard-HSM well within a day"
contains "$OUT" "card card: key slots: 0 used, 3 free of 3" "the slots: read from the card, total from key-slots="
contains "$OUT" "card card2: no zone's policy signs with it" "the other card of knot.conf too"
contains "$OUT" "card card2: key slots: 0 used, free not known (the card does not say; give policy key-slots=N" \
	"its slots, the total not given"

# Another run without key-slots= keeps it; key-slots=ID:N adds another card's.
run 0 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card --write "$D/knot-hsm.conf"
contains "$(sed -n '1,6p' "$KSKC")" "# knot-hsm: key-slots=card:3" "kept when policy runs again without key-slots="
run 0 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card key-slots=card2:8 --write "$D/knot-hsm.conf"
contains "$(sed -n '1,6p' "$KSKC")" "# knot-hsm: key-slots=card2:8,card:3" "a second card's slots beside the first's"
contains "$OUT" "card card2: key slots: 0 used, 8 free of 8" "and the run reports them"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card key-slots=4 --write "$D/knot-hsm.conf"
contains "$(sed -n '1,6p' "$KSKC")" "# knot-hsm: key-slots=card:4,card2:8" "a new value replaces the card's old one"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card key-slots=card:3 --write "$D/knot-hsm.conf"
contains "$(sed -n '1,6p' "$KSKC")" "# knot-hsm: key-slots=card:3,card2:8" "so does ID:N"
run 2 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card key-slots=card:3,card:5
contains "$ERR" "key-slots=: 'card' is given twice" "an id given twice is refused"
run 2 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card key-slots=card9:8
contains "$ERR" "key-slots=: 'card9' is no pkcs11 keystore of knot.conf" "an unknown keystore is refused"
run 2 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card key-slots=0
contains "$ERR" "key-slots= takes a number of key pairs the card holds (1-65535)" "so is a count of 0"
contains "$(sed -n '1,6p' "$KSKC")" "# knot-hsm: key-slots=card:3,card2:8" "refused runs leave the header alone"

# Two KSKs fit; the third would take the last slot, kept for a rollover.
run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
run 0 "$KNOT_HSM" -c "$KSKC" example.net generate
list_card() { GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=$1" 2>/dev/null | grep -c 'Label:' || true; }
equals "$(list_card "SmartCard-HSM%20%28UserPIN%29")" 2 "two KSKs on card 1"
KASP_BEFORE=$(keymgr -c "$KSKC" example.org. list 2>&1 || true)
run 1 "$KNOT_HSM" -c "$KSKC" example.org generate
contains "$ERR" "the card of keystore card has one free key slot of 3, kept for a KSK rollover" "the last slot is kept"
contains "$ERR" "or make it on card card2: knot-hsm -c $KSKC example.org. generate ... keystore=card2" \
	"the refusal names the second card"
contains "$ERR" "Nothing was made" "and says nothing changed"
equals "$(list_card "SmartCard-HSM%20%28UserPIN%29")" 2 "no key made on card 1"
equals "$(keymgr -c "$KSKC" example.org. list 2>&1 || true)" "$KASP_BEFORE" "example.org.'s KASP unchanged"
# The remedy it names works.
run 0 "$KNOT_HSM" -c "$KSKC" example.org generate keystore=card2
equals "$(list_card "Card%20Two")" 1 "example.org.'s KSK on card 2"

# A key nobody registered fills the card: full, and the refusal names it.
keygen_p11tool "$LABEL" "stray key" 5a5a
run 1 "$KNOT_HSM" -c "$KSKC" example.edu generate
contains "$ERR" "the card of keystore card is full: 3 of its 3 key slots are used (policy key-slots=)" "a full card"
contains "$ERR" "'stray key' (id 5a5a) is in no zone's KASP: import it for a zone or remove it" "names the stray key"
equals "$(list_card "SmartCard-HSM%20%28UserPIN%29")" 3 "nothing made on the full card"

knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" stanza="$stanza" include="$D/knot-hsm.conf" template="    storage: $D
$KNOT_HSM_TEMPLATE" example.com. example.net. example.org. example.edu.
run 0 knotc -c "$CONF" conf-check
set +e; "$KNOT_HSM" -c "$CONF" status --json > "$TMP/status.json"; set -e
OUT=$(cat "$TMP/status.json")
cards=$(printf '%s\n' "$OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for c in d["cards"]:
    print(c["keystore"], c["zones"], c["key_slots_used"], c["key_slots_total"], c["key_slots_free"],
          c["keeps_up"], c["signatures_per_year"], c["assumed_signatures_per_second"])')
contains "$cards" "card 4 3 3 0 True $((4 * per_year)) 6" "status --json: card 1, its four zones, full"
contains "$cards" "card2 0 1 8 7 True 0 6" "status --json: card 2 with its key and the slots given for it"
