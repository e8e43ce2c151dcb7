#!/bin/sh
# knot-hsm ceremony on zones of two cards (two cardsim cards in one process,
# each with its own card lock, PIN counter and counter file): the zones are
# grouped by card, one login per card, each zone's SKR signed by its own
# card's KSK, and the cards sign at the same time, shown by counting: each
# card's signatures wait, card lock held, for one of the other card
# (cardsim sign_wait_for), which a card-after-card run never gives.
# A wrong PIN on one card: exactly one failed login in all, a clear error.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

# Card A: cardsim through KHSM_CARDSIM_CONF. Card B: a copy of cardsim with
# its conf beside it (and its own SoftHSM copy), another SoftHSM token.
token_init "card B under cardsim"
B=$TMP/cardB
mkdir -p "$B"
cp "$CARDSIM" "$B/libcardsim.so"
cp "$SOFTHSM_MODULE" "$B/libsofthsm2.so"
COUNTER_B=$TMP/counterB
# count_b WHAT: card B's counter lines starting with WHAT (0 when card B was
# never touched and has no counter file).
count_b() { if [ -f "$COUNTER_B" ]; then grep -c "^$1" "$COUNTER_B" || true; else echo 0; fi; }
BEGIN_A=$TMP/beginA
# conf_b [LINE...]: card B's conf, like card_conf for card A.
conf_b() {
	{
		echo "latency_scale = 0.01"
		echo "counter_file = $COUNTER_B"
		echo "module = $B/libsofthsm2.so"
		echo "real_label = card B under cardsim"
		echo "label = Card B"
		printf '%s\n' "$@"
	} > "$B/libcardsim.so.conf"
}
card_conf "real_label = softhsm under cardsim" "label = Card A"
conf_b
pin_file "$TMP/cardB.pin"
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "Card A" --pin-file "$TMP/card.pin" --id cardA
stanza_a=$OUT
run 0 "$KNOT_HSM" keystore --module "$B/libcardsim.so" --token "Card B" --pin-file "$TMP/cardB.pin" --id cardB
stanza_b=$(printf '%s\n' "$OUT" | sed '1{/^keystore:$/d}')

D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
KSKC=$D/knot-hsm-ksk.conf
ZONES="a1.example a2.example b1.example b2.example"
write_conf() { # $1: template lines, $2: include
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" stanza="$stanza_a
$stanza_b" include="$2" template="$1" a1.example. a2.example. b1.example. b2.example.
}
write_conf "    storage: $D" ""
run 0 "$KNOT_HSM" -c "$CONF" $ZONES policy keystore=cardA --write "$D/knot-hsm.conf"
write_conf "$KNOT_HSM_TEMPLATE" "$D/knot-hsm.conf"
# The KSK side: the b zones get a policy of their own on card B.
python3 - "$KSKC" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
pol = re.search(r"  - id: knot-hsm-ksk\n(    .*\n)+", s).group(0)
s = s.replace(pol, pol + pol.replace("id: knot-hsm-ksk", "id: knot-hsm-ksk-b").replace("keystore: cardA", "keystore: cardB"))
for z in ("b1.example.", "b2.example."):
    s = s.replace("  - domain: %s\n    dnssec-policy: knot-hsm-ksk\n" % z, "  - domain: %s\n    dnssec-policy: knot-hsm-ksk-b\n" % z)
open(p, "w").write(s)
PY
equals "$(grep -c 'dnssec-policy: knot-hsm-ksk-b' "$KSKC")" 2 "the b zones use card B's policy on the KSK side"
run 0 knotc -c "$KSKC" conf-check
for z in $ZONES; do run 0 "$KNOT_HSM" -c "$KSKC" $z generate; done
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=softhsm%20under%20cardsim" > "$TMP/keysA" 2>/dev/null
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=card%20B%20under%20cardsim" > "$TMP/keysB" 2>/dev/null
for z in a1 a2; do contains "$(cat "$TMP/keysA")" "Label: $z.example. KSK" "$z's KSK on card A"; done
for z in b1 b2; do contains "$(cat "$TMP/keysB")" "Label: $z.example. KSK" "$z's KSK on card B"; done
lacks "$(cat "$TMP/keysB")" "a1.example." "no a zone's KSK on card B"
lacks "$(cat "$TMP/keysA")" "b1.example." "no b zone's KSK on card A"

# Two keystores of one card whose configs differ (another pin-source): the
# run would check one PIN source and keymgr use the other: refused before any
# card work.
python3 - "$KSKC" "$D/twoks-ksk.conf" "$TMP/old.pin" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
ks = re.search(r"  - id: cardA\n(    .*\n)+", s).group(0)
old = re.sub(r"pin-source=[^ ;\"]*", "pin-source=" + sys.argv[3].replace("/", "%2F"), ks.replace("id: cardA", "id: cardA-old"))
s = s.replace(ks, ks + old)
pol = re.search(r"  - id: knot-hsm-ksk-b\n(    .*\n)+", s).group(0)
s = s.replace(pol, pol.replace("keystore: cardB", "keystore: cardA-old"))
open(sys.argv[2], "w").write(s)
PY
run 0 knotc -c "$D/twoks-ksk.conf" conf-check
rm -f "$COUNTER" "$COUNTER_B"
run 1 "$KNOT_HSM" -c "$CONF" $ZONES ceremony ksk-conf="$D/twoks-ksk.conf"
contains "$ERR" "the zones use different keystores of one card on the KSK side (cardA, cardA-old) whose configs differ" \
	"two keystores of one card with different configs: refused, naming both"
equals "$(count login)" 0 "no login for the refused run"

# Several cards need a pin-source in each card keystore (one PIN read by
# knot-hsm cannot be right for two cards): refused before any card work.
sed '/Card%20B/s/;pin-source=[^ ]*//' "$KSKC" > "$D/nopin-ksk.conf"
lacks "$(grep 'Card%20B' "$D/nopin-ksk.conf")" "pin-source" "card B's keystore without pin-source"
rm -f "$COUNTER" "$COUNTER_B"
run 1 "$KNOT_HSM" -c "$CONF" $ZONES ceremony ksk-conf="$D/nopin-ksk.conf" --pin-file "$TMP/card.pin"
contains "$ERR" "the zones are on several cards and the KSK-side keystore cardB has no pin-source" \
	"refused, naming the keystore"
equals "$(count login)$(grep -c '^login' "$COUNTER_B" 2>/dev/null || echo 0)" 00 "no card touched"

# The run: each card's signatures wait, card lock held, for one of the other card.
card_conf "real_label = softhsm under cardsim" "label = Card A" "sign_begin_file = $BEGIN_A" \
	"sign_wait_for = $COUNTER_B"
conf_b "sign_wait_for = $BEGIN_A"
rm -f "$COUNTER" "$COUNTER_B" "$BEGIN_A"
ARCH=$D/knot-hsm-archive/$(date -u +%Y-%m-%d)
run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+60d
equals "$(count 'login ok')" 1 "one login on card A"
equals "$(grep -c '^login ok ' "$COUNTER_B")" 1 "one login on card B"
equals "$(count 'login fail')$(grep -c '^login fail ' "$COUNTER_B")" 00 "no failed login"
equals "$(count 'sign_wait timeout')" 0 "card A signed while card B signed (none of its signatures waited in vain)"
equals "$(grep -c '^sign_wait timeout' "$COUNTER_B")" 0 "card B signed while card A signed"
[ "$(count sign)" -gt 0 ] && [ "$(grep -c '^sign ' "$COUNTER_B")" -gt 0 ] || fail "both cards signed"
pass "both cards signed"
contains "$OUT" "ceremony: 4 zone(s), 4 pre-signed, 0 skipped" "summary line"
contains "$OUT" "one card session per card, the cards in parallel" "the summary says one session per card"
sa=0; sb=0
for z in a1 a2; do sa=$((sa + $(grep -c ' RRSIG ' "$ARCH/$z.example.skr"))); done
for z in b1 b2; do sb=$((sb + $(grep -c ' RRSIG ' "$ARCH/$z.example.skr"))); done
equals "$(count sign)" "$sa" "card A made the a zones' signatures ($sa)"
equals "$(grep -c '^sign ' "$COUNTER_B")" "$sb" "card B made the b zones' signatures ($sb)"
# Each SKR is signed by its own card's KSK: the RRSIGs name the key tag of
# the zone's KSK on the KSK side, never that of a zone on the other card.
ksk_tag() { keymgr -c "$KSKC" "$1" list | awk '$3 == "KSK" { print $2 }'; }
for z in $ZONES; do
	tag=$(ksk_tag $z.)
	[ -n "$tag" ] || fail "$z: no KSK on the KSK side"
	equals "$(grep -c " $tag $z\.\$" "$ARCH/$z.skr")" "$(grep -c ' RRSIG ' "$ARCH/$z.skr")" \
		"every RRSIG of $z's SKR by its own KSK ($tag)"
	run 0 keymgr -c "$CONF" $z. validate-skr "$ARCH/$z.skr"
	lacks "$OUT$ERR" "error" "keymgr validate-skr accepts $z's SKR"
done

# A wrong PIN on card B: one failed login in all, card B's zones not done,
# a clear error; card A's login, if it came first, is its only one.
card_conf "real_label = softhsm under cardsim" "label = Card A"
conf_b
printf '%s' 999999 > "$TMP/cardB.pin"
rm -f "$COUNTER" "$COUNTER_B"
run 1 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+120d
equals "$(( $(count 'login fail') + $(count_b 'login fail ') ))" 1 "exactly one failed login in all"
equals "$(grep -c '^login fail ' "$COUNTER_B")" 1 "the failed login is card B's"
[ "$(count 'login ok')" -le 1 ] || fail "card A logged in more than once"
pass "card A logged in at most once"
contains "$ERR" "PIN" "the error names the PIN"
contains "$ERR" "note: card of keystore cardB: failed: b1.example." "the summary says card B's zones failed"
for z in b1 b2; do
	keymgr -c "$CONF" $z.example. show-offline > "$TMP/after" 2>&1 || true
	lacks "$(cat "$TMP/after")" "$(date -u -d @$(( $(date +%s) + 100 * 86400 )) +%Y-%m-%d)" "$z not signed to +120d"
done
contains "$ERR" "every card stopped" "the summary says a refused PIN stops every card"

# Wrong PINs on both cards: the two card threads log in one after the other,
# so the second card is not asked once the first refused: one try in all.
# until=+180d: card A's zones may already be signed to +120d (when its login
# came before card B's refusal above), and a card with nothing to sign would
# not log in at all.
printf '%s' 999999 > "$TMP/card.pin"
rm -f "$COUNTER" "$COUNTER_B"
run 1 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+180d
equals "$(( $(count 'login fail') + $(count_b 'login fail ') ))" 1 \
	"wrong PINs on both cards: exactly one failed login in all"
equals "$(( $(count 'login ok') + $(count_b 'login ok ') ))" 0 "and no login succeeded"
contains "$ERR" "a PIN was already refused in this run" "the other card says why it did not log in"
