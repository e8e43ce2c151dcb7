#!/bin/sh
# A signer that heals itself, on the real card stack (OpenSC over our own
# pcscd, the emulated SmartCard-HSM) with Knot 3.5 in online mode, the KSK on
# the card through the guard (recover = yes, the default):
#  1. pcscd killed (kill -9) while knotd signs, restarted some seconds later:
#     the signing that met the dead pcscd waits in the guard and finishes
#     with the card once pcscd is back; no knotd restart, no operator; delv
#     validates throughout; the audit log has the loss and the recovery;
#  2. the card pulled for longer than the guard waits (recover_wait), so that
#     knotd's signing fails, and a second signing fails at once; put back,
#     `knot-hsm example.com heal` (what the heal timer runs) has knotd sign
#     with the card again;
#     delv validates throughout.
# test_sc_recover_off.sh runs step 1 with recover = no: knotd then never
# signs with the card again (the control that shows this test can fail).
# Needs root (smartcard.sh) and the Knot 3.5 build (tests/knot35/build.sh).
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knot35.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"
RECOVER=${KHSM_TEST_RECOVER:-yes}

sc_start
sc_guard_stanza "recover = $RECOVER"
# knotd signs the DNSKEY set with the card every 10 s; a signature lives
# 120 s, so it outlives failed refreshes by 110 s: the margin.
sc_online_knotd "$SC_GUARD_STANZA" rrsig-lifetime=120s rrsig-refresh=110s
contains "$(cat "$D/knot-hsm.conf")" "$KHSM_GUARD_MODULE" "the policy's card keystore goes through the guard"

dump() { cat "$D/knotd.log" "$D/knotd.out" >&2; tail -n 30 "$LOG" >&2; }
VALIDATED=0
# validate LABEL: delv (not Knot) validates the zone under the DS of the card KSK.
validate() {
	for q in "www.example.com A" "example.com DNSKEY"; do
		out=$(delv_ask "$PORT" "$TMP/example.com.anchor" example.com $q)
		case "$out" in
			*"; fully validated"*) ;;
			*) dump; fail "$1: delv does not validate $q: $out" ;;
		esac
	done
	VALIDATED=$((VALIDATED + 1))
}
# dnskey_sig: the DNSKEY RRSIG by the card KSK, "INCEPTION EXPIRATION", in seconds.
dnskey_sig() {
	kdig @127.0.0.1 -p "$PORT" +dnssec +norec example.com. DNSKEY +noall +answer |
		awk -v tag="$KSK_TAG" '$4 == "RRSIG" && $5 == "DNSKEY" && $11 == tag { print $10, $9 }' |
		python3 -c 'import sys, calendar, time
for line in sys.stdin:
    i, e = line.split()
    ts = lambda s: calendar.timegm(time.strptime(s, "%Y%m%d%H%M%S"))
    print(ts(i), ts(e))'
}
# signed_since T: the served DNSKEY set was signed by the card at or after T
# (Knot dates its signatures 90 minutes back: inception = signing time - 5400).
signed_since() {
	ss_incept=$(dnskey_sig | cut -d' ' -f1)
	[ -n "$ss_incept" ] && [ $((ss_incept + 5400)) -ge "$1" ]
}
log_since() { tail -n +"$(($1 + 1))" "$D/knotd.log"; }
audit_count() { grep -c "\"fn\":\"$1\"" "$LOG" || true; }
validate "start"
pass "start: delv validates example.com. under the DS of the card KSK"
awk '/initial-ds/ { d = $NF; gsub(/[";]/, "", d); c = substr(d, 1, 1); $NF = "\"" (c == "0" ? "1" : "0") substr(d, 2) "\";" } { print }' \
	"$TMP/example.com.anchor" > "$TMP/bad.anchor"
out=$(delv_ask "$PORT" "$TMP/bad.anchor" example.com www.example.com A)
lacks "$out" "fully validated" "delv rejects the zone under a wrong DS (negative control)"

# Wait for a scheduled signing with the card, so that the one after is due.
i=0
until [ "$(grep -c 'DNSSEC, successfully signed' "$D/knotd.log")" -ge 2 ]; do
	i=$((i + 1)); [ $i -le 300 ] || { dump; fail "knotd did not re-sign on its schedule"; }
	sleep 0.1
done

# == 1. pcscd killed and restarted while knotd signs ==============================
lines=$(wc -l < "$D/knotd.log")
sig_before=$(dnskey_sig)
pcscd_kill9
killed=$(date +%s)
# A signing now meets the dead pcscd (knotd's own schedule may add another).
run 0 knotc -c "$CONF" zone-sign example.com.
# pcscd stays dead for a while: 10 rounds of delv, half a second apart.
n=0
while [ $n -lt 10 ]; do
	validate "pcscd dead"
	sleep 0.5
	n=$((n + 1))
done
pcscd_restart
back=$(date +%s)
pass "pcscd killed with SIGKILL and restarted after $n rounds of validation"

if [ "$RECOVER" = no ]; then
	# The control: the guard passes the card's answers through. The signing
	# during the outage fails, and so does every signing after the restart.
	i=0
	until log_since "$lines" | grep -q "zone event 're-sign' failed"; do
		i=$((i + 1)); [ $i -le 300 ] || { dump; fail "control: knotd's signing without pcscd did not fail"; }
		sleep 0.1
	done
	pass "control: knotd's signing without pcscd failed"
	sig_failed=$(dnskey_sig)
	after=$(wc -l < "$D/knotd.log")
	run 0 knotc -c "$CONF" zone-sign example.com.
	i=0
	until log_since "$after" | grep -q "zone event 're-sign' failed"; do
		i=$((i + 1)); [ $i -le 300 ] || { dump; fail "control: knotd's signing after the restart neither failed nor stopped"; }
		sleep 0.1
	done
	lacks "$(log_since "$after")" "successfully signed" "control: knotd cannot sign with the card after the pcscd restart"
	signed_since "$back" && fail "control: a DNSKEY signature made after the restart is served"
	equals "$(dnskey_sig)" "$sig_failed" "control: knotd still serves the DNSKEY signature made before the outage"
	equals "$(audit_count card_lost)" 0 "control: the guard did not recover (recover = no)"
	validate "control, old signatures"
	exit 0
fi

# The signing that met the dead pcscd waits in the guard (its first
# C_GetSlotList finds the card gone) and finishes after the restart: a
# DNSKEY signature made by the card after pcscd was back, and no failure.
i=0
until signed_since "$back"; do
	i=$((i + 1))
	[ $((i % 10)) -eq 0 ] && validate "pcscd back, waiting for the signature"
	[ $i -le 300 ] || { dump; fail "knotd did not sign with the card after the pcscd restart"; }
	sleep 0.1
done
pass "after the pcscd restart knotd signs the DNSKEY set with the card KSK, no knotd restart, no knotc"
[ "$(dnskey_sig)" != "$sig_before" ] || fail "the DNSKEY signature did not change"
during=$(log_since "$lines")
lacks "$during" "failed" "no signing failed: the guard waited the outage out"
equals "$(audit_count card_lost)" 1 "the audit log has the loss"
# The guard makes OpenSC look at its readers again before each slot list, so
# the loss shows at a slot call, before a session is opened: C_GetSlotList, or
# C_GetSlotInfo when pcscd died between the two calls of one slot search.
grep '"fn":"card_lost"' "$LOG" | grep -Eq '"call":"C_GetSlot(List|Info)"' ||
	fail "the loss was not seen at a slot call, before a session was opened: $(grep card_lost "$LOG")"
equals "$(audit_count card_back)" 1 "and the recovery"
equals "$(audit_count card_gone)" 0 "the wait did not run out"
grep '"fn":"card_back"' "$LOG" | grep -q '"rv":"CKR_OK"' || fail "card_back without CKR_OK"
contains "$(cat "$D/knotd.out")" "knot-hsm-guard: the card in slot" "knotd's stderr says the card was lost and came back"
validate "pcscd back"
run 0 "$KNOT_HSM" audit verify "$LOG"
pass "the audit log's chain holds ($VALIDATED delv validations so far, all fully validated)"
[ $killed -le "$back" ] || fail "clock"

# == 2. the card pulled for longer than the guard waits ===========================
i=0
until [ "$(log_since "$lines" | grep -c 'DNSSEC, successfully signed')" -ge 2 ]; do
	i=$((i + 1)); [ $i -le 300 ] || { dump; fail "knotd did not re-sign on its schedule after the recovery"; }
	sleep 0.1
done
lines=$(wc -l < "$D/knotd.log")
card_remove
run 0 knotc -c "$CONF" zone-sign example.com.
# The guard waits recover_wait (15 s by default) for the card, then gives up:
# knotd's signing fails. delv validates all along.
i=0
until log_since "$lines" | grep -q "zone event 're-sign' failed"; do
	i=$((i + 1))
	[ $((i % 10)) -eq 0 ] && validate "card out"
	[ $i -le 600 ] || { dump; fail "knotd's signing without the card neither failed nor finished"; }
	sleep 0.1
done
sig_before=$(dnskey_sig)
contains "$(log_since "$lines")" "PKCS #11 token not available" "knotd's log says the card is not there"
equals "$(audit_count card_gone)" 1 "the guard's wait ran out once (card_gone)"
# A second signing with the card still out: the guard does not wait again.
failed=$(log_since "$lines" | grep -c "zone event 're-sign' failed")
run 0 knotc -c "$CONF" zone-sign example.com.
i=0
until [ "$(log_since "$lines" | grep -c "zone event 're-sign' failed")" -gt "$failed" ]; do
	i=$((i + 1)); [ $i -le 600 ] || { dump; fail "knotd's second signing without the card did not fail"; }
	sleep 0.1
done
equals "$(audit_count card_lost)" 2 "one loss per outage in the audit log"
equals "$(audit_count card_gone)" 1 "the second signing failed at once: no second wait in this outage"
equals "$(dnskey_sig)" "$sig_before" "knotd still serves the DNSKEY signature made before the removal"
validate "card out, knotd failed to sign twice"
card_insert
back=$(date +%s)
sleep 1
# Knot does not schedule a signing after a failed one: knot-hsm heal (what
# samples/knot-hsm-heal.timer runs every 30 s) sees no signing scheduled and
# the card answering, and asks knotd to sign (knotc zone-sign).
run 0 "$KNOT_HSM" -c "$CONF" example.com heal
contains "$OUT" "healed: example.com.: " "heal notices the signing Knot did not reschedule and asks for it"
contains "$OUT" "knotc zone-sign: knotd signed the zone with the card" "heal reports knotd's signing"
i=0
until signed_since "$back"; do
	i=$((i + 1))
	[ $((i % 10)) -eq 0 ] && validate "card back, waiting for the signature"
	[ $i -le 300 ] || { dump; fail "knotd did not sign with the card after the reinsertion"; }
	sleep 0.1
done
pass "after the reinsertion knotd signs the DNSKEY set with the card KSK again, no knotd restart"
equals "$(audit_count card_back)" 2 "the audit log has the second recovery"
validate "card back"
run 0 "$KNOT_HSM" audit verify "$LOG"
contains "$OUT" "card_lost" "audit verify counts the losses among the failed calls"
lacks "$(cat "$LOG")" "$PIN" "no PIN in the audit log"
pass "delv validated the zone $VALIDATED times, throughout both outages"
# What the guard recorded, for the test's log.
grep '"fn":"card_' "$LOG"
grep 'knot-hsm-guard:' "$D/knotd.out"
