#!/bin/sh
# knot-hsm policy for zones added later (offline mode, Knot 3.2): a run for a
# new zone keeps the zones the written files list ("kept:", "added:"), so the
# next ceremony pre-signs all of them; a zone leaves only with remove=yes; a
# run that would drop a zone whose KSK is on the KSK side refuses and names it.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
KSKC=$D/knot-hsm-ksk.conf
write_conf() { # $1: zone policy lines, $2: include
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" include="$2" template="$1" \
		example.com. example.net. example.org.
}
ksk_zones() { sed -n 's/^  - domain: //p' "$KSKC" | tr '\n' ' '; }
write_conf "    storage: $D" ""

# Two zones first, as on the first day; then a third one alone.
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy --write "$D/knot-hsm.conf"
contains "$OUT" "added: example.com." "first run adds the first zone"
contains "$OUT" "added: example.net." "and the second"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf"
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+5d generate-ksk=yes
contains "$OUT" "example.net.: pre-signed " "first ceremony pre-signs the two zones"

run 0 "$KNOT_HSM" -c "$CONF" example.org policy
contains "$OUT" "# kept: example.com.
# kept: example.net.
# added: example.org." "the preview says what it keeps and adds"
contains "$OUT" "    dnssec-policy: knot-hsm-ksk
  - domain: example.org." "the preview's KSK side has the third zone"
equals "$(ksk_zones)" "example.com. example.net. " "nothing written without --write"
run 0 "$KNOT_HSM" -c "$CONF" example.org policy --write "$D/knot-hsm.conf"
contains "$OUT" "kept: example.com." "example.com. kept"
contains "$OUT" "kept: example.net." "example.net. kept"
contains "$OUT" "added: example.org." "example.org. added"
equals "$(ksk_zones)" "example.com. example.net. example.org. " "all three zones on the KSK side"
contains "$(cat "$D/knot-hsm.conf")" "# zones: example.com. example.net. example.org." "all three in the include"
run 0 knotc -c "$KSKC" conf-check

# The next ceremony pre-signs all three (a fresh period: until beyond the first).
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net example.org ceremony until=+10d generate-ksk=yes
for z in example.com. example.net. example.org.; do
	contains "$OUT" "$z: pre-signed " "the ceremony after the third zone pre-signs $z"
done
# A rerun for a zone already there changes nothing in the list.
run 0 "$KNOT_HSM" -c "$CONF" example.net policy --write "$D/knot-hsm.conf"
lacks "$OUT" "added:" "a zone already listed is not added again"
equals "$(ksk_zones)" "example.com. example.net. example.org. " "still the three zones"

# remove=yes takes out the named zone only, and is recorded: later runs do
# not count its KSK (still on the KSK side) as a zone they drop.
run 0 "$KNOT_HSM" -c "$CONF" example.net policy remove=yes --write "$D/knot-hsm.conf"
contains "$OUT" "removed: example.net." "remove=yes says what it removed"
contains "$OUT" "kept: example.com." "and what it kept"
equals "$(ksk_zones)" "example.com. example.org. " "only example.net. left the KSK side"
contains "$(cat "$D/knot-hsm.conf")" "# knot-hsm: removed: example.net." "the removal is recorded"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy --write "$D/knot-hsm.conf"
equals "$(ksk_zones)" "example.com. example.org. " "a later run keeps the two zones"
run 1 "$KNOT_HSM" -c "$CONF" example.info policy remove=yes --write "$D/knot-hsm.conf"
contains "$ERR" "zone example.info. is not in the files knot-hsm policy wrote" "removing an unknown zone refused"
run 2 "$KNOT_HSM" -c "$CONF" example.com policy remove=on
contains "$ERR" "remove= takes yes or no" "remove= takes yes or no"

# A run that would drop zones refuses and names them: the written files are
# gone (a reinstall), the KSK side's KASP still holds the KSKs of three zones.
cp "$D/knot-hsm.conf" "$TMP/include.saved"
cp "$KSKC" "$TMP/ksk.saved"
rm "$D/knot-hsm.conf" "$KSKC"
write_conf "    storage: $D" ""
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$D/knot-hsm.conf"
contains "$ERR" "this run would drop example.net., example.org. from the KSK side" "a run that would drop zones refuses and names them"
contains "$ERR" "remove=yes" "and says how to take a zone out"
[ ! -e "$D/knot-hsm.conf" ] && [ ! -e "$KSKC" ] || fail "a refused run wrote a file"
pass "a refused run writes nothing"
run 1 "$KNOT_HSM" -c "$CONF" example.com example.org policy
contains "$ERR" "would drop example.net. from" "the preview refuses too, naming the zone left"
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net example.org policy --write "$D/knot-hsm.conf"
equals "$(ksk_zones)" "example.com. example.net. example.org. " "naming them all writes them all"
