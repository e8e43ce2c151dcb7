#!/bin/sh
# No core dump may hold the PIN: knot-hsm is not dumpable from its start
# (prctl PR_SET_DUMPABLE 0), so while it holds a PIN no core is written and
# no process of the same user can ptrace it or read its memory. Seen from
# outside: the kernel makes /proc/PID/status of a non-dumpable process root's. The
# check runs knot-hsm as nobody (for root every /proc entry is root's) and a
# wrapper keymgr, started by generate while the PIN is held, looks at its
# parent; the wrapper's own /proc entry (dumpable: nobody's) is the control.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
knot_conf "$TMP/knot.conf" policy=card example.com.
cat > "$TMP/keymgr-probe" <<SH
#!/bin/sh
stat -c %u /proc/\$PPID/status > "$TMP/parent-owner"
stat -c %u /proc/\$\$/status > "$TMP/self-owner"
exec keymgr "\$@"
SH
chmod 0755 "$TMP/keymgr-probe" "$TMP"
chown -R nobody "$TMP"
NOBODY=$(id -u nobody)
run 0 runuser -u nobody -- env SOFTHSM2_CONF="$SOFTHSM2_CONF" KHSM_LOCK_FILE="$KHSM_LOCK_FILE" \
	KHSM_KEYMGR="$TMP/keymgr-probe" "$KNOT_HSM" -c "$TMP/knot.conf" example.com generate
[ -s "$TMP/parent-owner" ] || fail "the wrapper keymgr did not run"
equals "$(cat "$TMP/self-owner")" "$NOBODY" "control: a dumpable process of nobody has /proc/PID/status owned by nobody"
equals "$(cat "$TMP/parent-owner")" "0" "knot-hsm, holding the PIN while keymgr runs, is not dumpable"
