#!/bin/sh
# What knot-hsm hands on and prints: no descriptor but 0-2 reaches keymgr or
# knotc, no pin-value in any message, control characters escaped in human
# output, inputs bounded by what a card or Knot can hold.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

LABEL="SmartCard-HSM (UserPIN)"
token_init "$LABEL"
pin_file "$TMP/card.pin"
mkdir -p "$TMP/kasp"
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/card.pin" --id card
cat > "$TMP/knot.conf" <<CONF
server:
    rundir: $TMP
database:
    kasp-db: $TMP/kasp
$OUT
policy:
  - id: card
    keystore: card
    manual: on
zone:
  - domain: example.com.
    dnssec-policy: card
CONF
C="$TMP/knot.conf"

# --- 1. Descriptors: a wrapper keymgr (and knotc) has find list the
# descriptors the wrapper's shell was started with (find is its child and
# writes the file itself: no redirection touches the shell's table), then runs
# the real tool. fds_of drops the shell's own descriptor on the wrapper script
# and prints the numbers of the others.
for tool in keymgr knotc; do
	cat > "$TMP/$tool" <<SH
#!/bin/sh
find /proc/\$\$/fd -mindepth 1 -maxdepth 1 -fprintf "$TMP/$tool.fds.\$\$" '%f %l\\n'
exec $tool "\$@"
SH
	chmod +x "$TMP/$tool"
done
fds_of() { # tool
	for f in "$TMP/$1".fds.*; do
		awk -v self="$TMP/$1" '$2 != self { print $1 }' "$f" |
			sort -n | tr '\n' ' '
		echo
	done | sort -u
}
KHSM_KEYMGR="$TMP/keymgr" KHSM_KNOTC="$TMP/knotc" \
	run 0 "$KNOT_HSM" -c "$C" --pin-fd 5 example.com generate 5<"$TMP/card.pin" 7<"$TMP/card.pin"
ls "$TMP"/keymgr.fds.* >/dev/null 2>&1 || fail "the wrapper keymgr did not run"
pass "generate ran keymgr through the wrapper"
equals "$(fds_of keymgr)" "0 1 2 " "keymgr children see only descriptors 0-2, not --pin-fd 5 or 7"
ls "$TMP"/knotc.fds.* >/dev/null 2>&1 || fail "the wrapper knotc did not run"
pass "generate asked knotc whether knotd runs"
equals "$(fds_of knotc)" "0 1 2 " "knotc children see only descriptors 0-2"
