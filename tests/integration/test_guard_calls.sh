#!/bin/sh
# Single calls through the guard module (tests/guard/guard_calls.c) on cardsim:
#  - fail closed means before: a key generation whose intent line cannot be
#    written is refused, and no key appears on the token;
#  - one wrong PIN per process: an application retrying its login costs the
#    card one try; at the final try or locked, the card is not asked;
#  - the software fill-ins on a card without digests (cardsim digest = no) and
#    without a random number generator (rng = no) answer like openssl, and the
#    PKCS #11 edge cases (NULL input, length query, short buffer) hold;
#  - a forked child initialises again and is serialised with its parent.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"
: "${GUARD_CALLS:?GUARD_CALLS must name the built tests/guard/guard_calls}"
: "${GUARD_SIGN:?GUARD_SIGN must name the built tests/guard/guard_sign}"
GUARD=$KHSM_GUARD_MODULE
mkdir "$TMP/audit"
LOG=$TMP/audit/audit.log
export KHSM_GUARD_CONF="$TMP/guard.conf"
printf 'module = %s\naudit_log = %s\n' "$CARDSIM" "$LOG" > "$KHSM_GUARD_CONF"
card_conf "latency_scale = 0" "pin_tries = 5"

# -- fail closed, before the card acts --------------------------------------------------------
run 0 "$GUARD_CALLS" "$GUARD" "$TMP/card.pin" keygen-full "$LOG" "unlogged key"
contains "$OUT" "C_GenerateKeyPair: 0x6" "log full: the key generation is refused (CKR_FUNCTION_FAILED)"
contains "$ERR" "cannot write the audit log" "and the guard says why"
equals "$(private_keys)" 0 "no key was made on the token"
run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" keygen "logged key"
grep -q '"fn":"C_GenerateKeyPair",.*"intent":true,"prev"' "$LOG" || fail "no intent line before the key generation"
n_intent=$(grep -n '"fn":"C_GenerateKeyPair",.*"intent":true' "$LOG" | tail -1 | cut -d: -f1)
n_done=$(grep -n '"fn":"C_GenerateKeyPair",.*"label":"logged key".*"rv":"CKR_OK"' "$LOG" | tail -1 | cut -d: -f1)
[ "$n_intent" -lt "$n_done" ] || fail "the intent line ($n_intent) is not before the result ($n_done)"
pass "with the log writable: intent line, then the result line"
equals "$(private_keys)" 1 "and the key is made"
run 0 "$KNOT_HSM" audit verify "$LOG"
contains "$OUT" "chain: intact" "the log is intact"

# -- one wrong PIN per process ----------------------------------------------------------------
printf '000000' > "$TMP/wrong.pin"; chmod 600 "$TMP/wrong.pin"
: > "$COUNTER"
run 1 "$GUARD_CALLS" "$GUARD" "$TMP/wrong.pin" login-retry 3
equals "$(printf '%s\n' "$OUT" | grep -c 'C_Login: 0xa0')" 3 "three logins, each CKR_PIN_INCORRECT"
equals "$(count "login fail")" 1 "the card saw one wrong PIN, not three"
contains "$ERR" "a wrong PIN was given before in this process" "the later ones refused by the guard, with the reason"
grep -q '"fn":"C_Login",.*"refused":"a wrong PIN was given before in this process","rv":"CKR_PIN_INCORRECT"' "$LOG" ||
	fail "the refused login is not in the log"
pass "and logged"
: > "$COUNTER"
run 0 "$GUARD_CALLS" "$GUARD" "$TMP/card.pin" login-retry 1
equals "$(count "login ok")" 1 "a new process with the right PIN logs in"
printf 'user_pin_tries_left 1\n' > "$KHSM_CARDSIM_CONF.state"
: > "$COUNTER"
run 1 "$GUARD_CALLS" "$GUARD" "$TMP/card.pin" login-retry 1
contains "$OUT" "C_Login: 0xa4" "final try: the login is refused (CKR_PIN_LOCKED)"
contains "$ERR" "at its final PIN try" "saying why"
equals "$(count login)" 0 "without asking the card"
echo "login_final_try = allow" >> "$KHSM_GUARD_CONF"
run 0 "$GUARD_CALLS" "$GUARD" "$TMP/card.pin" login-retry 1
equals "$(count "login ok")" 1 "login_final_try = allow: the card is asked"
printf 'module = %s\naudit_log = %s\n' "$CARDSIM" "$LOG" > "$KHSM_GUARD_CONF"
printf 'user_pin_tries_left 0\n' > "$KHSM_CARDSIM_CONF.state"
: > "$COUNTER"
run 1 "$GUARD_CALLS" "$GUARD" "$TMP/card.pin" login-retry 1
contains "$OUT" "C_Login: 0xa4" "locked: CKR_PIN_LOCKED"
equals "$(count login)" 0 "without asking the card"
printf 'user_pin_tries_left 5\n' > "$KHSM_CARDSIM_CONF.state"

# -- software fill-ins on a card that lacks them ------------------------------------------------
card_conf "latency_scale = 0" "digest = no" "rng = no"
head -c 5000 /dev/urandom > "$TMP/data"
run 1 "$GUARD_CALLS" "$CARDSIM" - digest "$TMP/data"
contains "$OUT" "FAILED: C_DigestInit" "control: cardsim digest = no has no digest mechanism"
run 1 "$GUARD_CALLS" "$CARDSIM" - random 32
contains "$OUT" "C_GenerateRandom: 0x121" "control: cardsim rng = no has no RNG (CKR_RANDOM_NO_RNG)"
run 0 "$GUARD_CALLS" "$GUARD" - digest "$TMP/data"
lacks "$OUT" "FAILED" "through the guard: every digest, length query, short buffer and NULL case as PKCS #11 says"
contains "$OUT" "C_Digest(NULL, 5): 0x7" "C_Digest with a NULL input: CKR_ARGUMENTS_BAD, no crash"
for alg in sha1 sha224 sha256 sha384 sha512; do
	want=$(openssl dgst -"$alg" -r "$TMP/data" | cut -d' ' -f1)
	contains "$OUT" "$alg: $want" "$alg filled in by the guard equals openssl's"
done
contains "$OUT" "sha256-empty: $(printf '' | openssl dgst -sha256 -r | cut -d' ' -f1)" "SHA-256 of nothing"
grep -q '"fn":"C_DigestInit",.*"mech":"CKM_SHA384","software":true' "$LOG" || fail "no software digest in the log"
pass "software digests are logged as such"
run 0 "$GUARD_CALLS" "$GUARD" - random 32
lacks "$OUT" "FAILED" "through the guard: CKF_RNG, 32 random bytes, two draws differ, NULL cases"
contains "$OUT" "C_SeedRandom: 0x120" "C_SeedRandom: CKR_RANDOM_SEED_NOT_SUPPORTED"
rnd=$(printf '%s\n' "$OUT" | sed -n 's/^random: //p')
equals "${#rnd}" 64 "32 bytes came back"
grep -q '"fn":"C_GenerateRandom",.*"len":32,"software":true,"rv":"CKR_OK"' "$LOG" || fail "no software random line"
pass "logged as software"

card_conf "latency_scale = 0" "verify = no"
run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" keygen "edge key"
run 0 "$GUARD_CALLS" "$GUARD" "$TMP/card.pin" sign-edge "edge key"
lacks "$OUT" "FAILED" "ECDSA-SHA256 hashed in software, verified in software: length query, short buffer, NULL cases, empty input"
contains "$OUT" "C_Sign(NULL, 5): 0x7" "C_Sign with a NULL input: CKR_ARGUMENTS_BAD"

# -- a forked child: initialised again, serialised with its parent --------------------------
card_conf "busy = fail" "latency_scale = 0.02"
run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" keygen "fork test"
: > "$COUNTER"
run 0 "$GUARD_CALLS" "$GUARD" "$TMP/card.pin" fork "fork test" 30
contains "$OUT" "child before C_Initialize: C_GetSlotList: 0x190" "the child is not initialised until it says so"
equals "$(printf '%s\n' "$OUT" | grep -c '^C_Initialize: 0x0')" 2 "C_Initialize in the child succeeds"
contains "$OUT" "parent: signed 30 failed 0" "the parent signs 30 times"
contains "$OUT" "child: signed 30 failed 0" "and the child 30, never finding the card busy"
equals "$(count sign)" 60 "the card made 60 signatures"
grep -q '"fn":"C_Initialize",.*"after_fork":true' "$LOG" || fail "no after_fork C_Initialize line"
pass "the child's C_Initialize is logged"
run 0 "$KNOT_HSM" audit verify "$LOG"
contains "$OUT" "chain: intact" "the log is intact after all of it"
