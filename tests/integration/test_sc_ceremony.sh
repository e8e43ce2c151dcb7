#!/bin/sh
# The offline-KSK ceremony on the real card stack: the KSKs on the emulated
# SmartCard-HSM (opensc-pkcs11.so, our own pcscd, vpcd), `knot-hsm ceremony`
# with its default signer (knot-hsm's own card session) pre-signs the DNSKEY
# sets with the card, Knot 3.2's knotd serves the zones on 127.0.0.1 (in the
# test's network namespace) and BIND's delv validates them with the DS
# knot-hsm exports as trust anchor; a wrong DS does not validate.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
. "$KHSM_SRCDIR/tests/smartcard/ceremony.sh"
contains "$sc_stanza" "$OPENSC_MODULE" "the keystore stanza names OpenSC's module"

ZONES="example.com example.net"
PORT=$(free_port)
sc_offline_conf "$TMP/a" "$PORT" $ZONES
for z in $ZONES; do sc_anchor $z; done

s0=$(sc_log_count_prefix "sign ")
run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+5d
for z in $ZONES; do
	contains "$OUT" "$z.: pre-signed " "the ceremony pre-signs $z"
done
signed=$(( $(sc_log_count_prefix "sign ") - s0 ))
said=$(printf '%s\n' "$OUT" | sed -n 's/.*\.: pre-signed .*, \([0-9]*\) card signatures$/\1/p' | awk '{ s += $1 } END { print s + 0 }')
[ "$said" -ge 2 ] || fail "ceremony reports $said card signatures: $OUT"
equals "$signed" "$said" "the emulated card made exactly the $said signatures the ceremony reports"
# Every signature's RRSIG in the SKRs is the card's: count them.
archived=0
for f in $(find "$TMP/a/knot-hsm-archive" -name '*.skr'); do archived=$((archived + $(grep -c RRSIG "$f"))); done
equals "$archived" "$signed" "the SKRs in the archive hold the card's signatures"

knotd_start "$CONF" "$TMP/a/knotd.out"
for z in $ZONES; do knotd_wait_serial "$CONF" $z.; done
sc_validate "after the ceremony" "$PORT" $ZONES

# Negative control: a wrong DS does not validate.
awk '/initial-ds/ { d = $NF; gsub(/[";]/, "", d); c = substr(d, 1, 1); $NF = "\"" (c == "0" ? "1" : "0") substr(d, 2) "\";" } { print }' \
	"$TMP/example.com.anchor" > "$TMP/bad.anchor"
cmp -s "$TMP/example.com.anchor" "$TMP/bad.anchor" && fail "the negative control did not change the DS"
out=$(delv_ask "$PORT" "$TMP/bad.anchor" example.com www.example.com A)
lacks "$out" "fully validated" "delv rejects example.com under a wrong DS (negative control)"

# The DNSKEY set knotd serves carries the card KSK's signature: its key tag
# is the KSK's (from the DS).
tag=$(awk '/initial-ds/ { print $3 }' "$TMP/example.com.anchor")
kdig @127.0.0.1 -p "$PORT" +dnssec +norec example.com. DNSKEY +noall +answer > "$TMP/dnskey"
grep -q "RRSIG[[:space:]]*DNSKEY 13 2 [0-9]* [0-9]* [0-9]* $tag example.com." "$TMP/dnskey" ||
	fail "the served DNSKEY set has no RRSIG by the card KSK (tag $tag): $(cat "$TMP/dnskey")"
pass "knotd serves the DNSKEY set signed by the card KSK (tag $tag)"

# A second ceremony later on extends the SKRs: only new signatures.
s0=$(sc_log_count_prefix "sign ")
run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+20d
for z in $ZONES; do contains "$OUT" "$z.: pre-signed " "the second ceremony pre-signs $z"; done
[ "$(sc_log_count_prefix "sign ")" -gt "$s0" ] || fail "the second ceremony made no card signature"
pass "the second ceremony signed with the card"
run 0 knotc -c "$CONF" zone-sign example.com.
knotd_wait_serial "$CONF" example.com.
sc_validate "after the second ceremony" "$PORT" $ZONES
