#!/bin/sh
# test_rollover_cards.sh (offline, card to card) with rollover runs killed
# once at each of the five points of test_rollover_kill.sh: the next runs go
# on, the KSK side's policy still moves to the second card, and the end state
# is the same (the second card's KSK alone, the first card empty, then gone),
# with zero validation failures.
ROLL_CARD2=1
ROLL_KILLS="generated import:TERM retire remove:TERM delete"
. "$KHSM_SRCDIR/tests/integration/test_rollover.sh"
