#!/bin/sh
# Online mode on Knot 3.5: the planned KSK rollover of test_rollover_online.sh
# from the first token to a second one, with delete-old=yes: zero validation
# failures, at the end only the second token's KSK in the DNSKEY set and its
# DS at the parent, and the first token empty.
ROLL_CARD2=1
. "$KHSM_SRCDIR/tests/integration/test_rollover_online.sh"
