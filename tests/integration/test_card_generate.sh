#!/bin/sh
# generate and import on a smartcard (cardsim): the card chooses CKA_ID (SHA-1
# of the EC point, as a SmartCard-HSM does), KASP holds that id and knotd signs
# with it; a full card and a card pulled during key generation leave nothing
# half-done.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

card_conf "card_id = yes"
C=$TMP/knot.conf
card_knot_conf "$C" example.com. example.net. example.org. example.info.

# -- generate: the KSK's id is the one the card chose ---------------------------
run 0 "$KNOT_HSM" -c "$C" example.com generate
ksk_id=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
ksk_tag=$(printf '%s\n' "$OUT" | sed -n 's/^key tag: //p')
equals "$ksk_id" "$(point_id "example.com. KSK")" "the KSK's id is the SHA-1 of its EC point"
run 0 keymgr -c "$C" example.com. list
equals "$(printf '%s\n' "$OUT" | awk -v id="$ksk_id" '$1 == id {print $2, $3, $4}')" \
	"$ksk_tag KSK ECDSAP256SHA256" "KASP holds the card-assigned id"
# Knot's own keygen (keymgr generate) asks for a random CKA_ID and then looks
# the key up by that id, which the card replaced: it cannot be used with
# card_id=yes. The ZSK is made by knot-hsm too, which reads back the real id.
run 0 "$KNOT_HSM" -c "$C" example.com generate zsk=yes
zsk_id=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
equals "$zsk_id" "$(point_id "example.com. ZSK")" "the ZSK's id is the SHA-1 of its EC point"
contains "$OUT" "DNSKEY 256 3 13 " "ZSK flags"

# knotd signs example.com. with both card keys.
PORT=$(free_port)
mkdir -p "$TMP/zones" "$TMP/run"
cat > "$TMP/zones/example.com.zone" <<'ZONE'
$ORIGIN example.com.
$TTL 300
@    SOA  ns1 hostmaster 1 3600 600 86400 300
@    NS   ns1
ns1  A    127.0.0.1
ZONE
K=$TMP/knotd.conf
sed -e "s#^    rundir: .*#    rundir: $TMP/run\n    listen: 127.0.0.1@$PORT#" \
    -e "s#^    kasp-db: .*#    kasp-db: $TMP/kasp\n    storage: $TMP#" \
    -e '/^zone:/,$d' "$C" > "$K"
cat >> "$K" <<CONF
log:
  - target: $TMP/knotd.log
    any: info
zone:
  - domain: example.com.
    storage: $TMP/zones
    file: example.com.zone
    dnssec-signing: on
    dnssec-policy: card
CONF
run 0 knotc -c "$K" conf-check
knotd_start "$K" "$TMP/knotd.out"
knotd_wait_serial "$K" example.com.
run 0 kdig @127.0.0.1 -p "$PORT" +dnssec +norec example.com. DNSKEY
contains "$OUT" "RRSIG	DNSKEY 13 2 300 " "knotd serves a signed DNSKEY set"
printf '%s\n' "$OUT" | awk '$4 == "RRSIG" && $5 == "DNSKEY" {print $11}' > "$TMP/tags"
# Whole tags, never empty: a substring match on an empty tag passes always.
case $ksk_tag in ''|*[!0-9]*) fail "generate printed no numeric key tag: '$ksk_tag'" ;; esac
grep -q -x -F "$ksk_tag" "$TMP/tags" || fail "no DNSKEY RRSIG with the card KSK's tag $ksk_tag (tags: $(tr '\n' ' ' < "$TMP/tags"))"
pass "the DNSKEY RRSIG is made by the card KSK (tag $ksk_tag)"
run 0 kdig @127.0.0.1 -p "$PORT" +dnssec +norec ns1.example.com. A
zsk_tag=$(keymgr -c "$C" example.com. list | awk -v id="$zsk_id" '$1 == id {print $2}')
contains "$OUT" "RRSIG	A 13 3 300 " "knotd signs records"
case $zsk_tag in ''|*[!0-9]*) fail "keymgr list shows no numeric tag for the ZSK $zsk_id: '$zsk_tag'" ;; esac
equals "$(printf '%s\n' "$OUT" | awk '$4 == "RRSIG" {print $11}')" "$zsk_tag" "with the card ZSK alone (tag $zsk_tag)"
knotd_stop_all

# -- import: a key pairgen'd through the card by pkcs11-tool --------------------
pkcs11-tool --module "$CARDSIM" --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 \
	--label "made by pkcs11-tool" --id 0102 >/dev/null 2>&1 || fail "pkcs11-tool keypairgen through cardsim"
imp_id=$(point_id "made by pkcs11-tool")
[ ${#imp_id} -eq 40 ] || fail "no EC point for the pkcs11-tool key"
run 0 "$KNOT_HSM" -c "$C" example.net import label="made by pkcs11-tool"
contains "$OUT" "key id: $imp_id" "import finds the card-assigned id, not the one asked for"
run 0 keymgr -c "$C" example.net. list
contains "$OUT" "$imp_id" "KASP holds the card-assigned id"
lacks "$OUT" "0102 " "not the id pkcs11-tool asked for"

# -- a full card -----------------------------------------------------------------
n=$(private_keys)
card_conf "max_keypairs = $n"
run 1 "$KNOT_HSM" -c "$C" example.org generate
contains "$ERR" "token out of memory" "full card: error text"
contains "$ERR" "the card has no room for another key pair" "full card: said in words"
contains "$ERR" "Nothing was written to KASP" "full card: KASP untouched, said"
contains "$ERR" "knot-hsm keys lists them" "full card: remedy"
lacks "$ERR" "retrying" "a full card is not retried"
equals "$(kasp_ids example.org.)" "" "full card: nothing in KASP"
equals "$(private_keys)" "$n" "full card: no key made"
run 0 "$KNOT_HSM" -c "$C" keys
lacks "$OUT" "used by no zone" "full card: no orphan on the card"

# -- the card pulled while it generates ------------------------------------------
# Slow key generation (2 s) so the card can be pulled in the middle; a short
# retry budget so knot-hsm gives up while it is still out.
card_conf "latency_scale = 1" "latency_keygen_ms = 2000" "latency_sign_ms = 0" \
	"latency_login_ms = 0" "removed_file = $TMP/removed"
KHSM_RETRY_MS=500 "$KNOT_HSM" -c "$C" example.org generate > "$TMP/gen.out" 2> "$TMP/gen.err" &
gen=$!
i=0
until grep -q "^generating" "$TMP/gen.out"; do
	i=$((i + 1)); [ $i -le 100 ] || fail "generate did not start"; sleep 0.1
done
sleep 0.7
touch "$TMP/removed"
set +e; wait $gen; rc=$?; set -e
ERR=$(cat "$TMP/gen.err")
equals "$rc" 1 "generate fails when the card is pulled"
contains "$ERR" "the card stayed busy or absent" "the card's absence is named"
contains "$ERR" "the card made the key pair 'example.org. KSK'" "the key made before the removal is reported"
contains "$ERR" "nothing was written to KASP" "KASP untouched, said"
rm -f "$TMP/removed"
card_conf
equals "$(kasp_ids example.org.)" "" "no half-imported key in KASP"
# The rerun finds the key the card made and names the command that finishes the job.
run 1 "$KNOT_HSM" -c "$C" example.org generate
orphan=$(point_id "example.org. KSK")
contains "$ERR" "knot-hsm -c $C example.org. import id=$orphan" "rerun: the orphan is reported with the import command"
run 0 "$KNOT_HSM" -c "$C" example.org import id="$orphan"
run 0 keymgr -c "$C" example.org. list
contains "$OUT" "$orphan" "the import completes the job"
equals "$(kasp_ids example.org. | wc -l)" 1 "one key, no duplicate"

# The card out for a moment, back within the retry budget: generate completes
# by adopting the key the card made, without making a second one.
card_conf "latency_scale = 1" "latency_keygen_ms = 1500" "latency_sign_ms = 0" \
	"latency_login_ms = 0" "removed_file = $TMP/removed"
before=$(private_keys)
"$KNOT_HSM" -c "$C" example.info generate label="blip" > "$TMP/gen.out" 2> "$TMP/gen.err" &
gen=$!
i=0
until grep -q "^generating" "$TMP/gen.out"; do
	i=$((i + 1)); [ $i -le 100 ] || fail "generate did not start"; sleep 0.1
done
sleep 0.5
touch "$TMP/removed"
sleep 1.5
rm -f "$TMP/removed"
set +e; wait $gen; rc=$?; set -e
[ "$rc" -eq 0 ] || { cat "$TMP/gen.out" "$TMP/gen.err" >&2; fail "generate after a short removal"; }
pass "generate survives a short removal"
contains "$(cat "$TMP/gen.err")" "retrying" "knot-hsm said it was retrying"
blip=$(sed -n 's/^key id: //p' "$TMP/gen.out")
equals "$blip" "$(point_id blip)" "the key made before the removal was adopted"
equals "$(private_keys)" "$((before + 1))" "exactly one new key on the card"
run 0 "$KNOT_HSM" -c "$C" keys
lacks "$OUT" "used by no zone" "no orphan left"
lacks "$(cat "$TMP/out" "$TMP/err" "$TMP/gen.out" "$TMP/gen.err")" "$PIN" "no PIN in any output"
