#!/bin/sh
# knot-hsm's own KSR signer (lib/skr_sign.c) against `keymgr sign-ksr` of
# Knot 3.2 on the same KSR and the same KSK side, in a period where every
# KSK timer of a rollover falls: the new KSK published (it signs as well,
# as Knot's KSKs do), ready (its CDS and CDNSKEY), active while the old one
# retires, the old one removed, and the refreshes between KSR sets. Both
# SKRs must have the same sets at the same times with the same records, the
# RRSIGs equal but for the signature bytes (ECDSA is randomised). Once for
# each cds-cdnskey-publish mode policy renders (cds=): which KSKs the CDS
# and CDNSKEY name differs in each.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

# Each record on one line, comments cut, the trailer dropped, and each RRSIG
# cut after its signer's name (the signature bytes differ).
norm() {
	awk '
		/^;; SignedKeyResponse 1.0 generated/ { next }
		/^;;/ { print; next }
		{
			l = $0; sub(/;.*/, "", l)
			o = gsub(/\(/, " ", l); c = gsub(/\)/, " ", l)
			line = line " " l; depth += o - c
			if (depth > 0) next
			n = split(line, f, /[ \t]+/); out = ""; stop = 0
			for (i = 1; i <= n; i++) {
				if (f[i] == "") continue
				out = out f[i] " "
				if (f[i] == "RRSIG" && !stop) stop = i + 8
				if (stop && i == stop) break
			}
			if (out != "") print out
			line = ""; depth = 0
		}' "$1"
}

# compare MODE: a KSK side of its own (token "SKR MODE", keystore id card)
# with policy cds=MODE, the rollover's period signed by both.
compare() {
	mode=$1
	D=$TMP/$mode
	mkdir -p "$D/keys"
	CONF=$D/knot.conf
	KSKC=$D/knot-hsm-ksk.conf
	token_init "SKR $mode"
	pin_file "$TMP/$mode.pin"
	run 0 "$KNOT_HSM" keystore --token "SKR $mode" --pin-file "$TMP/$mode.pin" --id card
	stanza=$OUT
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" template="    storage: $D" example.com.
	run 0 "$KNOT_HSM" -c "$CONF" example.com policy zsk-lifetime=1d rrsig-lifetime=60s rrsig-refresh=20s \
		dnskey-ttl=2s zone-max-ttl=2s propagation-delay=2s cds=$mode --write "$D/knot-hsm.conf"
	if [ "$mode" = rollover ]; then
		lacks "$(cat "$KSKC")" "cds-cdnskey-publish" "cds=rollover: Knot's default, not written"
	else
		contains "$(cat "$KSKC")" "    cds-cdnskey-publish: $mode" "cds=$mode on the KSK side"
		contains "$(cat "$D/knot-hsm.conf")" "    cds-cdnskey-publish: $mode" "cds=$mode on the ZSK side"
	fi
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" include="$D/knot-hsm.conf" template="    storage: $D
$KNOT_HSM_TEMPLATE" example.com.
	run 0 knotc -c "$CONF" conf-check
	run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
	old=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+10s
	# The rollover's first step: the new KSK published at the end of the
	# pre-signed period, ready a DNSKEY TTL + propagation delay later.
	run 0 "$KNOT_HSM" -c "$CONF" example.com rollover server=127.0.0.1@9
	contains "$OUT" "step published: new KSK" "$mode: the rollover publishes a new KSK"
	new=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: step published: new KSK \([0-9a-f]*\) .*/\1/p')
	[ -n "$new" ] && [ -n "$old" ] || fail "no key ids ($old, $new)"
	# The switch and the removal inside the next period too (as later
	# rollover runs would set them).
	now=$(date +%s)
	run 0 keymgr -c "$KSKC" example.com. set "$new" active=$((now + 75))
	run 0 keymgr -c "$KSKC" example.com. set "$old" retire=$((now + 75)) remove=$((now + 110))
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+200s
	lacks "$OUT" "signed by keymgr sign-ksr" "$mode: knot-hsm signed the rollover's period itself"
	KSR=$(printf '%s\n' "$OUT" | sed -n 's/.*archived \(.*\.ksr\) and .*/\1/p')
	SKR=${KSR%.ksr}.skr
	[ -f "$SKR" ] || fail "no SKR next to $KSR"
	run 0 keymgr -c "$KSKC" example.com. sign-ksr "$KSR"
	printf '%s\n' "$OUT" > "$D/keymgr.skr"
	norm "$SKR" > "$D/ours"
	norm "$D/keymgr.skr" > "$D/theirs"
	[ -s "$D/theirs" ] || fail "keymgr's SKR is empty"
	sets=$(grep -c '^;; SignedKeyResponse' "$D/theirs")
	[ "$sets" -ge 6 ] || { cat "$D/keymgr.skr" "$KSR" >&2; fail "only $sets sets in keymgr's SKR: the period has too few moments"; }
	if ! diff -u "$D/theirs" "$D/ours" > "$D/diff"; then
		cat "$D/diff" >&2
		fail "cds=$mode: knot-hsm's SKR differs from keymgr sign-ksr's"
	fi
	pass "cds=$mode: the same $sets sets, records and RRSIG fields as keymgr sign-ksr"
	tags=$(grep ' RRSIG DNSKEY ' "$D/ours" | awk '{ for (i = 1; i <= NF; i++) if ($i == "RRSIG") print $(i + 7) }' | sort -u | wc -l)
	equals "$tags" 2 "$mode: both KSKs sign in the period"
	last=$(awk '/^;; SignedKeyResponse/ { n = 0 } / DNSKEY 257 / { n++ } END { print n }' "$D/ours")
	equals "$last" 1 "$mode: the last set has one KSK: the old one is removed"
	# How many distinct keys the CDS name over the period.
	grep ' CDS ' "$D/ours" | grep -v RRSIG | awk '{ print $4 }' | sort -u | wc -l > "$D/cds_keys"
	grep -c ' RRSIG CDS ' "$D/ours" > "$D/cds_sigs" || :
}

for m in rollover none always double-ds; do compare "$m"; done
# What tells the modes apart: rollover names the new KSK while it waits,
# always and double-ds the old (active) one too, none names nothing.
equals "$(cat "$TMP/rollover/cds_keys")" 1 "cds=rollover: CDS for the waiting KSK only"
equals "$(cat "$TMP/none/cds_keys")" 0 "cds=none: no CDS"
equals "$(cat "$TMP/none/cds_sigs")" 0 "cds=none: no CDS signed"
equals "$(cat "$TMP/always/cds_keys")" 2 "cds=always: the active KSK's CDS as well"
equals "$(cat "$TMP/double-ds/cds_keys")" 2 "cds=double-ds: both KSKs' CDS"
