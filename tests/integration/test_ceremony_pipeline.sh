#!/bin/sh
# knot-hsm ceremony on many zones, on cardsim (a smartcard simulator that
# counts logins and signatures): one card login for the whole run, a progress
# line per zone, the SKRs knot-hsm signs itself through libdnssec equal what
# keymgr sign-ksr makes of the same KSR (all but the random ECDSA signature
# bytes and the trailer) and pass keymgr validate-skr, and a failure in zone 3
# of 5 leaves zones 1-2 done and zones 3-5 without a new SKR.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

card_conf
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card
stanza=$OUT
D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
ZONES="z1.example z2.example z3.example z4.example z5.example"
write_conf() { # $1: zone policy lines, $2: include
	wc_zones=""
	for z in $ZONES; do wc_zones="$wc_zones $z."; done
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" include="${2#include: }" template="$1" $wc_zones
}
write_conf "    storage: $D" ""
run 0 "$KNOT_HSM" -c "$CONF" $ZONES policy --write "$D/knot-hsm.conf"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $D/knot-hsm.conf"
KSKC=$D/knot-hsm-ksk.conf
ARCH=$D/knot-hsm-archive/$(date -u +%Y-%m-%d)
for z in $ZONES; do run 0 "$KNOT_HSM" -c "$KSKC" $z generate; done
pass "five KSKs on the card"

# One run, five zones: one login, every signature counted in the SKRs.
rm -f "$COUNTER"
run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+60d
equals "$(count 'login ok')" 1 "one card login for five zones"
equals "$(count 'login fail')" 0 "no failed login"
n=1
for z in $ZONES; do
	contains "$OUT" "$z.: pre-signed " "$z pre-signed"
	contains "$OUT" "progress: $n/5 zones" "progress line $n/5"
	n=$((n + 1))
done
lacks "$OUT" "signed by keymgr" "no zone left to keymgr"
contains "$OUT" "ceremony: 5 zone(s), 5 pre-signed, 0 skipped" "summary line"
total=0
for z in $ZONES; do total=$((total + $(grep -c ' RRSIG ' "$ARCH/$z.skr"))); done
equals "$(count sign)" "$total" "card signatures = RRSIGs in the SKRs ($total)"
contains "$OUT" "$total card signatures" "summary counts the card signatures"

# Same KSR, keymgr sign-ksr: the same SKR but for the signature bytes and
# the trailer; and keymgr validate-skr accepts ours.
mask() { # SKR file: signature lines and the trailer replaced
	awk '/ RRSIG / { rr = 1; print; next }
	     rr && / \)$|^[[:space:]]*\)$/ { rr = 0; print "\t\t\t\tSIGNATURE )"; next }
	     rr && /[A-Za-z0-9+\/=]+$/ && !/ [0-9]+ [a-z0-9.-]+\.$/ { next }
	     /^;; SignedKeyResponse 1.0 generated/ { print ";; trailer"; next }
	     { print }' "$1"
}
run 0 keymgr -c "$KSKC" z2.example. sign-ksr "$ARCH/z2.example.ksr"
printf '%s\n' "$OUT" > "$TMP/keymgr.skr"
[ "$(grep -c ' RRSIG ' "$TMP/keymgr.skr")" -gt 2 ] || fail "keymgr sign-ksr made too few sets"
mask "$TMP/keymgr.skr" > "$TMP/a"; mask "$ARCH/z2.example.skr" > "$TMP/b"
diff "$TMP/a" "$TMP/b" > "$TMP/diff" || { cat "$TMP/diff" >&2; fail "knot-hsm's SKR differs from keymgr sign-ksr's"; }
pass "SKR equals keymgr sign-ksr's for the same KSR but for the signatures ($(grep -c '^;; SignedKeyResponse 1.0 [0-9]' "$TMP/b") sets)"
[ "$(grep -c SIGNATURE "$TMP/b")" -eq "$(grep -c ' RRSIG ' "$ARCH/z2.example.skr")" ] || fail "mask lost an RRSIG"
pass "every RRSIG masked once"
run 0 keymgr -c "$CONF" z2.example. validate-skr "$ARCH/z2.example.skr"
lacks "$OUT$ERR" "error" "keymgr validate-skr accepts knot-hsm's SKR"

# Failure in zone 3 of 5 (import-skr refused): 1-2 done, 3-5 unchanged.
for z in $ZONES; do
	keymgr -c "$CONF" $z. show-offline > "$TMP/before.$z" 2>&1 || true
done
cat > "$TMP/keymgr-fail3" <<'SH'
#!/bin/sh
case " $* " in
*" z3.example. import-skr "*) echo "error: simulated import failure" >&2; exit 1 ;;
*) exec keymgr "$@" ;;
esac
SH
chmod +x "$TMP/keymgr-fail3"
rm -f "$COUNTER"
KHSM_KEYMGR="$TMP/keymgr-fail3" run 1 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+120d
contains "$OUT" "z1.example.: pre-signed " "zone 1 done"
contains "$OUT" "z2.example.: pre-signed " "zone 2 done"
contains "$ERR" "error: z3.example.: " "zone 3 fails"
contains "$ERR" "import-skr (ZSK side): keymgr reports error: simulated import failure" "the failing step is named"
contains "$ERR" "2 zone(s) before z3.example. are done" "says what is done"
lacks "$OUT" "z4.example.: pre-signed" "zone 4 not imported"
lacks "$OUT" "z5.example.: pre-signed" "zone 5 not imported"
for z in z3.example z4.example z5.example; do
	keymgr -c "$CONF" $z. show-offline > "$TMP/after.$z" 2>&1 || true
	equals "$(cat "$TMP/after.$z")" "$(cat "$TMP/before.$z")" "$z keeps its previous SKR"
done
[ "$(count 'login ok')" -le 1 ] || fail "more than one login in the failed run"
pass "at most one login in the failed run"
# The rerun finishes: 1-2 skipped, 3-5 done, one login.
rm -f "$COUNTER"
run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+120d
contains "$OUT" "z1.example.: skipped" "rerun skips zone 1"
contains "$OUT" "z5.example.: pre-signed " "rerun finishes zone 5"
equals "$(count 'login ok')" 1 "rerun: one login"

# A busy card (busy = fail: another program holds it for a moment): the
# built-in signer waits under knot-hsm's card lock and retries, says so, and
# the run completes.
card_conf "busy = fail" "latency_sign_ms = 200"
flock "$CARD_LOCK" sleep 1.5 &
holder=$!
sleep 0.2
run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+200d
wait "$holder" || true
contains "$ERR" "note: card busy while" "a busy card is waited for"
contains "$OUT" "z5.example.: pre-signed " "and the ceremony completes"
