#!/bin/sh
# One rule for every PIN file (lib/pin.c), whichever command or config names
# it: a symlink, a FIFO (even one without a writer: nothing waits), a file in a
# directory another user can write, a file owned by another user, trailing
# whitespace (newline, CR, space) are refused with one message and its remedy,
# by --pin-file of every command and by a knot.conf pin-source alike.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

LABEL="pinfile"
token_init "$LABEL"
mkdir -m 0700 "$TMP/safe"
pin_file "$TMP/safe/card.pin"
mkdir -p "$TMP/kasp"

# Control: the plain file passes in every command used below.
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/safe/card.pin" --id card
contains "$OUT" "pin-source=" "control: a 0600 file in a 0700 directory is accepted"

# knot.conf with a given pin-source, for doctor -c and generate.
conf_with() { # pin-source path
	run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/safe/card.pin" --id card
	printf '%s\n' "$OUT" | sed "s|pin-source=[^ \"]*|pin-source=$1|" > "$TMP/stanza"
	knot_conf "$TMP/knot.conf" stanza="$(cat "$TMP/stanza")" policy=card example.com.
}

# 1. A symlink: the same message with the target to name instead, everywhere.
ln -s "$TMP/safe/card.pin" "$TMP/safe/link.pin"
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/safe/link.pin" --id card
contains "$ERR" "is a symbolic link, which knot-hsm never follows for a PIN" "keystore refuses a symlink"
contains "$ERR" "(here: $TMP/safe/card.pin)" "keystore names the file to use instead"
lacks "$ERR" "Too many levels" "keystore gives the rule, not ELOOP"
run 1 "$KNOT_HSM" doctor --token "$LABEL" --pin-file "$TMP/safe/link.pin"
contains "$OUT$ERR" "is a symbolic link, which knot-hsm never follows for a PIN" "doctor --pin-file refuses it alike"
conf_with "$TMP/safe/link.pin"
run 1 "$KNOT_HSM" doctor -c "$TMP/knot.conf"
contains "$OUT$ERR" "is a symbolic link, which knot-hsm never follows for a PIN" "doctor -c refuses a symlinked pin-source alike"
lacks "$OUT$ERR" "knotd cannot read the PIN" "doctor -c does not call it unreadable"
run 1 "$KNOT_HSM" -c "$TMP/knot.conf" example.com generate
contains "$ERR" "is a symbolic link, which knot-hsm never follows for a PIN" "generate refuses a symlinked pin-source alike"

# 2. A FIFO nobody writes to: refused at once, not waited on (the command
#    returns: before, it blocked in open() forever).
mkfifo -m 0600 "$TMP/safe/fifo.pin"
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/safe/fifo.pin" --id card
contains "$ERR" "is not a regular file" "a FIFO without a writer is refused"
run 1 "$KNOT_HSM" uri --token "$LABEL" --object x --type private --pin-file "$TMP/safe/fifo.pin"
contains "$ERR" "is not a regular file" "uri --pin-file refuses the FIFO too"

# 3. Directory another user can write.
mkdir -m 0777 "$TMP/open"; chmod 0777 "$TMP/open"
pin_file "$TMP/open/card.pin"
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/open/card.pin" --id card
contains "$ERR" "is in a directory another user can write" "world-writable directory without sticky bit: refused"
chmod 1777 "$TMP/open"
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/open/card.pin" --id card
contains "$ERR" "is in a directory another user can write" "world-writable directory with the sticky bit (like /tmp): refused"
contains "$ERR" "even with the sticky bit as /tmp" "the sticky bit is named"
contains "$ERR" "mktemp -d" "the remedy is named"
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/open/card.pin" --id card --force
contains "$ERR" "is in a directory another user can write" "--force does not waive the directory rule"
lacks "$ERR" "or pass --force" "and does not offer --force for it"
mkdir -m 0770 "$TMP/grp"; chmod 1770 "$TMP/grp"
pin_file "$TMP/grp/card.pin"
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/grp/card.pin" --id card
pass "group-writable directory with the sticky bit: accepted"
mkdir -m 0755 "$TMP/theirs"
pin_file "$TMP/theirs/card.pin"
chown nobody "$TMP/theirs"
run 1 "$KNOT_HSM" uri --token "$LABEL" --object x --type private --pin-file "$TMP/theirs/card.pin"
contains "$ERR" "is in a directory another user can write" "directory owned by another user: refused"
conf_with "$TMP/theirs/card.pin"
run 1 "$KNOT_HSM" -c "$TMP/knot.conf" example.com generate
contains "$ERR" "is in a directory another user can write" "generate applies the directory rule to pin-source"

# 4. Owner: neither root, the caller nor knotd's user (the README's rule), in
#    every command, not only keystore and doctor.
pin_file "$TMP/safe/nobody.pin"
chown nobody "$TMP/safe/nobody.pin"
run 1 "$KNOT_HSM" uri --token "$LABEL" --object x --type private --pin-file "$TMP/safe/nobody.pin"
contains "$ERR" "is owned by another user; chown it to the user that runs knotd" "uri refuses a PIN file owned by nobody"
conf_with "$TMP/safe/nobody.pin"
run 1 "$KNOT_HSM" -c "$TMP/knot.conf" example.com generate
contains "$ERR" "is owned by another user" "generate refuses a pin-source owned by nobody"
run 1 "$KNOT_HSM" doctor -c "$TMP/knot.conf"
contains "$OUT" "is owned by another user" "doctor -c fails it too"
if getent passwd knot >/dev/null; then
	pin_file "$TMP/safe/knot.pin"
	chown knot "$TMP/safe/knot.pin"
	run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/safe/knot.pin" --id card
	pass "a PIN file owned by knotd's user (knot) is accepted"
fi

# 5. Trailing whitespace GnuTLS would send: newline, CR, space.
for t in nl cr sp; do
	case $t in nl) s='\n' ;; cr) s='\r' ;; sp) s=' ' ;; esac
	(umask 077; printf "%s$s" "$PIN" > "$TMP/safe/$t.pin")
	run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/safe/$t.pin" --id card
	contains "$ERR" "ends with a newline, carriage return, space or tab" "trailing $t is flagged"
done
conf_with "$TMP/safe/sp.pin"
run 1 "$KNOT_HSM" doctor -c "$TMP/knot.conf"
contains "$OUT" "ends with a newline, carriage return, space or tab" "doctor -c flags a trailing space"
