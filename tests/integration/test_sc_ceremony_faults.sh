#!/bin/sh
# Faults in the middle of an offline-KSK ceremony over three zones, on the
# real card stack (emulated SmartCard-HSM, opensc-pkcs11.so, our own pcscd):
#  - pcscd killed (kill -9) and restarted while the card signs the second
#    zone's first signature (the emulator's log says when: its third SIGN);
#  - the card pulled from the reader at the same point and put back.
# What knot-hsm does today, asserted exactly: it retries within its budget,
# does not get the card back in the same process (GnuTLS never re-opens the
# PC/SC context, see /work/shared/smartcard-hsm.md) and fails cleanly: exit 1,
# the first zone done, the second named with the reason, "rerun the same
# command". The rerun finishes every zone (the first skipped), and KASP holds
# no duplicate key: one ZSK per zone, the keys and timers the interrupted run
# left are those after the rerun, one KSK per zone, no new key on the card.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
. "$KHSM_SRCDIR/tests/smartcard/ceremony.sh"
card_keys() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["keys"]))' "$SC_STATE"; }
# kasp ZONE: the ZSK side's keys of ZONE with their timers.
kasp() { keymgr -c "$CONF" "$1." list 2>&1; }
# wait_sign N: until the card has started its Nth signature since $s0 (or the
# ceremony ended: then fail). Counts card operations; the loop bound only
# stops a hung run.
wait_sign() {
	ws_i=0
	until [ "$(sc_log_count_prefix "sign ")" -ge $((s0 + $1)) ]; do
		kill -0 "$cer" 2>/dev/null || { cat "$TMP/c.out" "$TMP/c.err" >&2; fail "the ceremony ended before the card's signature $1"; }
		ws_i=$((ws_i + 1)); [ $ws_i -le 6000 ] || fail "the card never started signature $1"
		sleep 0.05
	done
}

# interrupt LABEL DIR BREAK MEND REASON: three zones in DIR, a ceremony on a
# card that takes 1 s per signature; BREAK right after the card started its
# third signature (the second zone's first: each zone needs two), MEND once
# knot-hsm is in its retries; the ceremony's outcome and the rerun checked.
interrupt() {
	label=$1; dir=$2; brk=$3; mend=$4; reason=$5
	p=$(basename "$dir")
	zones="${p}1.example ${p}2.example ${p}3.example"
	set -- $zones
	z1=$1; z2=$2; z3=$3
	sc_conf
	sc_restart_emulator
	sc_offline_conf "$dir" 0 $zones
	keys0=$(card_keys)
	sc_conf sign_latency_ms=1000
	sc_restart_emulator
	s0=$(sc_log_count_prefix "sign ")
	KHSM_RETRY_MS=3000 "$KNOT_HSM" -c "$CONF" $zones ceremony until=+5d > "$TMP/c.out" 2> "$TMP/c.err" &
	cer=$!
	wait_sign 3
	$brk
	# knot-hsm is retrying once it says so; then the fault is mended.
	i=0
	until grep -q "retrying in" "$TMP/c.err"; do
		kill -0 "$cer" 2>/dev/null || break
		i=$((i + 1)); [ $i -le 6000 ] || fail "$label: knot-hsm neither retried nor ended"
		sleep 0.05
	done
	$mend
	set +e; wait $cer; rc=$?; set -e
	out=$(cat "$TMP/c.out"); err=$(cat "$TMP/c.err")
	made=$(( $(sc_log_count_prefix "sign ") - s0 ))
	echo "# $label: $(printf '%s\n' "$err" | grep -v 'retrying in' | tr '\n' ' ')"
	equals "$rc" 1 "$label: the ceremony fails"
	contains "$out" "$z1.: pre-signed " "$label: $z1, signed before, is done"
	contains "$out" ", 2 card signatures" "$label: $z1 took its two signatures"
	lacks "$out" "$z2.: pre-signed" "$label: $z2 is not reported done"
	lacks "$out" "$z3.: pre-signed" "$label: $z3 is not reported done"
	contains "$err" "retrying in" "$label: knot-hsm retried the card"
	contains "$err" "error: $z2.: $reason" "$label: $z2 fails: $reason"
	contains "$err" "note: 1 zone(s) before $z2. are done; $z2. and the zones after it keep their previous SKR; ZSKs keymgr pregenerated for them stay unpublished in their KASP and the next run uses them; rerun the same command to finish" \
		"$label: says what is done and to rerun"
	equals "$made" 3 "$label: the card made no signature after the fault (in the middle: 3 of 6)"
	lacks "$out$err" "$PIN" "$label: no PIN in the output"
	for z in $zones; do kasp $z > "$TMP/kasp.$z.before"; done
	sc_conf
	sc_restart_emulator

	s0=$(sc_log_count_prefix "sign ")
	run 0 "$KNOT_HSM" -c "$CONF" $zones ceremony until=+5d
	contains "$OUT" "$z1.: skipped" "$label, rerun: $z1, done before, is skipped"
	contains "$OUT" "$z2.: pre-signed " "$label, rerun: $z2 is done"
	contains "$OUT" "$z3.: pre-signed " "$label, rerun: $z3 is done"
	contains "$OUT" "3 zone(s), 2 pre-signed, 1 skipped, 4 card signatures" "$label, rerun: the card signs the two zones left"
	equals "$(( $(sc_log_count_prefix "sign ") - s0 ))" 4 "$label, rerun: the card made exactly those 4 signatures"
	for z in $zones; do
		equals "$(sc_zsks $z)" 1 "$label: one ZSK in $z's KASP (no duplicate)"
		equals "$(sc_ksks $z)" 1 "$label: one KSK for $z on the KSK side"
	done
	for z in $z1 $z2; do
		equals "$(kasp $z)" "$(cat "$TMP/kasp.$z.before")" "$label: $z's keys and timers are those the interrupted run left"
	done
	equals "$(card_keys)" "$keys0" "$label: no new key on the card"
	for z in $zones; do
		f=$(find "$dir/knot-hsm-archive" -name "$z.skr" | head -n 1)
		[ -n "$f" ] && [ "$(grep -c RRSIG "$f")" -eq 2 ] || fail "$label: no SKR with two card signatures for $z"
	done
	pass "$label: every zone has its SKR with the card's two signatures"
}

pcscd_break() { pcscd_kill9; }
pcscd_mend() { pcscd_restart; }
interrupt "pcscd kill -9 and restart" "$TMP/p" pcscd_break pcscd_mend "token busy: signing on the card: token busy"
card_break() { card_remove; }
card_mend() { card_insert; }
interrupt "card removed and reinserted" "$TMP/r" card_break card_mend "token busy: signing on the card: the card did not sign: token busy"
