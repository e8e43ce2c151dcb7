#!/bin/sh
# test_rollover_online.sh (Knot 3.5, knotd managing the keys) with rollover
# runs killed once at each of the five points of test_rollover_kill.sh: the
# next runs go on, and the end state is the same (the new KSK alone in the
# DNSKEY set, at the parent and on the token), with zero validation failures.
ROLL_KILLS="generated import:TERM retire remove:TERM delete"
. "$KHSM_SRCDIR/tests/integration/test_rollover_online.sh"
