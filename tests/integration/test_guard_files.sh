#!/bin/sh
# The files the guard module appends to or locks (lib/audit.c
# khsm_audit_open_file): the audit log and the lock file live in knotd's
# directory, so knot's user could plant things there for the next root run.
# Never followed or used: a symbolic link (to a file, or to a path that does
# not exist yet), a FIFO, a file of another user, a hard link. What root
# creates there belongs to the directory's owner, mode 0660, set through the
# descriptor. Runs as root (chown to nobody).
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"
: "${GUARD_CALLS:?GUARD_CALLS must name the built tests/guard/guard_calls}"
GUARD=$KHSM_GUARD_MODULE
[ "$(id -u)" -eq 0 ] || fail "this test plants files of another user: run it as root"
NOBODY=$(id -u nobody)

card_conf "latency_scale = 0"
DIR=$TMP/knot            # stands for /var/lib/knot: owned by knot (here nobody)
mkdir "$DIR"
chown nobody:nogroup "$DIR" 2>/dev/null || chown nobody "$DIR"
LOG=$DIR/audit.log
export KHSM_GUARD_CONF="$TMP/guard.conf"
printf 'module = %s\naudit_log = %s\n' "$CARDSIM" "$LOG" > "$KHSM_GUARD_CONF"

# A login through the guard: 0 when logged (and so allowed), else refused.
login() { run "$1" "$GUARD_CALLS" "$GUARD" "$TMP/card.pin" login-retry 1; }

# -- a root run in knot's directory: files for knot, through the descriptor ------------
login 0
contains "$OUT" "C_Login: 0x0" "a login through the guard"
equals "$(stat -c '%u %a' "$LOG") $(stat -c '%u %a' "$LOG.lock")" "$NOBODY 660 $NOBODY 660" \
	"root created log and lock file for the directory's owner, mode 0660"

# -- planted symbolic links: never followed -----------------------------------------------
VICTIM=$TMP/victim           # root's file elsewhere (/etc/shadow, say)
printf 'root-only\n' > "$VICTIM"; chmod 0600 "$VICTIM"
mv "$LOG" "$TMP/saved.log"
ln -s "$VICTIM" "$LOG"
: > "$COUNTER"
login 1
contains "$OUT" "C_Login: 0x6" "log a symlink to a file: the login is refused (CKR_FUNCTION_FAILED)"
contains "$ERR" "cannot open the audit log $LOG: it is a symbolic link, never followed" "and the guard says why"
equals "$(cat "$VICTIM") $(stat -c '%u %a' "$VICTIM")" "root-only 0 600" "the file it points to is untouched"
equals "$(count login)" 0 "the card never saw the PIN"
rm "$LOG"
ln -s "$TMP/planted-new" "$LOG"
login 1
contains "$ERR" "it is a symbolic link, never followed" "log a symlink to a path that does not exist: refused"
[ ! -e "$TMP/planted-new" ] || fail "root created the file a dangling link pointed to"
pass "and nothing is created where it points"
rm "$LOG"; mv "$TMP/saved.log" "$LOG"

mv "$LOG.lock" "$TMP/saved.lock"
ln -s "$VICTIM" "$LOG.lock"
login 1
contains "$OUT" "C_Initialize: 0x5" "lock file a symlink to a file: C_Initialize fails (CKR_GENERAL_ERROR)"
contains "$ERR" "cannot open the lock file $LOG.lock: it is a symbolic link, never followed" "naming the lock file"
equals "$(cat "$VICTIM") $(stat -c '%u %a' "$VICTIM")" "root-only 0 600" "its target keeps owner and mode (no chmod/chown through the path)"
rm "$LOG.lock"
ln -s "$TMP/planted-lock" "$LOG.lock"
login 1
[ ! -e "$TMP/planted-lock" ] || fail "root created the lock file a dangling link pointed to"
pass "lock file a symlink to a path that does not exist: nothing created there"
rm "$LOG.lock"; mv "$TMP/saved.lock" "$LOG.lock"

# -- not a regular file, another user's, a hard link --------------------------------------
mv "$LOG" "$TMP/saved.log"
mkfifo "$LOG"
login 1
contains "$ERR" "cannot open the audit log $LOG: it is a FIFO, not a regular file" "log a FIFO: refused at once"
rm "$LOG"
ROOTDIR=$TMP/rootdir; mkdir "$ROOTDIR"
printf 'module = %s\naudit_log = %s\nlock_file = %s\n' "$CARDSIM" "$ROOTDIR/audit.log" "$ROOTDIR/lock" > "$KHSM_GUARD_CONF"
: > "$ROOTDIR/audit.log"; chown nobody "$ROOTDIR/audit.log"
login 1
contains "$ERR" "it belongs to nobody (uid $NOBODY), expected root" "a log of another user in root's directory: refused"
contains "$ERR" "or root (uid 0) (the owner of $ROOTDIR), or group" "naming who is expected"
rm "$ROOTDIR/audit.log"
ln "$VICTIM" "$ROOTDIR/audit.log"
login 1
contains "$ERR" "it has 2 hard links, expected 1" "a hard link to another file: refused"
equals "$(cat "$VICTIM")" "root-only" "that file untouched"
rm "$ROOTDIR/audit.log"
login 0
pass "a fresh log in root's directory works again"
printf 'module = %s\naudit_log = %s\n' "$CARDSIM" "$LOG" > "$KHSM_GUARD_CONF"
mv "$TMP/saved.log" "$LOG"
login 0
run 0 "$KNOT_HSM" audit verify "$LOG"
contains "$OUT" "chain: intact" "the log is intact after all of it"
