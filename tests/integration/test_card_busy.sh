#!/bin/sh
# A busy card and a slow card (cardsim busy = fail: CKR_DEVICE_ERROR while
# another process holds the card, as OpenSC answers). knot-hsm retries its card
# operations with backoff and says so, never repeats its login, and keeps its
# own processes off the card at the same time; a slow card costs generate one
# signature (the self-test), no more.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

card_conf "busy = fail"
C=$TMP/knot.conf
card_knot_conf "$C" example.com. example.net. example.org.

# -- another process holds the card while generate runs ----------------------------
# Key generation takes 0.5 s; as soon as the card is making the pair (cardsim's
# "keygen" line, written under its card lock: the login is over), a second
# process queues for the card (flock on cardsim's card lock, what every
# cardsim call takes) and then holds it for 1.5 s, right when knot-hsm needs
# it next.
card_conf "busy = fail" "latency_keygen_ms = 50000"
: > "$COUNTER"
# keygen_started N: wait for the Nth key generation of the counter (bounded)
keygen_started() {
	i=0
	until [ "$(count keygen)" -ge "$1" ]; do
		i=$((i + 1)); [ $i -le 600 ] || { cat "$TMP/gen.out" "$TMP/gen.err" >&2; fail "generate did not start a key generation"; }
		sleep 0.05
	done
}
"$KNOT_HSM" -c "$C" example.com generate > "$TMP/gen.out" 2> "$TMP/gen.err" &
gen=$!
keygen_started 1
flock "$CARD_LOCK" sleep 1.5 &
holder=$!
set +e; wait $gen; rc=$?; set -e
wait $holder || true
[ "$rc" -eq 0 ] || { cat "$TMP/gen.out" "$TMP/gen.err" >&2; fail "generate on a busy card"; }
pass "generate succeeds while another process holds the card"
contains "$(cat "$TMP/gen.err")" "note: card busy while" "the retries are shown"
contains "$(cat "$TMP/gen.err")" "retrying in 50 ms" "backoff starts at 50 ms"
contains "$(cat "$TMP/gen.err")" "retrying in 400 ms" "and doubles"
equals "$(count "login ok" $gen)" 1 "knot-hsm logged in once: the login is never repeated"
equals "$(count "login fail")" 0 "no failed login"
equals "$(count sign $gen)" 1 "one self-test signature"
id=$(sed -n 's/^key id: //p' "$TMP/gen.out")
equals "$(kasp_ids example.com.)" "$id" "the key is in KASP"

# The budget is finite: a card held longer than KHSM_RETRY_MS fails with words.
flock "$CARD_LOCK" sleep 3 &
holder=$!
sleep 0.3
: > "$COUNTER"
KHSM_RETRY_MS=400 run 1 "$KNOT_HSM" -c "$C" keys
wait $holder || true
contains "$ERR" "the card did not answer during the login (busy or removed" "busy at the login: said"
contains "$ERR" "knot-hsm never repeats a login by itself" "the login is not retried"
equals "$(count login)" 0 "the busy card never saw the PIN"
lacks "$ERR" "retrying" "no retry around the login"
# Held for longer than the budget after the key was made: generate gives up,
# leaves KASP alone, and either removes the new key or names the import
# command for it.
card_conf "busy = fail" "latency_keygen_ms = 50000"
keys_before=$(private_keys)
kg=$(count keygen)
KHSM_RETRY_MS=300 "$KNOT_HSM" -c "$C" example.net generate > "$TMP/gen.out" 2> "$TMP/gen.err" &
gen=$!
keygen_started $((kg + 1))
flock "$CARD_LOCK" sleep 2 &
holder=$!
set +e; wait $gen; rc=$?; set -e
wait $holder || true
ERR=$(cat "$TMP/gen.err")
[ "$rc" -eq 1 ] || cat "$TMP/gen.out" "$TMP/gen.err" >&2
equals "$rc" 1 "a card held past the budget: generate fails"
contains "$ERR" "gave up after" "the budget is named"
# Each outcome is held to its evidence: the private keys on the token
# (counted on SoftHSM, not through cardsim) grew by one exactly when knot-hsm
# says a key is left, and not at all when it says none is.
case "$ERR" in
	*"was removed, nothing is left half-done"*)
		equals "$(private_keys)" "$keys_before" "the new key is removed: no private key left on the card" ;;
	*"example.net. import id="*)
		equals "$(private_keys)" $((keys_before + 1)) "the new key is kept and its import command named" ;;
	# The holder can also win the card between the key pair's creation and
	# the read of its id (it queued on the card during the key generation):
	# then knot-hsm says the key was made and that a rerun names the import
	# command. Hold it to that promise: the rerun must name it.
	*"the card made the key pair"*"rerun the command: it finds the key and names the import"*)
		equals "$(private_keys)" $((keys_before + 1)) "the card made the key pair it reports"
		run 1 "$KNOT_HSM" -c "$C" example.net generate
		contains "$ERR" "example.net. import id=" "the key made while the card was taken: the rerun names its import command"
		equals "$(private_keys)" $((keys_before + 1)) "the rerun made no second key" ;;
	*"the card made the key pair"*) fail "a key was made but neither removed nor named: $ERR" ;;
	# Under load the holder can win before the key pair exists: then nothing
	# was made, which knot-hsm checks and would otherwise report.
	*"while generating the key pair"*)
		equals "$(private_keys)" "$keys_before" "the card was taken before the key existed: no private key made" ;;
	*) fail "neither removed nor reported: $ERR" ;;
esac
equals "$(kasp_ids example.net.)" "" "nothing in KASP"

# -- knot-hsm processes do not fight over the card ------------------------------------
# Logins take 0.3 s, key listing and loading keep the card for a while: two
# `keys` at once would collide on a card with busy = fail, but knot-hsm's own
# lock (KHSM_LOCK_FILE) makes them take turns, so neither sees the card busy.
card_conf "busy = fail" "latency_login_ms = 30000"
"$KNOT_HSM" -c "$C" keys > "$TMP/k1.out" 2> "$TMP/k1.err" &
k1=$!
"$KNOT_HSM" -c "$C" keys > "$TMP/k2.out" 2> "$TMP/k2.err" &
k2=$!
wait $k1 || { cat "$TMP/k1.err" >&2; fail "first keys"; }
wait $k2 || { cat "$TMP/k2.err" >&2; fail "second keys"; }
pass "two knot-hsm processes on the card at once both succeed"
lacks "$(cat "$TMP/k1.err" "$TMP/k2.err")" "busy" "they never found the card busy"
# Control: with separate lock files they do collide, and the one whose login
# found the card busy fails (a login is never retried).
KHSM_LOCK_FILE=$TMP/a.lock "$KNOT_HSM" -c "$C" keys > /dev/null 2> "$TMP/k1.err" &
k1=$!
KHSM_LOCK_FILE=$TMP/b.lock "$KNOT_HSM" -c "$C" keys > /dev/null 2> "$TMP/k2.err" &
k2=$!
set +e; wait $k1; r1=$?; wait $k2; r2=$?; set -e
[ $((r1 + r2)) -ge 1 ] || fail "control: two unserialised knot-hsm both succeeded; the test above proves nothing"
contains "$(cat "$TMP/k1.err" "$TMP/k2.err")" "did not answer during the login" "control: without the shared lock they collide"

# -- a slow card: one signature per generate ------------------------------------------
# latency_sign_ms = 170 at scale 1. The counter is the proof that generate signs
# exactly once (the self-test) and logs in once; no wall-clock bound here
# (timing belongs in bench/).
card_conf "latency_scale = 1" "latency_sign_ms = 170" "latency_keygen_ms = 0" "latency_login_ms = 0"
: > "$COUNTER"
"$KNOT_HSM" -c "$C" example.org generate label=slow > "$TMP/gen.out" 2> "$TMP/gen.err" &
gen=$!
wait $gen || { cat "$TMP/gen.err" >&2; fail "generate on a slow card"; }
equals "$(count sign $gen)" 1 "generate makes exactly one signature"
equals "$(count sign)" 1 "and nobody else signed (keymgr does not)"
equals "$(count "login ok" $gen)" 1 "slow card: generate logs in once"
equals "$(count "login fail")" 0 "slow card: no failed login"
