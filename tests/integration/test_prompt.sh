#!/bin/sh
# The PIN prompt (lib/pin.c) through a real pseudo-terminal: "User PIN: "
# is shown exactly once, what is typed is not echoed, the right PIN logs in
# once, a wrong PIN costs exactly one try on the card (cardsim's counter) and
# is not asked again. A control shows the harness does see an echo.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

PIN=648219
card_conf
PTY="python3 $KHSM_SRCDIR/tests/integration/ptyrun.py"
T=$TMP/transcript

# Control: with echo on (a shell's read), the typed line shows in the transcript.
$PTY "say:" "echoed-text-917" "$T" sh -c 'printf "say:"; read x; echo "[$x]"' || fail "control run failed"
contains "$(cat "$T")" "echoed-text-917" "control: the harness sees what the terminal echoes"

lookup() { # PIN typed at the prompt
	set +e
	$PTY "User PIN: " "$1" "$T" "$KNOT_HSM" uri --module "$CARDSIM" --token "$CARD_LABEL" \
		--object nothing --type private
	STATUS=$?
	set -e
	SHOWN=$(cat "$T")
}

# The right PIN: one prompt, no echo, one login.
lookup "$PIN"
equals "$STATUS" 1 "the lookup ends (no such object) after the login"
contains "$SHOWN" "no private key object labelled 'nothing'" "logged in and searched"
equals "$(printf '%s' "$SHOWN" | grep -o 'User PIN: ' | wc -l)" 1 "exactly one prompt"
lacks "$SHOWN" "$PIN" "the typed PIN is not echoed"
equals "$(count "login ok")" 1 "one successful login"
equals "$(count "login fail")" 0 "no failed login"

# A wrong PIN: one try, one prompt, the error says so.
: > "$COUNTER"
lookup "111111"
equals "$STATUS" 1 "a wrong PIN fails"
contains "$SHOWN" "error: wrong PIN: the token refused the PIN; it was not retried" "the error says wrong PIN, not retried"
lacks "$SHOWN" "111111" "the wrong PIN is not echoed either"
equals "$(printf '%s' "$SHOWN" | grep -o 'User PIN: ' | wc -l)" 1 "not asked again"
equals "$(count "login fail")" 1 "a wrong PIN is exactly one try on the card"
equals "$(count "login ok")" 0 "and no other login"
