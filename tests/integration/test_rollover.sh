#!/bin/sh
# Offline-KSK mode on Knot 3.2: a planned KSK rollover with double DS, driven
# only by `knot-hsm rollover` runs, to the end with delete-old=yes. A parent
# knotd (com.) serves example.com.'s DS; the test changes it when rollover
# says "submit this DS" and "withdraw the old DS", as a registry would. BIND's
# delv validates the zone at every poll from the DS set the parent serves now
# and from the one it served a poll earlier (what caches may still hold, the
# DS TTL being shorter than a poll): no validation may fail. At the end only
# the new KSK is in the DNSKEY set, only its DS at the parent, and the card
# holds only the new KSK.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/parent.sh"

card_keystore

PORT=$(free_port)
PPORT=$(free_port)
while [ "$PPORT" = "$PORT" ]; do PPORT=$(free_port); done
P=$TMP/parent
PTTL=2
D=$TMP/knot
mkdir -p "$D/run" "$D/zones" "$D/keys"
zone_files "$D/zones" 2 example.com
CONF=$D/knot.conf
write_conf() { # $1: extra template lines, $2: include
	knot_conf "$CONF" rundir="$D/run" listen="$PORT" storage="$D" kasp="$D/keys" log="$D/knotd.log" \
		include="$2" template="    storage: $D/zones
    file: %s.zone
$1" example.com.
}
write_conf "" ""
OPTS="zsk-lifetime=1d rrsig-lifetime=60s rrsig-refresh=20s dnskey-ttl=2s zone-max-ttl=2s propagation-delay=2s"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy $OPTS --write "$D/knot-hsm.conf"
KSKC=$D/knot-hsm-ksk.conf
write_conf "$KNOT_HSM_TEMPLATE" "$D/knot-hsm.conf"
run 0 knotc -c "$CONF" conf-check

run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
run 0 "$KNOT_HSM" -c "$KSKC" example.com ds
OLD_DS=$(printf '%s\n' "$OUT" | grep ' DS ')
OLD_TAG=$(printf '%s\n' "$OLD_DS" | awk '{ print $3 }')
[ -n "$OLD_TAG" ] || fail "no DS for the first KSK"

# Usage errors before anything is touched.
run 2 "$KNOT_HSM" -c "$CONF" example.com rollover delete-old=maybe
run 2 "$KNOT_HSM" -c "$CONF" example.com rollover colour=red
pass "rollover refuses bad arguments"

run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
parent_start
SERIAL=2
parent_publish $SERIAL "$OLD_DS"
knotd_start "$CONF" "$D/knotd.out"
knotd_wait_serial "$CONF" example.com.

# anchor_file DS-LINES FILE: a delv trust-anchors block with one initial-ds per DS.
anchor_file() {
	{
		echo "trust-anchors {"
		printf '%s\n' "$1" | awk 'NF { printf "  %s initial-ds %s %s %s \"%s\";\n", $1, $3, $4, $5, $6 }'
		echo "};"
	} > "$2"
}
CHECKS=0
FAILURES=0
validate_under() { # DS-LINES label
	anchor_file "$1" "$TMP/anchor"
	for q in "www.example.com A" "example.com DNSKEY"; do
		out=$(delv @127.0.0.1 -p "$PORT" -a "$TMP/anchor" +root=example.com $q 2>&1)
		CHECKS=$((CHECKS + 1))
		case "$out" in
			*"; fully validated"*) ;;
			*) FAILURES=$((FAILURES + 1)); echo "validation failure ($2, $q): $out" >&2 ;;
		esac
	done
}
PREV_DS=$(parent_ds)
validate_poll() {
	cur=$(parent_ds)
	validate_under "$cur" "parent now"
	[ "$cur" = "$PREV_DS" ] || validate_under "$PREV_DS" "parent a poll ago"
	PREV_DS=$cur
}
validate_poll
equals "$FAILURES" 0 "delv validates from the parent's DS before the rollover"
# Negative control: an anchor that matches no key fails.
anchor_file "$(printf '%s\n' "$OLD_DS" | awk '{ $6 = "00" substr($6, 3); print }')" "$TMP/bad"
out=$(delv @127.0.0.1 -p "$PORT" -a "$TMP/bad" +root=example.com www.example.com A 2>&1)
lacks "$out" "fully validated" "delv rejects the zone under a wrong DS (negative control)"

# The rollover, one run per poll, with a ceremony before each (it skips
# while the pre-signed period reaches far enough).
steps=""
NEW_DS=""
i=0
done=0
while [ $i -lt 90 ] && [ $done -eq 0 ]; do
	i=$((i + 1))
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	run 0 "$KNOT_HSM" -c "$CONF" example.com rollover delete-old=yes server=127.0.0.1@$PPORT
	printf '%s\n' "$OUT" >> "$TMP/rollover.log"
	step=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: step \([a-z]*\).*/\1/p; s/^example\.com\.: rollover \(done\).*/\1/p' | tail -n 1)
	[ -n "$step" ] || fail "rollover printed no step: $OUT"
	case " $steps " in *" $step "*) ;; *) steps="$steps $step" ;; esac
	case "$OUT" in
		*"submit this DS: "*)
			ds=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: submit this DS: //p')
			if [ "$ds" != "$NEW_DS" ]; then
				NEW_DS=$ds
				SERIAL=$((SERIAL + 1))
				parent_publish $SERIAL "$OLD_DS" "$NEW_DS"
			fi ;;
		*"withdraw the old DS: "*)
			if parent_ds | grep -q " DS $OLD_TAG "; then
				SERIAL=$((SERIAL + 1))
				parent_publish $SERIAL "$NEW_DS"
			fi ;;
		*"rollover done"*) done=1 ;;
	esac
	validate_poll
	sleep 2
done
[ $done -eq 1 ] || { cat "$TMP/rollover.log" >&2; fail "the rollover did not end in $i polls (steps:$steps)"; }
pass "rollover went through$steps in $i runs"
for s in published submit switching withdraw removing done; do
	case " $steps " in *" $s "*) ;; *) cat "$TMP/rollover.log" >&2; fail "step $s never seen (steps:$steps)" ;; esac
done
pass "every step was seen"
NEW_TAG=$(printf '%s\n' "$NEW_DS" | awk '{ print $3 }')
[ -n "$NEW_TAG" ] && [ "$NEW_TAG" != "$OLD_TAG" ] || fail "no new KSK tag ($NEW_TAG)"

# A few more polls after the end (the ceremonies go on without the old KSK).
for j in 1 2 3 4; do
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	validate_poll
	sleep 2
done
[ "$CHECKS" -gt 20 ] || fail "only $CHECKS validations: the loop proves little"
equals "$FAILURES" 0 "zero validation failures in $CHECKS delv runs"

# End state: one KSK in the DNSKEY set, the new one; its DS alone at the parent.
run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +short
ksks=$(printf '%s\n' "$OUT" | grep -c '^257 ')
equals "$ksks" 1 "one KSK in the served DNSKEY set"
run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 2 [0-9]* [0-9]* $NEW_TAG example\.com\. " ||
	fail "the DNSKEY set is not signed by the new KSK $NEW_TAG: $OUT"
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 2 [0-9]* [0-9]* $OLD_TAG " &&
	fail "the old KSK $OLD_TAG still signs: $OUT"
pass "the DNSKEY set is signed by the new KSK $NEW_TAG only"
equals "$(parent_ds | awk '{ print $3 }')" "$NEW_TAG" "only the new DS at the parent"
run 0 keymgr -c "$KSKC" example.com. list
equals "$(printf '%s\n' "$OUT" | grep -c ' KSK ')" 1 "the KSK side's KASP holds one KSK"
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" > "$TMP/privkeys" 2>/dev/null
equals "$(grep -c 'Label:' "$TMP/privkeys")" 1 "the card holds one private key"
contains "$(grep 'Label:' "$TMP/privkeys")" "Label: example.com. KSK 1" \
	"it is the new KSK (label 'example.com. KSK <publish time>'); the old 'example.com. KSK' is gone"
run 0 "$KNOT_HSM" -c "$CONF" example.com rollover delete-old=yes server=127.0.0.1@$PPORT
contains "$OUT" "step published" "a run after the end starts the next rollover"
