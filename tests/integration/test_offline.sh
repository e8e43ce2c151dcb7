#!/bin/sh
# Offline KSK on Knot 3.2.6, end to end: `knot-hsm policy` renders the ZSK
# side (knotd) and the KSK side, the KSK is generated on the card for two
# zones, `knot-hsm ceremony` pre-signs the DNSKEY sets, and knotd rolls the
# software ZSK by itself (short policies in seconds) at least twice. BIND's
# delv validates the served zones before, during and after each rollover
# with the DS that `knot-hsm ds` prints on the KSK side as trust anchor.
# The KSK never leaves the token: the PEM keystore holds only ZSKs.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"

card_keystore

PORT=$(free_port)
D=$TMP/knot
mkdir -p "$D/run" "$D/zones" "$D/keys"
zone_files "$D/zones" 2 example.com example.net
CONF=$D/knot.conf
write_conf() { # $1: extra zone lines, $2: include line
	knot_conf "$CONF" rundir="$D/run" listen="$PORT" storage="$D" kasp="$D/keys" log="$D/knotd.log" \
		include="${2#include: }" template="    storage: $D/zones
    file: %s.zone
$1" example.com. example.net.
}
write_conf "" ""
run 0 knotc -c "$CONF" conf-check

# Short policy: ZSK rolls every 40 s; rrsig-refresh above the 2 s TTLs.
OPTS="zsk-lifetime=40s rrsig-lifetime=60s rrsig-refresh=20s dnskey-ttl=2s zone-max-ttl=2s propagation-delay=2s"
start=$(date +%s)
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy $OPTS --write "$D/knot-hsm.conf"
contains "$OUT" "mode: offline (Knot 3.2" "offline is the default mode on Knot 3.2"
contains "$OUT" "add to $CONF, before its zone section: include: $D/knot-hsm.conf" "tells to include the file"
KSKC=$D/knot-hsm-ksk.conf
[ -f "$KSKC" ] || fail "no KSK-side configuration $KSKC"
pass "KSK side written next to the include"
contains "$(cat "$D/knot-hsm.conf")" "    propagation-delay: 4s" "pregenerate gets the TTLs in the delay"
contains "$(cat "$KSKC")" "    keystore: card" "the KSK side uses the operator's card keystore"

# The operator's part: include, zones on the policy (here through the template).
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $D/knot-hsm.conf"
run 0 knotc -c "$CONF" conf-check

# KSK on the card, on the KSK side only.
for z in example.com example.net; do
	run 0 "$KNOT_HSM" -c "$KSKC" $z generate
	contains "$OUT" "$z. DNSKEY 257 3 13 " "KSK of $z generated on the card"
done
run 0 "$KNOT_HSM" -c "$KSKC" example.com ds
DS_COM=$(printf '%s\n' "$OUT" | grep ' DS ' | head -n 1)
run 0 "$KNOT_HSM" -c "$KSKC" example.net ds
DS_NET=$(printf '%s\n' "$OUT" | grep ' DS ' | head -n 1)
[ -n "$DS_COM" ] && [ -n "$DS_NET" ] || fail "knot-hsm ds printed no DS"
pass "DS of both zones from the KSK side"

run 0 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+150s
contains "$OUT" "example.com.: pre-signed " "ceremony covers example.com"
contains "$OUT" "example.net.: pre-signed " "ceremony covers example.net"
contains "$OUT" "card signatures" "signatures counted"
run 0 keymgr -c "$CONF" example.com. list
lacks "$OUT" "KSK" "the ZSK side has no KSK in its KASP"

knotd_start "$CONF" "$D/knotd.out"
knotd_wait_serial "$CONF" example.com.
knotd_wait_serial "$CONF" example.net.

ta() { printf '%s\n' "$1" | awk '{ printf "trust-anchors {\n  %s initial-ds %s %s %s \"%s\";\n};\n", $1, $3, $4, $5, $6 }'; }
ta "$DS_COM" > "$TMP/com.anchor"
ta "$DS_NET" > "$TMP/net.anchor"
# delv exits 0 whatever the validation result: look for "fully validated".
validate() { # label
	for z in com net; do
		out=$(delv_ask "$PORT" "$TMP/$z.anchor" example.$z www.example.$z A)
		case "$out" in
			*"; fully validated"*) ;;
			*) cat "$D/knotd.log" >&2; fail "$1: delv does not validate www.example.$z: $out" ;;
		esac
		out=$(delv_ask "$PORT" "$TMP/$z.anchor" example.$z example.$z DNSKEY)
		case "$out" in
			*"; fully validated"*) ;;
			*) cat "$D/knotd.log" >&2; fail "$1: delv does not validate the DNSKEY set of example.$z: $out" ;;
		esac
	done
	pass "$1: delv validates both zones under the DS from the card KSK"
}
# The ZSK signing www.example.com now.
zsk_tag() {
	kdig @127.0.0.1 -p "$PORT" www.example.com A +dnssec +short | awk '$1 == "A" { print $7 }'
}
seen=""
note_tag() { t=$(zsk_tag); case " $seen " in *" $t "*) ;; *) seen="$seen $t" ;; esac; }

validate "start"
note_tag
# Negative control: a wrong anchor is not accepted.
printf '%s\n' "$DS_COM" | awk '{ $6 = "00" substr($6, 3); print }' > "$TMP/bad.ds"
ta "$(cat "$TMP/bad.ds")" > "$TMP/bad.anchor"
out=$(delv_ask "$PORT" "$TMP/bad.anchor" example.com www.example.com A)
lacks "$out" "fully validated" "delv rejects the zone under a wrong DS (negative control)"

# Walk through the rollovers: the ZSK cycle is 40 s + 4 s; check every 8 s
# (publish, active, remove fall between checks) until two rollovers are done.
i=0
after=0
while [ $i -lt 16 ] && [ $after -lt 2 ]; do
	sleep 8
	i=$((i + 1))
	validate "t+$(( $(date +%s) - start ))s"
	note_tag
	# two checks after the third ZSK signs: the second old ZSK is gone by then
	[ "$(echo $seen | wc -w)" -ge 3 ] && after=$((after + 1))
done
n=$(echo $seen | wc -w)
[ "$n" -ge 3 ] || { cat "$D/knotd.log" >&2; fail "knotd signed with ZSKs $seen: fewer than two rollovers"; }
pass "knotd rolled the ZSK at least twice by itself ($seen)"
grep -q "using offline records" "$D/knotd.log" || fail "knotd did not use the pre-signed DNSKEY sets"
pass "knotd used the pre-signed DNSKEY sets"

# The KSK never left the token: the PEM keystore holds exactly the ZSKs of
# the ZSK side's KASP; no PEM file anywhere carries the KSK's id.
run 0 keymgr -c "$KSKC" example.com. list
ksk_ids=$(printf '%s\n' "$OUT" | awk '$3 == "KSK" { print $1 }')
run 0 keymgr -c "$KSKC" example.net. list
ksk_ids="$ksk_ids $(printf '%s\n' "$OUT" | awk '$3 == "KSK" { print $1 }')"
zsk_ids=""
for z in example.com. example.net.; do
	run 0 keymgr -c "$CONF" $z list
	lacks "$OUT" " KSK " "no KSK in the ZSK side's KASP for $z"
	zsk_ids="$zsk_ids $(printf '%s\n' "$OUT" | awk '$3 == "ZSK" { print $1 }')"
done
# Neither list may be empty: two empty lists are equal too.
equals "$(echo $ksk_ids | wc -w)" 2 "the KSK side holds one KSK per zone"
for z in example.com. example.net.; do
	run 0 keymgr -c "$CONF" $z list
	[ -n "$(printf '%s\n' "$OUT" | awk '$3 == "ZSK" { print $1 }')" ] || fail "no ZSK in the ZSK side's KASP for $z"
done
pass "the ZSK side holds ZSKs for both zones"
pem_ids=$(find "$TMP" -name '*.pem' | sed 's|.*/||; s|\.pem$||' | sort)
[ -n "$pem_ids" ] || fail "no PEM file at all: the comparison below proves nothing"
equals "$pem_ids" "$(printf '%s\n' $zsk_ids | sort)" "the PEM files are exactly the ZSKs"
for k in $ksk_ids; do
	case " $(echo $pem_ids) " in *" $k "*) fail "KSK $k has a PEM file" ;; esac
done
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" > "$TMP/privkeys" 2>/dev/null
contains "$(cat "$TMP/privkeys")" "Label: example.com. KSK" "the KSK's private key is on the card"
[ "$(grep -c 'Label:' "$TMP/privkeys")" -eq 2 ] || fail "the card holds other private keys: $(cat "$TMP/privkeys")"
pass "the card holds just the two KSKs"
echo "runtime: $(( $(date +%s) - start )) s"
