#!/bin/sh
# The card lock (lib/retry.c) can be taken only by root and knotd's user:
# root creates its directory 2770 root:knot and the lock file 0660; a planted
# symlink (directory or file), a file that is not regular, owned by another
# user or open to others is refused, never followed; another local user
# (nobody) cannot open the lock to stall the card with flock -s.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

LABEL="turns"
token_init "$LABEL"
# uri lists the token's objects: a card operation under the lock.
lookup() { "$KNOT_HSM" uri --token "$LABEL" --object nothing; }

# The default location, moved under $TMP (KHSM_LOCK_DIR) to stay hermetic.
unset KHSM_LOCK_FILE
chmod 0755 "$TMP"          # let nobody reach it, as /run is
mkdir -m 0755 "$TMP/run"
export KHSM_LOCK_DIR="$TMP/run/knot-hsm"
run 1 lookup
lacks "$ERR" "lock " "control: the lookup runs under the lock (it fails only for the missing object)"
[ -d "$KHSM_LOCK_DIR" ] || fail "no lock directory"
if getent group knot >/dev/null; then
	equals "$(stat -c '%a %U %G' "$KHSM_LOCK_DIR")" "2770 root knot" "lock directory is 2770 root:knot"
else
	equals "$(stat -c '%a %U' "$KHSM_LOCK_DIR")" "700 root" "lock directory is 0700 root"
fi
equals "$(stat -c '%a %U %F' "$KHSM_LOCK_DIR/card.lock")" "660 root regular empty file" "lock file is 0660 root"

# Another local user cannot open it, so cannot hold it.
if runuser -u nobody -- sh -c "exec 3<'$KHSM_LOCK_DIR/card.lock'" 2>/dev/null; then
	fail "nobody could open the lock file"
fi
pass "nobody cannot open the lock file (flock -s impossible)"
# Control: the same open as root works.
sh -c "exec 3<'$KHSM_LOCK_DIR/card.lock'" || fail "root cannot open the lock file"
pass "control: root can open it"

# A lock file made 0644 by an older knot-hsm is repaired through its descriptor.
chmod 0644 "$KHSM_LOCK_DIR/card.lock"
run 1 lookup
equals "$(stat -c '%a' "$KHSM_LOCK_DIR/card.lock")" "660" "a 0644 lock file of ours is set to 0660"

# A symlink planted at the lock file: refused, its target untouched.
rm "$KHSM_LOCK_DIR/card.lock"
printf 'precious\n' > "$TMP/target"; chmod 0644 "$TMP/target"
ln -s "$TMP/target" "$KHSM_LOCK_DIR/card.lock"
run 1 lookup
contains "$ERR" "lock file $KHSM_LOCK_DIR/card.lock is a symbolic link, which knot-hsm never follows" "symlinked lock file refused"
equals "$(stat -c '%a' "$TMP/target")" "644" "the symlink's target keeps its mode"
rm "$KHSM_LOCK_DIR/card.lock"

# Not a regular file (a FIFO: nothing waits on it).
mkfifo -m 0660 "$KHSM_LOCK_DIR/card.lock"
run 1 lookup
contains "$ERR" "is not a regular file" "FIFO at the lock path refused"
rm "$KHSM_LOCK_DIR/card.lock"

# Owned by another user.
: > "$KHSM_LOCK_DIR/card.lock"; chmod 0660 "$KHSM_LOCK_DIR/card.lock"; chown nobody "$KHSM_LOCK_DIR/card.lock"
run 1 lookup
contains "$ERR" "is owned by uid $(id -u nobody), neither root, you nor knotd's user" "lock file owned by nobody refused"
rm "$KHSM_LOCK_DIR/card.lock"

# The directory: a symlink planted in its place, or one open to others.
rm -r "$KHSM_LOCK_DIR"
mkdir -m 0777 "$TMP/elsewhere"
ln -s "$TMP/elsewhere" "$KHSM_LOCK_DIR"
run 1 lookup
contains "$ERR" "lock directory $KHSM_LOCK_DIR is a symbolic link or not a directory" "symlinked lock directory refused"
[ ! -e "$TMP/elsewhere/card.lock" ] || fail "a lock file was created through the symlink"
pass "nothing created through the symlinked directory"
rm "$KHSM_LOCK_DIR"
mkdir -m 0777 "$KHSM_LOCK_DIR"; chmod 0777 "$KHSM_LOCK_DIR"
run 1 lookup
contains "$ERR" "lock directory $KHSM_LOCK_DIR must be root's" "world-writable lock directory refused"
rmdir "$KHSM_LOCK_DIR"

# KHSM_LOCK_FILE gets the same file checks.
ln -s "$TMP/target" "$TMP/planted.lock"
KHSM_LOCK_FILE="$TMP/planted.lock" run 1 lookup
contains "$ERR" "is a symbolic link, which knot-hsm never follows" "symlinked KHSM_LOCK_FILE refused"
