#!/bin/sh
# heal without ZONE (what samples/knot-hsm-heal.service runs when
# /etc/default/knot-hsm names no zone), Knot 3.5 online mode on cardsim: one
# knotd with two online zones whose KSK is on the card (example.com,
# example.net), one signed in software only (example.org, a policy without a
# card keystore) and one unsigned (example.edu):
#  - all well: one "ok" line per card zone, no knotc zone-sign, nothing about
#    the other two;
#  - the card pulled until knotd's signing failed in both card zones (Knot
#    then schedules none): heal refuses for both and asks knotd for nothing;
#  - the card back: exactly two knotc zone-sign runs, one per card zone, and
#    then a no-op again;
#  - a zone named explicitly keeps its own answer (example.org: no card);
#  - status over both card zones reads the card once (cardsim counts the
#    searches of the status process), not once per zone.
# knotc runs through a wrapper that only records its arguments, so the
# zone-sign runs are counted, not guessed from the output.
#
# Needs the test-only Knot 3.5 build (sh tests/knot35/build.sh); without it the
# test fails, it does not skip.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knot35.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

# card_id = no: knotd 3.5 generates the KSK with its own CKA_ID (see test_card_online.sh).
REMOVED=$TMP/removed
card_conf "latency_scale = 0" "card_id = no" "busy = wait" "removed_file = $REMOVED"
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card
stanza=$OUT

PORT=$(free_port)
D=$TMP/knot
mkdir -p "$D/run" "$D/zones" "$D/kasp"
zone_files "$D/zones" 3 example.com example.net example.org example.edu
CONF=$D/knot.conf
# write_conf INCLUDE POLICY-LINE: the card zones get POLICY-LINE.
write_conf() {
	{
		knotd_conf_head "$D" "$PORT" "$D/kasp"
		printf '%s\n' "$stanza"
		[ -z "$1" ] || printf 'include: %s\n' "$1"
		cat <<CONF
policy:
  - id: soft
    dnskey-ttl: 3s
    zone-max-ttl: 3s
    propagation-delay: 3s
    rrsig-lifetime: 60s
    rrsig-refresh: 50s
    rrsig-pre-refresh: 1s
template:
  - id: default
    storage: $D/zones
    file: %s.zone
    dnssec-signing: on
zone:
  - domain: example.com.
$2
  - domain: example.net.
$2
  - domain: example.org.
    dnssec-policy: soft
  - domain: example.edu.
    dnssec-signing: off
CONF
	} > "$CONF"
}
write_conf "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy mode=online dnskey-ttl=3s zone-max-ttl=3s \
	propagation-delay=3s rrsig-lifetime=60s rrsig-refresh=50s --write "$D/knot-hsm.conf"
write_conf "$D/knot-hsm.conf" "    dnssec-policy: knot-hsm"
run 0 knotc -c "$CONF" conf-check

knotd_start "$CONF" "$D/knotd.out"
for z in example.com. example.net. example.org. example.edu.; do
	knotd_wait_serial "$CONF" $z
done
signed() { grep -c "\[$1\] DNSSEC, successfully signed" "$D/knotd.log" || true; }
for z in example.com. example.net.; do
	i=0
	until [ "$(signed $z)" -ge 1 ]; do
		i=$((i + 1)); [ $i -le 300 ] || { cat "$D/knotd.log" >&2; fail "knotd did not sign $z within 30 s"; }
		sleep 0.1
	done
done
run 0 keymgr -c "$CONF" example.com. list
contains "$OUT" "PKCS11/knot-hsm-card" "example.com's KSK is on the card"
run 0 keymgr -c "$CONF" example.org. list
[ -n "$(printf '%s\n' "$OUT" | awk '$3 == "KSK"')" ] || fail "knotd made no KSK for example.org: $OUT"
lacks "$OUT" "PKCS11" "example.org is signed, with no key on the card"

# The wrapper: one line per knotc run, then the real knotc.
cat > "$TMP/knotc" <<SH
#!/bin/sh
printf '%s\n' "\$*" >> "$TMP/knotc.runs"
exec "$K35/sbin/knotc" "\$@"
SH
chmod +x "$TMP/knotc"
: > "$TMP/knotc.runs"
heal() { # EXIT: knot-hsm -c CONF heal, no zone, through the wrapper
	KHSM_KNOTC="$TMP/knotc" run "$1" "$KNOT_HSM" -c "$CONF" heal
}
zone_signs() { grep -c ' zone-sign ' "$TMP/knotc.runs" || true; }
# lines PATTERN: how many lines of the last run's stdout and stderr match
lines() { printf '%s\n%s\n' "$OUT" "$ERR" | grep -c "$1" || true; }

# == all well: a no-op for the two card zones, silence about the others
heal 0
grep -q ' zone-status ' "$TMP/knotc.runs" || fail "heal ran no knotc zone-status through the wrapper"
pass "heal asks knotd through the wrapper"
contains "$OUT" "ok: example.com.: signing scheduled at " "all well: example.com is fine"
contains "$OUT" "ok: example.net.: signing scheduled at " "all well: example.net is fine"
equals "$(lines '^ok: ')" 2 "one line per card zone, no more"
lacks "$OUT$ERR" "example.org" "nothing about the zone signed in software"
lacks "$OUT$ERR" "example.edu" "nothing about the unsigned zone"
equals "$(zone_signs)" 0 "all well: no knotc zone-sign"

# status over the zones reads the card once, not once per zone: its card
# searches (cardsim counts C_FindObjectsInit by process) with --json over
# both zones and the card budget are those of status for one zone.
card_finds() { # ARGS...: status in the background, its own searches counted
	"$KNOT_HSM" -c "$CONF" status "$@" > "$TMP/status.out" 2>&1 &
	spid=$!
	wait "$spid" || true
	count find "$spid"
}
one=$(card_finds example.com)
all=$(card_finds --json)
[ "$one" -ge 1 ] || fail "status example.com searched the card $one times"
contains "$(cat "$TMP/status.out")" '"card_ksk": "present"' "status --json saw the card KSKs"
equals "$all" "$one" "status of both card zones and the budget: one read of the card, not one per zone"

# == the card out until knotd's signing failed in both card zones
lines_before=$(wc -l < "$D/knotd.log")
touch "$REMOVED"
for z in example.com. example.net.; do
	i=0
	until tail -n +"$((lines_before + 1))" "$D/knotd.log" | grep -q "\[$z\] DNSSEC, next signing not scheduled"; do
		i=$((i + 1)); [ $i -le 300 ] || { cat "$D/knotd.log" >&2; fail "knotd's signing of $z did not fail within 30 s"; }
		sleep 0.1
	done
done
pass "knotd failed to sign both card zones and scheduled no signing"
heal 1
contains "$ERR" "error: example.com.: knotd has no signing scheduled, and the card KSK is absent" \
	"card out: heal refuses for example.com"
contains "$ERR" "error: example.net.: knotd has no signing scheduled, and the card KSK is absent" \
	"and for example.net"
equals "$(zone_signs)" 0 "card out: heal asks knotd for nothing"
lacks "$OUT$ERR" "example.org" "still nothing about the software zone"

# == the card back: one zone-sign per card zone
rm -f "$REMOVED"
com=$(signed example.com.) net=$(signed example.net.)
heal 0
contains "$OUT" "healed: example.com.: knotd has no signing scheduled; knotc zone-sign: knotd signed the zone" \
	"card back: heal has knotd sign example.com"
contains "$OUT" "healed: example.net.: knotd has no signing scheduled; knotc zone-sign: knotd signed the zone" \
	"and example.net"
equals "$(lines '^healed: ')" 2 "two zones healed"
equals "$(zone_signs)" 2 "exactly two knotc zone-sign runs"
equals "$(grep ' zone-sign ' "$TMP/knotc.runs" | awk '{ print $NF }' | sort | tr '\n' ' ')" \
	"example.com. example.net. " "one for each card zone, none for the others"
[ "$(signed example.com.)" -gt "$com" ] && [ "$(signed example.net.)" -gt "$net" ] ||
	{ cat "$D/knotd.log" >&2; fail "knotd did not sign both zones again"; }
pass "knotd signed both card zones again"

# == and then a no-op again
heal 0
equals "$(lines '^ok: ')" 2 "healed: heal is a no-op for both zones"
equals "$(zone_signs)" 2 "no further knotc zone-sign"

# == the sample unit's command: KNOT_HSM_ZONES empty or unset is every card
# zone, set it is those zones only
unit_cmd=$(sed -n "s/^ExecStart=\/bin\/sh -c '\(.*\)'\$/\1/p" "$KHSM_SRCDIR/samples/knot-hsm-heal.service" |
	sed 's|/usr/bin/knot-hsm|"$KNOT_HSM"|; s|/etc/knot/knot.conf|"$CONF"|')
contains "$unit_cmd" ' $KNOT_HSM_ZONES heal' "the unit passes KNOT_HSM_ZONES to heal"
unset KNOT_HSM_ZONES
CONF=$CONF KHSM_KNOTC="$TMP/knotc" run 0 sh -c "$unit_cmd"
equals "$(lines '^ok: ')" 2 "the unit, KNOT_HSM_ZONES unset: both card zones"
CONF=$CONF KNOT_HSM_ZONES="" KHSM_KNOTC="$TMP/knotc" run 0 sh -c "$unit_cmd"
equals "$(lines '^ok: ')" 2 "the unit, KNOT_HSM_ZONES empty: both card zones"
CONF=$CONF KNOT_HSM_ZONES="example.net" KHSM_KNOTC="$TMP/knotc" run 0 sh -c "$unit_cmd"
contains "$OUT" "ok: example.net.: signing scheduled at " "the unit, KNOT_HSM_ZONES=example.net: that zone"
equals "$(lines '^ok: ')" 1 "and only that one"
equals "$(zone_signs)" 2 "still no further knotc zone-sign"

# == a zone named explicitly keeps its own answer
run 1 "$KNOT_HSM" -c "$CONF" example.org heal
contains "$ERR" "error: example.org.: " "an explicit zone without a card KSK is still an error"
contains "$ERR" "keeps no key on a card" "saying why"
