#!/bin/sh
# Which parent servers the rollover asks (offline mode, Knot 3.2). Without
# server= it asks every server of the parent zone, found through the system
# resolver as `submitted` finds them: here a knotd serving com. (KHSM_RESOLVER)
# whose two NS, ns1.com. and ns2.com., are two test responders on 127.0.0.1
# and 127.0.0.2 at one port (KHSM_PARENT_PORT). One has the new DS, one not:
# the run waits and names the lagging one; once both have it, the switch.
# When no parent server can be found the run fails with the remedy instead of
# waiting for "0 of 0" servers for ever. And `submitted` on the KSK side
# points at the rollover, not at a knotd that side never has.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/dnsresp.sh"

card_keystore

D=$TMP/knot
mkdir -p "$D/run" "$D/zones" "$D/keys"
zone_files "$D/zones" 1 example.com
CONF=$D/knot.conf
write_conf() { # $1: extra template lines, $2: include
	knot_conf "$CONF" rundir="$D/run" storage="$D" kasp="$D/keys" include="$2" \
		template="    storage: $D/zones
    file: %s.zone
$1" example.com.
}
write_conf "" ""
OPTS="zsk-lifetime=1d rrsig-lifetime=60s rrsig-refresh=20s dnskey-ttl=1s zone-max-ttl=1s propagation-delay=1s"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy $OPTS --write "$D/knot-hsm.conf"
KSKC=$D/knot-hsm-ksk.conf
write_conf "$KNOT_HSM_TEMPLATE" "$D/knot-hsm.conf"
run 0 "$KNOT_HSM" -c "$KSKC" example.com generate

# The resolver: com. with its two name servers.
R=$TMP/resolver
RPORT=$(free_port)
DPORT=$(free_port)
while [ "$DPORT" = "$RPORT" ]; do DPORT=$(free_port); done
mkdir -p "$R/run" "$R/zones"
com_zone() { # SERIAL NS-LINES
	printf '$ORIGIN com.\n$TTL 60\n@ SOA ns1 hostmaster %s 3600 600 86400 60\n%s\n' "$1" "$2" \
		> "$R/zones/com.zone"
}
com_zone 1 "@ NS ns1
@ NS ns2
ns1 A 127.0.0.1
ns2 A 127.0.0.2"
cat > "$R/knot.conf" <<CONF
server:
    rundir: $R/run
    listen: 127.0.0.1@$RPORT
log:
  - target: $R/knotd.log
    any: info
zone:
  - domain: com.
    storage: $R/zones
    file: com.zone
    zonefile-sync: -1
CONF
knotd_start "$R/knot.conf" "$R/knotd.out"
knotd_wait_serial "$R/knot.conf" com.
resolver() { KHSM_RESOLVER=127.0.0.1@$RPORT KHSM_PARENT_PORT=$DPORT "$@"; }

# The parent's two servers, without the new DS for now.
dnsresp_start ns1 127.0.0.1 "$DPORT"
dnsresp_start ns2 127.0.0.2 "$DPORT"

# The new KSK is published; once ready (1 s + 1 s), the DS goes to the parent.
run 0 "$KNOT_HSM" -c "$CONF" example.com rollover
contains "$OUT" "example.com.: step published: new KSK" "the new KSK is published"
NEW_ID=$(printf '%s\n' "$OUT" | sed -n 's/.*step published: new KSK \([0-9a-f]*\) .*/\1/p')
[ -n "$NEW_ID" ] || fail "no new KSK id in: $OUT"
i=0
while :; do
	run 0 resolver "$KNOT_HSM" -c "$CONF" example.com rollover
	case "$OUT" in *"submit this DS: "*) break ;; esac
	i=$((i + 1)); [ $i -le 50 ] || fail "the new KSK never became ready: $OUT"
	sleep 0.2
done
NEW_DS=$(printf '%s\n' "$OUT" | sed -n 's/.*submit this DS: //p')
NEW_TAG=$(printf '%s\n' "$NEW_DS" | awk '{ print $3 }')
contains "$OUT" "example.com.: parent zone com.: 2 server addresses" "both parent servers found through the resolver"
contains "$OUT" "waits for the parent: 0 of 2 server(s) have the new DS (tag $NEW_TAG); lacking it: ns1.com. (127.0.0.1@$DPORT), ns2.com. (127.0.0.2@$DPORT)" "neither has the DS yet: both named"

# ns1 has the new DS, ns2 lags.
dnsresp_stop ns1
dnsresp_start ns1 127.0.0.1 "$DPORT" --ds "$(ds_rdata "$NEW_DS")"
run 0 resolver "$KNOT_HSM" -c "$CONF" example.com rollover
contains "$OUT" "waits for the parent: 1 of 2 server(s) have the new DS (tag $NEW_TAG); lacking it: ns2.com. (127.0.0.2@$DPORT)" "one server has the DS: the lagging one named"
lacks "$OUT" "step switching" "no switch while one server lags"
grep -q "example.com. DS" "$TMP/ns1.log" || fail "ns1 was not asked"
grep -q "example.com. DS" "$TMP/ns2.log" || fail "ns2 was not asked"
pass "both parent servers asked"

# No parent server to be found: an error with the remedy, nothing changed.
KASP_BEFORE=$(keymgr -c "$KSKC" example.com. list)
com_zone 2 "@ NS ns.example.net."
run 0 knotc -c "$R/knot.conf" zone-reload com.
i=0
until kdig @127.0.0.1 -p "$RPORT" com. SOA +short | grep -q " 2 3600 "; do
	i=$((i + 1)); [ $i -le 50 ] || fail "the resolver did not load serial 2"; sleep 0.1
done
run 1 resolver "$KNOT_HSM" -c "$CONF" example.com rollover
contains "$ERR" "error: example.com.: rollover: not found: the system resolver gives no address for the name servers of com.; name one with server=ADDR[@PORT]" "no parent server found: error with the remedy"
DEAD=$(free_port)
KHSM_RESOLVER=127.0.0.1@$DEAD run 1 "$KNOT_HSM" -c "$CONF" example.com rollover
contains "$ERR" "cannot find the servers of the parent zone of example.com." "no resolver: error"
contains "$ERR" "name one with server=ADDR[@PORT]" "no resolver: the remedy"
equals "$(keymgr -c "$KSKC" example.com. list)" "$KASP_BEFORE" "KASP unchanged by the failed runs"
# server= still names the one server to ask.
run 0 "$KNOT_HSM" -c "$CONF" example.com rollover server=127.0.0.2@$DPORT
contains "$OUT" "0 of 1 server(s) have the new DS (tag $NEW_TAG); lacking it: 127.0.0.2 (127.0.0.2@$DPORT)" "server= asks only that server"
lacks "$OUT" "parent zone" "server=: no lookup"

# Both have it: the switch.
com_zone 3 "@ NS ns1
@ NS ns2
ns1 A 127.0.0.1
ns2 A 127.0.0.2"
run 0 knotc -c "$R/knot.conf" zone-reload com.
i=0
until kdig @127.0.0.1 -p "$RPORT" com. SOA +short | grep -q " 3 3600 "; do
	i=$((i + 1)); [ $i -le 50 ] || fail "the resolver did not load serial 3"; sleep 0.1
done
dnsresp_stop ns2
dnsresp_start ns2 127.0.0.2 "$DPORT" --ds "$(ds_rdata "$NEW_DS")"
# submitted on the KSK side sees the DS everywhere; no knotd confirms it
# there: it points at the rollover, with knotd's knot.conf.
run 1 resolver "$KNOT_HSM" -c "$KSKC" example.com submitted
contains "$ERR" "error: example.com.: not supported: this is the KSK side (offline mode), where no knotd confirms a DS: the rollover does, once every parent server has it: knot-hsm -c $CONF example.com. rollover" "submitted on the KSK side points at rollover -c knot.conf"
lacks "$ERR" "knotd is not running" "and not at starting knotd"
run 0 resolver "$KNOT_HSM" -c "$CONF" example.com rollover
contains "$OUT" "example.com.: step switching: the new DS is at all 2 parent server(s); the new KSK $NEW_ID signs" "every parent server has the DS: the switch"
keymgr -c "$KSKC" example.com. list | grep "^$NEW_ID " | grep -q "active=[1-9]" || fail "the new KSK's active timer is not set"
pass "the new KSK's active timer set"
