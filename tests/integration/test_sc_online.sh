#!/bin/sh
# Online mode on Knot 3.5 with the KSK on the emulated SmartCard-HSM (real
# card stack: opensc-pkcs11.so, our own pcscd, vpcd): knotd generates the KSK
# on the card (GENERATE in the card's log), signs the DNSKEY set with it (SIGN
# in the card's log, RRSIG by the KSK's tag), serves the zone on 127.0.0.1 of
# the test's namespace, and BIND's delv validates under the DS knot-hsm
# exports; a re-sign asked for with knotc makes the card sign again.
# Needs the test-only Knot 3.5 build (sh tests/knot35/build.sh): fails without.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knot35.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
. "$KHSM_SRCDIR/tests/smartcard/ceremony.sh"
contains "$sc_stanza" "$OPENSC_MODULE" "the keystore stanza names OpenSC's module"

sc_knotd_dir
write_conf() { sc_knotd_conf "$sc_stanza" "$1" "$2"; }   # include-line dnssec-policy-line
write_conf "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com policy mode=online dnskey-ttl=3s zone-max-ttl=3s \
	propagation-delay=3s --write "$D/knot-hsm.conf"
contains "$OUT" "mode: online" "policy renders the online mode"
contains "$(cat "$D/knot-hsm.conf")" "ksk-only: on" "card keystore only for KSKs"
write_conf "include: $D/knot-hsm.conf" "    dnssec-policy: knot-hsm"
run 0 knotc -c "$CONF" conf-check

g0=$(sc_log_count_prefix "generate ")
s0=$(sc_log_count_prefix "sign ")
knotd_start "$CONF" "$D/knotd.out"
knotd_wait_serial "$CONF" example.com.
run 0 keymgr -c "$CONF" example.com. list
contains "$(printf '%s\n' "$OUT" | awk '$3 == "KSK"')" "PKCS11/knot-hsm-card" "knotd generated the KSK in the card keystore"
contains "$(printf '%s\n' "$OUT" | awk '$3 == "ZSK"')" "PEM/knot-hsm-soft" "and the ZSK in software"
KSK_TAG=$(printf '%s\n' "$OUT" | awk '$3 == "KSK" { print $2 }')
equals "$(( $(sc_log_count_prefix "generate ") - g0 ))" 1 "the emulated card generated the KSK (one GENERATE)"
[ "$(( $(sc_log_count_prefix "sign ") - s0 ))" -ge 1 ] || fail "the card made no signature: knotd did not sign with it"
pass "the emulated card signed for knotd"
p11 --login --pin "$PIN" --list-objects --type privkey > "$TMP/objs" 2>&1 || fail "pkcs11-tool: $(cat "$TMP/objs")"
contains "$(cat "$TMP/objs")" "Private Key Object; EC" "the KSK's private key is an object on the card (OpenSC)"

run 0 "$KNOT_HSM" -c "$CONF" example.com ds
ds=$(printf '%s\n' "$OUT" | grep ' DS ' | head -n 1)
[ -n "$ds" ] || fail "knot-hsm ds printed no DS: $OUT"
printf '%s\n' "$ds" | awk '{ printf "trust-anchors {\n  %s initial-ds %s %s %s \"%s\";\n};\n", $1, $3, $4, $5, $6 }' \
	> "$TMP/example.com.anchor"
equals "$(printf '%s\n' "$ds" | awk '{ print $3 }')" "$KSK_TAG" "the DS is the card KSK's"
sc_validate "online" "$PORT" example.com
awk '/initial-ds/ { d = $NF; gsub(/[";]/, "", d); c = substr(d, 1, 1); $NF = "\"" (c == "0" ? "1" : "0") substr(d, 2) "\";" } { print }' \
	"$TMP/example.com.anchor" > "$TMP/bad.anchor"
out=$(delv_ask "$PORT" "$TMP/bad.anchor" example.com www.example.com A)
lacks "$out" "fully validated" "delv rejects the zone under a wrong DS (negative control)"

# dnskey_sig: the DNSKEY RRSIG by the KSK knotd serves.
dnskey_sig() {
	kdig @127.0.0.1 -p "$PORT" +dnssec +norec example.com. DNSKEY +noall +answer |
		awk -v tag="$KSK_TAG" '$4 == "RRSIG" && $5 == "DNSKEY" && $11 == tag { print $12 }'
}
sig1=$(dnskey_sig)
[ -n "$sig1" ] || fail "no DNSKEY RRSIG by the card KSK (tag $KSK_TAG)"
pass "knotd serves the DNSKEY set signed by the card KSK"

# A re-sign: knotd asks the card again.
s1=$(sc_log_count_prefix "sign ")
serial=$(kdig @127.0.0.1 -p "$PORT" +short example.com. SOA | awk '{ print $3 }')
run 0 knotc -c "$CONF" zone-sign example.com.
i=0
until [ "$(kdig @127.0.0.1 -p "$PORT" +short example.com. SOA | awk '{ print $3 }')" != "$serial" ]; do
	i=$((i + 1)); [ $i -le 300 ] || { knotd_dump_logs "$CONF"; fail "knotd did not re-sign"; }
	sleep 0.1
done
[ "$(sc_log_count_prefix "sign ")" -gt "$s1" ] || fail "the re-sign made no card signature"
pass "the re-sign was made by the card"
[ -n "$(dnskey_sig)" ] || fail "no DNSKEY RRSIG by the card KSK after the re-sign"
pass "knotd still serves the DNSKEY set signed by the card KSK"
sc_validate "after the re-sign" "$PORT" example.com
