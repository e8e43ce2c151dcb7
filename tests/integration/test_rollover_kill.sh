#!/bin/sh
# test_rollover.sh with rollover runs killed (SIGKILL) once after the card
# made the new pair and before keymgr registers it, once right after the new
# KSK is registered in KASP and once between the two timers of the switch: the next runs go on, and the end state is the same (one KSK, the
# new one, in the DNSKEY set and at the parent, nothing else on the card),
# with zero validation failures.
ROLL_KILLS="generated import retire"
. "$KHSM_SRCDIR/tests/integration/test_rollover.sh"
