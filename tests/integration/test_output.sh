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
ps_stanza=$OUT
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

# --- 2. pin-value: wherever a URI or a config is printed, the PIN is not.
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/card.pin" --pin-in-config --id card
contains "$OUT" "pin-value=$PIN" "keystore --pin-in-config prints the config it was asked for"
D=$TMP/pv
mkdir -p "$D/kasp"
write_pv_conf() { # keystore stanza, more lines for the default template
	cat > "$D/knot.conf" <<CONF
server:
    rundir: $D
database:
    storage: $D
    kasp-db: $D/kasp
$1
template:
  - id: default
    storage: $D
${2:-}
zone:
  - domain: example.com.
  - domain: example.org.
CONF
}
pv_stanza=$OUT
write_pv_conf "$pv_stanza"
PV=$D/knot.conf
no_pin() { # description: neither stdout nor stderr of the last run shows the PIN
	lacks "$OUT
$ERR" "$PIN" "$1"
}
run 1 "$KNOT_HSM" -c "$PV" doctor
no_pin "doctor"
run 0 "$KNOT_HSM" -c "$PV" example.com policy
no_pin "policy on the terminal"
contains "$OUT" "pin-value=***" "policy shows where the PIN was"
run 0 "$KNOT_HSM" -c "$PV" example.com policy --write "$D/knot-hsm.conf"
no_pin "policy --write"
grep -q "pin-value=$PIN" "$D/knot-hsm-ksk.conf" || fail "the written KSK side lost its PIN"
pass "policy --write writes the config as it is"
# Whatever these exit with (the login paths are not what is checked here).
run_any() {
	"$@" >"$TMP/out" 2>"$TMP/err" || true
	OUT=$(cat "$TMP/out"); ERR=$(cat "$TMP/err")
}
run_any "$KNOT_HSM" -c "$PV" keys
no_pin "keys"
run_any "$KNOT_HSM" -c "$PV" status
no_pin "status"
run_any "$KNOT_HSM" -c "$PV" example.com generate
no_pin "generate"
# A ceremony whose KSK side has the PIN as pin-value (the KSK is made with a
# pin-source, pin-value is put in afterwards); signing on the card and with
# keymgr.
D=$TMP/cer
PV=$D/knot.conf
mkdir -p "$D/kasp"
write_pv_conf "$ps_stanza"
run 0 "$KNOT_HSM" -c "$PV" example.org policy --write "$D/knot-hsm.conf"
write_pv_conf "$ps_stanza
include: $D/knot-hsm.conf" "    dnssec-signing: on
    dnssec-policy: knot-hsm"
run 0 "$KNOT_HSM" -c "$PV" example.org ceremony until=+5d generate-ksk=yes
sed -i "s|;pin-source=[^ ]*|;pin-value=$PIN|" "$D/knot-hsm-ksk.conf"
grep -q "pin-value=$PIN" "$D/knot-hsm-ksk.conf" || fail "KSK side not edited"
run_any "$KNOT_HSM" -c "$PV" example.org ceremony until=+40d
no_pin "ceremony, signer=card"
run_any "$KNOT_HSM" -c "$PV" example.org ceremony until=+60d signer=keymgr
no_pin "ceremony, signer=keymgr"

# --- 3. Control characters from card labels and arguments are escaped in
# human output (\xNN), JSON keeps its own escaping.
ESC=$(printf '\033')
BEL=$(printf '\007')
NL='
'
token_init "$(printf 'ev\033[31mil\nx')"
run 0 "$KNOT_HSM" tokens
contains "$OUT" 'token: ev\x1b[31mil\x0ax' "tokens: a label with ESC and newline escaped"
lacks "$OUT" "$ESC" "tokens: no raw ESC"
run 0 "$KNOT_HSM" tokens --json
contains "$OUT" '"ev\u001b[31mil\nx"' "tokens --json: JSON escaping"
keygen_p11tool "$LABEL" "$(printf 'k\033]0;pwn\007ey')" 77
run 0 "$KNOT_HSM" -c "$C" keys
contains "$OUT" "label 'k\\x1b]0;pwn\\x07ey'" "keys: a key label with OSC and BEL escaped"
lacks "$OUT" "$ESC" "keys: no raw ESC"
lacks "$OUT" "$BEL" "keys: no raw BEL"
run 1 "$KNOT_HSM" -c "$C" "$(printf 'exa\033[2Jmple.com')" ds
contains "$ERR" "zone name 'exa\\x1b[2Jmple.com'" "a zone argument with ESC escaped in the error"
lacks "$ERR" "$ESC" "no raw ESC in the error"
run 1 "$KNOT_HSM" -c "$C" "$(printf 'example.com\nerror: forged')" ds
lacks "$ERR" "${NL}error: forged" "a newline in an argument cannot forge an error line"
run 1 "$KNOT_HSM" uri --token "$(printf 'no\033such')"
contains "$ERR" 'no\x1bsuch' "a --token label escaped in the error"
lacks "$ERR" "$ESC" "no raw ESC in the --token error"
