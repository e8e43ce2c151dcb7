#!/bin/sh
# One ceremony per zone at a time (lib/zonelock): while a ceremony holds
# example.com (its keymgr blocked on a FIFO the test controls), a second one
# refuses at once when told not to wait, or waits with a note and, once the
# first is done, finds the zone pre-signed and skips it: KASP ends with no
# duplicate ZSKs. The archive (lib/archive) follows no planted symlink: a
# symlinked archive directory, lock directory, or one open to other users is
# refused; a symlink planted at the day's directory is passed over (DAY.2).
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
write_conf() { # $1: zone policy lines, $2: include, $3: keystore stanza
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" stanza="$3" include="$2" template="$1" example.com.
}
write_conf "    storage: $D" "" "$stanza"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy --write "$D/knot-hsm.conf"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf" "$stanza"
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+5d generate-ksk=yes
BASE=$D/knot-hsm-archive
DAY=$(date -u +%Y-%m-%d)

# ZSKs of the ZSK side with their timers; two with equal timers are duplicates.
zsk_timers() {
	keymgr -c "$CONF" example.com. list | awk '$3 == "ZSK" { $1 = ""; $2 = ""; print }'
}

mkfifo "$TMP/gate"
cat > "$TMP/keymgr-hold" <<SH
#!/bin/sh
case " \$* " in *" generate-ksr "*)
	if [ -n "\${HOLD:-}" ]; then echo \$PPID > "$TMP/held.new"; mv "$TMP/held.new" "$TMP/held"; read x < "$TMP/gate"; fi ;;
esac
exec keymgr "\$@"
SH
chmod +x "$TMP/keymgr-hold"

HOLD=1 KHSM_KEYMGR="$TMP/keymgr-hold" "$KNOT_HSM" -c "$CONF" example.com ceremony until=+30d \
	> "$TMP/a.out" 2> "$TMP/a.err" &
a=$!
i=0
until [ -f "$TMP/held" ]; do
	i=$((i + 1)); [ $i -le 400 ] || { kill $a; fail "the first ceremony never reached generate-ksr: $(cat "$TMP/a.err")"; }
	sleep 0.05
done

# Second run, no waiting: refused, with the holder and the remedy.
KHSM_CEREMONY_WAIT_MS=0 run 1 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+30d
contains "$ERR" "error: another ceremony (pid $a) is running on example.com.; it pre-signs and imports that zone: wait for it to finish, then rerun" "a second ceremony on the zone is refused"
lacks "$OUT" "pre-signed" "the refused run pre-signed nothing"

# Third run, waiting: it says so, and skips once the first is done.
KHSM_CEREMONY_WAIT_MS=3600000 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+30d \
	> "$TMP/c.out" 2> "$TMP/c.err" &
c=$!
i=0
until grep -q "waiting up to" "$TMP/c.err"; do
	i=$((i + 1)); [ $i -le 400 ] || { kill $a $c; fail "the waiting ceremony said nothing: $(cat "$TMP/c.err")"; }
	sleep 0.05
done
contains "$(cat "$TMP/c.err")" "note: another ceremony (pid $a) is running on example.com.; waiting up to 3600 s" "the waiting run says why it waits"
echo go > "$TMP/gate"
wait $a || fail "the first ceremony failed: $(cat "$TMP/a.err")"
contains "$(cat "$TMP/a.out")" "example.com.: pre-signed " "the first ceremony pre-signed"
wait $c || fail "the waiting ceremony failed: $(cat "$TMP/c.err")"
contains "$(cat "$TMP/c.out")" "example.com.: skipped: pre-signed until" "the waiting ceremony skipped the covered zone"
t=$(zsk_timers)
[ -n "$t" ] || fail "no ZSK in KASP"
equals "$(printf '%s\n' "$t" | sort | uniq -d)" "" "no two ZSKs with equal timers in KASP"

# Archive: a symlink planted at the day's directory is passed over.
mkdir "$TMP/victim"
run 0 ls "$BASE"
for e in $OUT; do mv "$BASE/$e" "$BASE/old-$e"; done
ln -s "$TMP/victim" "$BASE/$DAY"
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+60d
contains "$OUT" "archived $BASE/$DAY.2/example.com.ksr" "a symlinked day directory is passed over for $DAY.2"
equals "$(ls -A "$TMP/victim")" "" "nothing written through the planted symlink"
rm "$BASE/$DAY"

# The archive directory itself a symlink: refused, nothing written there.
mv "$BASE" "$D/archive.real"
ln -s "$TMP/victim" "$BASE"
run 1 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+90d
contains "$ERR" "archive directory $BASE is a symbolic link or not a directory; knot-hsm never follows one there" "a symlinked archive directory is refused"
equals "$(ls -A "$TMP/victim")" "" "nothing written through it"
rm "$BASE"; mv "$D/archive.real" "$BASE"

# Open to others, or another user's: refused.
chmod 0770 "$BASE"
run 1 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+90d
contains "$ERR" "can be written by another user, who could swap the records" "a group-writable archive directory is refused"
chmod 0750 "$BASE"; chown nobody "$BASE"
run 1 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+90d
contains "$ERR" "archive directory $BASE (owner uid $(id -u nobody)" "an archive directory of another user is refused"
chown root "$BASE"

# The lock directory a symlink: refused.
rm -r "$BASE/.lock"
ln -s "$TMP/victim" "$BASE/.lock"
run 1 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+90d
contains "$ERR" "knot-hsm never follows a symlink there" "a symlinked lock directory is refused"
equals "$(ls -A "$TMP/victim")" "" "no lock file made through it"
rm "$BASE/.lock"
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+90d
contains "$OUT" "example.com.: pre-signed " "control: with the archive sound the ceremony runs"
