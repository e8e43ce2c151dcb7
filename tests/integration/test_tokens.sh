#!/bin/sh
# knot-hsm tokens: every token of the registered modules and --module, with
# flags, URI and DNSSEC capabilities, text and JSON.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

token_init "SmartCard-HSM (UserPIN)"
token_init "a/b#c%d;e?f=g&h"
token_init "Žluť (test)"

run 0 "$KNOT_HSM" tokens
contains "$OUT" "token: SmartCard-HSM (UserPIN)" "lists the smartcard-like token"
contains "$OUT" "uri: pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=$(token_serial "SmartCard-HSM (UserPIN)");token=SmartCard-HSM%20%28UserPIN%29" "full token URI, percent-encoded"
contains "$OUT" "token=a%2Fb%23c%25d%3Be%3Ff%3Dg%26h" "awkward label encoded"
contains "$OUT" "token=%C5%BDlu%C5%A5%20%28test%29" "UTF-8 label encoded"
contains "$OUT" "module: $SOFTHSM_MODULE (softhsm2)" "module path and p11-kit name"
contains "$OUT" "flags: login-required, user-pin-initialized, token-initialized" "flags that matter"
contains "$OUT" "dnssec: ECDSA P-256, ECDSA P-384" "DNSSEC capability line"
contains "$OUT" "RSA " "RSA with its key size range"

# JSON is machine readable and carries the same facts.
run 0 "$KNOT_HSM" tokens --json
printf '%s' "$OUT" > "$TMP/tokens.json"
python3 - "$TMP/tokens.json" "$SOFTHSM_MODULE" <<'PY' || fail "tokens --json content"
import json, sys
tokens = json.load(open(sys.argv[1]))
card = [t for t in tokens if t["label"] == "SmartCard-HSM (UserPIN)"]
assert len(card) == 1, card
t = card[0]
assert t["module"] == sys.argv[2], t
assert "login-required" in t["flags"], t
assert "ECDSAP256SHA256" in t["dnssec"], t
assert t["uri"].endswith("token=SmartCard-HSM%20%28UserPIN%29"), t
assert any(x["label"] == "Žluť (test)" for x in tokens)
PY
pass "tokens --json parses and matches"

# --module given as well as registered: each token listed once.
run 0 "$KNOT_HSM" --module "$SOFTHSM_MODULE" tokens
equals "$(printf '%s\n' "$OUT" | grep -c '^token: SmartCard-HSM (UserPIN)$')" 1 "a registered module given again is listed once"

# Options may follow a token-wide command.
run 0 "$KNOT_HSM" tokens --module "$SOFTHSM_MODULE" --json
contains "$OUT" '"label": "SmartCard-HSM (UserPIN)"' "options after the command"

# Bad input.
run 1 "$KNOT_HSM" tokens --module /nonexistent/pkcs11.so
contains "$ERR" "error: failed to load PKCS #11 module: module /nonexistent/pkcs11.so" "wrong module path explained"
contains "$ERR" "full path" "remedy for the module path"
run 1 "$KNOT_HSM" tokens --module /etc/hostname
contains "$ERR" "cannot be loaded" "a file that is no module"
run 2 "$KNOT_HSM" tokens --bogus
contains "$ERR" "unknown option '--bogus'" "unknown option is a usage error"
run 2 "$KNOT_HSM" tokens extra
contains "$ERR" "unexpected argument 'extra'" "trailing garbage is a usage error"
run 2 "$KNOT_HSM" example.com tokens
contains "$ERR" "takes no zone" "token-wide command given a zone"
run 2 "$KNOT_HSM" frobnicate
contains "$ERR" "unknown command" "unknown command"
run 0 "$KNOT_HSM" tokens --help
contains "$OUT" "Usage: knot-hsm tokens" "per-command help"
run 0 "$KNOT_HSM" ds --help
contains "$OUT" "Usage: knot-hsm [-c knot.conf] ZONE... ds" "a zone command's help needs no zone"
