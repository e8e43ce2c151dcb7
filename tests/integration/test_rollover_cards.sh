#!/bin/sh
# Offline mode on Knot 3.2: the planned KSK rollover of test_rollover.sh from
# the first card to a second one, with delete-old=yes: zero validation
# failures, every ceremony signed by knot-hsm from the card each KSK is on,
# at the end only the second card's KSK in the DNSKEY set and its DS at the
# parent, the first card empty, and the zone still pre-signed once it is
# gone.
ROLL_CARD2=1
. "$KHSM_SRCDIR/tests/integration/test_rollover.sh"
