#!/bin/sh
# A PIN knot-hsm hands to keymgr (KSK keystore without pin-source) leaves
# nothing on disk even when the ceremony is killed with -9: keymgr reads it
# as pin-source=/proc/<knot-hsm pid>/fd/N, a sealed memfd, from a KSK-side
# configuration that is itself a memfd and holds no PIN; GnuTLS (in keymgr
# sign-ksr and in knot-hsm's own signer) logs in through that path. What an
# older, killed run left in TMPDIR is wiped and removed on start, and the
# cleanup follows no symlink and spares live runs and other users.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

PIN=581730264   # cannot turn up by chance
card_keystore
D=$TMP/knot
mkdir -p "$D/keys" "$TMP/t"
CONF=$D/knot.conf
write_conf() { # $1: zone policy lines, $2: include, $3: keystore stanza
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" stanza="$3" include="$2" template="$1" example.com. example.net.
}
write_conf "    storage: $D" "" "$stanza"
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy --write "$D/knot-hsm.conf"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf" "$stanza"
KSKC=$D/knot-hsm-ksk.conf
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+5d generate-ksk=yes
# From here the KSK side has no pin-source: knot-hsm reads the PIN once.
sed -i 's|;pin-source=[^ "]*||' "$KSKC"
lacks "$(cat "$KSKC")" "pin-source" "KSK side without pin-source"

# keymgr as a wrapper that looks at what it is given, then runs keymgr.
cat > "$TMP/keymgr-look" <<SH
#!/bin/sh
prev=
for a; do
	if [ "\$prev" = -c ]; then conf=\$a; fi
	prev=\$a
done
case " \$* " in *" sign-ksr "*)
	echo "\$conf" > "$TMP/conf-path"
	cat "\$conf" > "$TMP/conf-seen"
	src=\$(sed -n 's/.*pin-source=\([^ ;"]*\).*/\1/p' "\$conf" | sed 's/%2[Ff]/\//g')
	echo "\$src" > "$TMP/pin-path"
	if [ "\$(cat "\$src")" = "$PIN" ]; then echo yes > "$TMP/pin-readable"; fi
	;;
esac
exec keymgr "\$@"
SH
chmod +x "$TMP/keymgr-look"
TMPDIR=$TMP/t KHSM_KEYMGR="$TMP/keymgr-look" run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony \
	until=+30d signer=keymgr --pin-file "$PINF"
contains "$OUT" "signed by keymgr sign-ksr" "keymgr sign-ksr logged in with the handed-over PIN"
case "$(cat "$TMP/pin-path")" in /proc/[0-9]*/fd/[0-9]*) pass "keymgr's pin-source is /proc/PID/fd/N" ;;
	*) fail "pin-source is $(cat "$TMP/pin-path")" ;; esac
case "$(cat "$TMP/conf-path")" in /proc/[0-9]*/fd/[0-9]*) pass "keymgr's -c is /proc/PID/fd/N" ;;
	*) fail "keymgr -c $(cat "$TMP/conf-path")" ;; esac
equals "$(cat "$TMP/pin-readable")" "yes" "the path gives the PIN to a child of knot-hsm"
lacks "$(cat "$TMP/conf-seen")" "$PIN" "the configuration keymgr reads holds no PIN"
equals "$(ls -A "$TMP/t")" "" "nothing was created in TMPDIR"
# knot-hsm's own signer (signer=card) reads the same path through GnuTLS.
TMPDIR=$TMP/t run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+60d --pin-file "$PINF"
contains "$OUT" "one card session" "signer=card logs in through the handed-over PIN"

# kill -9 while keymgr holds the KSK side: a wrapper tells where it is and
# waits on a FIFO the test controls.
mkfifo "$TMP/gate"
cat > "$TMP/keymgr-stop" <<SH
#!/bin/sh
case " \$* " in *" sign-ksr "*)
	echo \$PPID > "$TMP/parent.new"; mv "$TMP/parent.new" "$TMP/parent"
	read x < "$TMP/gate"
	exit 1 ;;
esac
exec keymgr "\$@"
SH
chmod +x "$TMP/keymgr-stop"
TMPDIR=$TMP/t KHSM_KEYMGR="$TMP/keymgr-stop" "$KNOT_HSM" -c "$CONF" example.com ceremony until=+90d \
	signer=keymgr --pin-file "$PINF" > "$TMP/kill.out" 2>&1 &
pid=$!
i=0
until [ -f "$TMP/parent" ]; do
	i=$((i + 1)); [ $i -le 400 ] || { kill $pid; fail "the ceremony never reached sign-ksr: $(cat "$TMP/kill.out")"; }
	sleep 0.05
done
equals "$(cat "$TMP/parent")" "$pid" "keymgr runs as a child of the ceremony"
kill -9 $pid
wait $pid 2>/dev/null && fail "kill -9 did not stop the ceremony"
echo go > "$TMP/gate"
equals "$(ls -A "$TMP/t")" "" "after kill -9 nothing is left in TMPDIR"
if grep -rqF "$PIN" "$TMP/t" "$D"; then fail "the PIN is in a file after kill -9"; fi
pass "no file under TMPDIR or the Knot directories holds the PIN"

# A KSK made on request (knot-hsm generate and keymgr import on the KSK side
# copy, both reading the handed-over configuration and PIN).
TMPDIR=$TMP/t run 0 "$KNOT_HSM" -c "$CONF" example.net ceremony until=+30d generate-ksk=yes --pin-file "$PINF"
contains "$OUT" "example.net.: generating the KSK on the card" "generate-ksk=yes works with the handed-over PIN"
contains "$OUT" "example.net.: pre-signed " "and the new zone is pre-signed"
equals "$(ls -A "$TMP/t")" "" "nothing was created in TMPDIR for it"

# Leftovers of older runs (PIN files in TMPDIR/knot-hsm-ceremony.*): a dead
# run's (pid beyond pid_max), one without a pid (older knot-hsm) are wiped
# and removed; a live run's, a symlink and another user's are left alone.
mk() { mkdir -m 0700 "$TMP/t/$1"; (umask 077; printf '%s' "$PIN" > "$TMP/t/$1/pin"); }
mk knot-hsm-ceremony.99999999.abcdef
mk knot-hsm-ceremony.Xq3zTw
mk "knot-hsm-ceremony.$$.livexx"
mkdir "$TMP/victim"; printf 'keep\n' > "$TMP/victim/pin"
ln -s "$TMP/victim" "$TMP/t/knot-hsm-ceremony.1.linkxx"
mk knot-hsm-ceremony.2.nobody; chown -R nobody "$TMP/t/knot-hsm-ceremony.2.nobody"
TMPDIR=$TMP/t run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+90d --pin-file "$PINF"
contains "$ERR" "note: removed 2 temporary PIN directories left by an earlier ceremony that was killed" "stale directories reported"
[ ! -e "$TMP/t/knot-hsm-ceremony.99999999.abcdef" ] && [ ! -e "$TMP/t/knot-hsm-ceremony.Xq3zTw" ] ||
	fail "a dead run's directory is still there: $(ls "$TMP/t")"
pass "dead runs' directories removed"
equals "$(cat "$TMP/t/knot-hsm-ceremony.$$.livexx/pin")" "$PIN" "a live run's directory is kept"
equals "$(cat "$TMP/t/knot-hsm-ceremony.2.nobody/pin")" "$PIN" "another user's directory is kept"
[ -L "$TMP/t/knot-hsm-ceremony.1.linkxx" ] || fail "the symlink was removed"
equals "$(cat "$TMP/victim/pin")" "keep" "nothing removed through the symlink"
