#!/bin/sh
# knot-hsm ZONE ds: the same DS as `keymgr ZONE ds` for card KSKs, the other
# registry formats (DNSKEY, CDS, CDNSKEY, EPP secDNS-1.1, JSON), SHA-1 only by
# name with a warning, and the errors an operator can make.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore

CONF="$TMP/knot.conf"
knot_conf "$CONF" policy=card example.com. example.org. example.net.
run 0 knotc -c "$CONF" conf-check

km() { keymgr -c "$CONF" "$@"; }
# Two KSKs on the card (P-256 and P-384) and a ZSK, which ds must leave out.
run 0 km example.com. generate algorithm=ecdsap256sha256 ksk=yes zsk=no
lacks "$ERR" "error" "keymgr makes a P-256 KSK on the card"
run 0 km example.com. generate algorithm=ecdsap384sha384 ksk=yes zsk=no
lacks "$ERR" "error:" "keymgr makes a P-384 KSK on the card"
run 0 km example.com. generate algorithm=ecdsap256sha256 ksk=no zsk=yes
run 0 km example.org. generate algorithm=ecdsap256sha256 ksk=yes zsk=no
equals "$(km example.com. list | grep -c ' KSK ')" 2 "example.com. has two KSKs"

KM_DS=$(km example.com. ds)
KM_DNSKEY=$(km example.com. dnskey)
equals "$(printf '%s\n' "$KM_DS" | wc -l)" 4 "keymgr prints SHA-256 and SHA-384 for each KSK"

# Default: SHA-256 only, byte for byte what keymgr prints.
run 0 "$KNOT_HSM" -c "$CONF" example.com ds
equals "$OUT" "$(printf '%s\n' "$KM_DS" | grep '^example\.com\. DS [0-9]* [0-9]* 2 ')" "ds = keymgr ds, SHA-256 lines"
equals "$ERR" "" "nothing on stderr"
"$KNOT_HSM" -c "$CONF" example.com ds > "$TMP/ds.out"
km example.com. ds | grep ' [0-9]* [0-9]* 2 ' > "$TMP/km.out"
cmp "$TMP/ds.out" "$TMP/km.out" || fail "ds output differs in bytes from keymgr"
pass "byte-identical to keymgr, final newline included"
run 0 "$KNOT_HSM" -c "$CONF" EXAMPLE.COM. ds digest=sha256
equals "$OUT" "$(cat "$TMP/km.out")" "zone name in any case, digest=sha256 explicit"

# digest=all: everything keymgr prints, in its order.
"$KNOT_HSM" -c "$CONF" example.com ds digest=all > "$TMP/all.out"
km example.com. ds > "$TMP/kmall.out"
cmp "$TMP/all.out" "$TMP/kmall.out" || fail "digest=all differs from keymgr ds"
pass "digest=all = keymgr ds byte for byte"
run 0 "$KNOT_HSM" -c "$CONF" example.com ds digest=sha384
equals "$OUT" "$(printf '%s\n' "$KM_DS" | grep ' [0-9]* [0-9]* 4 ')" "digest=sha384"

# Several zones: one after the other.
run 0 "$KNOT_HSM" -c "$CONF" example.com example.org ds
equals "$OUT" "$(cat "$TMP/km.out"; km example.org. ds | grep ' [0-9]* [0-9]* 2 ')" "two zones"

# SHA-1 only when named, with a warning; digest checked by an independent computation.
run 0 "$KNOT_HSM" -c "$CONF" example.com ds digest=sha1
contains "$ERR" "warning: SHA-1 DS records are deprecated (RFC 8624" "SHA-1 warns"
py_ds() { # digest-name: DS lines computed by Python from keymgr's DNSKEY lines
	printf '%s\n' "$KM_DNSKEY" | python3 -c '
import base64, hashlib, struct, sys
dig = {"sha1": (1, hashlib.sha1), "sha256": (2, hashlib.sha256)}[sys.argv[1]]
for line in sys.stdin:
    owner, _, flags, proto, alg, key = line.split(None, 5)
    wire = b"".join(bytes([len(l)]) + l.encode() for l in owner.rstrip(".").split(".")) + b"\0"
    rdata = struct.pack("!HBB", int(flags), int(proto), int(alg)) + base64.b64decode("".join(key.split()))
    ac = 0
    for i, b in enumerate(rdata):
        ac += b if i & 1 else b << 8
    ac += ac >> 16
    print("%s DS %d %s %d %s" % (owner, ac & 0xFFFF, alg, dig[0], dig[1](wire + rdata).hexdigest()))
' "$1"
}
equals "$OUT" "$(py_ds sha1)" "SHA-1 DS = Python hashlib over owner|DNSKEY rdata"
equals "$(cat "$TMP/ds.out")" "$(py_ds sha256)" "and the SHA-256 DS too (cross-check of the method)"
run 0 "$KNOT_HSM" -c "$CONF" example.com ds
lacks "$ERR" "SHA-1" "no SHA-1 warning by default"

# DNSKEY, CDS, CDNSKEY.
run 0 "$KNOT_HSM" -c "$CONF" example.com ds format=dnskey
equals "$OUT" "$KM_DNSKEY" "format=dnskey = keymgr dnskey"
run 0 "$KNOT_HSM" -c "$CONF" example.com ds format=cdnskey
equals "$OUT" "$(printf '%s\n' "$KM_DNSKEY" | sed 's/ DNSKEY / CDNSKEY /')" "format=cdnskey"
run 0 "$KNOT_HSM" -c "$CONF" example.com ds format=cds
equals "$OUT" "$(sed 's/ DS / CDS /' "$TMP/km.out")" "format=cds"
run 0 "$KNOT_HSM" -c "$CONF" example.com ds format=cds digest=all
equals "$OUT" "$(sed 's/ DS / CDS /' "$TMP/kmall.out")" "format=cds digest=all"

# EPP secDNS-1.1: well-formed XML with our key tags and digests.
run 0 "$KNOT_HSM" -c "$CONF" example.com ds format=epp
printf '%s\n' "$OUT" > "$TMP/epp.xml"
got=$(python3 - "$TMP/epp.xml" <<'PY'
import sys, xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])
root = doc.documentElement
assert root.tagName == "secDNS:create", root.tagName
assert root.getAttribute("xmlns:secDNS") == "urn:ietf:params:xml:ns:secDNS-1.1"
def text(e, name):
    return e.getElementsByTagName(name)[0].firstChild.data
for ds in root.getElementsByTagName("secDNS:dsData"):
    print("%s %s %s %s" % (text(ds, "secDNS:keyTag"), text(ds, "secDNS:alg"),
                           text(ds, "secDNS:digestType"), text(ds, "secDNS:digest")))
PY
) || fail "EPP fragment is not well-formed: $OUT"
want=$(awk '{ print $3, $4, $5, toupper($6) }' "$TMP/km.out")
equals "$got" "$want" "EPP dsData: keyTag, alg, digestType, digest of each KSK"
run 0 "$KNOT_HSM" -c "$CONF" example.com ds format=epp digest=all
equals "$(printf '%s\n' "$OUT" | grep -c '<secDNS:dsData>')" 4 "EPP with digest=all: four dsData"

# epp-keydata: each dsData carries the key itself, equal to keymgr's DNSKEY.
run 0 "$KNOT_HSM" -c "$CONF" example.com ds format=epp-keydata
printf '%s\n' "$OUT" > "$TMP/eppk.xml"
got=$(python3 - "$TMP/eppk.xml" <<'PY'
import sys, xml.dom.minidom
root = xml.dom.minidom.parse(sys.argv[1]).documentElement
def text(e, name):
    return e.getElementsByTagName(name)[0].firstChild.data
for ds in root.getElementsByTagName("secDNS:dsData"):
    kd = ds.getElementsByTagName("secDNS:keyData")[0]
    print("%s %s %s %s" % (text(kd, "secDNS:flags"), text(kd, "secDNS:protocol"),
                           text(kd, "secDNS:alg"), text(kd, "secDNS:pubKey")))
PY
) || fail "EPP keyData fragment is not well-formed: $OUT"
want=$(keymgr -c "$CONF" example.com. dnskey | awk '{ print $3, $4, $5, $6 }')
equals "$got" "$want" "EPP keyData: flags, protocol, alg, pubKey of each KSK"

# JSON: parses, one object per KSK, DS texts = keymgr's.
run 0 "$KNOT_HSM" -c "$CONF" example.com ds format=json digest=all
printf '%s\n' "$OUT" > "$TMP/ds.json"
got=$(python3 - "$TMP/ds.json" <<'PY'
import json, sys
keys = json.load(open(sys.argv[1]))
assert isinstance(keys, list) and len(keys) == 2, keys
for k in keys:
    assert k["zone"] == "example.com." and k["flags"] == 257, k
    assert k["dnskey"].startswith("example.com. DNSKEY 257 3 %d " % k["algorithm"]), k
    for d in k["ds"]:
        assert d["text"].endswith(" %d %s" % (d["digest_type"], d["digest"])), d
        print(d["text"])
PY
) || fail "JSON does not parse or is wrong: $OUT"
equals "$got" "$(cat "$TMP/kmall.out")" "JSON DS texts = keymgr ds"
json_dnskeys=$(python3 -c 'import json,sys; print("\n".join(k["dnskey"] for k in json.load(open(sys.argv[1]))))' "$TMP/ds.json")
equals "$json_dnskeys" "$KM_DNSKEY" "JSON dnskey = keymgr dnskey"
run 0 "$KNOT_HSM" -c "$CONF" example.com ds --json
equals "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["ds"]))' <<EOF
$OUT
EOF
)" 1 "--json: JSON with the default digest only"

# Errors.
run 2 "$KNOT_HSM" -c "$CONF" example.com ds foo=bar
contains "$ERR" "'ds' does not take 'foo='" "unknown key"
contains "$ERR" "usage: knot-hsm [-c knot.conf] ZONE... ds" "with the synopsis"
run 2 "$KNOT_HSM" -c "$CONF" example.com ds digest=md5
contains "$ERR" "digest= takes sha256, sha384, all or sha1, not 'md5'" "bad digest"
run 2 "$KNOT_HSM" -c "$CONF" example.com ds format=xml
contains "$ERR" "format= takes ds, dnskey, cds, cdnskey, epp, epp-keydata, epp-update or json, not 'xml'" "bad format"
run 2 "$KNOT_HSM" -c "$CONF" example.com ds format=dnskey digest=sha384
contains "$ERR" "digest= does not apply to format=dnskey" "digest with a key format"
run 2 "$KNOT_HSM" -c "$CONF" example.com ds format=ds --json
contains "$ERR" "contradict" "--json with another format"
run 2 "$KNOT_HSM" -c "$CONF" example.com ds digest=sha256 digest=all
contains "$ERR" "'digest' given twice" "repeated key"
run 2 "$KNOT_HSM" -c "$CONF" ds
contains "$ERR" "needs at least one zone" "no zone"
run 1 "$KNOT_HSM" -c "$CONF" example.info ds
contains "$ERR" "zone example.info. is not in $CONF" "unknown zone"
run 1 "$KNOT_HSM" -c "$CONF" example.net ds
contains "$ERR" "zone example.net. has no KSK in Knot's KASP" "zone without KSK"
contains "$ERR" "knot-hsm -c $CONF example.net. generate" "with the remedy, with its -c"
run 1 "$KNOT_HSM" -c "$CONF" example.com example.net ds
equals "$OUT" "" "a failing zone: no partial output"
# No card: keymgr cannot open the keystore, and we say why.
mkdir -p "$TMP/empty-tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$TMP/empty-tokens" > "$TMP/empty.conf"
SOFTHSM2_CONF="$TMP/empty.conf" run 1 "$KNOT_HSM" -c "$CONF" example.com ds
contains "$ERR" "token not available" "card absent: keymgr's reason"
contains "$ERR" "connect the card" "card absent: remedy"

# submitted: argument checks that need no parent.
run 2 "$KNOT_HSM" -c "$CONF" example.com submitted server=not/an/address
contains "$ERR" "neither an IP address nor a host name" "bad server="
run 2 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@70000
contains "$ERR" "port after '@' must be a number from 1 to 65535" "bad port"
run 2 "$KNOT_HSM" -c "$CONF" example.com submitted digest=all
contains "$ERR" "'submitted' does not take 'digest='" "submitted takes only server="
run 1 "$KNOT_HSM" -c "$CONF" example.net submitted server=127.0.0.1@1
contains "$ERR" "no KSK" "submitted: zone without KSK"
