#!/bin/sh
# status in online mode on the real card stack: Knot 3.5, the KSK on the
# emulated SmartCard-HSM behind our own pcscd and OpenSC, through the guard
# (as `knot-hsm policy` renders a card keystore). The cases of
# test_status_online.sh (cardsim), as an operator sees them:
#  - a healthy zone is OK with the thresholds derived from the policy
#    (rrsig-lifetime 36s, rrsig-refresh 24s: warn below 20 s, crit below
#    12 s), perfdata and --json carry them;
#  - the card pulled from the reader right after a signing: WARNING, "card
#    absent";
#  - knotd's next signing meets the absent card and fails, Knot schedules
#    none: CRITICAL, "signing not scheduled", naming knot-hsm ZONE heal;
#  - the served signature ran out: CRITICAL "expired: the zone no longer
#    validates" (delv agrees), never "in -N seconds"; with pcscd killed as
#    well, status also says "pcscd not running" and how to start it;
#  - pcscd started again, the card put back: status --heal, as the sample
#    timer runs it, heals and then reports OK; a second one heals nothing.
# The guard's recover_wait is 2 s here (15 s by default, test_sc_recover.sh):
# the failing signing waits that long for the card. The audit log counts the
# outage: one loss and one give-up in knotd, one recovery after the heal, and
# no loss or wait from the status runs (they never saw the card go).
# Needs root (smartcard.sh) and the Knot 3.5 build (tests/knot35/build.sh).
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knot35.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
sc_guard_stanza "recover_wait = 2"
# knotd signs the DNSKEY set with the card every 12 s (36 s - 24 s).
sc_online_knotd "$SC_GUARD_STANZA" rrsig-lifetime=36s rrsig-refresh=24s
contains "$(cat "$D/knot-hsm.conf")" "$KHSM_GUARD_MODULE" "the policy's card keystore goes through the guard"

dump() { knotd_dump_logs "$CONF"; tail -n 30 "$LOG" >&2; }
delv_dnskey() {
	delv_ask "$PORT" "$TMP/example.com.anchor" example.com example.com DNSKEY
}
signed() { grep -c 'DNSSEC, successfully signed' "$D/knotd.log" || true; }
# wait_signed N: until knotd has signed N times in all (300 polls).
wait_signed() {
	i=0
	until [ "$(signed)" -ge "$1" ]; do
		i=$((i + 1)); [ $i -le 300 ] || { dump; fail "knotd did not sign ($1) in 300 polls"; }
		sleep 0.1
	done
}
audit_count() { grep -c "\"fn\":\"$1\"" "$LOG" || true; }
contains "$(delv_dnskey)" "; fully validated" "start: delv validates the DNSKEY set signed by the card KSK"

# == healthy: OK with the thresholds derived from the policy
run 0 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "OK: 1 zone(s)" "a healthy online zone is OK with the default thresholds"
contains "$OUT" "signing by knotd: scheduled at " "status shows knotd's next signing"
contains "$OUT" "card KSK: present" "and the card KSK, seen through OpenSC and pcscd"
printf '%s\n' "$OUT" | head -n 1 | grep -Eq '\| remaining=[0-9]+s;20;12$' ||
	fail "perfdata with the policy's thresholds (20 s, 12 s) missing: $OUT"
pass "perfdata: remaining seconds;warn;crit from rrsig-refresh"
run 0 "$KNOT_HSM" -c "$CONF" status --json
contains "$OUT" '"warn_seconds": 20' "JSON has the derived warn threshold"
contains "$OUT" '"crit_seconds": 12' "and the crit threshold"
contains "$OUT" '"card_ksk": "present"' "and the card KSK"
contains "$OUT" '"signing": "scheduled"' "and knotd's signing"
run 2 "$KNOT_HSM" -c "$CONF" status --warn 14 --crit 7
contains "$OUT" "CRITICAL: 1 zone(s), warn 14 d, crit 7 d | remaining=" "--warn/--crit given: they are used"

# == the card pulled right after a signing by knotd: WARNING "card absent"
n=$(signed)
wait_signed $((n + 1))
lines=$(wc -l < "$D/knotd.log")
card_remove
run 1 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "WARNING: 1 zone(s)" "card absent, signature still fresh: WARNING"
contains "$OUT" "card KSK: absent" "status says the card KSK is absent"
contains "$OUT" "; card absent: reconnect the card (knot-hsm -c $CONF doctor checks it)" \
	"and says why it warns, card absent, with the remedy"
lacks "$OUT" "signing not scheduled" "knotd's signing is still scheduled"
lacks "$OUT" "pcscd not running" "pcscd runs: only the card is gone"
run 1 "$KNOT_HSM" -c "$CONF" status --json
contains "$OUT" '"card_ksk": "absent"' "JSON: card absent"

# == knotd's next signing meets the absent card and fails: CRITICAL naming heal
i=0
until tail -n +"$((lines + 1))" "$D/knotd.log" | grep -q "next signing not scheduled"; do
	i=$((i + 1)); [ $i -le 400 ] || { dump; fail "knotd did not fail to sign without the card in 400 polls"; }
	sleep 0.1
done
run 2 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "CRITICAL: 1 zone(s)" "signature past refresh, no signing scheduled: CRITICAL"
contains "$OUT" "signing not scheduled: reconnect the card, then run knot-hsm example.com. heal" \
	"status names the remedy, heal"
contains "$OUT" "signing by knotd: not scheduled" "and shows no signing scheduled"
lacks "$OUT" "(in -" "no negative remaining time"
run 2 "$KNOT_HSM" -c "$CONF" status --json
contains "$OUT" '"signing": "not scheduled"' "JSON: signing not scheduled"
equals "$(audit_count card_lost)" 1 "the guard in knotd saw the card go (one card_lost)"
equals "$(audit_count card_gone)" 1 "and gave up after recover_wait (one card_gone)"

# == the served signature runs out (36 s after the last signing): CRITICAL
# "expired", once delv no longer validates it either. Polled densely, so that
# the first "expired" falls in the signature's expiration second when status
# judges too early (validators accept a signature through that second).
i=0
while :; do
	set +e
	"$KNOT_HSM" -c "$CONF" status > "$TMP/st" 2>&1
	rc=$?
	set -e
	grep -q "expired: the zone no longer validates" "$TMP/st" && break
	i=$((i + 1)); [ $i -le 300 ] || { cat "$TMP/st" >&2; fail "the DNSKEY signature did not expire in 300 polls"; }
	sleep 0.1
done
equals "$rc" 2 "expired signatures: CRITICAL"
lacks "$(cat "$TMP/st")" "(in -" "no negative remaining time"
lacks "$(cat "$TMP/st")" ", 0 seconds ago)" "expired only past the signature's expiration second"
lacks "$(delv_dnskey)" "; fully validated" "delv agrees: the zone no longer validates"
# pcscd gone too (the field report's failure): status says so, with the remedy.
pcscd_kill9
run 2 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "expired: the zone no longer validates" "pcscd killed: still CRITICAL, expired"
contains "$OUT" "card KSK: pcscd not running" "the card KSK cannot be reached: pcscd not running"
contains "$OUT" "; pcscd not running: start it (systemctl start pcscd.socket)" "status names the remedy for pcscd"
run 2 "$KNOT_HSM" -c "$CONF" status --json
contains "$OUT" '"card_ksk": "pcscd not running"' "JSON: pcscd not running"
equals "$(audit_count card_lost)" 1 "the status runs added no card_lost to the audit log"
equals "$(audit_count card_gone)" 1 "nor a wait of the guard that ran out"

# Back to health: pcscd started, the card put back (knotd is not restarted);
# status --heal (what the sample timer runs) heals first, then judges: OK.
pcscd_start
card_insert
run 0 "$KNOT_HSM" -c "$CONF" status --heal
contains "$ERR" "healed: example.com.: knotd has no signing scheduled; knotc zone-sign" \
	"status --heal restarts the signing (its line on stderr)"
contains "$OUT" "OK: 1 zone(s)" "and then finds the zone OK"
printf '%s\n' "$OUT" | head -n 1 | grep -q '^OK: ' || fail "the status line stays first: $OUT"
pass "the monitoring line is still the first line"
contains "$OUT" "card KSK: present" "the card KSK is present again"
contains "$(delv_dnskey)" "; fully validated" "delv validates again after the heal"
equals "$(audit_count card_back)" 1 "the guard in knotd recovered the card once (card_back)"
equals "$(audit_count card_lost)" 1 "one outage, one card_lost"
run 0 "$KNOT_HSM" -c "$CONF" status --heal
contains "$ERR" "ok: example.com.: signing scheduled at " "a second status --heal heals nothing"
run 0 "$KNOT_HSM" audit verify "$LOG"
lacks "$(cat "$LOG")" "$PIN" "no PIN in the audit log"
grep '"fn":"card_' "$LOG"
