#!/bin/sh
# The suite is hermetic: a foreign token with the label the tests give their
# card, registered with p11-kit outside the test, changes no result. The
# foreign token is the real card stack's emulated SmartCard-HSM through OpenSC
# (as a real SmartCard-HSM plugged in would be), registered in every p11-kit
# registry of the "host" the SoftHSM tests start from: this test's own mount
# namespace (smartcard.sh), so the machine's registries are never written.
# The SoftHSM tests' commands (tests/smartcard/hermetic_probe.sh: tokens,
# keystore, generate, policy, keys, ceremony) give the same results with and
# without it, and see only their own SoftHSM module; a control run that keeps
# the host's registries (KHSM_HOST_P11KIT=1, what every test did before)
# does see the foreign token. Then existing SoftHSM and cardsim tests run
# whole with the foreign token present (tokens, keystore, generate, policy,
# ceremony_pipeline, card_busy, card_ceremony and online).
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
PROBE=$KHSM_SRCDIR/tests/smartcard/hermetic_probe.sh
# A nested test starts as from a shell of the host: not yet in its namespaces.
nested() { env -u KHSM_P11_PRIVATE -u KHSM_SC_NS "$@"; }

# The host's registries, as this namespace shows them: /etc through an overlay
# (so that /etc/pkcs11/modules can exist without touching the machine), the
# user's under $HOME (smartcard.sh made HOME=$TMP).
mkdir -p "$TMP/ov"
mount -t tmpfs tmpfs "$TMP/ov"
ov_umount() { umount /etc 2>/dev/null || true; umount "$TMP/ov"; }
on_cleanup ov_umount
mkdir -p "$TMP/ov/up" "$TMP/ov/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$TMP/ov/up,workdir=$TMP/ov/work" /etc ||
	fail "cannot lay an overlay on /etc in the test's mount namespace"
mkdir -p /etc/pkcs11/modules "$HOME/.config/pkcs11/modules"
FOREIGN="/usr/share/p11-kit/modules/opensc.module /etc/pkcs11/modules/foreign-etc.module $HOME/.config/pkcs11/modules/foreign-user.module"
foreign_unregister() { for f in $FOREIGN; do rm -f "$f"; done; }
foreign_register() { for f in $FOREIGN; do printf 'module: %s\n' "$OPENSC_MODULE" > "$f"; done; }

# -- without the foreign token -----------------------------------------------
foreign_unregister
run 0 nested env PROBE_OUT="$TMP/base" sh "$PROBE"
pass "the probe runs without a foreign token"
equals "$(head -n 1 "$TMP/base.modules")" "softhsm2: $SOFTHSM_MODULE" "the probe sees SoftHSM"

# -- with it -------------------------------------------------------------------
foreign_register
run 0 "$KNOT_HSM" tokens
contains "$OUT" "module: $OPENSC_MODULE" "outside the tests, p11-kit loads OpenSC"
n=$(printf '%s\n' "$OUT" | grep -c "^token: $SC_LABEL\$" || true)
[ "$n" -ge 1 ] || fail "the foreign token is not seen outside the tests: $OUT"
pass "outside the tests, the foreign token '$SC_LABEL' is there"

run 0 nested env PROBE_OUT="$TMP/foreign" sh "$PROBE"
pass "the probe runs with a foreign token of the same label"
equals "$(cat "$TMP/foreign.modules")" "$(cat "$TMP/base.modules")" "the probe sees the same modules and registries"
lacks "$(cat "$TMP/foreign.modules")" "opensc" "no foreign module reaches the probe"
while read -r reg files; do
	case "$reg" in
		/usr/share/p11-kit/modules:) equals "$files" "softhsm2.module" "$reg holds only the test's SoftHSM" ;;
		*) equals "$files" "" "$reg is empty for the test" ;;
	esac
done <<EOT
$(grep '^/' "$TMP/foreign.modules")
EOT
grep -q "^$HOME/.config/pkcs11/modules:" "$TMP/foreign.modules" || fail "the user's registry was not hidden"
grep -q '^/etc/pkcs11/modules:' "$TMP/foreign.modules" || fail "/etc/pkcs11/modules was not hidden"
pass "all three registries (system, /etc, the user's) were hidden"
if ! cmp -s "$TMP/base" "$TMP/foreign"; then
	diff "$TMP/base" "$TMP/foreign" >&2 || true
	fail "a foreign token of the same label changed the results of tokens/keystore/generate/policy/keys/ceremony"
fi
pass "tokens, keystore, generate, policy, keys and ceremony give the same results with the foreign token"

# -- control: the host's registries kept, as before ------------------------
run 0 nested env KHSM_HOST_P11KIT=1 PROBE_OUT="$TMP/host" sh "$PROBE" || true
contains "$(cat "$TMP/host.modules")" "opensc" "control: keeping the host's registries, the probe loads the foreign module"
contains "$(cat "$TMP/host")" "module: $OPENSC_MODULE" "control: and knot-hsm tokens lists the foreign token"
cmp -s "$TMP/base" "$TMP/host" && fail "control: the foreign token changed nothing even with the host's registries"
pass "control: the foreign token changes the results when the registries are not hidden"

# -- existing tests, whole, with the foreign token present --------------------
for t in tokens keystore generate policy ceremony_pipeline card_busy card_ceremony online; do
	run 0 nested sh "$KHSM_SRCDIR/tests/integration/test_$t.sh"
	pass "test_$t.sh passes with a foreign '$SC_LABEL' registered"
done
foreign_unregister
