#!/bin/sh
# The guard module (lib/guard) between Knot and a card that cannot do two
# things at once (cardsim busy = fail) and cannot verify (verify = no):
#  - every signature the card made (cardsim's counter) is in the audit log,
#    whose chain `knot-hsm audit verify` checks; no PIN byte is in the log;
#  - threads and processes signing at once never see the card busy;
#  - verification is done in software and logged as such;
#  - keymgr sign-ksr (knot-hsm ceremony, Knot 3.2) and knotd 3.5 in online
#    mode sign through it;
#  - with the audit log unwritable, logins and signatures are refused.
# Needs the test-only Knot 3.5 build (sh tests/knot35/build.sh).
. "$KHSM_SRCDIR/tests/integration/lib.sh"
PIN=90417352863   # distinctive: searched for in the log
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"
: "${GUARD_SIGN:?GUARD_SIGN must name the built tests/guard/guard_sign}"
GUARD=$KHSM_GUARD_MODULE

card_conf "busy = fail" "verify = no"
mkdir -p "$TMP/audit"
LOG=$TMP/audit/audit.log
export KHSM_GUARD_CONF="$TMP/guard.conf"
cat > "$KHSM_GUARD_CONF" <<CONF
# test guard
module = $CARDSIM
audit_log = $LOG
CONF

# Signatures in the log (C_Sign/C_SignFinal that returned one), from the summary.
log_sigs() {
	"$KNOT_HSM" audit verify "$LOG" --json > "$TMP/sum.json" || fail "audit verify: $(cat "$TMP/sum.json")"
	python3 -c 'import json, sys; print(sum(s["count"] for s in json.load(open(sys.argv[1]))["signatures"]))' "$TMP/sum.json"
}

# -- keystore --guard and doctor ------------------------------------------------------
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card --guard
contains "$OUT" "config: \"$CARD_URI;pin-source=" "keystore --guard: the card's URI"
contains "$OUT" " $GUARD\"" "with the guard module as the module"
contains "$OUT" "# through the knot-hsm guard ($KHSM_GUARD_CONF): audit log $LOG" "names the guard configuration"
guard_stanza=$(printf '%s\n' "$OUT" | grep -v '^#')
# Without a guard configuration, the one step (test_guard_setup.sh has the rest).
mkdir -p "$TMP/knotd-lib"; chown knot:knot "$TMP/knotd-lib"
KHSM_GUARD_CONF=$TMP/missing.conf KHSM_GUARD_AUDIT_LOG=$TMP/knotd-lib/audit.log run 0 "$KNOT_HSM" keystore \
	--module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --guard
contains "$ERR" "note: wrote the guard configuration $TMP/missing.conf (module = $CARDSIM, audit_log = $TMP/knotd-lib/audit.log)" \
	"without a guard configuration: keystore --guard writes it"
contains "$OUT" "# through the knot-hsm guard ($TMP/missing.conf): audit log $TMP/knotd-lib/audit.log" "and checks through the guard"
C=$TMP/knot.conf
knot_conf "$C" stanza="$guard_stanza"
run 0 "$KNOT_HSM" -c "$C" doctor
contains "$OUT" "guard config: $KHSM_GUARD_CONF parses; card module $CARDSIM" "doctor: guard configuration"
contains "$OUT" "guard card module: $CARDSIM loads" "doctor: the card module loads"
contains "$OUT" "audit chain: " "doctor: the chain"
contains "$OUT" "login: one login through GnuTLS succeeded" "doctor: login through the guard"
contains "$OUT" "0 failed" "doctor passes"
grep -q '"fn":"C_Login".*"user":"CKU_USER".*"rv":"CKR_OK"' "$LOG" || fail "no C_Login line in $LOG"
pass "the login is logged with user type and result"

# -- threads and processes at once on a card with busy = fail ----------------------------
: > "$COUNTER"
run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" keygen "guard test"
"$GUARD_SIGN" "$GUARD" "$TMP/card.pin" sign "guard test" 4 8 > "$TMP/p1.out" 2>&1 &
p1=$!
"$GUARD_SIGN" "$GUARD" "$TMP/card.pin" sign "guard test" 4 8 ecdsa-sha256 > "$TMP/p2.out" 2>&1 &
p2=$!
wait $p1 || fail "first process: $(cat "$TMP/p1.out")"
wait $p2 || fail "second process: $(cat "$TMP/p2.out")"
contains "$(cat "$TMP/p1.out")" "signed 32 verified 32 failed 0" "4 threads in one process: 32 signatures, none failed"
contains "$(cat "$TMP/p2.out")" "signed 32 verified 32 failed 0" "4 more threads in a second process (ECDSA-SHA256 hashed in software)"
equals "$(count sign)" 64 "the card made 64 signatures"
equals "$(log_sigs)" "$(count sign)" "every card signature is in the audit log"
grep -q '"fn":"C_Sign","slot":[0-9]*,"session":[0-9]*,"key":[0-9]*,"label":"guard test","id":"[0-9a-f]*","mech":"CKM_ECDSA_SHA256","card_mech":"CKM_ECDSA","software":true,"len":32,"out":64,"rv":"CKR_OK"' "$LOG" ||
	fail "no emulated ECDSA-SHA256 signature line in the log"
pass "a hashed mechanism the card lacks: hashed in software, raw ECDSA on the card, logged as such"
# Control: the same two processes without the guard collide on the card.
"$GUARD_SIGN" "$CARDSIM" "$TMP/card.pin" sign "guard test" 4 8 > "$TMP/c1.out" 2>&1 &
c1=$!
"$GUARD_SIGN" "$CARDSIM" "$TMP/card.pin" sign "guard test" 4 8 > "$TMP/c2.out" 2>&1 &
c2=$!
set +e; wait $c1; r1=$?; wait $c2; r2=$?; set -e
[ $((r1 + r2)) -ge 1 ] || fail "control: without the guard nothing collided; the test above proves nothing"
pass "control: without the guard the same load finds the card busy"
# The emulated ECDSA-SHA256 checked outside the guard: a signature made through
# the guard verifies with openssl against the card's public key.
printf 'data signed through the guard\n' > "$TMP/data"
pkcs11-tool --module "$GUARD" --login --pin "$PIN" --sign --mechanism ECDSA-SHA256 --label "guard test" \
	--signature-format openssl -i "$TMP/data" -o "$TMP/data.sig" > "$TMP/p11sign.out" 2>&1 ||
	fail "pkcs11-tool ECDSA-SHA256 through the guard: $(cat "$TMP/p11sign.out")"
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "softhsm under cardsim" --read-object --type pubkey \
	--label "guard test" -o "$TMP/guard.pub.der" > "$TMP/p11read.out" 2>&1 ||
	fail "reading the public key of 'guard test': $(cat "$TMP/p11read.out")"
openssl pkey -pubin -inform DER -in "$TMP/guard.pub.der" -out "$TMP/guard.pub.pem" ||
	fail "the public key of 'guard test' is not a DER SubjectPublicKeyInfo"
run 0 openssl dgst -sha256 -verify "$TMP/guard.pub.pem" -signature "$TMP/data.sig" "$TMP/data"
contains "$OUT" "Verified OK" "ECDSA-SHA256 made through the guard verifies with openssl"
printf 'other data\n' > "$TMP/other"
run 1 openssl dgst -sha256 -verify "$TMP/guard.pub.pem" -signature "$TMP/data.sig" "$TMP/other"
contains "$OUT" "Verification failure" "control: openssl rejects it for other data"
# From here on the counter starts again; the log's signatures are counted from LOGBASE.
: > "$COUNTER"
LOGBASE=$(log_sigs)

# -- verification in software (the card has no C_Verify) ----------------------------------
n=$(grep -c '"fn":"C_Verify",.*"software":true,.*"rv":"CKR_OK"' "$LOG" || true)
[ "$n" -ge 64 ] || fail "only $n software verifications logged"
pass "verifications done in software and logged as such ($n)"
grep -q '"fn":"C_Verify",.*"software":true,.*"rv":"CKR_SIGNATURE_INVALID"' "$LOG" ||
	fail "a bad signature was not refused in software"
pass "a bad signature is refused in software"
grep -q '"fn":"C_Verify",.*"rv":"CKR_FUNCTION_NOT_SUPPORTED"' "$LOG" &&
	fail "the card was asked to verify"
pass "the card was never asked to verify"

# -- offline mode: keymgr sign-ksr (Knot 3.2) through the guard ------------------------------
D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card
plain_stanza=$OUT
write_conf() { # $1: zone policy lines, $2: include
	knot_conf "$CONF" rundir="$D" storage="$D" kasp="$D/keys" stanza="$plain_stanza" include="${2#include: }" \
		template="$1" example.com.
}
write_conf "    storage: $D" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com policy mode=offline guard=yes --write "$D/knot-hsm.conf"
contains "$(cat "$D/knot-hsm-ksk.conf")" "$CARD_URI;pin-source=" "policy guard=yes: the KSK side keeps the card's URI"
contains "$(cat "$D/knot-hsm-ksk.conf")" " $GUARD\"" "and goes through the guard"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $D/knot-hsm.conf"
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+3d generate-ksk=yes
contains "$OUT" "example.com.: pre-signed " "ceremony through the guard"
sigs=$(printf '%s\n' "$OUT" | sed -n 's/^example.com.: pre-signed .*, \([0-9]*\) card signatures$/\1/p')
[ -n "$sigs" ] && [ "$sigs" -gt 0 ] || fail "no card signatures in: $OUT"
[ "$(count sign)" -ge "$sigs" ] || fail "the card counted $(count sign) signatures, the SKR has $sigs"
# keymgr sign-ksr itself (whichever signer the ceremony used), on the KSR of
# the period the ceremony pre-generated.
run 0 keymgr -c "$CONF" example.com. generate-ksr +0 +3d
lacks "$ERR" "error" "generate-ksr (ZSK side)"
printf '%s\n' "$OUT" > "$TMP/guard.ksr"
before=$(count sign)
run 0 keymgr -c "$D/knot-hsm-ksk.conf" example.com. sign-ksr "$TMP/guard.ksr"
lacks "$ERR" "error" "keymgr sign-ksr through the guard"
[ "$(count sign)" -gt "$before" ] || fail "keymgr sign-ksr made no card signature"
grep -q '"comm":"keymgr","fn":"C_Sign",.*"label":"example.com. KSK"' "$LOG" || fail "no signature by keymgr in the log"
pass "keymgr's sign-ksr signatures are in the log"
equals "$(( $(log_sigs) - LOGBASE ))" "$(count sign)" "every card signature of the ceremony and keymgr is in the audit log"

# -- online mode: knotd 3.5 through the guard -------------------------------------------------
K35=${KHSM_KNOT35_DIR:-/var/cache/knot-hsm/knot35}/inst
for t in knotd knotc keymgr; do
	[ -x "$K35/sbin/$t" ] || fail "Knot 3.5 not built: run sh tests/knot35/build.sh (no $K35/sbin/$t)"
done
# knotd's own key generation asks for a CKA_ID and looks the key up by it.
card_conf "busy = fail" "verify = no" "card_id = no"
before=$(count sign)
# Knot 3.5 from here on (knot-hsm through KHSM_*, the test through PATH).
export KHSM_KEYMGR="$K35/sbin/keymgr" KHSM_KNOTC="$K35/sbin/knotc" KHSM_KNOTD="$K35/sbin/knotd"
PATH=$K35/sbin:$PATH
export PATH
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
PORT=$(free_port)
O=$TMP/online
mkdir -p "$O/run" "$O/zones" "$O/kasp"
cat > "$O/zones/example.org.zone" <<'ZONE'
$ORIGIN example.org.
$TTL 300
@    SOA  ns1 hostmaster 1 3600 600 86400 300
@    NS   ns1
ns1  A    127.0.0.1
ZONE
oconf() { # include-line policy-line
	knot_conf "$O/knot.conf" rundir="$O/run" listen="$PORT" storage="$O" kasp="$O/kasp" log="$O/knotd.log" \
		stanza="$plain_stanza" include="${1#include: }" template="    storage: $O/zones
    file: %s.zone
    dnssec-signing: on
$2" example.org.
}
oconf "" ""
run 0 "$KNOT_HSM" -c "$O/knot.conf" example.org policy mode=online guard=yes --write "$O/knot-hsm.conf"
contains "$(cat "$O/knot-hsm.conf")" " $GUARD\"" "online policy guard=yes: the card keystore goes through the guard"
oconf "include: $O/knot-hsm.conf" "    dnssec-policy: knot-hsm"
run 0 knotc -c "$O/knot.conf" conf-check
knotd_start "$O/knot.conf" "$O/knotd.out"
knotd_wait_serial "$O/knot.conf" example.org.
i=0
until kdig @127.0.0.1 -p "$PORT" example.org. DNSKEY +dnssec +short | grep -q '^DNSKEY 13 2 '; do
	i=$((i + 1)); [ $i -le 100 ] || { cat "$O/knotd.log" >&2; fail "no signed DNSKEY set"; }
	sleep 0.1
done
pass "knotd 3.5 signs example.org. with a card KSK through the guard"
run 0 keymgr -c "$O/knot.conf" example.org. list
contains "$(printf '%s\n' "$OUT" | awk '$3 == "KSK"')" " PKCS11/knot-hsm-card " "the KSK is in the card keystore"
knotd_stop_all
grep -q '"comm":"knotd","fn":"C_GenerateKeyPair",.*"label":"example.org. KSK".*"rv":"CKR_OK"' "$LOG" ||
	fail "knotd's key generation is not in the log"
pass "knotd's key generation on the card is logged with the key's label"
grep -q '"comm":"knotd","fn":"C_Sign",.*"label":"example.org. KSK"' "$LOG" || fail "no knotd signature in the log"
[ "$(count sign)" -gt "$before" ] || fail "the card made no signature for knotd"
equals "$(( $(log_sigs) - LOGBASE ))" "$(count sign)" "every card signature of knotd is in the audit log"

# -- files knotd (group knot) must append to and lock, whoever made them ------------------------
equals "$(stat -c %a "$LOG") $(stat -c %a "$LOG.lock")" "660 660" "audit log and lock file group-writable"

# -- the whole log: chain, no PIN ---------------------------------------------------------------
run 0 "$KNOT_HSM" audit verify "$LOG"
contains "$OUT" "chain: intact" "the chain verifies"
contains "$OUT" "guard test id=" "signatures per key in the summary"
contains "$OUT" "example.org. KSK id=" "and knotd's KSK"
lacks "$(cat "$LOG")" "$PIN" "the PIN is nowhere in the log"
pin_hex=$(printf '%s' "$PIN" | od -An -tx1 | tr -d ' \n')
lacks "$(cat "$LOG")" "$pin_hex" "not even hex-encoded"
run 0 "$KNOT_HSM" audit tail "$LOG"
equals "$(printf '%s\n' "$OUT" | wc -l)" 20 "audit tail shows 20 lines"
KHSM_GUARD_CONF="$KHSM_GUARD_CONF" run 0 "$KNOT_HSM" audit tail --json
equals "$(printf '%s\n' "$OUT" | tail -n 1)" "$(tail -n 1 "$LOG")" "audit tail finds the log from the guard configuration"

# Tampering: a signature line removed is found.
cp "$LOG" "$TMP/saved.log"
n=$(grep -n '"fn":"C_Sign",' "$LOG" | head -1 | cut -d: -f1)
sed -i "${n}d" "$LOG"
run 1 "$KNOT_HSM" audit verify "$LOG"
contains "$ERR" "line $n: \"prev\" is not the hash of line $((n - 1))" "a deleted line is found, by number"
cp "$TMP/saved.log" "$LOG"

# -- fail closed ----------------------------------------------------------------------------------
card_conf "busy = fail" "verify = no"
: > "$COUNTER"
mv "$LOG" "$TMP/saved.log"
mkdir "$LOG"     # root writes through file modes: a directory is what it cannot append to
run 1 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" sign "guard test" 1 1
contains "$OUT$ERR" "login: 0x6" "log unwritable: the login is refused (CKR_FUNCTION_FAILED)"
contains "$ERR" "knot-hsm-guard: cannot open the audit log $LOG" "and the guard says why"
equals "$(count login)" 0 "the card never saw the PIN"
# Logged in before the log broke: signing stops.
rmdir "$LOG"; mv "$TMP/saved.log" "$LOG"
: > "$TMP/hold"
GUARD_SIGN_HOLD=$TMP/hold "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" sign "guard test" 1 2 > "$TMP/fc.out" 2>&1 &
fc=$!
i=0
until [ "$(count "login ok")" -ge 1 ]; do
	i=$((i + 1)); [ $i -le 100 ] || fail "guard_sign did not log in"; sleep 0.05
done
mv "$LOG" "$TMP/saved.log"; mkdir "$LOG"
rm "$TMP/hold"
set +e; wait $fc; rc=$?; set -e
equals "$rc" 1 "log unwritable after the login: signing fails"
contains "$(cat "$TMP/fc.out")" "first: sign: 0x6" "with CKR_FUNCTION_FAILED"
equals "$(count sign)" 0 "the card made no signature"
rmdir "$LOG"; mv "$TMP/saved.log" "$LOG"
# fail_closed = no: it goes on, with a warning.
echo "fail_closed = no" >> "$KHSM_GUARD_CONF"
mv "$LOG" "$TMP/saved.log"; mkdir "$LOG"
run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" sign "guard test" 1 1
contains "$ERR" "going on without it (fail_closed = no)" "fail_closed = no: signs with a warning"
rmdir "$LOG"; mv "$TMP/saved.log" "$LOG"
run 0 "$KNOT_HSM" audit verify "$LOG"
contains "$OUT" "chain: intact" "the log is intact after all of it"
