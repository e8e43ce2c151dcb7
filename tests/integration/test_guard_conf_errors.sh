#!/bin/sh
# The guard module cannot start (a bad key in its configuration, or no
# configuration at all): ds, keys, generate and ceremony show the guard's own
# line ("knot-hsm-guard: FILE:LINE: unknown key …") and the remedy, not
# keymgr's "failed to load PKCS #11 module" nor a word about the module's
# architecture. Offline mode (Knot 3.2), cardsim behind the guard.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"

card_conf "latency_scale = 0"
export KHSM_GUARD_CONF="$TMP/guard.conf"
printf 'module = %s\naudit_log = %s\n' "$CARDSIM" "$TMP/audit.log" > "$KHSM_GUARD_CONF"
cp "$KHSM_GUARD_CONF" "$TMP/guard.good"
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card --guard
stanza=$(printf '%s\n' "$OUT" | grep -v '^#')
contains "$stanza" " $KHSM_GUARD_MODULE\"" "the keystore goes through the guard"

D=$TMP/z
mkdir -p "$D/zones" "$D/keys"
CONF=$D/knot.conf
KSKC=$D/knot-hsm-ksk.conf
zone_files "$D/zones" 60 example.com
write() { # zone lines, include line
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" include="${2#include: }" \
		template="    storage: $D/zones
    file: %s.zone
$1" example.com.
}
write "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com policy mode=offline --write "$D/knot-hsm.conf"
write "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $D/knot-hsm.conf"
run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
contains "$OUT" "example.com. DNSKEY 257 3 13 " "a KSK made on the card through the guard"
run 0 "$KNOT_HSM" -c "$KSKC" example.com ds
run 0 "$KNOT_HSM" -c "$KSKC" keys --pin-file "$TMP/card.pin"

# check CASE LINE: each of the four commands shows LINE and the remedy.
check() {
	for cmd in "example.com ds" "keys --pin-file $TMP/card.pin" "example.com generate label=second" \
		"example.com ceremony until=+14d"; do
		case $cmd in *ceremony*) c=$CONF ;; *) c=$KSKC ;; esac
		# shellcheck disable=SC2086
		run 1 "$KNOT_HSM" -c "$c" $cmd
		contains "$ERR" "$2" "$1: $cmd: the guard's own line"
		contains "$ERR" "fix the guard configuration $KHSM_GUARD_CONF (knot-hsm keystore --guard writes one when there is none" \
			"$1: $cmd: and the remedy"
		lacks "$ERR" "error: failed to load PKCS #11 module" "$1: $cmd: not keymgr's bare message"
		lacks "$ERR" "architecture" "$1: $cmd: nothing about the module's architecture"
	done
}

printf 'bogus = 1\n' >> "$KHSM_GUARD_CONF"
check "bad key" "knot-hsm-guard: $KHSM_GUARD_CONF:3: unknown key 'bogus'"
rm "$KHSM_GUARD_CONF"
check "no configuration" "knot-hsm-guard: cannot read the guard configuration $KHSM_GUARD_CONF"

# The control: with the configuration back, the same commands work.
cp "$TMP/guard.good" "$KHSM_GUARD_CONF"
run 0 "$KNOT_HSM" -c "$KSKC" example.com ds
contains "$OUT" "example.com. DS " "the configuration fixed: ds works again"
run 0 "$KNOT_HSM" -c "$KSKC" keys --pin-file "$TMP/card.pin"
