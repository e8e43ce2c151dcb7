#!/bin/sh
# Online mode on Knot 3.5: a standby KSK on a second card, then the day the
# first card is lost. `standby keystore=card2` makes the KSK on card 2 and
# registers its DNSKEY public-only in knotd's KASP, so that knotd publishes
# it and never signs with it or manages it; the parent (a second knotd,
# changed by the test as a registry would) holds both DS. Card 1's token is
# deleted; `failover keystore=card2` makes the standby's card key the
# signing KSK at once, with no change at the parent. BIND's delv validates
# the zone from the parent's DS at every poll: no validation may fail, and
# at the end only the standby's KSK is in the DNSKEY set and signs it. The
# failover is killed at three points and rerun on the way.
# Needs the test-only Knot 3.5 build (sh tests/knot35/build.sh).
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knot35.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/parent.sh"

card_keystore
card_keystore_also "Card Two" card2
knotd_online_conf example.com keystore=card dnskey-ttl=3s zone-max-ttl=3s \
	propagation-delay=2s rrsig-lifetime=60s rrsig-refresh=20s zsk-lifetime=1d
contains "$(cat "$D/knot-hsm.conf")" "keystore: [ knot-hsm-card, knot-hsm-soft, card2 ]" \
	"the online policy lists the second card"
run 0 knotc -c "$CONF" conf-check
parent_setup

knotd_start "$CONF" "$D/knotd.out"
knotd_wait_serial "$CONF" example.com.
online_first_day
validate_start
validate_poll
equals "$FAILURES" 0 "delv validates from the parent's DS before the standby"

dump_on_fail() {
	[ "$status" -eq 0 ] && return 0
	grep -v "signing zone\|successfully signed\|zone event" "$D/knotd.log" | tail -n 40 >&2
	keymgr -c "$CONF" example.com. list >&2 2>&1
}
on_cleanup dump_on_fail

run 1 "$KNOT_HSM" -c "$CONF" example.com standby keystore=knot-hsm-card
contains "$ERR" "is the card the signing KSK is on" "a standby on the signing KSK's card is refused"
run 0 "$KNOT_HSM" -c "$CONF" example.com standby keystore=card2
contains "$OUT" "label 'example.com. KSK standby') on keystore card2" "standby made on card 2"
contains "$OUT" "it never signs" "it never signs"
contains "$OUT" "knotd: zone-keys-load example.com. done" "knotd loads it at once"
SB_DS=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: give the parent this DS beside the active one: //p')
SB_TAG=$(printf '%s\n' "$SB_DS" | awk '{ print $3 }')
[ -n "$SB_TAG" ] && [ "$SB_TAG" != "$OLD_TAG" ] || fail "no DS for the standby: $OUT"
run 0 keymgr -c "$CONF" example.com. list
sb_line=$(printf '%s\n' "$OUT" | grep " $SB_TAG KSK ")
contains "$sb_line" "public-only" "knotd's KASP holds the standby public-only"
lacks "$sb_line" "active=" "never active"
run 0 "$KNOT_HSM" -c "$CONF" example.com standby keystore=card2
contains "$OUT" ": nothing to do" "a rerun finds the standby and does nothing"
# keys: the card key is the zone's standby (its DNSKEY public-only in KASP)
run 0 "$KNOT_HSM" -c "$CONF" keys
printf '%s\n' "$OUT" | sed 's/^/# /'
contains "$OUT" "label 'example.com. KSK standby'" "keys lists the standby's card key"
contains "$OUT" "example.com. (KSK, standby)" "as the zone's standby"
lacks "$OUT" "used by no zone" "not as a key no zone uses"
run 0 "$KNOT_HSM" -c "$CONF" keys --json
contains "$OUT" '{"zone": "example.com.", "role": "standby"}' "keys --json: role standby"
run 1 "$KNOT_HSM" -c "$CONF" status --warn 1 --crit 0
contains "$OUT" "  standby KSK: KSK $SB_TAG, published " "status shows the standby"

GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=Card%20Two" > "$TMP/card2" 2>/dev/null
equals "$(grep -c 'Label:' "$TMP/card2")" 1 "card 2 holds the one standby key"
SERIAL=$((SERIAL + 1))
parent_publish $SERIAL "$OLD_DS" "$SB_DS"
PARENT_AT_FAILOVER=$(parent_ds)

# knotd publishes the standby and does not sign with it (or make it ready).
i=0
until [ "$(kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +short | grep -c '^257 ')" -eq 2 ]; do
	i=$((i + 1)); [ $i -le 20 ] || fail "the standby never reached the DNSKEY set"
	validate_poll
	sleep 1
done
for j in 1 2 3 4 5 6; do
	validate_poll
	sleep 2
done
run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 3 [0-9]* [0-9]* $SB_TAG " &&
	fail "the standby $SB_TAG signs the DNSKEY set: $OUT"
pass "knotd publishes the standby and does not sign with it"
run 0 kdig @127.0.0.1 -p "$PORT" example.com. CDS +short
lacks "$OUT" "$SB_TAG " "no CDS for the standby: knotd does not take it for a rollover"
run 0 keymgr -c "$CONF" example.com. list
sb_line=$(printf '%s\n' "$OUT" | grep " $SB_TAG KSK ")
lacks "$sb_line" "ready=" "knotd left the standby's timers alone (not ready)"
lacks "$sb_line" "active=" "(not active)"

# The day card 1 dies.
softhsm2-util --delete-token --token "$LABEL" >/dev/null
pass "card 1's token deleted"
# The failover, killed once right after the standby's card key is
# registered, once before its public-only entry is deleted (SIGTERM), once
# before the lost KSK's retire is set (parent.sh roll_kills_setup): each
# rerun goes on, and the fourth finishes.
ROLL_KILLS="import delete:TERM retire"
roll_kills_setup
FO_OUT=
for k in 1 2 3; do
	set +e
	KHSM_KEYMGR=$TMP/keymgr "$KNOT_HSM" -c "$CONF" example.com failover keystore=card2 >"$TMP/out" 2>"$TMP/err"
	got=$?
	set -e
	FO_OUT="$FO_OUT$(cat "$TMP/out")
"
	case $(tail -n 1 "$TMP/killed") in *:TERM) want=143 ;; *) want=137 ;; esac
	[ "$got" -eq "$want" ] || fail "failover run $k not killed as planned (exit $got): $(cat "$TMP/out" "$TMP/err")"
done
equals "$(cat "$TMP/killed" | tr '\n' ' ')" "import delete:TERM retire " "failover runs killed at: import, delete, retire"
run 0 "$KNOT_HSM" -c "$CONF" example.com failover keystore=card2
FO_OUT="$FO_OUT$OUT"
contains "$OUT" "example.com.: failover: the standby KSK " "the fourth run finishes the failover"
contains "$OUT" "(tag $SB_TAG) on keystore card2 signs from " "the standby signs"
contains "$OUT" "(tag $OLD_TAG) stops and leaves the DNSKEY set then" "the lost KSK stops"
contains "$OUT" "knotd: zone-keys-load example.com. done" "knotd takes it at once"
# (the first run's report died with it, unflushed: the include tells)
run 0 keymgr -c "$CONF" example.com. list
equals "$(printf '%s\n' "$OUT" | grep " $SB_TAG KSK " | grep -c "active=")" 1 \
	"one active KSK of the standby's tag: the reruns registered it once"
lacks "$(printf '%s\n' "$OUT" | grep " $SB_TAG KSK ")" "retire=" "and never retired it"
contains "$(sed -n '/id: knot-hsm-card/,/ksk-only/p' "$D/knot-hsm.conf")" "token=Card%20Two" \
	"the policy's card keystore moved to card 2 (knotd and keymgr refuse a keystore without token)"
contains "$(cat "$D/knotd.log")" "reloading configuration" "and knotd read it again"
run 0 keymgr -c "$CONF" example.com. list
pass "keymgr works on the policy again"
run 0 "$KNOT_HSM" -c "$CONF" example.com failover keystore=card2
contains "$OUT" "failover done already" "a rerun of the failover does nothing"
i=0
while :; do
	i=$((i + 1)); [ $i -le 30 ] || fail "the standby never took over"
	validate_poll
	dk=$(kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer)
	if [ "$(printf '%s\n' "$dk" | grep -c '	257 ')" -eq 1 ] &&
		printf '%s\n' "$dk" | grep -q "RRSIG	DNSKEY 13 2 3 [0-9]* [0-9]* $SB_TAG "; then
		break
	fi
	sleep 1
done
pass "the standby signs alone after $i polls"
for j in 1 2 3 4 5; do
	validate_poll
	sleep 2
done
[ "$CHECKS" -gt 15 ] || fail "only $CHECKS validations: the loop proves little"
equals "$FAILURES" 0 "zero validation failures in $CHECKS delv runs"
equals "$(parent_ds)" "$PARENT_AT_FAILOVER" "no parent change"
run 0 keymgr -c "$CONF" example.com. list
lacks "$OUT" "public-only" "the public-only entry is gone"
contains "$(printf '%s\n' "$OUT" | grep " $SB_TAG KSK ")" "active=" "the standby's card key is active"
# knot-hsm-card and card2 are one token now: no standby there.
run 1 "$KNOT_HSM" -c "$CONF" example.com standby keystore=card2
contains "$ERR" "is the card the signing KSK is on" "a standby on the signing KSK's token is refused under another keystore id"
