#!/bin/sh
# knot-hsm ceremony: interrupted after the first zone (the card disappears
# for keymgr), the second zone keeps its previous SKR and stays valid, a
# rerun finishes; zones already covered are skipped; an SKR that does not
# validate is archived as .invalid and never imported; a missing KSK is
# explained or generated on request; a keystore without pin-source takes
# the PIN once into a private temporary file that is removed afterwards.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
write_conf() { # $1: zone policy lines, $2: include, $3: keystore stanza
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" stanza="$3" include="$2" template="$1" example.com. example.net.
}
write_conf "    storage: $D" "" "$stanza"
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy --write "$D/knot-hsm.conf"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf" "$stanza"
KSKC=$D/knot-hsm-ksk.conf
DAY=$(date -u +%Y-%m-%d)
ARCH=$D/knot-hsm-archive/$DAY

# No KSK on the KSK side yet: explained, nothing done.
run 1 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+5d
contains "$ERR" "example.com. has no KSK on the KSK side; make it on the card with: knot-hsm -c $KSKC example.com. generate" "missing KSK explained"
run 0 keymgr -c "$CONF" example.com. show-offline
equals "$OUT" "" "nothing imported without a KSK"
[ -e "$ARCH" ] && fail "a ceremony that archived nothing left $ARCH behind"
pass "no empty archive directory after a failed run"
# ... or generated on request.
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+5d generate-ksk=yes
contains "$OUT" "example.com.: generating the KSK on the card" "KSK generated for the first zone"
contains "$OUT" "example.net.: generating the KSK on the card" "and for the second"
contains "$OUT" "example.net.: pre-signed " "both zones pre-signed"
contains "$OUT" "archived $ARCH/example.com.ksr and $ARCH/example.com.skr" "KSR and SKR archived by day"
sigs=$(printf '%s\n' "$OUT" | sed -n 's/^example.com.: pre-signed .*, \([0-9]*\) card signatures$/\1/p')
equals "$sigs" "$(grep -c 'RRSIG' "$ARCH/example.com.skr")" "card signatures counted from the SKR"
first_skr=$(cksum < "$ARCH/example.com.skr")
run 0 keymgr -c "$CONF" example.net. show-offline
net_before=$OUT

# Already covered: skipped, no card work.
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+4d
contains "$OUT" "example.com.: skipped: pre-signed until" "covered zone skipped"
contains "$OUT" "example.net.: skipped: pre-signed until" "second covered zone skipped"

# The card goes away after the first zone: keymgr's sign-ksr for the second
# zone finds no token (an empty SoftHSM token directory stands for the
# removed card).
mkdir -p "$TMP/nocard"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$TMP/nocard" > "$TMP/nocard.conf"
cat > "$TMP/keymgr-nocard" <<SH
#!/bin/sh
for a; do
	if [ "\$a" = example.net. ]; then export SOFTHSM2_CONF=$TMP/nocard.conf; fi
done
exec keymgr "\$@"
SH
chmod +x "$TMP/keymgr-nocard"
KHSM_KEYMGR="$TMP/keymgr-nocard" run 1 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+20d signer=keymgr
contains "$OUT" "example.com.: pre-signed " "first zone done before the card went away"
contains "$ERR" "error: example.net.: " "second zone fails"
contains "$ERR" "sign-ksr (KSK side, card): keymgr reports error: failed to initialize KASP (PKCS #11 token not available)" "the card's absence is reported"
contains "$ERR" "1 zone(s) before example.net. are done" "says what is done"
run 0 keymgr -c "$CONF" example.net. show-offline
equals "$OUT" "$net_before" "second zone keeps its previous SKR"
end=$(printf '%s\n' "$OUT" | sed -n 's/^;; Offline records for \([0-9]*\) .*/\1/p' | tail -n 1)
[ "$end" -gt "$(date +%s)" ] || fail "previous SKR of example.net. no longer in force"
pass "the previous SKR of example.net. is still in force"
run 0 "$KNOT_HSM" -c "$CONF" status --warn 3 --crit 1
contains "$OUT" "example.net.
  state: ok" "status: second zone still valid"

# The rerun finishes: the first zone is skipped, the second done.
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+20d
contains "$OUT" "example.com.: skipped" "rerun skips the finished zone"
contains "$OUT" "example.net.: pre-signed " "rerun finishes the second zone"

# status takes the zones side by side: a keymgr in front of the real one
# notes how many keymgr runs are under way when it starts (each holds on
# for 0.3 s so that two runs meet); the zones are printed in their order.
REAL_KEYMGR=$(command -v keymgr)
mkdir -p "$TMP/running"
cat > "$TMP/keymgr-count" <<SH
#!/bin/sh
: > "$TMP/running/\$\$"
ls "$TMP/running" | wc -l >> "$TMP/concurrent"
sleep 0.3
"$REAL_KEYMGR" "\$@"; rc=\$?
rm -f "$TMP/running/\$\$"
exit \$rc
SH
chmod +x "$TMP/keymgr-count"
KHSM_KEYMGR=$TMP/keymgr-count run 0 "$KNOT_HSM" -c "$CONF" status --warn 3 --crit 1
[ "$(sort -n "$TMP/concurrent" | tail -n 1)" -ge 2 ] ||
	fail "status ran one keymgr at a time: $(tr '\n' ' ' < "$TMP/concurrent")"
pass "status runs the zones' keymgr side by side"
equals "$(printf '%s\n' "$OUT" | grep '^example\.')" "example.com.
example.net." "status prints the zones in their order"
# ds over several zones: their keymgr dnskey side by side, printed in order
: > "$TMP/concurrent"
KHSM_KEYMGR=$TMP/keymgr-count run 0 "$KNOT_HSM" -c "$KSKC" example.com example.net ds
[ "$(sort -n "$TMP/concurrent" | tail -n 1)" -ge 2 ] ||
	fail "ds ran one keymgr at a time: $(tr '\n' ' ' < "$TMP/concurrent")"
pass "ds runs the zones' keymgr side by side"
equals "$(printf '%s\n' "$OUT" | awk '{ print $1 }' | uniq | tr '\n' ' ')" "example.com. example.net. " \
	"ds prints the zones in their order"

# An SKR that does not validate is never imported: sign-ksr's output is
# corrupted in one signature; keymgr validate-skr prints "error: …", then
# "OK" and exits 0 (Knot 3.2.6), which knot-hsm treats as the failure it is.
cat > "$TMP/keymgr-tamper" <<'SH'
#!/bin/sh
case " $* " in
*" sign-ksr "*)
	keymgr "$@" > "${TMPDIR:-/tmp}/skr.$$" || exit $?
	awk '/RRSIG DNSKEY/ { n = NR + 2 } NR == n && !done { $1 = (substr($1, 1, 1) == "A" ? "B" : "A") substr($1, 2); done = 1 } { print }' "${TMPDIR:-/tmp}/skr.$$"
	rm -f "${TMPDIR:-/tmp}/skr.$$"
	;;
*) exec keymgr "$@" ;;
esac
SH
chmod +x "$TMP/keymgr-tamper"
run 0 keymgr -c "$CONF" example.com. show-offline
com_before=$OUT
KHSM_KEYMGR="$TMP/keymgr-tamper" run 1 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+30d signer=keymgr
contains "$ERR" "validate-skr: keymgr reports error: invalid SignedKeyResponse" "tampered SKR refused"
# Later ceremonies the same day archive in DAY.2, DAY.3, ...: the first
# run's records stay as they were.
bad=$(printf '%s\n' "$ERR" | sed -n 's/.*not imported, kept as \(.*\)$/\1/p')
case "$bad" in
	"$ARCH".[0-9]*/example.com.skr.invalid) pass "kept aside as .invalid in this run's own directory" ;;
	*) fail "invalid SKR not kept in a later same-day directory: $ERR" ;;
esac
[ -f "$bad" ] || fail "no .invalid SKR in the archive"
pass "invalid SKR archived"
equals "$(cksum < "$ARCH/example.com.skr")" "$first_skr" "the first ceremony's SKR of the day is not replaced"
run 0 keymgr -c "$CONF" example.com. show-offline
equals "$OUT" "$com_before" "nothing of the bad SKR was imported"

# A keystore without pin-source: the PIN is read once (--pin-file here),
# given to keymgr through a 0600 file in a 0700 temporary directory, and
# removed afterwards. Without any PIN source the ceremony stops.
MOD=$(printf '%s\n' "$stanza" | sed -n 's/.*config: "[^ ]* \(.*\)"$/\1/p')
nopin="keystore:
  - id: card
    backend: pkcs11
    config: \"pkcs11:token=SmartCard-HSM%20%28UserPIN%29 $MOD\"
    key-label: on"
write_conf "    storage: $D" "" "$nopin"
sed -i 's|;pin-source=[^ "]*||' "$KSKC"
lacks "$(cat "$KSKC")" "pin-source" "KSK side without pin-source"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf" "$nopin"
mkdir -p "$TMP/t"
TMPDIR=$TMP/t run 1 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+30d < /dev/null
contains "$ERR" "PIN for the KSK side" "no PIN source: refused"
TMPDIR=$TMP/t run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+30d --pin-file "$PINF"
contains "$OUT" "example.com.: pre-signed " "ceremony with a PIN read once"
equals "$(ls -A "$TMP/t")" "" "the temporary PIN file and directory are gone"

# Stopped by SIGTERM (a systemd stop) inside its first zone, before anything
# was archived: no empty archive directory and no PIN file stay behind.
cat > "$TMP/keymgr-slow" <<SH
#!/bin/sh
case " \$* " in *" pregenerate "*|*" generate-ksr "*) echo \$\$ > "$TMP/in-keymgr"; exec sleep 20 ;; esac
exec keymgr "\$@"
SH
chmod +x "$TMP/keymgr-slow"
before=$(ls "$D/knot-hsm-archive" | sort)
KHSM_KEYMGR="$TMP/keymgr-slow" TMPDIR=$TMP/t "$KNOT_HSM" -c "$CONF" example.com ceremony until=+60d \
	--pin-file "$PINF" > "$TMP/term.out" 2>&1 &
pid=$!
i=0
until [ -f "$TMP/in-keymgr" ]; do
	i=$((i + 1)); [ $i -le 200 ] || { kill $pid; fail "the ceremony never reached keymgr: $(cat "$TMP/term.out")"; }
	sleep 0.05
done
kill -TERM $pid
wait $pid && fail "the ceremony ignored SIGTERM"
kill "$(cat "$TMP/in-keymgr")" 2>/dev/null || true
equals "$(ls "$D/knot-hsm-archive" | sort)" "$before" "a ceremony stopped by SIGTERM leaves no empty archive directory"
equals "$(ls -A "$TMP/t")" "" "nor its temporary PIN file"
