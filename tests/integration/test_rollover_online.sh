#!/bin/sh
# Online mode on Knot 3.5: a planned KSK rollover with double DS, driven only
# by `knot-hsm rollover` runs, to the end with delete-old=yes, while knotd
# manages the keys itself (manual: off: it rolls ZSKs, clears future KSK
# timers, drops a retired KSK from the DNSKEY set). The KSK is on a SoftHSM
# token (knotd generates the first one there), the ZSK in software. A parent
# knotd (com.) serves example.com.'s DS; the test changes it when rollover
# says "submit this DS" and "withdraw the old DS", as a registry would. BIND's
# delv validates at every poll from the DS set the parent serves now and from
# the one it served a poll earlier: no validation may fail. At the end only
# the new KSK is in the DNSKEY set, only its DS at the parent, and the token
# holds only the new KSK. Needs the test-only Knot 3.5 build
# (sh tests/knot35/build.sh); without it the test fails, it does not skip.
# ROLL_CARD2=1 (test_rollover_cards_online.sh): the rollover goes from the
# first token to a second one (every run says keystore=card2, as a timer
# would), and at the end the first token holds no key at all.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knot35.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/parent.sh"

card_keystore
TOKEN_URI="pkcs11:token=SmartCard-HSM%20%28UserPIN%29"
NEW_URI=$TOKEN_URI
ROLL_KS=
if [ -n "${ROLL_CARD2:-}" ]; then
	card_keystore_also "Card Two" card2
	NEW_URI="pkcs11:token=Card%20Two"
	ROLL_KS=keystore=card2
fi
knotd_online_conf example.com ${ROLL_CARD2:+keystore=card} dnskey-ttl=3s zone-max-ttl=3s \
	propagation-delay=2s rrsig-lifetime=60s rrsig-refresh=20s zsk-lifetime=1d
contains "$POLICY_OUT" "mode: online" "policy renders the online mode"
contains "$(cat "$D/knot-hsm.conf")" "delete-delay: 14d" \
	"the online policy keeps removed keys for knot-hsm rollover to delete"
if [ -n "${ROLL_CARD2:-}" ]; then
	contains "$(cat "$D/knot-hsm.conf")" "keystore: [ knot-hsm-card, knot-hsm-soft, card2 ]" \
		"the online policy lists the second card after the PEM keystore"
	# a card of knot.conf the policy does not list: refused before anything
	stanza0=$stanza
	card_keystore_also "Card Two" card3 "$TMP/card2.pin"
	knotd_online_write "$D/knot-hsm.conf" "    dnssec-policy: knot-hsm"
	run 1 "$KNOT_HSM" -c "$CONF" example.com rollover keystore=card3 server=127.0.0.1@1
	contains "$ERR" "keystore card3 is not among the keystores of policy knot-hsm" \
		"online, a rollover to a card the policy does not list is refused"
	contains "$ERR" "policy mode=online keystore=ID --write FILE --force" "the refusal names the policy run"
	stanza=$stanza0
	knotd_online_write "$D/knot-hsm.conf" "    dnssec-policy: knot-hsm"
fi
run 0 knotc -c "$CONF" conf-check
parent_setup

knotd_start "$CONF" "$D/knotd.out"
knotd_wait_serial "$CONF" example.com.
run 0 keymgr -c "$CONF" example.com. list
contains "$(printf '%s\n' "$OUT" | awk '$3 == "KSK"')" "PKCS11/knot-hsm-card" "knotd generated the KSK on the token"
# The first day: knotd's first KSK is ready until its DS is at the parent.
online_first_day
contains "$OUT" "knotd: zone-ksk-submitted example.com. done" "submitted confirms the first KSK"

validate_start
validate_poll
equals "$FAILURES" 0 "delv validates from the parent's DS before the rollover"
anchor_file "$(printf '%s\n' "$OLD_DS" | awk '{ $6 = (substr($6, 1, 1) == "0" ? "1" : "0") substr($6, 2); print }')" "$TMP/bad"
out=$(delv_ask "$PORT" "$TMP/bad" example.com www.example.com A)
lacks "$out" "fully validated" "delv rejects the zone under a wrong DS (negative control)"

# On a failure: what the runs printed and what knotd did with the keys.
dump_on_fail() {
	[ "$status" -eq 0 ] && return 0
	cat "$TMP/rollover.log" 2>/dev/null >&2
	grep -v "signing zone\|successfully signed\|zone event" "$D/knotd.log" | tail -n 40 >&2
	keymgr -c "$CONF" example.com. list >&2 2>&1
}
on_cleanup dump_on_fail
# ROLL_KILLS (test_rollover_online_kill.sh): runs killed once at each point
# (parent.sh roll_kills_setup).
roll_kills_setup
steps=""
NEW_DS=""
i=0
done=0
while [ $i -lt 60 ] && [ $done -eq 0 ]; do
	i=$((i + 1))
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
	cds_note "$step"
	sleep 2
done
[ $done -eq 1 ] || { cat "$TMP/rollover.log" "$D/knotd.log" >&2; fail "the rollover did not end in $i polls (steps:$steps)"; }
pass "rollover went through$steps in $i runs"
# Online the switch is at once: a run killed while it switches leaves the
# next run at withdraw, and switching is never printed.
want_steps="published submit switching withdraw removing done"
[ -z "${ROLL_KILLS:-}" ] || want_steps="published submit withdraw removing done"
for s in $want_steps; do
	case " $steps " in *" $s "*) ;; *) cat "$TMP/rollover.log" >&2; fail "step $s never seen (steps:$steps)" ;; esac
done
pass "every step was seen"
if [ -n "${ROLL_KILLS:-}" ]; then
	equals "$(cat "$TMP/killed" | tr '\n' ' ')" "$(printf '%s ' $ROLL_KILLS)" "runs killed at: $ROLL_KILLS"
	equals "$(cat "$TMP/kills")" "" "every kill point was reached"
fi
contains "$(cat "$TMP/rollover.log")" "knotd: zone-keys-load example.com. done" "each change reaches knotd at once"
lacks "$(cat "$D/knotd.log")" "cleared future timers" "knotd cleared none of knot-hsm's timers"
NEW_TAG=$(printf '%s\n' "$NEW_DS" | awk '{ print $3 }')
[ -n "$NEW_TAG" ] && [ "$NEW_TAG" != "$OLD_TAG" ] || fail "no new KSK tag ($NEW_TAG)"
# CDS (Knot's default cds-cdnskey-publish: rollover): the new KSK's while
# the parent is to add its DS, none once the rollover is done.
case " $(cds_tags submit) " in
	*" $NEW_TAG "*) pass "the new KSK's CDS is served while its DS is to be submitted" ;;
	*) cat "$TMP/cds.log" >&2; fail "no CDS of the new KSK $NEW_TAG at step submit" ;;
esac
equals "$(cds_tags done)" "" "no CDS once the rollover is done"

for j in 1 2 3; do
	validate_poll
	sleep 2
done
[ "$CHECKS" -gt 20 ] || fail "only $CHECKS validations: the loop proves little"
equals "$FAILURES" 0 "zero validation failures in $CHECKS delv runs"

run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +short
equals "$(printf '%s\n' "$OUT" | grep -c '^257 ')" 1 "one KSK in the served DNSKEY set"
run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 3 [0-9]* [0-9]* $NEW_TAG example\.com\. " ||
	fail "the DNSKEY set is not signed by the new KSK $NEW_TAG: $OUT"
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 3 [0-9]* [0-9]* $OLD_TAG " &&
	fail "the old KSK $OLD_TAG still signs: $OUT"
pass "the DNSKEY set is signed by the new KSK $NEW_TAG only"
equals "$(parent_ds | awk '{ print $3 }')" "$NEW_TAG" "only the new DS at the parent"
run 0 keymgr -c "$CONF" example.com. list
equals "$(printf '%s\n' "$OUT" | grep -c ' KSK ')" 1 "KASP holds one KSK"
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "$NEW_URI" > "$TMP/privkeys" 2>/dev/null
equals "$(grep -c 'Label:' "$TMP/privkeys")" 1 "the token holds one private key"
contains "$(grep 'Label:' "$TMP/privkeys")" "Label: example.com. KSK after $OLD_TAG" \
	"it is the new KSK; knotd's first KSK is gone from the token"
if [ -n "${ROLL_CARD2:-}" ]; then
	run 0 p11tool --list-token-urls
	contains "$OUT" ";token=SmartCard-HSM%20%28UserPIN%29" "the first token is still there"
	# p11tool exits 2 on a token without objects
	GNUTLS_PIN=$PIN p11tool --login --list-all "$TOKEN_URI" > "$TMP/card1" 2>&1 || :
	contains "$(cat "$TMP/card1")" "No matching objects found" "p11tool finds nothing on the first token"
	equals "$(grep -c 'Label:' "$TMP/card1")" 0 "the first token holds no object at all"
fi
run 0 "$KNOT_HSM" -c "$CONF" example.com rollover $ROLL_KS delete-old=yes server=127.0.0.1@$PPORT
contains "$OUT" "step published" "a run after the end starts the next rollover"
