#!/bin/sh
# --json: each command's object parsed with python3's json module and its
# fields checked against what the text output and keymgr say. Errors under
# --json: "error: ..." on stderr, a non-zero exit and nothing on stdout.
# And keys -c on the KSK side lists each zone once.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

LABEL="SmartCard-HSM (UserPIN)"
token_init "$LABEL"
pin_file "$TMP/card.pin"
mkdir -p "$TMP/kasp"
run 0 "$KNOT_HSM" keystore --token "$LABEL" --pin-file "$TMP/card.pin" --id card
CARD_STANZA=$OUT
knot_conf "$TMP/knot.conf" stanza="$OUT" policy=card example.com. example.net.
C="$TMP/knot.conf"

# jget JSON PYTHON-EXPR: the value of the expression over the parsed document d.
jget() {
	printf '%s' "$1" | python3 -c 'import json, sys; d = json.load(sys.stdin); r = eval(sys.argv[1]); print(*r) if isinstance(r, tuple) else print(r)' "$2" \
		|| fail "not JSON or no $2: $1"
}

# generate --json: an array, one object per zone, ds --json's names.
run 0 "$KNOT_HSM" -c "$C" example.com example.net generate --json
GEN=$OUT
contains "$ERR" "knotd: not running" "generate --json: the text notes go to stderr"
equals "$(jget "$GEN" 'len(d)')" 2 "generate --json: one object per zone"
equals "$(jget "$GEN" 'd[0]["zone"]')" "example.com." "generate --json: zone"
id=$(jget "$GEN" 'd[0]["id"]')
tag=$(jget "$GEN" 'd[0]["key_tag"]')
equals "$(jget "$GEN" 'd[0]["algorithm"], d[0]["algorithm_name"], d[0]["flags"], d[0]["ksk"]')" \
	"13 ECDSAP256SHA256 257 True" "generate --json: algorithm, flags, ksk"
run 0 keymgr -c "$C" example.com. list
equals "$(printf '%s\n' "$OUT" | awk -v id="$id" '$1 == id { print $2, $3 }')" "$tag KSK" \
	"generate --json: id and key_tag are keymgr's"
run 0 keymgr -c "$C" example.com. ds
equals "$(jget "$GEN" 'd[0]["ds"][0]["text"]')" "$(printf '%s\n' "$OUT" | grep " $tag 13 2 ")" \
	"generate --json: the DS is keymgr's"
# ds --json of the same key: the same names and values.
run 0 "$KNOT_HSM" -c "$C" example.com ds --json
equals "$(jget "$OUT" 'd[0]["key_tag"], d[0]["dnskey"]')" "$(jget "$GEN" 'd[0]["key_tag"], d[0]["dnskey"]')" \
	"ds --json and generate --json agree"

# import --json of a key made with pkcs11-tool.
keygen_p11tool "$LABEL" "outside" 0a0b0c
run 0 "$KNOT_HSM" -c "$C" example.net import label=outside zsk=yes --json
equals "$(jget "$OUT" 'd[0]["zone"], d[0]["id"], d[0]["ksk"], d[0]["ds"]')" "example.net. 0a0b0c False []" \
	"import --json: zone, id, a ZSK without DS"

# keys --json: one object per card, each key with its zones.
run 0 "$KNOT_HSM" -c "$C" keys --json
equals "$(jget "$OUT" 'd[0]["keystore"]')" card "keys --json: keystore"
equals "$(jget "$OUT" '[k["zones"] for k in d[0]["keys"] if k["id"] == "'"$id"'"][0]')" "['example.com.']" \
	"keys --json: the zones of a key"
equals "$(jget "$OUT" '[k["key_tag"] for k in d[0]["keys"] if k["id"] == "'"$id"'"][0]')" "$tag" \
	"keys --json: key_tag"
equals "$(jget "$OUT" 'd[0]["missing"]')" "[]" "keys --json: nothing missing"
# Each key's use by each zone: kind (from KASP), role and state. The
# imported ZSK, which roles (card KSKs only) leaves empty, and the KSKs.
printf '%s' "$OUT" > "$TMP/keys.json"
python3 - "$TMP/keys.json" "$id" <<'PY' || fail "keys --json: uses"
import json, sys
d = json.load(open(sys.argv[1]))
keys = {k["id"]: k for c in d for k in c["keys"]}
zsk = keys["0a0b0c"]
assert zsk["zones"] == ["example.net."] and zsk["roles"] == [], zsk
assert zsk["uses"] == [{"zone": "example.net.", "kind": "zsk", "role": "active", "state": "active"}], zsk
ksk = keys[sys.argv[2]]
assert ksk["uses"] == [{"zone": "example.com.", "kind": "ksk", "role": "active", "state": "active"}], ksk
assert all(set(u) == {"zone", "kind", "role", "state"} for k in keys.values() for u in k["uses"]), keys
assert all([u["zone"] for u in k["uses"]] == k["zones"] for k in keys.values()), keys
# the card KSKs of both zones: kind ksk per zone, roles unchanged beside uses
kinds = sorted((u["zone"], u["kind"]) for k in keys.values() for u in k["uses"])
assert kinds == [("example.com.", "ksk"), ("example.net.", "ksk"), ("example.net.", "zsk")], kinds
for k in keys.values():
    for r in k["roles"]:
        assert {"zone": r["zone"], "role": r["role"]} == r, r
        assert [u["role"] for u in k["uses"] if u["zone"] == r["zone"]] == [r["role"]], k
PY
pass "keys --json: every key's kind, role and state per zone"
run 0 "$KNOT_HSM" -c "$C" keys
contains "$OUT" "zones: example.net. (ZSK)" "keys: the ZSK's kind in text, no role word while it signs"
# A retired ZSK is outgoing, in text and JSON (its KASP state beside).
run 0 keymgr -c "$C" example.net. set 0a0b0c retire=+0
run 0 "$KNOT_HSM" -c "$C" keys
contains "$OUT" "zones: example.net. (ZSK, outgoing)" "keys: a retired ZSK's role in text"
run 0 "$KNOT_HSM" -c "$C" keys --json
equals "$(jget "$OUT" '[(u["role"], u["state"]) for k in d[0]["keys"] if k["id"] == "0a0b0c" for u in k["uses"]]')" \
	"[('outgoing', 'retired')]" "keys --json: a retired ZSK is outgoing"

# doctor --json: the checks, then the counts; a failing check exits 1 with
# the whole object.
run 0 "$KNOT_HSM" doctor --token "$LABEL" --pin-file "$TMP/card.pin" --json
equals "$(jget "$OUT" 'd["failed"], d["warnings"]')" "0 0" "doctor --json: no failure"
equals "$(jget "$OUT" '[c["result"] for c in d["checks"] if c["check"] == "login"]')" "['ok']" \
	"doctor --json: the login check"
printf '%s' 000000 > "$TMP/wrong.pin"; chmod 600 "$TMP/wrong.pin"
run 1 "$KNOT_HSM" doctor --token "no such token" --json
equals "$(jget "$OUT" 'd["failed"] >= 1')" True "doctor --json: a failed check counted"
equals "$(jget "$OUT" 'any(c["result"] == "fail" for c in d["checks"])')" True "doctor --json: result fail"

# Errors: stderr, non-zero, stdout empty.
run 1 "$KNOT_HSM" -c "$TMP/nothere.conf" example.com generate --json
contains "$ERR" "error: " "an error under --json is on stderr"
equals "$OUT" "" "an error under --json leaves stdout empty"
run 1 "$KNOT_HSM" -c "$C" example.com nocard.example generate --json
equals "$OUT" "" "a failure after a first zone leaves stdout empty too"
run 1 "$KNOT_HSM" -c "$TMP/nothere.conf" keys --json
equals "$OUT" "" "keys --json error: stdout empty"

# keys -c on a KSK side (policy --write's FILE-ksk.conf): each zone once.
mkdir -p "$TMP/off/keys"
knot_conf "$TMP/off/knot.conf" kasp="$TMP/off/keys" stanza="$CARD_STANZA" \
	template="    storage: $TMP/off" a.example.
run 0 "$KNOT_HSM" -c "$TMP/off/knot.conf" a.example policy mode=offline --write "$TMP/off/knot-hsm.conf"
KSKC=$TMP/off/knot-hsm-ksk.conf
# policy --json: the files, their sides and texts, the arithmetic.
run 0 "$KNOT_HSM" -c "$TMP/off/knot.conf" a.example policy mode=offline --json
P=$OUT
equals "$(jget "$P" 'd["mode"], d["zones"], d["written"]')" "offline ['a.example.'] False" "policy --json: mode, zones, written"
equals "$(jget "$P" 'tuple(f["side"] for f in d["files"])')" "zsk ksk" "policy --json: the two sides"
equals "$(jget "$P" 'd["files"][1]["path"]')" "$KSKC" "policy --json: the KSK side's path"
equals "$(jget "$P" 'd["files"][1]["text"] == open("'"$KSKC"'").read()')" True "policy --json: the KSK side's text is the file's"
equals "$(jget "$P" 'd["outage_survived_seconds"] > 0, d["card_signatures_per_zone_year"] > 0')" "True True" \
	"policy --json: the arithmetic"
run 0 "$KNOT_HSM" -c "$TMP/off/knot.conf" a.example policy mode=offline --write "$TMP/off/knot-hsm.conf" --json
equals "$(jget "$OUT" 'd["written"], d["files"][0]["text"] == open("'"$TMP/off/knot-hsm.conf"'").read()')" "True True" \
	"policy --write --json: written, and the text is what was written"
run 0 "$KNOT_HSM" -c "$KSKC" a.example generate
run 0 "$KNOT_HSM" -c "$KSKC" keys
equals "$(printf '%s\n' "$OUT" | grep -c 'a.example. (KSK)')" 1 "keys -c KSK side: the key's line once"
lacks "$OUT" "a.example. (KSK), a.example. (KSK)" "keys -c KSK side: the zone once"
run 0 "$KNOT_HSM" -c "$KSKC" keys --json
equals "$(jget "$OUT" '[z for k in d[0]["keys"] for z in k["zones"]]')" "['a.example.']" "keys --json -c KSK side: the zone once"
