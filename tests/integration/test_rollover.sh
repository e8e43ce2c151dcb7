#!/bin/sh
# Offline-KSK mode on Knot 3.2: a planned KSK rollover with double DS, driven
# only by `knot-hsm rollover` runs, to the end with delete-old=yes. A parent
# knotd (com.) serves example.com.'s DS; the test changes it when rollover
# says "submit this DS" and "withdraw the old DS", as a registry would. BIND's
# delv validates the zone at every poll from the DS set the parent serves now
# and from the one it served a poll earlier (what caches may still hold, the
# DS TTL being shorter than a poll): no validation may fail. At the end only
# the new KSK is in the DNSKEY set, only its DS at the parent, and the card
# holds only the new KSK. Every ceremony is signed by knot-hsm's own signer
# (the KSK timers inside the pre-signed period and the CDS included).
#
# ROLL_CARD2=1 (test_rollover_cards.sh): the rollover goes from the first
# card to a second one (every run says keystore=card2, as a timer would);
# the ceremonies sign with the KSK on the card it is on, the KSK side's
# policy moves to the second card at the switch, and at the end the first
# card holds nothing and can go: its token is deleted and the zone goes on.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/parent.sh"

card_keystore
ROLL_KS=
NEW_URI="pkcs11:token=SmartCard-HSM%20%28UserPIN%29"
if [ -n "${ROLL_CARD2:-}" ]; then
	card_keystore_also "Card Two" card2
	NEW_URI="pkcs11:token=Card%20Two"
	ROLL_KS=keystore=card2
fi

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
OPTS="zsk-lifetime=1d rrsig-lifetime=60s rrsig-refresh=20s dnskey-ttl=2s zone-max-ttl=2s propagation-delay=2s${ROLL_CARD2:+ keystore=card}"
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

validate_start
validate_poll
equals "$FAILURES" 0 "delv validates from the parent's DS before the rollover"
# Negative control: an anchor that matches no key fails.
anchor_file "$(printf '%s\n' "$OLD_DS" | awk '{ $6 = "00" substr($6, 3); print }')" "$TMP/bad"
out=$(delv_ask "$PORT" "$TMP/bad" example.com www.example.com A)
lacks "$out" "fully validated" "delv rejects the zone under a wrong DS (negative control)"

# ROLL_KILLS (test_rollover_kill.sh): rollover runs killed once at each
# point (parent.sh roll_kills_setup).
roll_kills_setup
# The rollover, one run per poll, with a ceremony before each (it skips
# while the pre-signed period reaches far enough).
steps=""
NEW_DS=""
i=0
done=0
while [ $i -lt 90 ] && [ $done -eq 0 ]; do
	i=$((i + 1))
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	printf '%s\n' "$OUT" >> "$TMP/ceremony.log"
	rollover_run
	printf '%s\n' "$OUT" >> "$TMP/rollover.log"
	step=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: step \([a-z]*\).*/\1/p; s/^example\.com\.: rollover \(done\).*/\1/p' | tail -n 1)
	[ -n "$step" ] || fail "rollover printed no step: $OUT"
	case " $steps " in *" $step "*) ;; *) steps="$steps $step" ;; esac
	case "$OUT" in
		*"submit this DS: "*)
			ds=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: submit this DS: //p')
			if [ "$ds" != "$NEW_DS" ]; then
				NEW_DS=$ds
				# While the parent has to act: status shows the step, keys the roles.
				# (the 20 s pre-signed period alone is a warning under --warn 1)
				run 1 "$KNOT_HSM" -c "$CONF" status --warn 1 --crit 0
				contains "$OUT" "  KSK rollover: submit since " "status shows the rollover's step"
				contains "$OUT" ", waits on the parent" "and that it waits on the parent"
				lacks "$OUT" "KSK rollover waits on the parent for more than" \
					"a wait of seconds is not late under --warn 1"
				sleep 1
				run 1 "$KNOT_HSM" -c "$CONF" status --warn 0 --crit 0
				contains "$OUT" "KSK rollover waits on the parent for more than 0 days" \
					"a wait on the parent longer than --warn is a warning"
				run 0 "$KNOT_HSM" -c "$KSKC" example.com ds format=epp-update
				contains "$OUT" "<secDNS:add>" "epp-update adds the new DS"
				contains "$OUT" "<secDNS:keyTag>$(printf '%s\n' "$ds" | awk '{ print $3 }')</secDNS:keyTag>" \
					"with the new KSK's tag"
				lacks "$OUT" "<secDNS:rem>" "and removes nothing yet"
				run 0 "$KNOT_HSM" -c "$KSKC" keys
				contains "$OUT" "example.com. (KSK, outgoing)" "keys: the old KSK is outgoing"
				contains "$OUT" "example.com. (KSK, incoming)" "keys: the new KSK is incoming"
				run 0 "$KNOT_HSM" -c "$KSKC" keys --json
				contains "$OUT" '{"zone": "example.com.", "role": "incoming"}' "keys --json: roles"
				SERIAL=$((SERIAL + 1))
				parent_publish $SERIAL "$OLD_DS" "$NEW_DS"
			fi ;;
		*"withdraw the old DS: "*)
			if parent_ds | grep -q " DS $OLD_TAG "; then
				run 0 "$KNOT_HSM" -c "$KSKC" example.com ds format=epp-update
				contains "$OUT" "<secDNS:rem>" "epp-update removes the old DS"
				contains "$OUT" "<secDNS:keyTag>$OLD_TAG</secDNS:keyTag>" "with the old KSK's tag"
				lacks "$OUT" "<secDNS:add>" "and adds nothing"
				SERIAL=$((SERIAL + 1))
				parent_publish $SERIAL "$NEW_DS"
			fi ;;
		*"rollover done"*) done=1 ;;
	esac
	validate_poll
	cds_note "$step"
	sleep 2
done
[ $done -eq 1 ] || { cat "$TMP/rollover.log" >&2; fail "the rollover did not end in $i polls (steps:$steps)"; }
pass "rollover went through$steps in $i runs"
for s in published submit switching withdraw removing done; do
	case " $steps " in *" $s "*) ;; *) cat "$TMP/rollover.log" >&2; fail "step $s never seen (steps:$steps)" ;; esac
done
pass "every step was seen"
contains "$(cat "$TMP/ceremony.log")" "example.com.: pre-signed " "the ceremonies pre-signed the zone"
lacks "$(cat "$TMP/ceremony.log")" "signed by keymgr sign-ksr" \
	"knot-hsm's own signer signed every ceremony, the rollover's timers and CDS included"
if [ -n "${ROLL_CARD2:-}" ]; then
	contains "$(cat "$TMP/rollover.log")" "example.com.: the KSK side's policy in $KSKC now names keystore card2, the new KSK's card" \
		"the KSK side's policy moves to the second card at the switch"
	contains "$(cat "$KSKC")" "keystore: card2" "the KSK side's policy names card2"
fi
if [ -n "${ROLL_KILLS:-}" ]; then
	equals "$(cat "$TMP/killed" | tr '\n' ' ')" "$(printf '%s ' $ROLL_KILLS)" "runs killed at: $ROLL_KILLS"
	equals "$(cat "$TMP/kills")" "" "every kill point was reached"
fi
NEW_TAG=$(printf '%s\n' "$NEW_DS" | awk '{ print $3 }')
[ -n "$NEW_TAG" ] && [ "$NEW_TAG" != "$OLD_TAG" ] || fail "no new KSK tag ($NEW_TAG)"
# CDS (Knot's default cds-cdnskey-publish: rollover): the new KSK's while
# the parent is to add its DS, none once the rollover is done.
case " $(cds_tags submit) " in
	*" $NEW_TAG "*) pass "the new KSK's CDS is served while its DS is to be submitted" ;;
	*) cat "$TMP/cds.log" >&2; fail "no CDS of the new KSK $NEW_TAG at step submit" ;;
esac
equals "$(cds_tags done)" "" "no CDS once the rollover is done"

# A few more polls after the end (the ceremonies go on without the old KSK).
for j in 1 2 3 4; do
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	validate_poll
	sleep 2
done
run 1 "$KNOT_HSM" -c "$KSKC" example.com ds format=epp-update
contains "$ERR" "no KSK rollover in progress" "epp-update without a rollover says so"
run 0 "$KNOT_HSM" -c "$KSKC" keys
contains "$OUT" "    zones: example.com. (KSK)" "keys lists the new KSK"
lacks "$OUT" "(KSK, " "with no role word: it signs alone after the rollover"
run 0 "$KNOT_HSM" -c "$KSKC" keys --json
contains "$OUT" '{"zone": "example.com.", "role": "active"}' "keys --json: its role is active"
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
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "$NEW_URI" > "$TMP/privkeys" 2>/dev/null
equals "$(grep -c 'Label:' "$TMP/privkeys")" 1 "the card holds one private key"
contains "$(grep 'Label:' "$TMP/privkeys")" "Label: example.com. KSK after $OLD_TAG" \
	"it is the new KSK (label 'example.com. KSK after $OLD_TAG'); the old 'example.com. KSK' is gone"
if [ -n "${ROLL_CARD2:-}" ]; then
	# p11tool exits 2 on a token without objects
	GNUTLS_PIN=$PIN p11tool --login --list-all "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" > "$TMP/card1" 2>&1 || :
	contains "$(cat "$TMP/card1")" "No matching objects found" "the first card holds nothing"
	# The first card can go: ceremonies log in to the second one only.
	run 0 softhsm2-util --delete-token --token "SmartCard-HSM (UserPIN)"
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+40s
	contains "$OUT" "example.com.: pre-signed " "a ceremony without the first card pre-signs the zone"
	lacks "$OUT" "signed by keymgr sign-ksr" "with knot-hsm's own signer"
	validate_poll
	equals "$FAILURES" 0 "the zone validates once the first card is gone"
fi
run 0 "$KNOT_HSM" -c "$CONF" example.com rollover $ROLL_KS delete-old=yes server=127.0.0.1@$PPORT
contains "$OUT" "step published" "a run after the end starts the next rollover"
