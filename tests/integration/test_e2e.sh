#!/bin/sh
# End to end: knotd signs example.com. with a KSK that lives on the card, the
# DS from `knot-hsm ds` is the trust anchor under which validators that are
# not Knot (BIND's delv, ldns-verify-zone) accept the zone, and
# `knot-hsm submitted` confirms the KSK once a parent knotd (com.) publishes
# that DS, and not before. knot-hsm asks the parent itself (libknot packets
# over UDP and TCP); the parents here are knotd and tests/integration/dnsresp.py
# (crafted DS rdata), all on 127.0.0.x at free ports, never an outside address.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/dnsresp.sh"

card_keystore

PORT=$(free_port)
PPORT=$(free_port)
while [ "$PPORT" = "$PORT" ]; do PPORT=$(free_port); done

# The child: example.com., signed by knotd; KSK and ZSK in the card keystore
# (Knot 3.2: one keystore per policy), manual policy.
C=$TMP/child
mkdir -p "$C/run" "$C/zones" "$C/kasp"
cat > "$C/zones/example.com.zone" <<'ZONE'
$ORIGIN example.com.
$TTL 300
@    SOA  ns1 hostmaster 1 3600 600 86400 300
@    NS   ns1
ns1  A    127.0.0.1
www  A    192.0.2.1
ZONE
CONF=$C/knot.conf
cat > "$CONF" <<CONF
$(knotd_conf_head "$C" "$PORT" "$C/kasp")
$stanza
policy:
  - id: card
    keystore: card
    manual: on
acl:
  - id: local
    address: 127.0.0.1
    action: transfer
zone:
  - domain: example.com.
    storage: $C/zones
    file: example.com.zone
    dnssec-signing: on
    dnssec-policy: card
    acl: local
CONF
run 0 knotc -c "$CONF" conf-check

# KSK on the card, in state "ready": published and signing the DNSKEY set,
# waiting for its DS at the parent (publish and ready now, active unset).
# zone-ksk-submitted only accepts a KSK in that state.
run 0 keymgr -c "$CONF" example.com. generate algorithm=ecdsap256sha256 ksk=yes zsk=no active=0
lacks "$ERR" "error" "KSK generated on the card"
KSK_ID=$OUT
run 0 keymgr -c "$CONF" example.com. set "$KSK_ID" ready=+0
run 0 keymgr -c "$CONF" example.com. generate algorithm=ecdsap256sha256 ksk=no zsk=yes
lacks "$ERR" "error" "ZSK generated"
run 0 keymgr -c "$CONF" example.com. list -e
ksk_line=$(printf '%s\n' "$OUT" | grep "^$KSK_ID ")
KSK_TAG=$(printf '%s\n' "$ksk_line" | sed 's/.* tag=0*\([0-9]*\) .*/\1/')
contains "$ksk_line" " active=0 " "the KSK is not active yet"
GNUTLS_PIN=$PIN p11tool --login --list-privkeys "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" > "$TMP/privkeys" 2>/dev/null
contains "$(cat "$TMP/privkeys")" "Label: example.com. KSK" "the KSK's private key is on the card"

# The parent: com., unsigned, without the DS for now.
P=$TMP/parent
mkdir -p "$P/run" "$P/zones"
parent_zone() { # serial, then the extra records: the com. zone file, to stdout
	serial=$1; shift
	printf '$ORIGIN com.\n$TTL 300\n@ SOA ns hostmaster %s 3600 600 86400 300\n' "$serial"
	printf '@ NS ns\nns A 127.0.0.1\nexample NS ns1.example.com.\nns1.example A 127.0.0.1\n'
	for rr in "$@"; do printf '%s\n' "$rr"; done
}
parent_conf() { # dir port: a knotd serving dir/zones/com.zone on 127.0.0.1@port
	cat > "$1/knot.conf" <<CONF
server:
    rundir: $1/run
    listen: 127.0.0.1@$2
log:
  - target: $1/knotd.log
    any: info
zone:
  - domain: com.
    storage: $1/zones
    file: com.zone
    zonefile-sync: -1
CONF
}
# parent_publish SERIAL RR...: the parent serves this com. zone (waited for).
parent_publish() {
	parent_zone "$@" > "$P/zones/com.zone"
	run 0 knotc -c "$PCONF" zone-reload com.
	i=0
	until kdig @127.0.0.1 -p "$PPORT" com. SOA +norec +short | grep -q " $1 3600 "; do
		i=$((i + 1)); [ $i -le 50 ] || fail "parent did not load serial $1"; sleep 0.1
	done
}
parent_zone 1 > "$P/zones/com.zone"
PCONF=$P/knot.conf
parent_conf "$P" "$PPORT"
knotd_start "$PCONF" "$P/knotd.out"
knotd_wait_serial "$PCONF" com.
knotd_start "$CONF" "$C/knotd.out"
knotd_wait_serial "$CONF" example.com.
pass "child and parent knotd running on 127.0.0.1@$PORT and @$PPORT"

# knotd signs the DNSKEY set with the card KSK.
run 0 kdig @127.0.0.1 -p "$PORT" example.com. DNSKEY +dnssec +noall +answer
contains "$OUT" "DNSKEY	257 3 13 " "the KSK is published"
printf '%s\n' "$OUT" | grep -q "RRSIG	DNSKEY 13 2 300 [0-9]* [0-9]* $KSK_TAG example\.com\. " ||
	fail "no RRSIG over DNSKEY by the card KSK (tag $KSK_TAG): $OUT"
pass "DNSKEY RRSIG by the card KSK, tag $KSK_TAG"

# The DS knot-hsm exports.
run 0 "$KNOT_HSM" -c "$CONF" example.com ds
DS=$OUT
equals "$(printf '%s\n' "$DS" | wc -l)" 1 "one DS (SHA-256)"
contains "$DS" "example.com. DS $KSK_TAG 13 2 " "for the card KSK"
printf '%s\n' "$DS" > "$TMP/ds.txt"

# BIND's delv with the DS as trust anchor (delv 9.18: trust-anchors { NAME
# initial-ds TAG ALG TYPE "HEX"; }; in the -a file, +root=NAME for a trust
# anchor that is not the root). delv exits 0 even when validation fails, so
# the verdict is read from its output.
ta() { # DS line -> trust-anchors block
	printf '%s\n' "$1" | awk '{ printf "trust-anchors {\n  %s initial-ds %s %s %s \"%s\";\n};\n", $1, $3, $4, $5, $6 }'
}
ta "$DS" > "$TMP/anchor.conf"
delv_soa() { delv_ask "$PORT" "$1" example.com example.com SOA; }
out=$(delv_soa "$TMP/anchor.conf")
contains "$out" "; fully validated" "delv validates example.com SOA from the exported DS"
contains "$out" "RRSIG	SOA 13 2 300" "with the signature knotd made"
ZERO_DS="example.com. DS $KSK_TAG 13 2 $(printf '%064d' 0)"
ta "$ZERO_DS" > "$TMP/bad.conf"
out=$(delv_soa "$TMP/bad.conf")
lacks "$out" "fully validated" "delv rejects the zone under a wrong DS (negative control)"
contains "$out" "resolution failed" "and says so"

# ldns-verify-zone on a zone transfer, with the DS as the trust anchor.
run 0 kdig @127.0.0.1 -p "$PORT" example.com. AXFR +noall +answer
printf '%s\n' "$OUT" > "$TMP/example.com.axfr"
contains "$OUT" "RRSIG	SOA" "AXFR of the signed zone"
run 0 ldns-verify-zone -k "$TMP/ds.txt" "$TMP/example.com.axfr"
contains "$OUT$ERR" "Zone is verified and complete" "ldns-verify-zone accepts the zone under the DS"
printf '%s\n' "$ZERO_DS" > "$TMP/bad-ds.txt"
if ldns-verify-zone -k "$TMP/bad-ds.txt" "$TMP/example.com.axfr" > "$TMP/ldns.out" 2>&1; then
	fail "ldns-verify-zone accepted the zone under a wrong DS: $(cat "$TMP/ldns.out")"
fi
contains "$(cat "$TMP/ldns.out")" "There were errors in the zone" "ldns-verify-zone rejects it under a wrong DS (negative control)"

# submitted before the parent has the DS: exit 1, what the parent has, what it should have.
run 1 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$PPORT
contains "$OUT" "example.com.: 127.0.0.1 (127.0.0.1@$PPORT) answered: 0 DS records" "the server's answer is reported"
contains "$ERR" "error: example.com.: the parent has no DS for the KSK that waits for it" "no DS at the parent yet"
contains "$ERR" "example.com.: 127.0.0.1 (127.0.0.1@$PPORT) has no DS record for example.com." "says the parent has none"
contains "$ERR" "example.com.: it should have: $DS" "and which DS it should have"
contains "$ERR" "example.com.: give it to the registry (knot-hsm -c $CONF example.com. ds, or format=epp), wait until the parent publishes it, then run this again" "and what to do"
for f in "$OUT" "$ERR"; do
	printf '%s\n' "$f" | grep -v '^\(error: \|warning: \|note: \)\{0,1\}example\.com\.: ' | grep . &&
		fail "a line of submitted does not name the zone"
done
pass "every line of submitted names the zone"
run 0 keymgr -c "$CONF" example.com. list -e
contains "$(printf '%s\n' "$OUT" | grep "^$KSK_ID ")" " active=0 " "the KSK stays ready"
# server= naming the child's own server: said so, not read as "no DS".
run 1 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$PORT
contains "$ERR" "this server answers from example.com. itself, not from its parent zone" "server= of the child itself is recognised"
lacks "$ERR" "has no DS record" "and not taken for a parent without the DS"

# A DS of another key at the parent does not count.
parent_publish 2 "$ZERO_DS"
run 1 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$PPORT
contains "$ERR" "example.com.: 127.0.0.1 (127.0.0.1@$PPORT) has: $ZERO_DS" "a wrong DS at the parent is shown"
contains "$ERR" "note: example.com.: the parent has a DS that matches no KSK of the zone: $ZERO_DS" "and called foreign"

# The parent publishes our DS (SHA-384 digest too: any digest type of ours counts).
DS384=$("$KNOT_HSM" -c "$CONF" example.com ds digest=sha384)
parent_publish 3 "$DS384"

# With knotd stopped, submitted refuses and says what to do.
run 0 knotc -c "$CONF" stop
i=0
while knotc -c "$CONF" status >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -le 50 ] || fail "child knotd did not stop"; sleep 0.1
done
run 1 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$PPORT
contains "$OUT" "example.com.: parent has the DS of KSK $KSK_TAG, key id $KSK_ID (ready, waiting for the DS): " "the DS is found"
contains "$ERR" "knotd is not running" "knotd down is reported"
contains "$ERR" "start knotd, then run this again" "with the remedy"
knotd_start "$CONF" "$C/knotd2.out"
knotd_wait_serial "$CONF" example.com.

# Now it goes through and knotd makes the KSK active.
run 0 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$PPORT
contains "$OUT" "example.com.: parent has the DS of KSK $KSK_TAG" "DS matched"
contains "$OUT" "example.com.: knotd: zone-ksk-submitted example.com. done" "zone-ksk-submitted run"
contains "$OUT" "example.com.: KSK $KSK_TAG: active" "reports the KSK active"
run 0 keymgr -c "$CONF" example.com. list -e
active=$(printf '%s\n' "$OUT" | grep "^$KSK_ID " | sed 's/.* active=\([0-9]*\) .*/\1/')
[ "$active" -gt 0 ] && [ "$active" -le "$(date +%s)" ] || fail "KSK not active in KASP: $OUT"
pass "keymgr list: the KSK is active (active=$active)"
i=0
until grep -Eq "tag +$KSK_TAG, algorithm ECDSAP256SHA256, KSK, public, active$" "$C/knotd.log"; do
	i=$((i + 1)); [ $i -le 50 ] || { cat "$C/knotd.log" >&2; fail "knotd did not log the KSK active"; }
	sleep 0.1
done
pass "knotd logs the KSK as active"
out=$(delv_soa "$TMP/anchor.conf")
contains "$out" "; fully validated" "the zone still validates after the KSK became active"

# Idempotent: nothing waits any more.
run 0 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$PPORT
contains "$OUT" "(active)" "second run: the KSK is active"
contains "$OUT" "example.com.: no KSK waits for a DS; nothing to confirm" "second run: nothing to do"

# A parent whose DS answer also holds malformed records (truncated rdata,
# a digest too short for SHA-256, an unknown digest type): each is reported
# and ignored, the good DS still matches. The responder truncates its UDP
# answers, so the DS set comes over TCP.
RPORT=$(free_port)
dnsresp_start bad 127.0.0.1 "$RPORT" --tc --ds "$(ds_rdata "$DS384")" --ds 010203 \
	--ds "$(printf '%04x' "$KSK_TAG")0d02abcd" --ds "$(printf '%04x' "$KSK_TAG")0d07abcd"
run 0 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$RPORT
dnsresp_stop bad
contains "$OUT" "example.com.: parent has the DS of KSK $KSK_TAG" "the good DS matches beside malformed ones"
contains "$ERR" "warning: example.com.: 127.0.0.1 (127.0.0.1@$RPORT) sent a malformed DS record, ignored: example.com. DS \\# 3 010203: truncated, 3 octets where a DS has at least 4" "a truncated DS reported"
contains "$ERR" "sent a malformed DS record, ignored: example.com. DS $KSK_TAG 13 2 abcd: a digest of type 2 has 32 octets, this one 2" "a DS with a short digest reported"
contains "$ERR" "sent a malformed DS record, ignored: example.com. DS $KSK_TAG 13 7 abcd: unknown digest type 7" "a DS of an unknown digest type reported"
equals "$(cat "$TMP/bad.log")" "udp example.com. DS
tcp example.com. DS" "truncated over UDP, asked again over TCP"
# The same with --json: one object per zone, the people's lines on stderr.
dnsresp_start bad 127.0.0.1 "$RPORT" --ds "$(ds_rdata "$DS384")" --ds 010203
run 0 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$RPORT --json
dnsresp_stop bad
printf '%s' "$OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
tag, port = int(sys.argv[1]), int(sys.argv[2])
assert len(d) == 1, d
z = d[0]
assert z["zone"] == "example.com." and z["parent"] is None, z
assert z["verdict"] == "current", z["verdict"]
assert [(s["name"], s["address"], s["port"], s["answered"], s["error"]) for s in z["servers"]] == \
    [("127.0.0.1", "127.0.0.1", port, True, None)], z["servers"]
ds = z["servers"][0]["ds"]
assert [(x["key_tag"], x["digest_type"], x["ksk"]) for x in ds] == [(tag, 4, tag)], ds
assert z["servers"][0]["malformed"] == ["example.com. DS \\# 3 010203: truncated, 3 octets where a DS has at least 4"], z["servers"][0]["malformed"]
k = [x for x in z["ksks"] if x["key_tag"] == tag]
assert len(k) == 1 and k[0]["state"] == "active" and k[0]["published"] and k[0]["wanted"], z["ksks"]
assert z["lagging"] == [] and z["zone_ksk_submitted"] is False, z
' "$KSK_TAG" "$RPORT" || fail "submitted --json: $OUT"
pass "submitted --json: verdict, server, the DS matched to the KSK, the malformed record"
contains "$ERR" "example.com.: parent has the DS of KSK $KSK_TAG" "submitted --json: the text lines go to stderr"
contains "$ERR" "sent a malformed DS record, ignored: example.com. DS \\# 3 010203" "submitted --json: the warning stays"

# Without server=: the parent's servers come from the resolver, here the
# parent knotd itself (KHSM_RESOLVER; KHSM_PARENT_PORT for the port the
# servers found listen on), so the lookup (com. NS -> ns.com. -> 127.0.0.1)
# runs against it.
KHSM_RESOLVER=127.0.0.1@$PPORT KHSM_PARENT_PORT=$PPORT run 0 "$KNOT_HSM" -c "$CONF" example.com submitted
contains "$OUT" "example.com.: parent zone com.: 1 server address" "parent servers found through the resolver"
contains "$OUT" "example.com.: ns.com. (127.0.0.1@$PPORT) answered: 1 DS record" "the server found is asked"
contains "$OUT" "example.com.: parent has the DS of KSK $KSK_TAG" "and has the DS"
# A resolver that does not answer: a clear error that names server=.
DEAD=$(free_port)
KHSM_RESOLVER=127.0.0.1@$DEAD run 1 "$KNOT_HSM" -c "$CONF" example.com submitted
contains "$ERR" "error: example.com.: external tool failed: cannot find the servers of the parent zone of example.com. (com. NS from the system resolver: failed to query server 127.0.0.1@$DEAD (UDP): Connection refused); name one with server=ADDR[@PORT]" "no resolver: clear error with the remedy"

# A server that does not answer.
run 1 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$DEAD
contains "$ERR" "error: example.com.: external tool failed: example.com. DS at 127.0.0.1@$DEAD: failed to query server 127.0.0.1@$DEAD (UDP): Connection refused" "unreachable server"
# With --json, no server answering is an error: the same line, stdout empty.
run 1 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$DEAD --json
contains "$ERR" "error: example.com.: external tool failed: example.com. DS at 127.0.0.1@$DEAD: failed to query server 127.0.0.1@$DEAD (UDP): Connection refused" "submitted --json: unreachable server"
equals "$OUT" "" "submitted --json: an error leaves stdout empty"

# Two parent servers, the second still without the DS (a secondary behind on
# its transfers): the DS counts only when every server has it, and the advice
# is to wait for the parent, not to send the DS to the registry again.
# ns2.com. (127.0.0.2) is the responder, with no DS for example.com.
parent_publish 5 "$DS384" "@ NS ns2" "ns2 A 127.0.0.2"
dnsresp_start ns2 127.0.0.2 "$PPORT"
KHSM_RESOLVER=127.0.0.1@$PPORT KHSM_PARENT_PORT=$PPORT run 1 "$KNOT_HSM" -c "$CONF" example.com submitted
contains "$OUT" "example.com.: parent zone com.: 2 server addresses" "both parent servers found"
contains "$OUT" "example.com.: ns2.com. (127.0.0.2@$PPORT) answered: 0 DS records" "the second server is asked"
contains "$ERR" "note: example.com.: the DS of KSK $KSK_TAG is on 1 of the 2 parent servers; it counts when all have it" "a DS on one server of two is noted"
contains "$ERR" "error: example.com.: the parent has no DS for an active KSK of the zone" "and does not count"
contains "$ERR" "example.com.: ns2.com. (127.0.0.2@$PPORT) has no DS record for example.com." "the lagging server's answer is shown"
contains "$ERR" "example.com.: some parent servers already have it, not yet ns2.com. (127.0.0.2@$PPORT): the registry has it, the parent is still propagating; run this again later" "the lagging server is named, the advice is to wait"
lacks "$ERR" "give it to the registry" "not to submit the DS again"
equals "$(cat "$TMP/ns2.log")" "udp example.com. DS" "the second server asked once"
# --json: the verdict "partial" with the lagging server, exit 1 and the whole object.
KHSM_RESOLVER=127.0.0.1@$PPORT KHSM_PARENT_PORT=$PPORT run 1 "$KNOT_HSM" -c "$CONF" example.com submitted --json
printf '%s' "$OUT" | python3 -c '
import json, sys
z = json.load(sys.stdin)[0]
port = int(sys.argv[1])
assert z["verdict"] == "partial" and z["parent"] == "com.", z
assert sorted((s["name"], s["address"], s["port"], len(s["ds"])) for s in z["servers"]) == \
    [("ns.com.", "127.0.0.1", port, 1), ("ns2.com.", "127.0.0.2", port, 0)], z["servers"]
assert z["lagging"] == [{"name": "ns2.com.", "address": "127.0.0.2", "port": port}], z["lagging"]
assert [s["lagging"] for s in z["servers"] if s["name"] == "ns2.com."] == [True], z["servers"]
assert z["zone_ksk_submitted"] is False, z
' "$PPORT" || fail "submitted --json (partial): $OUT"
pass "submitted --json: partial, both servers, the lagging one named"
# The second server stops answering: not every server could be asked, so the
# DS is not published yet either; the silent server is named.
dnsresp_stop ns2
KHSM_RESOLVER=127.0.0.1@$PPORT KHSM_PARENT_PORT=$PPORT run 1 "$KNOT_HSM" -c "$CONF" example.com submitted
contains "$ERR" "warning: example.com.: ns2.com. (127.0.0.2@$PPORT) did not answer: example.com. DS at 127.0.0.2@$PPORT: failed to query server 127.0.0.2@$PPORT (UDP): Connection refused" "the silent server is reported"
contains "$ERR" "example.com.: some parent servers already have it, not yet ns2.com. (127.0.0.2@$PPORT): the registry has it, the parent is still propagating; run this again later" "and named as lagging"
lacks "$OUT" "zone-ksk-submitted" "and nothing is confirmed"

# A KASP change while knotd runs is picked up without a restart: knot-hsm
# runs knotc zone-keys-load and the new card key appears in the DNSKEY set.
# (generate makes no second active KSK: the first one is retired first.)
run 0 keymgr -c "$CONF" example.com. set "$KSK_ID" retire_active=+0 retire=+0
run 0 "$KNOT_HSM" -c "$CONF" example.com generate label="rollover ksk"
contains "$OUT" "knotd: zone-keys-load example.com. done" "knotd told to load the new key"
new_tag=$(printf '%s\n' "$OUT" | sed -n 's/^key tag: //p')
i=0
until kdig @127.0.0.1 -p "$PORT" +short example.com DNSKEY > "$TMP/dnskeys" 2>/dev/null &&
      python3 - "$TMP/dnskeys" "$new_tag" <<'PY'
import sys, base64, struct
want = int(sys.argv[2])
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 4:
        continue
    rdata = struct.pack("!HBB", int(f[0]), int(f[1]), int(f[2])) + base64.b64decode("".join(f[3:]))
    acc = sum(b << 8 if i % 2 == 0 else b for i, b in enumerate(rdata))
    acc += acc >> 16
    if acc & 0xffff == want:
        sys.exit(0)
sys.exit(1)
PY
do
	i=$((i + 1)); [ $i -le 50 ] || fail "knotd does not serve the new key $new_tag after zone-keys-load"
	sleep 0.2
done
pass "knotd serves the new card key without a restart"

# The parent still has only the first KSK's DS, which is retired now: the
# active KSK's DS is what the parent lacks: submitted says so and does not
# ask knotd to confirm anything.
run 1 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$PPORT
contains "$ERR" "the parent has no DS for an active KSK of the zone" "a retired KSK's DS does not count"
contains "$ERR" "example.com. DS $new_tag 13 2 " "names the DS the parent should have"
lacks "$OUT" "zone-ksk-submitted" "knotd not asked to confirm"
