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
knot_conf "$TMP/knot.conf" stanza="$OUT" policy=card example.com.
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
	knot_conf "$D/knot.conf" rundir="$D" storage="$D" kasp="$D/kasp" stanza="$1" template="    storage: $D
${2:-}" example.com. example.org.
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
# Arguments and paths echoed in errors and warnings of status, audit, keystore.
run 3 "$KNOT_HSM" status --warn "$(printf '1\033x')"
contains "$ERR" "not '1\\x1bx'" "status: a --warn argument escaped in the error"
lacks "$ERR" "$ESC" "status: no raw ESC"
BADLOG="$TMP/$(printf 'l\033og')"
printf 'garbage\n' >"$BADLOG"
run 1 "$KNOT_HSM" audit verify "$BADLOG"
contains "$ERR" 'l\x1bog: line 1' "audit verify: the log's path escaped in the error"
lacks "$ERR" "$ESC" "audit verify: no raw ESC in the error"
BADPIN="$TMP/$(printf 'p\033in')"
cp "$TMP/card.pin" "$BADPIN"
chmod 0644 "$BADPIN"
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$BADPIN" --force
contains "$ERR" 'warning: PIN file '"$TMP"'/p\x1bin' "keystore: the PIN file's path escaped in the warning"
lacks "$ERR" "$ESC" "keystore: no raw ESC in the warning"

# --- 5. Bounds: at the limit accepted, one more refused with the limit named.
rep() { # char count
	awk -v c="$1" -v n="$2" 'BEGIN { s = ""; for (i = 0; i < n; i++) s = s c; print s }'
}
L255=$(rep k 255)
run 0 "$KNOT_HSM" -c "$C" example.com generate zsk=yes label="$L255"
contains "$OUT" "label '$L255'" "label= of 255 bytes: the key is made"
run 2 "$KNOT_HSM" -c "$C" example.com generate label="${L255}k"
contains "$ERR" "label= is 256 bytes long; a key label (CKA_LABEL) holds at most 255 bytes" "label= of 256 bytes refused with the limit"
run 2 "$KNOT_HSM" -c "$C" example.com generate label="$(rep x 100000)"
contains "$ERR" "label= is 100000 bytes long" "a 100 kB label= refused"
run 2 "$KNOT_HSM" -c "$C" example.com import label="${L255}k"
contains "$ERR" "at most 255 bytes" "import label= bounded too"
run 1 "$KNOT_HSM" -c "$C" example.com import id="$(rep ab 255)"
lacks "$ERR" "at most 255" "id= of 255 bytes passes the bound"
run 2 "$KNOT_HSM" -c "$C" example.com import id="$(rep ab 256)"
contains "$ERR" "id= is 256 bytes long; a key id (CKA_ID) holds at most 255 bytes" "id= of 256 bytes refused with the limit"
run 0 "$KNOT_HSM" uri --token "$LABEL" --object "$L255"
contains "$OUT" "object=$L255" "--object of 255 bytes accepted"
run 2 "$KNOT_HSM" uri --token "$LABEL" --object "${L255}k"
contains "$ERR" "--object is 256 bytes long" "--object of 256 bytes refused"
T32=$(rep t 32)
run 1 "$KNOT_HSM" uri --token "$T32"
lacks "$ERR" "at most 32" "--token of 32 bytes passes the bound"
run 2 "$KNOT_HSM" uri --token "${T32}t"
contains "$ERR" "--token is 33 bytes long; a token label holds at most 32 bytes" "--token of 33 bytes refused"
# Zone names: 63 octets a label, 255 in wire form.
Z63=$(rep z 63)
run 1 "$KNOT_HSM" -c "$C" "$Z63.com" ds
contains "$ERR" "zone $Z63.com. is not in" "a 63-octet label accepted"
run 1 "$KNOT_HSM" -c "$C" "${Z63}z.com" ds
contains "$ERR" "has a label longer than 63 characters" "a 64-octet label refused"
N255="$Z63.$Z63.$Z63.$(rep z 61)."
run 1 "$KNOT_HSM" -c "$C" "$N255" ds
contains "$ERR" "is not in" "a name of 255 wire octets accepted"
run 1 "$KNOT_HSM" -c "$C" "$Z63.$Z63.$Z63.$(rep z 62)." ds
contains "$ERR" "is 256 octets long in wire form; at most 255 are allowed" "a name of 256 wire octets refused"
# Paths: PATH_MAX.
P4095="/$(rep p 4094)"
run 1 "$KNOT_HSM" doctor --token "$LABEL" --pin-file "$P4095"
contains "$OUT" "FAIL  pin source: $P4095" "a path of 4095 bytes passes the bound (and is looked at)"
lacks "$ERR" "PATH_MAX" "no bound error at 4095 bytes"
run 2 "$KNOT_HSM" -c "$C" --pin-file "${P4095}p" keys
contains "$ERR" "--pin-file is 4096 bytes long; a path is at most 4095 bytes (PATH_MAX)" "--pin-file of 4096 bytes refused"
run 2 "$KNOT_HSM" -c "${P4095}p" keys
contains "$ERR" "--conf is 4096 bytes long" "-c of 4096 bytes refused"
run 2 "$KNOT_HSM" -c "$C" example.com policy --write "${P4095}p"
contains "$ERR" "--write is 4096 bytes long" "--write of 4096 bytes refused"
run 2 "$KNOT_HSM" -c "$C" example.com policy ksk-conf="${P4095}p"
contains "$ERR" "ksk-conf= is 4096 bytes long" "ksk-conf= of 4096 bytes refused"
