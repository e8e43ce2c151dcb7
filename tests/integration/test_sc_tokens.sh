#!/bin/sh
# tokens and uri on the real card stack: the emulated SmartCard-HSM through
# pcscd and opensc-pkcs11.so, before and after sc-hsm-tool --initialize --label.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/smartcard.sh"

sc_start
# The stack is the test's own: another network namespace than the host's (so
# vpcd's port is not the host's), and /run/pcscd is not the host's directory.
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
	fail "the card stack runs in the host's network namespace"
pass "the card stack has its own network namespace"
if [ -d /proc/1/root/run/pcscd ]; then
	[ "$(stat -c %d:%i /run/pcscd)" != "$(stat -c %d:%i /proc/1/root/run/pcscd)" ] ||
		fail "/run/pcscd is the host's"
fi
[ "$(stat -f -c %T /run/pcscd)" = tmpfs ] || fail "/run/pcscd is not the test's private tmpfs"
pass "pcscd's socket directory is the test's private tmpfs, not the host's"
serial=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["serial"])' "$SC_STATE")

run 0 "$KNOT_HSM" tokens
contains "$OUT" "token: SmartCard-HSM (UserPIN)" "OpenSC's label for a card without EF 2F03"
contains "$OUT" "serial: $serial" "the serial OpenSC takes from the device certificate"
contains "$OUT" "module: $OPENSC_MODULE (opensc)" "the card is seen through opensc-pkcs11.so"
contains "$OUT" "flags: login-required, user-pin-initialized, token-initialized" "token flags from the card"
contains "$OUT" "uri: pkcs11:model=PKCS%2315%20emulated;manufacturer=www.CardContact.de;serial=$serial;token=SmartCard-HSM%20%28UserPIN%29" "full token URI, percent-encoded"
contains "$OUT" "dnssec: ECDSA P-256, ECDSA P-384" "DNSSEC algorithms the card offers"
lacks "$OUT" "softhsm" "the host's modules are hidden: only OpenSC is registered"
equals "$(printf '%s\n' "$OUT" | grep -c '^token: ')" 1 "exactly one token: the emulated card"

run 0 "$KNOT_HSM" tokens --json
printf '%s' "$OUT" > "$TMP/tokens.json"
python3 - "$TMP/tokens.json" "$OPENSC_MODULE" "$serial" <<'PY' || fail "tokens --json content"
import json, sys
tokens = json.load(open(sys.argv[1]))
assert len(tokens) == 1, tokens
t = tokens[0]
assert t["label"] == "SmartCard-HSM (UserPIN)", t
assert t["module"] == sys.argv[2], t
assert t["serial"] == sys.argv[3], t
assert "ECDSAP256SHA256" in t["dnssec"], t
PY
pass "tokens --json: the card, its module and serial"

run 0 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)"
equals "$OUT" "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" "uri: the label percent-encoded"
run 0 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)" --module "$OPENSC_MODULE"
equals "$OUT" "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" "uri with --module, the same"

# sc-hsm-tool --initialize --label: OpenSC writes EF 2F03, the label becomes 'X (UserPIN)'.
sc-hsm-tool --initialize --so-pin "$SO_PIN" --pin "$PIN" --label "KSK/1 card" > "$TMP/init.out" 2>&1 ||
	{ cat "$TMP/init.out" >&2; fail "sc-hsm-tool --initialize"; }
pass "sc-hsm-tool --initialize --label runs"
equals "$(sc_log_count initialize)" 1 "INITIALIZE DEVICE reached the card once"
run 0 "$KNOT_HSM" tokens
contains "$OUT" "token: KSK/1 card (UserPIN)" "the new label, as OpenSC shows it"
lacks "$OUT" "token: SmartCard-HSM (UserPIN)" "the default label is gone"
contains "$OUT" "token=KSK%2F1%20card%20%28UserPIN%29" "tokens: the new label percent-encoded"
run 0 "$KNOT_HSM" uri --token "KSK/1 card (UserPIN)"
equals "$OUT" "pkcs11:token=KSK%2F1%20card%20%28UserPIN%29" "uri: slash, spaces and parentheses encoded"
run 1 "$KNOT_HSM" uri --token "SmartCard-HSM (UserPIN)"
contains "$ERR" "no token labelled 'SmartCard-HSM (UserPIN)'" "the old label is not found"
contains "$ERR" "KSK/1 card (UserPIN)" "the error names the token present"

# The card keeps its state across a restart of the emulator (a card out of
# power): the label and the serial stay.
sc_restart_emulator
run 0 "$KNOT_HSM" tokens
contains "$OUT" "token: KSK/1 card (UserPIN)" "the label survives the card's restart"
contains "$OUT" "serial: $serial" "and so does the serial"
