#!/bin/bash
# Self-test of cardsim (tests/cardsim/cardsim.c): every switch is exercised
# through pkcs11-tool (a real PKCS#11 consumer) or cardsim_probe, on a SoftHSM
# token in a temporary directory. Where a check could pass for the wrong
# reason, a control run with the switch flipped shows the difference.
#
# Environment (set by meson): CARDSIM = path of libcardsim.so,
# CARDSIM_PROBE = path of cardsim_probe.
set -u

: "${CARDSIM:?CARDSIM must name the built libcardsim.so}"
: "${CARDSIM_PROBE:?CARDSIM_PROBE must name the built cardsim_probe}"

for tool in pkcs11-tool softhsm2-util openssl python3 flock timeout; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool not installed" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/cardsim-test.XXXXXX") || exit 1
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

PIN=123456
SO_PIN=12345678

export SOFTHSM2_CONF="$work/softhsm2.conf"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$work" > "$SOFTHSM2_CONF"

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# A new, empty SoftHSM token (the label is deliberately not a card label).
fresh_token() {
	rm -rf "$work/tokens" && mkdir "$work/tokens" || fail "cannot reset token dir"
	softhsm2-util --init-token --free --label anything --pin "$PIN" --so-pin "$SO_PIN" \
		>/dev/null || fail "softhsm2-util --init-token failed"
}

# use_conf NAME [LINE...]: write a cardsim conf (fast latencies) and select it.
use_conf() {
	local name=$1; shift
	printf '%s\n' "latency_scale = 0.001" "$@" > "$work/$name.conf"
	export KHSM_CARDSIM_CONF="$work/$name.conf"
}

# p11 ARGS...: pkcs11-tool on cardsim; stdout+stderr in $out, status in $rc.
p11() {
	out=$(pkcs11-tool --module "$CARDSIM" "$@" 2>&1)
	rc=$?
}

# expect_fail RV WHAT ARGS...: pkcs11-tool must fail with exactly that CKR_ code.
expect_fail() {
	local want=$1 what=$2; shift 2
	p11 "$@"
	[ "$rc" -ne 0 ] || fail "$what: succeeded, expected $want"
	grep -q "rv = $want " <<<"$out" || fail "$what: expected $want, got: $out"
}

expect_ok() {
	local what=$1; shift
	p11 "$@"
	[ "$rc" -eq 0 ] || fail "$what: $out"
}

# Hex CKA_ID of the private key labelled $1, as pkcs11-tool lists it.
priv_id() {
	expect_ok "list objects" --login --pin "$PIN" --list-objects --type privkey
	awk -v lbl="$1" '/^Private Key Object/ {inkey=1; next}
		inkey && $1 == "label:" {match_=($2 == lbl)}
		inkey && match_ && $1 == "ID:" {print $2; exit}' <<<"$out"
}

pub_id() {
	expect_ok "list objects" --list-objects --type pubkey
	awk -v lbl="$1" '/^Public Key Object/ {inkey=1; next}
		inkey && $1 == "label:" {match_=($2 == lbl)}
		inkey && match_ && $1 == "ID:" {print $2; exit}' <<<"$out"
}

ms_now() { date +%s%3N; }

# ---------------------------------------------------------------- config
fresh_token
use_conf badkey "no_such_switch = 1"
p11 -L
[ "$rc" -ne 0 ] || fail "unknown config key accepted"
grep -q "cardsim: .*unknown key 'no_such_switch'" <<<"$out" || fail "no cardsim: message for unknown key: $out"
use_conf badval "pin_tries = 3x"
p11 -L
[ "$rc" -ne 0 ] || fail "trailing garbage in a number accepted"
pass "bad configuration refused at C_Initialize"

# ---------------------------------------------------------------- token info
use_conf info
expect_ok "token list" -L
grep -q "token label *: SmartCard-HSM (UserPIN)\$" <<<"$out" || fail "default label missing: $out"
grep -q "token model *: PKCS#15 emulated\$" <<<"$out" || fail "default model missing: $out"
grep -q "token manufacturer *: www.CardContact.de\$" <<<"$out" || fail "default manufacturer missing: $out"
grep -q "anything" <<<"$out" && fail "SoftHSM label leaks through: $out"
[ "$(grep -c 'token label' <<<"$out")" -eq 1 ] || fail "expected exactly one token (SoftHSM's free slot must be hidden): $out"
use_conf info2 "label = Nitrokey test" "model = NK HSM 2" "manufacturer = Nitrokey"
expect_ok "token list" -L
grep -q "token label *: Nitrokey test\$" <<<"$out" || fail "label switch ignored: $out"
grep -q "token model *: NK HSM 2\$" <<<"$out" || fail "model switch ignored: $out"
pass "token label/model/manufacturer reported"

# ---------------------------------------------------------------- mechanisms
use_conf mechs
expect_ok "mechanism list" -M
grep -q "^  ECDSA, " <<<"$out" || fail "ECDSA missing: $out"
grep -q "^  ECDSA-KEY-PAIR-GEN, keySize={256,384}" <<<"$out" || fail "EC keygen 256-384 missing: $out"
grep -q "^  RSA-PKCS, keySize={1024,4096}" <<<"$out" || fail "RSA-PKCS missing: $out"
grep -qiE "EDDSA|EDWARDS" <<<"$out" && fail "EdDSA offered: $out"
grep -q "ECDSA-SHA256" <<<"$out" && fail "ECDSA-SHA256 offered: $out"
grep -q "^  ECDSA, .*verify" <<<"$out" || fail "ECDSA lacks verify by default: $out"
use_conf mechs_pt "mechanisms = passthrough"
expect_ok "mechanism list" -M
grep -qiE "EDDSA" <<<"$out" || fail "control: SoftHSM offers no EdDSA, the EdDSA check proves nothing"
use_conf noverify "verify = no"
expect_ok "mechanism list" -M
grep -q "verify" <<<"$out" && fail "verify = no still reports CKF_VERIFY: $out"
pass "mechanism list is the SmartCard-HSM one (control: passthrough has EdDSA)"

# ---------------------------------------------------------------- keygen, card CKA_ID
use_conf keygen
expect_ok "EC P-256 keygen" --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --label k1 --id 01
expect_ok "read public key" --read-object --type pubkey --label k1 -o "$work/k1.der"
expected=$(python3 - "$work/k1.der" <<'EOF'
import hashlib, sys
der = open(sys.argv[1], 'rb').read()
# P-256 SubjectPublicKeyInfo: 26-byte header, then the 65-byte uncompressed point.
point = der[-65:]
assert len(der) == 91 and point[0] == 4, "not a P-256 SPKI"
print(hashlib.sha1(point).hexdigest())
EOF
) || fail "cannot compute the expected CKA_ID"
got_priv=$(priv_id k1)
got_pub=$(pub_id k1)
[ "$got_priv" = "$expected" ] || fail "private key CKA_ID '$got_priv', expected SHA-1 of EC point '$expected'"
[ "$got_pub" = "$expected" ] || fail "public key CKA_ID '$got_pub', expected '$expected'"
pass "EC P-256 keygen; CKA_ID = SHA-1(EC point) = $expected on both keys"

expect_ok "EC P-384 keygen" --login --pin "$PIN" --keypairgen --key-type EC:secp384r1 --label k384
expect_fail CKR_DOMAIN_PARAMS_INVALID "P-521 keygen" \
	--login --pin "$PIN" --keypairgen --key-type EC:secp521r1 --label k521
pass "P-384 keygen works, P-521 refused"

use_conf keygen_noid "card_id = no"
expect_ok "keygen with card_id = no" --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --label k2 --id 42
[ "$(priv_id k2)" = "42" ] || fail "card_id = no: requested CKA_ID not kept"
pass "card_id = no keeps the requested CKA_ID"

# ---------------------------------------------------------------- import
use_conf import
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -outform DER -out "$work/key.der" 2>/dev/null \
	|| fail "openssl genpkey failed"
openssl pkey -inform DER -in "$work/key.der" -pubout -outform DER -out "$work/pub.der" 2>/dev/null \
	|| fail "openssl pkey -pubout failed"
expect_fail CKR_FUNCTION_NOT_SUPPORTED "private key import" \
	--login --pin "$PIN" --write-object "$work/key.der" --type privkey --label imp
expect_ok "public key import" --login --pin "$PIN" --write-object "$work/pub.der" --type pubkey --label imppub
use_conf import_yes "import = yes"
expect_ok "control: private key import with import = yes" \
	--login --pin "$PIN" --write-object "$work/key.der" --type privkey --label imp
pass "private key import refused, public key import allowed (control: import = yes works)"

# ---------------------------------------------------------------- sign counter + latency
use_conf counter "counter_file = $work/counter"
head -c 32 /dev/urandom > "$work/digest"
for i in 1 2; do
	expect_ok "sign $i" --login --pin "$PIN" --sign -m ECDSA --id "$expected" -i "$work/digest" -o "$work/sig$i"
done
[ "$(grep -c '^sign [0-9]*$' "$work/counter")" -eq 2 ] || fail "counter file: $(cat "$work/counter")"
[ "$(grep -c '^login ok [0-9]*$' "$work/counter")" -eq 2 ] || fail "counter file logins: $(cat "$work/counter")"
[ "$(stat -c %s "$work/sig1")" -eq 64 ] || fail "signature by k1 (P-256) is $(stat -c %s "$work/sig1") bytes, not 64: wrong key used"
python3 - "$work/sig1" "$work/sig1.der" <<'EOF' || fail "cannot convert the signature to DER"
import sys
raw = open(sys.argv[1], 'rb').read()
def der_int(b):
    b = b.lstrip(b'\0') or b'\0'
    if b[0] & 0x80:
        b = b'\0' + b
    return b'\x02' + bytes([len(b)]) + b
body = der_int(raw[:32]) + der_int(raw[32:])
open(sys.argv[2], 'wb').write(b'\x30' + bytes([len(body)]) + body)
EOF
openssl pkeyutl -verify -pubin -keyform DER -inkey "$work/k1.der" -in "$work/digest" \
	-sigfile "$work/sig1.der" >/dev/null 2>&1 || fail "card signature does not verify with k1's public key"
pass "counter_file counts 2 signatures and 2 logins; signature verifies in OpenSSL"

printf '%s\n' "latency_scale = 1.0" "latency_sign_ms = 400" "latency_login_ms = 0" \
	> "$work/slow.conf"
export KHSM_CARDSIM_CONF="$work/slow.conf"
t0=$(ms_now)
expect_ok "slow sign" --login --pin "$PIN" --sign -m ECDSA --id "$expected" -i "$work/digest" -o "$work/sig3"
dt=$(( $(ms_now) - t0 ))
[ "$dt" -ge 400 ] || fail "latency_sign_ms = 400 but signing took ${dt} ms"
pass "signing latency applied (${dt} ms >= 400 ms)"

# ---------------------------------------------------------------- busy card
use_conf busyfail "busy = fail"
exec 9>"$work/busyfail.conf.lock"
flock -x 9 || fail "cannot take the card lock in the test"
expect_fail CKR_DEVICE_ERROR "login while card busy (busy = fail)" --login --pin "$PIN" --list-objects
use_conf busywait "busy = wait" "lock_file = $work/busyfail.conf.lock"
out=$(timeout 2 pkcs11-tool --module "$CARDSIM" --login --pin "$PIN" --list-objects 2>&1)
rc=$?
[ "$rc" -eq 124 ] || fail "busy = wait did not block on a held lock (rc $rc): $out"
flock -u 9
exec 9>&-
expect_ok "busy = wait after release" --login --pin "$PIN" --list-objects
pass "busy = fail gives CKR_DEVICE_ERROR, busy = wait blocks until the card is free"

printf '%s\n' "latency_scale = 1.0" "latency_sign_ms = 100" "latency_login_ms = 0" > "$work/threads.conf"
probe_out=$(KHSM_CARDSIM_CONF="$work/threads.conf" "$CARDSIM_PROBE" "$CARDSIM" sign-threads "$PIN" 4) \
	|| fail "sign-threads probe: $probe_out"
ms=$(sed -n 's/.*ok=4 busy=0 other=0 ms=\([0-9]*\)$/\1/p' <<<"$probe_out")
[ -n "$ms" ] || fail "4 threads with busy = wait: $probe_out"
[ "$ms" -ge 400 ] || fail "4 signatures of 100 ms overlapped (${ms} ms): one operation at a time broken"
printf '%s\n' "latency_scale = 1.0" "latency_sign_ms = 300" "latency_login_ms = 0" "busy = fail" \
	> "$work/threads_fail.conf"
probe_out=$(KHSM_CARDSIM_CONF="$work/threads_fail.conf" "$CARDSIM_PROBE" "$CARDSIM" sign-threads "$PIN" 4) \
	|| fail "sign-threads probe: $probe_out"
grep -qE '^ok=[1-3] busy=[1-3] other=0 ' <<<"$probe_out" \
	|| fail "4 threads with busy = fail should see some CKR_DEVICE_ERROR: $probe_out"
pass "threads are serialised (${ms} ms for 4 x 100 ms); busy = fail rejects concurrent signers"

# ---------------------------------------------------------------- removal
use_conf removal "removed_file = $work/removed"
expect_ok "token before removal" -L
grep -q "token label" <<<"$out" || fail "no token before removal: $out"
touch "$work/removed"
p11 -L
grep -q "token label" <<<"$out" && fail "token still listed while removed: $out"
expect_fail CKR_TOKEN_NOT_PRESENT "open session while removed" --slot-index 0 --login --pin "$PIN" --list-objects
p11 --list-token-slots
grep -q "token label" <<<"$out" && fail "token listed among present tokens while removed: $out"
rm -f "$work/removed"
expect_ok "objects after reinsertion" --login --pin "$PIN" --list-objects
probe_out=$(KHSM_CARDSIM_CONF="$work/removal.conf" "$CARDSIM_PROBE" "$CARDSIM" removal "$work/removed" "$PIN" 2>&1) \
	|| fail "removal probe: $probe_out"
[ ! -e "$work/removed" ] || fail "probe left the removal file behind"
pass "removal: token gone, sessions die (CKR_DEVICE_REMOVED, then CKR_SESSION_HANDLE_INVALID), login lost"

# ---------------------------------------------------------------- PIN counter
use_conf pin
expect_fail CKR_PIN_INCORRECT "wrong PIN 1" --login --pin 000000 --list-objects
expect_ok "token info" -L
grep -q "user PIN count low" <<<"$out" || fail "no COUNT_LOW after 1 failure: $out"
grep -q "final user PIN try" <<<"$out" && fail "FINAL_TRY after only 1 failure: $out"
expect_fail CKR_PIN_INCORRECT "wrong PIN 2" --login --pin 000000 --list-objects
expect_ok "token info" -L
grep -q "final user PIN try" <<<"$out" || fail "no FINAL_TRY with 1 try left: $out"
expect_fail CKR_PIN_INCORRECT "wrong PIN 3" --login --pin 000000 --list-objects
expect_fail CKR_PIN_LOCKED "right PIN on a locked card" --login --pin "$PIN" --list-objects
expect_ok "token info" -L
grep -q "user PIN locked" <<<"$out" || fail "no USER_PIN_LOCKED flag: $out"
expect_ok "SO unblock" --login --login-type so --so-pin "$SO_PIN" --init-pin --new-pin "$PIN"
expect_ok "login after unblock" --login --pin "$PIN" --list-objects
expect_ok "token info" -L
grep -qE "count low|final user PIN try|user PIN locked" <<<"$out" && fail "PIN flags not cleared after unblock: $out"
# A correct PIN resets the counter: two wrong, one right, two wrong is not a lock.
expect_fail CKR_PIN_INCORRECT "wrong PIN a" --login --pin 000000 --list-objects
expect_fail CKR_PIN_INCORRECT "wrong PIN b" --login --pin 000000 --list-objects
expect_ok "right PIN resets" --login --pin "$PIN" --list-objects
expect_fail CKR_PIN_INCORRECT "wrong PIN c" --login --pin 000000 --list-objects
expect_fail CKR_PIN_INCORRECT "wrong PIN d" --login --pin 000000 --list-objects
expect_ok "still not locked" --login --pin "$PIN" --list-objects
pass "3 wrong PINs lock (CKR_PIN_LOCKED, flags), SO --init-pin unblocks, right PIN resets"

# ---------------------------------------------------------------- key slots
fresh_token
use_conf slots "max_keypairs = 1"
expect_ok "first keygen" --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --label s1
expect_fail CKR_DEVICE_MEMORY "second keygen with max_keypairs = 1" \
	--login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --label s2
use_conf slots2 "max_keypairs = 2"
expect_ok "control: second keygen with max_keypairs = 2" \
	--login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --label s2
pass "max_keypairs = 1: second keygen fails with CKR_DEVICE_MEMORY"

echo "cardsim self-test passed"
exit 0
