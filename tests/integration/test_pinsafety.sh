#!/bin/sh
# The PIN never leaves its file: while knot-hsm keystore, generate and doctor
# run, a watcher samples the command line and environment of every process
# (knot-hsm and the keymgr/knotc it starts) every 10 ms; the PIN must appear in
# none of them, nor in any output, nor in any file of the test directory except
# the PIN files themselves. PIN files readable by others are refused unless
# --force, also when the file is the pin-source of a knot.conf.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

# A PIN that cannot turn up by chance, so a grep that finds nothing means something.
PIN=739164825
LABEL="pinsafety"
token_init "$LABEL"
pin_file "$TMP/card.pin"
mkdir -p "$TMP/kasp"

# The watcher (sample, watch, pinwatch_controls) reads the PIN from
# $TMP/card.pin; see pinwatch.sh.
. "$KHSM_SRCDIR/tests/integration/pinwatch.sh"

# The watcher itself finds a PIN in a command line and in an environment.
pinwatch_controls

# keystore: logs in through libdnssec and prints the stanza with pin-source.
watch "keystore" "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/card.pin" --id card
contains "$OUT" "pin-source=" "the stanza points at the PIN file"
lacks "$OUT" "pin-value" "the stanza holds no PIN value"
stanza=$OUT
knot_conf "$TMP/knot.conf" policy=card example.com.


# generate: logs in, makes the key, runs keymgr import-pkcs11 (which gets the
# keystore config with pin-source), signs and verifies.
watch "generate" "$KNOT_HSM" -c "$TMP/knot.conf" example.com generate
# keymgr is short-lived: seeing it is likely, not certain (the controls
# above prove the watcher reads other processes), so it is reported, not counted.
case " $SEEN " in
	*" keymgr "*) echo "# the watcher saw keymgr import-pkcs11 run" ;;
	*) echo "# keymgr ran between two samples this time" ;;
esac

# The PIN given on a descriptor (uri looks a private key up after a login).
watch "uri --pin-fd" "$KNOT_HSM" uri --token "$LABEL" --object "example.com. KSK" --type private \
	--pin-fd 3 3<"$TMP/card.pin"
contains "$OUT" "type=private" "uri --pin-fd finds the private key"

# doctor: every check, including the login and libdnssec.
watch "doctor" "$KNOT_HSM" doctor -c "$TMP/knot.conf" --token "$LABEL" --pin-file "$TMP/card.pin"

# policy --write: it succeeds, and the file is not readable by others.
sample "$KNOT_HSM" -c "$TMP/knot.conf" example.com policy --write "$TMP/policy.conf"
[ -z "$HITS" ] || fail "policy: the PIN is visible in $HITS"
lacks "$OUT$ERR" "$PIN" "policy: no PIN in stdout or stderr"
[ "$STATUS" -eq 0 ] || { printf '%s\n' "$OUT" "$ERR" >&2; fail "policy --write failed (exit $STATUS)"; }
[ -s "$TMP/policy.conf" ] || fail "policy --write exited 0 but wrote no $TMP/policy.conf"
mode=$(stat -c %a "$TMP/policy.conf")
case $mode in
	[0-6][04]0) pass "policy --write makes a file others cannot read (mode $mode)" ;;
	*) fail "policy --write made a file with mode $mode; 0640 or stricter expected" ;;
esac

# Nothing knot-hsm, keymgr or libdnssec wrote holds the PIN: configs, KASP,
# logs, outputs. SoftHSM keeps only a key derived from the PIN.
leaks=$(grep -r -l -a -F "$PIN" "$TMP" | grep -v -x -F -e "$TMP/card.pin" || true)
equals "$leaks" "" "no file under the test directory but the PIN file holds the PIN"
grep -q -F "$PIN" "$TMP/card.pin" || fail "the PIN file lost the PIN: the grep above proves nothing"

# A PIN file readable by others is refused unless --force.
cp "$TMP/card.pin" "$TMP/open.pin"
chmod 0644 "$TMP/open.pin"
run 1 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/open.pin"
contains "$ERR" "0644" "keystore refuses a 0644 PIN file"
lacks "$OUT$ERR" "$PIN" "the refusal does not print the PIN"
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/open.pin" --force
contains "$ERR" "warning" "with --force keystore warns"

# The same file as the pin-source of knot.conf: generate refuses it.
sed "s|$(printf '%s' "$TMP/card.pin" | sed 's|/|%2F|g')|$(printf '%s' "$TMP/open.pin" | sed 's|/|%2F|g')|" \
	"$TMP/knot.conf" > "$TMP/open.conf"
grep -q "open.pin" "$TMP/open.conf" || fail "could not point the keystore at open.pin: $(cat "$TMP/open.conf")"
run 1 "$KNOT_HSM" -c "$TMP/open.conf" example.com generate zsk=yes
contains "$ERR" "0644" "generate refuses a 0644 pin-source"
run 0 keymgr -c "$TMP/open.conf" example.com. list
count=$(printf '%s\n' "$OUT" | grep -c . || true)
equals "$count" 1 "the refused generate added no key to KASP"
run 1 "$KNOT_HSM" doctor -c "$TMP/open.conf" --token "$LABEL"
contains "$OUT$ERR" "0644" "doctor flags the 0644 pin-source"
lacks "$OUT$ERR" "$PIN" "doctor does not print the PIN"
