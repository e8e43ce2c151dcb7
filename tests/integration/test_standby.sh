#!/bin/sh
# Offline-KSK mode on Knot 3.2: a standby KSK on a second card, then the day
# the first card is lost. `standby keystore=card2` makes the KSK on card 2,
# published and never signing; `ds` gives both DS and the parent (a second
# knotd, changed by the test as a registry would) holds both. Card 1's token
# is deleted (the card is gone); `failover keystore=card2` makes the standby
# sign from the next ceremony, with no change at the parent. BIND's delv
# validates the zone from the parent's DS at every poll: no validation may
# fail, and at the end only the standby's KSK is in the DNSKEY set and signs
# it, while the parent still serves the same two DS.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/parent.sh"

# show: the last command's output as TAP comments (the guide quotes them).
show() { printf '%s\n' "$OUT" | sed 's/^/# /'; }

card_keystore
card_keystore_also "Card Two" card2
# a third card, for the standby after the failover
card_keystore_also "Card Three" card3

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
		stanza="$stanza" include="$2" template="    storage: $D/zones
    file: %s.zone
$1" example.com.
}
write_conf "" ""
OPTS="zsk-lifetime=1d rrsig-lifetime=60s rrsig-refresh=20s dnskey-ttl=2s zone-max-ttl=2s propagation-delay=2s"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card $OPTS --write "$D/knot-hsm.conf"
KSKC=$D/knot-hsm-ksk.conf
write_conf "$KNOT_HSM_TEMPLATE" "$D/knot-hsm.conf"
run 0 knotc -c "$CONF" conf-check
contains "$(cat "$KSKC")" "  - id: card2" "the KSK side names the second card's keystore"

run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
run 0 "$KNOT_HSM" -c "$KSKC" example.com ds
OLD_DS=$(printf '%s\n' "$OUT" | grep ' DS ')
OLD_TAG=$(printf '%s\n' "$OLD_DS" | awk '{ print $3 }')
[ -n "$OLD_TAG" ] || fail "no DS for the first KSK"

# Usage errors and refusals before anything is made.
run 2 "$KNOT_HSM" -c "$CONF" example.com standby
contains "$ERR" "keystore=ID is required" "standby needs keystore="
run 2 "$KNOT_HSM" -c "$CONF" example.com failover keystore=card2 colour=red
run 1 "$KNOT_HSM" -c "$CONF" example.com failover keystore=card2
contains "$ERR" "error: " "failover without a standby is an error"
contains "$ERR" "has no standby KSK to fail over to" "that names the missing standby"
run 1 "$KNOT_HSM" -c "$CONF" example.com standby keystore=card
contains "$ERR" "is the card the signing KSK is on" "a standby on the signing KSK's card is refused"
# (p11tool fails on a token with no private key)
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=Card%20Two" > "$TMP/card2" 2>/dev/null || true
equals "$(grep -c 'Label:' "$TMP/card2" || true)" 0 "card 2 is still empty"

run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
parent_start
SERIAL=2
parent_publish $SERIAL "$OLD_DS"
knotd_start "$CONF" "$D/knotd.out"
knotd_wait_serial "$CONF" example.com.

validate_start
validate_poll
equals "$FAILURES" 0 "delv validates from the parent's DS before the standby"

# The standby on card 2: one login there, published from the end of the
# pre-signed period, never active.
run 0 "$KNOT_HSM" -c "$CONF" example.com standby keystore=card2
show
contains "$OUT" "example.com.: standby KSK " "standby says what it made"
contains "$OUT" "label 'example.com. KSK standby') on keystore card2" "on card 2, with its label"
contains "$OUT" "it never signs" "and that it never signs"
contains "$OUT" "knot-hsm -c $CONF example.com. ceremony" "it points at the next ceremony"
SB_DS=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: give the parent this DS beside the active one: //p')
SB_TAG=$(printf '%s\n' "$SB_DS" | awk '{ print $3 }')
[ -n "$SB_TAG" ] && [ "$SB_TAG" != "$OLD_TAG" ] || fail "no DS for the standby: $OUT"
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=Card%20Two" > "$TMP/card2" 2>/dev/null
contains "$(cat "$TMP/card2")" "Label: example.com. KSK standby" "its private key is on card 2"
run 0 keymgr -c "$KSKC" example.com. list
sb_line=$(printf '%s\n' "$OUT" | grep " $SB_TAG KSK ")
contains "$sb_line" "publish=" "KASP: the standby is published"
lacks "$sb_line" "active=" "and never active"
lacks "$sb_line" "ready=" "nor ready"
# Idempotent: a rerun makes nothing.
run 0 "$KNOT_HSM" -c "$CONF" example.com standby keystore=card2
contains "$OUT" "published since" "a rerun finds the standby"
contains "$OUT" ": nothing to do" "and does nothing"
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=Card%20Two" > "$TMP/card2" 2>/dev/null
equals "$(grep -c 'Label:' "$TMP/card2")" 1 "card 2 holds one key after the rerun"
# ds: both, so that the parent holds both; keys: the roles; status: the standby.
run 0 "$KNOT_HSM" -c "$KSKC" example.com ds
show
contains "$OUT" "$OLD_DS" "ds prints the active KSK's DS"
contains "$OUT" "$SB_DS" "and the standby's beside it"
run 0 "$KNOT_HSM" -c "$KSKC" keys
show
contains "$OUT" "example.com. (KSK, standby)" "keys: the standby's role"
run 0 "$KNOT_HSM" -c "$KSKC" keys --json
contains "$OUT" '{"zone": "example.com.", "role": "standby"}' "keys --json: role standby"
contains "$OUT" '{"zone": "example.com.", "role": "active"}' "keys --json: the first KSK is active"
# (the 20 s pre-signed period alone is a warning under --warn 1)
run 1 "$KNOT_HSM" -c "$CONF" status --warn 1 --crit 0
show
contains "$OUT" "  standby KSK: KSK $SB_TAG, published " "status shows the standby"
contains "$OUT" "never signs" "and that it does not sign"
run 1 "$KNOT_HSM" -c "$CONF" status --json --warn 1 --crit 0
contains "$OUT" "\"standby\": \"KSK $SB_TAG, published" "status --json: the standby"
SERIAL=$((SERIAL + 1))
parent_publish $SERIAL "$OLD_DS" "$SB_DS"
PARENT_AT_FAILOVER=$(parent_ds)

# Ceremonies until the standby is in the served DNSKEY set, unsigned by it.
i=0
until kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +short | grep -q "^257 .*" &&
	[ "$(kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +short | grep -c '^257 ')" -eq 2 ]; do
	i=$((i + 1)); [ $i -le 40 ] || fail "the standby never reached the DNSKEY set"
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	printf '%s\n' "$OUT" >> "$TMP/ceremonies.out"
	validate_poll
	sleep 2
done
pass "the standby is in the served DNSKEY set after $i polls"
run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 2 [0-9]* [0-9]* $SB_TAG " &&
	fail "the standby $SB_TAG signs the DNSKEY set: $OUT"
pass "the standby does not sign"
for j in 1 2; do
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	validate_poll
	sleep 2
done

# The day card 1 dies: its token is gone.
softhsm2-util --delete-token --token "$LABEL" >/dev/null
softhsm2-util --show-slots | grep -q "Label: *SmartCard-HSM" && fail "card 1 is still there"
pass "card 1's token deleted"
run 1 "$KNOT_HSM" -c "$CONF" example.com failover keystore=card
printf '%s\n' "$ERR" | sed 's/^/# /'
contains "$ERR" "error: " "a failover to the lost card is an error"
run 0 "$KNOT_HSM" -c "$CONF" example.com failover keystore=card2
show
contains "$OUT" "example.com.: failover: the standby KSK " "failover says what it did"
contains "$OUT" "(tag $SB_TAG) on keystore card2 signs from " "the standby signs from the next period"
contains "$OUT" "(tag $OLD_TAG) stops and leaves the DNSKEY set then" "the lost KSK stops"
contains "$OUT" "no parent change" "and the parent stays as it is"
contains "$OUT" "now names keystore card2" "the KSK side's policy moves to card 2"
contains "$(cat "$KSKC")" "    keystore: card2" "the KSK side's policy names card2"
run 0 knotc -c "$KSKC" conf-check
run 0 "$KNOT_HSM" -c "$CONF" example.com failover keystore=card2
show
contains "$OUT" "failover done already: KSK " "a rerun of the failover does nothing"
lacks "$OUT" "now names keystore" "and leaves the policy alone"

# The next ceremonies: card 2 alone, the parent unchanged.
i=0
while :; do
	i=$((i + 1)); [ $i -le 40 ] || fail "the standby never took over"
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	[ $i -ne 1 ] || show
	printf '%s\n' "$OUT" >> "$TMP/ceremonies.out"
	validate_poll
	dk=$(kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer)
	if [ "$(printf '%s\n' "$dk" | grep -c '	257 ')" -eq 1 ] &&
		printf '%s\n' "$dk" | grep -q "RRSIG	DNSKEY 13 2 2 [0-9]* [0-9]* $SB_TAG "; then
		break
	fi
	sleep 2
done
pass "the standby signs alone after $i polls"
for j in 1 2 3 4; do
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	validate_poll
	sleep 2
done
contains "$(cat "$TMP/ceremonies.out")" "example.com.: pre-signed until" "the ceremonies signed"
lacks "$(cat "$TMP/ceremonies.out")" "signed by keymgr sign-ksr" \
	"knot-hsm's card signer signed every period, beside the standby and after the failover"
[ "$CHECKS" -gt 20 ] || fail "only $CHECKS validations: the loop proves little"
equals "$FAILURES" 0 "zero validation failures in $CHECKS delv runs"
equals "$(parent_ds)" "$PARENT_AT_FAILOVER" "no parent change"
run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 2 [0-9]* [0-9]* $OLD_TAG " &&
	fail "the lost KSK $OLD_TAG still signs: $OUT"
equals "$(printf '%s\n' "$OUT" | grep -c '	257 ')" 1 "one KSK in the served DNSKEY set"
printf '%s\n' "$OUT" | grep -q "DNSKEY	257 3 13 " || fail "no KSK: $OUT"
pass "the DNSKEY set is signed by the standby $SB_TAG only"
run 0 keymgr -c "$KSKC" example.com. list
contains "$(printf '%s\n' "$OUT" | grep " $SB_TAG KSK ")" " active=" "KASP: the former standby is active"
contains "$(printf '%s\n' "$OUT" | grep " $OLD_TAG KSK ")" " remove=" "and the lost KSK removed"
run 0 "$KNOT_HSM" -c "$CONF" example.com rollover server=127.0.0.1@$PPORT
contains "$OUT" "rollover done: KSK " "rollover sees the failover as a finished switch"

# After the failover: the lost KSK out of KASP (its card is gone), then a new
# standby on a third card, published by the next ceremonies.
run 0 "$KNOT_HSM" -c "$CONF" example.com rollover delete-old=yes server=127.0.0.1@$PPORT
show
contains "$OUT" "deleted from KASP; no card here holds it (a lost card)" \
	"delete-old takes the lost KSK out of KASP without its card"
run 0 keymgr -c "$KSKC" example.com. list
lacks "$OUT" " $OLD_TAG KSK " "the lost KSK is out of KASP"
run 0 "$KNOT_HSM" -c "$CONF" example.com standby keystore=card3
show
contains "$OUT" "on keystore card3, published from" "a new standby on the third card"
SB3_DS=$(printf '%s\n' "$OUT" | sed -n 's/^example\.com\.: give the parent this DS beside the active one: //p')
SB3_TAG=$(printf '%s\n' "$SB3_DS" | awk '{ print $3 }')
[ -n "$SB3_TAG" ] && [ "$SB3_TAG" != "$SB_TAG" ] || fail "no DS for the new standby: $OUT"
run 0 "$KNOT_HSM" -c "$KSKC" example.com ds
contains "$OUT" "$SB3_DS" "ds gives the new standby's DS"
contains "$OUT" " DS $SB_TAG " "beside the signing KSK's"
run 1 "$KNOT_HSM" -c "$KSKC" keys
contains "$ERR" "keystore card: not listed" "keys names the lost card's keystore as an error"
contains "$OUT" "example.com. (KSK, standby)" "and still lists the other cards: the new standby"
contains "$OUT" "example.com. (KSK)" "and the signing KSK"
SERIAL=$((SERIAL + 1))
parent_publish $SERIAL "$(parent_ds | grep " DS $SB_TAG ")" "$SB3_DS"
i=0
until [ "$(kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +short | grep -c '^257 ')" -eq 2 ]; do
	i=$((i + 1)); [ $i -le 40 ] || fail "the new standby never reached the DNSKEY set"
	run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+20s
	validate_poll
	sleep 2
done
validate_poll
equals "$FAILURES" 0 "zero validation failures with the new standby published ($CHECKS delv runs)"
run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 2 [0-9]* [0-9]* $SB3_TAG " &&
	fail "the new standby $SB3_TAG signs: $OUT"
pass "the new standby is published and does not sign"
