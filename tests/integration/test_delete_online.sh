#!/bin/sh
# knot-hsm ZONE delete in the online mode (Knot 3.5, knot.conf itself): the
# signing KSK is refused with rollover named; an unused KSK (future timers)
# leaves Knot 3.5's KASP and the card. Needs the test-only Knot 3.5 build.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knot35.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/run" "$D/kasp"
CONF=$D/knot.conf
write_conf() { # include-line dnssec-policy-line
	knot_conf "$CONF" rundir="$D/run" storage="$D" kasp="$D/kasp" include="${1#include: }" \
		template="    storage: $D
    dnssec-signing: on
$2" example.com. example.net.
}
write_conf "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy mode=online --write "$D/knot-hsm.conf"
write_conf "include: $D/knot-hsm.conf" "    dnssec-policy: knot-hsm"
run 0 knotc -c "$CONF" conf-check
card_ids() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$LABEL" --login --pin "$PIN" --list-objects \
		2> "$TMP/objects.err" | sed -n 's/^ *ID: *//p' | sort -u
}

run 0 "$KNOT_HSM" -c "$CONF" example.com generate
active=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
run 1 "$KNOT_HSM" -c "$CONF" example.com delete id="$active"
contains "$ERR" "is the signing KSK of example.com." "online: the signing KSK is not deleted"
contains "$ERR" "knot-hsm -c $CONF example.com. rollover" "rollover named"

run 0 "$KNOT_HSM" -c "$CONF" example.net generate publish=+1000d active=+1000d
unused=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
contains "$(card_ids)" "$unused" "control: the card lists the unused key"
contains "$(keymgr -c "$CONF" example.net. list)" "$unused" "control: Knot 3.5's KASP lists it"
run 0 "$KNOT_HSM" -c "$CONF" example.net delete id="$unused"
contains "$OUT" "deleted KSK $unused" "online: the unused KSK is deleted"
lacks "$(keymgr -c "$CONF" example.net. list)" "$unused" "gone from Knot 3.5's KASP"
lacks "$(card_ids)" "$unused" "gone from the card"
contains "$(card_ids)" "$active" "the signing KSK stays on the card"
