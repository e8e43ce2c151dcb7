#!/bin/sh
# The commands of the SoftHSM tests (tokens, keystore, generate, policy,
# ceremony) on a SoftHSM token labelled as the tests label the card, run by
# test_sc_hermetic.sh with and without a foreign token of the same label
# registered with p11-kit outside the test. Writes what they show, with the
# run's own paths, serials, key ids, tags and times made neutral, to
# $PROBE_OUT; also what p11-kit sees, to $PROBE_OUT.modules.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
: "${PROBE_OUT:?PROBE_OUT names the result file}"
p11-kit list-modules 2>&1 | grep -E '^[^[:space:]]' > "$PROBE_OUT.modules" || true
for reg in $P11_REGISTRIES; do
	[ -d "$reg" ] && printf '%s: %s\n' "$reg" "$(ls -A "$reg" | tr '\n' ' ')" >> "$PROBE_OUT.modules"
done
card_keystore
SC_LABEL=$LABEL
SC_LOG=""
serial=$(token_serial "$LABEL")
enc=$(printf %s "$TMP" | sed 's|/|%2F|g')
neutral() {
	sed -e "s|$TMP|TMP|g" -e "s|$enc|TMP|g" -e "s|$serial|SERIAL|g" -e 's/[0-9a-f]\{40\}/KEYID/g' \
		-e 's/[A-Za-z0-9+\/]\{40,\}=*/BASE64/g' -e 's/[0-9]\{4\}-[0-9-]*[T ][0-9:]*Z\{0,1\}/TIME/g' \
		-e 's/[0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}/DATE/g' -e 's/tag [0-9]*/tag N/g' \
		-e 's/[0-9.]\+ s\b/T s/g' -e 's/\b[0-9]\{5,\}\b/NUM/g'
}
{
	run 0 "$KNOT_HSM" tokens
	echo "== tokens"; printf '%s\n' "$OUT"
	echo "== keystore"; printf '%s\n' "$stanza"
	. "$KHSM_SRCDIR/tests/integration/knotd.sh"
	. "$KHSM_SRCDIR/tests/smartcard/ceremony.sh"
	sc_offline_conf "$TMP/a" 0 example.com example.net
	echo "== policy"; cat "$TMP/a/knot-hsm.conf" "$KSKC"
	echo "== keys (sorted)"; run 0 "$KNOT_HSM" -c "$CONF" keys --pin-file "$PINF"; printf '%s\n' "$OUT" | neutral | sort
	echo "== ceremony"
	run 0 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+5d
	printf '%s\n' "$OUT"
	for z in example.com example.net; do echo "$z: $(sc_zsks $z) ZSK, $(sc_ksks $z) KSK"; done
} > "$TMP/probe.raw" 2>&1
neutral < "$TMP/probe.raw" > "$PROBE_OUT"
pass "the probe ran"
