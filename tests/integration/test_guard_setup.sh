#!/bin/sh
# keystore --guard sets the guard up in one step: from no configuration, or
# the package's all-comments file, it writes the configuration for the
# token's module, creates the audit log and its lock file for knotd's user
# (0640, never through a link) and checks the stanza through the guard;
# policy then puts the card keystore through the guard. A second run changes
# nothing; a configuration with settings is never rewritten; a link planted
# at the log, its lock or the configuration is refused with nothing written.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"
GUARD=$KHSM_GUARD_MODULE
getent passwd knot >/dev/null || fail "no user knot (knotd's user): install knot"

LABEL="SmartCard-HSM (UserPIN)"
token_init "$LABEL"
PINF=$TMP/card.pin
pin_file "$PINF"
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF" --id card
plain_stanza=$OUT

# knotd's directory, as Debian makes /var/lib/knot; the guard's file as /etc/knot's.
fresh() { # NAME: a new knotd directory and configuration path
	V=$TMP/$1/lib; mkdir -p "$V" "$TMP/$1/etc"
	chown knot:knot "$V"; chmod 0750 "$V"
	LOG=$V/knot-hsm-audit.log
	GC=$TMP/$1/etc/knot-hsm-guard.conf
	export KHSM_GUARD_AUDIT_LOG="$LOG" KHSM_GUARD_CONF="$GC"
}
setup() { # EXPECTED_STATUS
	run "$1" "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$PINF" --id card --guard
}

# -- doctor names the one step while there is no configuration -------------------------
fresh a
guard_stanza=$(printf '%s\n' "$plain_stanza" | sed "s| $SOFTHSM_MODULE\"| $GUARD\"|")
contains "$guard_stanza" " $GUARD\"" "a keystore stanza through the guard"
C=$TMP/knot.conf
knot_conf "$C" stanza="$guard_stanza"
run 1 "$KNOT_HSM" -c "$C" doctor
contains "$OUT" "guard config: $GC does not exist; run knot-hsm keystore --token 'SmartCard-HSM (UserPIN)' --pin-file $PINF --guard: it writes the configuration and creates the audit log" \
	"doctor: a missing guard configuration names the one command"

# -- one step from nothing -------------------------------------------------------------
setup 0
contains "$ERR" "note: wrote the guard configuration $GC (module = $SOFTHSM_MODULE, audit_log = $LOG)" "says what it wrote"
contains "$ERR" "note: created the audit log $LOG, owner knot, mode 0640" "says what it created"
contains "$ERR" "note: created its lock file $LOG.lock, owner knot, mode 0640" "and the lock file"
grep -qx "module = $SOFTHSM_MODULE" "$GC" || fail "no module line in $GC: $(cat "$GC")"
grep -qx "audit_log = $LOG" "$GC" || fail "no audit_log line in $GC: $(cat "$GC")"
pass "the configuration names the token's module and the audit log"
[ -f "$LOG" ] && [ ! -L "$LOG" ] && [ -f "$LOG.lock" ] && [ ! -L "$LOG.lock" ] || fail "log and lock are not regular files"
equals "$(stat -c '%U %G %a' "$LOG")" "knot knot 640" "the audit log is knotd's, 0640"
equals "$(stat -c '%U %G %a' "$LOG.lock")" "knot knot 640" "the lock file is knotd's, 0640"
contains "$OUT" " $GUARD\"" "the stanza goes through the guard"
contains "$OUT" "# through the knot-hsm guard ($GC): audit log $LOG" "and names the configuration"
grep -q '"fn":"C_Login".*"rv":"CKR_OK"' "$LOG" || fail "no login in $LOG"
pass "the stanza was checked through the guard (its login is in the audit log)"
run 0 "$KNOT_HSM" audit verify "$LOG"
contains "$OUT" "chain: intact" "the new log's chain verifies"
run 0 "$KNOT_HSM" -c "$C" doctor
contains "$OUT" "guard config: $GC parses; card module $SOFTHSM_MODULE" "doctor: the written configuration parses"
contains "$OUT" "0 failed" "doctor passes"

# policy, without guard=, now puts the card keystore through the guard.
D=$TMP/knot; mkdir -p "$D/keys"
knot_conf "$D/knot.conf" storage="$D" kasp="$D/keys" stanza="$plain_stanza" template="    storage: $D" example.com.
run 0 "$KNOT_HSM" -c "$D/knot.conf" example.com policy
contains "$OUT" " $GUARD\"" "policy puts the card keystore through the guard"
lacks "$ERR" "does not go through the guard" "and no note"

# A second run changes nothing.
cp "$GC" "$TMP/gc.saved"
before=$(stat -c '%i %U %a' "$GC" "$LOG.lock")
setup 0
lacks "$ERR" "note: wrote" "second run: nothing written"
lacks "$ERR" "note: created" "second run: nothing created"
cmp -s "$GC" "$TMP/gc.saved" || fail "the configuration changed"
equals "$(stat -c '%i %U %a' "$GC" "$LOG.lock")" "$before" "second run: the configuration and the lock file are the same files"
contains "$OUT" "# through the knot-hsm guard ($GC): audit log $LOG" "second run: through the guard"

# -- one step from the package's all-comments file ------------------------------------
fresh b
cp "$KHSM_SRCDIR/samples/knot-hsm-guard.conf" "$GC"
run 0 env -u KHSM_GUARD_CONF KHSM_GUARD_CONF="$GC" "$KNOT_HSM" -c "$D/knot.conf" example.com policy
contains "$ERR" "the guard configuration $GC sets nothing (comments only); knot-hsm keystore --token 'SmartCard-HSM (UserPIN)' --pin-file $PINF --guard sets the guard up in one step" \
	"policy's note on the shipped file names the one step"
run 1 "$KNOT_HSM" -c "$C" doctor
contains "$OUT" "guard config: $GC sets nothing (comments only); run knot-hsm keystore --token" "doctor: the shipped file, the one step"
setup 0
contains "$ERR" "note: wrote the guard configuration $GC (module = $SOFTHSM_MODULE, audit_log = $LOG)" "the shipped file: written"
grep -qx "module = $SOFTHSM_MODULE" "$GC" || fail "no module line in $GC"
equals "$(stat -c '%U %a' "$LOG" "$LOG.lock" | tr '\n' ' ')" "knot 640 knot 640 " "the shipped file: log and lock created"
contains "$OUT" "# through the knot-hsm guard ($GC): audit log $LOG" "the shipped file: checked through the guard"

# -- a configuration with settings is never rewritten -----------------------------------
fresh c
printf 'module = /usr/lib/other-pkcs11.so\naudit_log = %s\n' "$LOG" > "$GC"
cp "$GC" "$TMP/gc.saved"
setup 1
contains "$ERR" "the guard configuration $GC names module /usr/lib/other-pkcs11.so, but token 'SmartCard-HSM (UserPIN)' is on $SOFTHSM_MODULE; one guard serves one card module: set 'module = $SOFTHSM_MODULE' there" \
	"another module: refused with the remedy"
cmp -s "$GC" "$TMP/gc.saved" || fail "the configuration naming another module was rewritten"
[ ! -e "$LOG" ] && [ ! -e "$LOG.lock" ] || fail "files created for a refused configuration"
pass "another module: the configuration is kept, nothing created"

# -- links and strangers' files: refused, nothing written --------------------------------
nothing() { # WHAT: no configuration, no log, no lock
	[ ! -e "$GC" ] || fail "$1: the configuration was written"
	[ ! -e "$LOG" ] || [ -L "$LOG" ] || fail "$1: the audit log was created"
	[ ! -e "$LOG.lock" ] || [ -L "$LOG.lock" ] || fail "$1: the lock file was created"
	[ ! -e "$TMP/victim" ] || fail "$1: written through the link"
	pass "$1: nothing written"
}
fresh d
ln -s "$TMP/victim" "$LOG"
setup 1
contains "$ERR" "cannot create the audit log $LOG: it is a symbolic link, never followed" "a link at the audit log: refused"
nothing "a link at the audit log"
fresh e
ln -s "$TMP/victim" "$LOG.lock"
setup 1
contains "$ERR" "cannot create the lock file $LOG.lock: it is a symbolic link, never followed" "a link at the lock file: refused"
nothing "a link at the lock file (the log not made either)"
fresh f
ln -s "$TMP/victim" "$GC"
setup 1
contains "$ERR" "the guard configuration $GC is a symbolic link; knot-hsm writes through none but the package's" \
	"a link at the configuration (KHSM_GUARD_CONF): refused"
rm "$GC"; nothing "a link at the configuration"
fresh g
cp "$KHSM_SRCDIR/samples/knot-hsm-guard.conf" "$TMP/victim.conf"
ln -s "$TMP/victim.conf" "$GC"
setup 1
contains "$ERR" "the guard configuration $GC is a symbolic link" "a link to an all-comments file: refused"
cmp -s "$TMP/victim.conf" "$KHSM_SRCDIR/samples/knot-hsm-guard.conf" || fail "written through the link"
rm "$GC"; nothing "a link to an all-comments file"
fresh h
: > "$LOG"   # root's, not knotd's
setup 1
contains "$ERR" "cannot use the audit log $LOG: it exists and belongs to another user, expected knot's own file" \
	"an audit log of another user: refused"
[ ! -e "$GC" ] && [ ! -e "$LOG.lock" ] || fail "an audit log of another user: something written"
pass "an audit log of another user: nothing written"
fresh i
chown root:root "$V"; chmod 0755 "$V"
setup 1
contains "$ERR" "its directory $V is neither knot's nor writable by its group" "a directory the guard would not append in: refused"
nothing "a directory the guard would not append in"
