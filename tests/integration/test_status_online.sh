#!/bin/sh
# status in online mode (Knot 3.5, card KSK on cardsim), thresholds derived
# from the policy (rrsig-lifetime 60s, rrsig-refresh 50s: warn below 40 s,
# crit below 25 s):
#  - a healthy zone is OK with the default thresholds, perfdata and --json
#    carry the remaining seconds and the thresholds;
#  - the card pulled right after a signing: WARNING, "card absent";
#  - knotd's signing failed and Knot scheduled none: CRITICAL, "signing not
#    scheduled", naming knot-hsm ZONE heal;
#  - the served signature ran out: CRITICAL "expired: the zone no longer
#    validates", never "in -N seconds";
#  - status --heal, as the sample timer runs it, heals and then reports OK;
#  - status, with --heal or without, lists the zone's keys with keymgr once.
#
# Needs the test-only Knot 3.5 build (sh tests/knot35/build.sh); without it the
# test fails, it does not skip.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knot35.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

# card_id = no: knotd 3.5 generates the KSK with its own CKA_ID (see test_card_online.sh).
REMOVED=$TMP/removed
card_conf "latency_scale = 0" "card_id = no" "busy = wait" "removed_file = $REMOVED"

run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card
stanza=$OUT

knotd_online_conf example.com dnskey-ttl=3s zone-max-ttl=3s propagation-delay=3s \
	rrsig-lifetime=60s rrsig-refresh=50s
knotd_start "$CONF" "$D/knotd.out"
knotd_wait_serial "$CONF" example.com.

run 0 "$KNOT_HSM" -c "$CONF" example.com ds
ds=$(printf '%s\n' "$OUT" | grep ' DS ' | head -n 1)
[ -n "$ds" ] || fail "knot-hsm ds printed no DS: $OUT"
printf '%s\n' "$ds" | awk '{ printf "trust-anchors {\n  %s initial-ds %s %s %s \"%s\";\n};\n", $1, $3, $4, $5, $6 }' \
	> "$TMP/com.anchor"
delv_dnskey() {
	delv_ask "$PORT" "$TMP/com.anchor" example.com example.com DNSKEY
}
signed() { grep -c 'DNSSEC, successfully signed' "$D/knotd.log" || true; }
# wait_signed N: until knotd has signed N times in all.
wait_signed() {
	i=0
	until [ "$(signed)" -ge "$1" ]; do
		i=$((i + 1)); [ $i -le 300 ] || { cat "$D/knotd.log" >&2; fail "knotd did not sign ($1) within 30 s"; }
		sleep 0.1
	done
}
wait_signed 2
contains "$(delv_dnskey)" "; fully validated" "start: delv validates the DNSKEY set"

# == healthy: OK with the default thresholds (the old --warn 14 default warned here)
run 0 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "OK: 1 zone(s)" "a healthy online zone is OK with the default thresholds"
contains "$OUT" "signing by knotd: scheduled at " "status shows knotd's next signing"
contains "$OUT" "card KSK: present" "and the card KSK"
printf '%s\n' "$OUT" | head -n 1 | grep -Eq '\| remaining=[0-9]+s;40;25$' ||
	fail "perfdata with the policy's thresholds (40 s, 25 s) missing: $OUT"
pass "perfdata: remaining seconds;warn;crit from rrsig-refresh"
run 0 "$KNOT_HSM" -c "$CONF" status --json
contains "$OUT" '"warn_seconds": 40' "JSON has the derived warn threshold"
contains "$OUT" '"crit_seconds": 25' "and the crit threshold"
contains "$OUT" '"signing": "scheduled"' "and knotd's signing"
# The card budget online: the zone on its card, a signature every 10 s
# (lifetime 60 s, refresh 50 s) is 8,640 a day, 24 minutes of card time; the
# KSK knotd made is the card's one key pair, read without a login.
budget=$(printf '%s\n' "$OUT" | python3 -c '
import json, sys
for c in json.load(sys.stdin)["cards"]:
    print(c["keystore"], c["zones"], c["key_slots_used"], c["key_slots_total"], c["keeps_up"],
          c["signatures_peak_day"] >= 8640, c["peak_card_seconds"] * 6 >= c["signatures_peak_day"])')
equals "$budget" "card 1 1 None True True True" "status --json: the card's budget online, its one key pair"
# Explicit thresholds still win: a minute left is critical under --crit 7 days.
run 2 "$KNOT_HSM" -c "$CONF" status --warn 14 --crit 7
contains "$OUT" "CRITICAL: 1 zone(s), warn 14 d, crit 7 d | remaining=" "--warn/--crit given: they are used"

# Count, not time: status lists the zone's keys once (its own view and the
# health check read the same list) and runs keymgr for nothing else.
cat > "$TMP/keymgr-count" <<SH
#!/bin/sh
echo "\$*" >> "$TMP/keymgr.log"
exec "$KHSM_KEYMGR" "\$@"
SH
chmod +x "$TMP/keymgr-count"
# keymgr_runs: fail unless the last command ran keymgr exactly once, a list
# of example.com. in $CONF.
keymgr_runs() {
	lists=$(grep -c -- "-c $CONF -e example.com. list\$" "$TMP/keymgr.log" || true)
	runs=$(wc -l < "$TMP/keymgr.log")
	[ "$lists" -eq 1 ] || fail "$1 listed the zone's keys $lists times, not once: $(cat "$TMP/keymgr.log")"
	[ "$runs" -eq 1 ] || fail "$1 ran keymgr $runs times for one online zone, not once: $(cat "$TMP/keymgr.log")"
	pass "$1 runs keymgr once for one online zone (one list)"
}
: > "$TMP/keymgr.log"
KHSM_KEYMGR="$TMP/keymgr-count" run 0 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "card KSK: present" "status with the counting keymgr still sees the card KSK"
keymgr_runs status

# == card pulled right after a signing: WARNING "card absent"
n=$(signed)
wait_signed $((n + 1))
lines=$(wc -l < "$D/knotd.log")
touch "$REMOVED"
run 1 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "WARNING: 1 zone(s)" "card absent, signature still fresh: WARNING"
contains "$OUT" "card absent" "status says the card is absent"
contains "$OUT" "; card absent: reconnect the card (knot-hsm -c $CONF doctor checks it)" \
	"with the remedy"
lacks "$OUT" "signing not scheduled" "knotd's signing is still scheduled"

# == knotd's signing fails, nothing scheduled: CRITICAL naming heal
i=0
until tail -n +"$((lines + 1))" "$D/knotd.log" | grep -q "next signing not scheduled"; do
	i=$((i + 1)); [ $i -le 250 ] || { cat "$D/knotd.log" >&2; fail "knotd did not fail to sign within 25 s"; }
	sleep 0.1
done
run 2 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "CRITICAL: 1 zone(s)" "signature past refresh, no signing scheduled: CRITICAL"
contains "$OUT" "signing not scheduled: reconnect the card, then run knot-hsm example.com. heal" \
	"status names the remedy, heal"
contains "$OUT" "signing by knotd: not scheduled" "and shows no signing scheduled"
run 2 "$KNOT_HSM" -c "$CONF" status --json
contains "$OUT" '"signing": "not scheduled"' "JSON: signing not scheduled"

# == the served signature runs out (at most 50 s): CRITICAL "expired"
i=0
while :; do
	set +e
	"$KNOT_HSM" -c "$CONF" status > "$TMP/st" 2>&1
	rc=$?
	set -e
	grep -q "expired: the zone no longer validates" "$TMP/st" && break
	i=$((i + 1)); [ $i -le 120 ] || { cat "$TMP/st" >&2; fail "the DNSKEY signature did not expire in 120 polls"; }
	sleep 0.5
done
equals "$rc" 2 "expired signatures: CRITICAL"
lacks "$(cat "$TMP/st")" "(in -" "no negative remaining time"

# Back to health: card in; status --heal (what the sample timer runs) heals
# first, then judges: OK.
rm -f "$REMOVED"
: > "$TMP/keymgr.log"
KHSM_KEYMGR="$TMP/keymgr-count" run 0 "$KNOT_HSM" -c "$CONF" status --heal
contains "$ERR" "healed: example.com.: knotd has no signing scheduled; knotc zone-sign" \
	"status --heal restarts the signing (its line on stderr)"
# heal's check, its check after the signing and the status read one list
keymgr_runs "status --heal"
contains "$OUT" "OK: 1 zone(s)" "and then finds the zone OK"
printf '%s\n' "$OUT" | head -n 1 | grep -q '^OK: ' || fail "the status line stays first: $OUT"
pass "the monitoring line is still the first line"
contains "$(delv_dnskey)" "; fully validated" "delv validates again after the heal"
run 0 "$KNOT_HSM" -c "$CONF" status --heal
contains "$ERR" "ok: example.com.: signing scheduled at " "a second status --heal heals nothing"
