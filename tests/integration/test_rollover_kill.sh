#!/bin/sh
# test_rollover.sh with rollover runs killed once at each of five points:
# after the card made the new pair and before keymgr registers it, right
# after the new KSK is registered in KASP (SIGTERM), between the two timers
# of the switch, before the old KSK's remove timer (SIGTERM), and when
# delete-old is to delete the old KSK. The next runs go on, and the end state
# is the same (one KSK, the new one, in the DNSKEY set and at the parent,
# nothing else on the card), with zero validation failures.
ROLL_KILLS="generated import:TERM retire remove:TERM delete"
. "$KHSM_SRCDIR/tests/integration/test_rollover.sh"
