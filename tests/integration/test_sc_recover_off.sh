#!/bin/sh
# The control of test_sc_recover.sh: the same knotd, card and pcscd restart
# with the guard's recovery turned off (recover = no). knotd's signing fails
# while pcscd is dead and keeps failing after pcscd is back: without the
# recovery the signer never heals (so test_sc_recover.sh can fail).
KHSM_TEST_RECOVER=no
. "$KHSM_SRCDIR/tests/integration/test_sc_recover.sh"
