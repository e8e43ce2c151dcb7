#!/bin/sh
# knot-hsm status on the offline mode: exit 0/1/2 (OK/WARNING/CRITICAL) from
# the end of the pre-signed period against --warn/--crit, 3 (UNKNOWN) for
# its own usage errors, and JSON that parses.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
write_conf() { # $1: zone policy lines, $2: include
	cat > "$CONF" <<CONF
server:
    rundir: $D
database:
    storage: $D
    kasp-db: $D/keys
$stanza
$2
zone:
  - domain: example.com.
$1
CONF
}
write_conf "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com policy --write "$D/knot-hsm.conf"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $D/knot-hsm.conf"
run 0 "$KNOT_HSM" -c "$D/knot-hsm-ksk.conf" example.com generate

# The ZSK side has no card key: ds points to the KSK side; keys finds the
# card KSK's zone in the KSK side's KASP next to knot.conf.
run 1 "$KNOT_HSM" -c "$CONF" example.com ds
contains "$ERR" "is the ZSK side of the offline-KSK mode" "ds on the ZSK side explained"
contains "$ERR" "knot-hsm-ksk.conf" "and the KSK side named"
run 0 "$KNOT_HSM" -c "$CONF" keys
contains "$OUT" "zones: example.com. (KSK)" "keys reads the KSK side's KASP too"

# No pre-signed set yet: critical.
run 2 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "CRITICAL: 1 zone(s)" "no SKR yet is critical"
contains "$OUT" "no pre-signed DNSKEY set" "says why"

# 3 days: below --crit 7 (default) -> 2; with --crit 2 only a warning.
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+3d
run 2 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "state: critical" "3 days left is critical"
contains "$OUT" "card KSK: present" "the card KSK is seen on the token"
contains "$OUT" "mode: offline" "mode shown"
contains "$OUT" "next ZSK event: none planned" "no ZSK event within 3 days"
run 1 "$KNOT_HSM" -c "$CONF" status --crit 2
contains "$OUT" "state: warning" "3 days left with --crit 2 is a warning"

# 10 days: warning under the default 14.
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+10d
contains "$OUT" "example.com.: pre-signed " "the period is extended"
run 1 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "WARNING" "10 days left is a warning"
run 0 "$KNOT_HSM" -c "$CONF" status --warn 9 --crit 5
contains "$OUT" "OK: 1 zone(s), warn 9 d, crit 5 d" "10 days left is fine under --warn 9"
# Monitoring-plugin perfdata after '|': seconds left; warn and crit in seconds.
perf=$(printf '%s\n' "$OUT" | head -1 | sed -n 's/.* | remaining=\([0-9]*\)s;777600;432000$/\1/p')
[ -n "$perf" ] || fail "no perfdata 'remaining=Ns;777600;432000' on the first line: $(printf '%s\n' "$OUT" | head -1)"
[ "$perf" -gt 855000 ] && [ "$perf" -le 864000 ] || fail "perfdata remaining=${perf}s is not the 10 days left"
pass "perfdata: remaining=${perf}s;777600;432000 (10 days, --warn 9, --crit 5)"

# ZONE... names the zones to check, in any case, with or without the dot.
run 1 "$KNOT_HSM" -c "$CONF" status EXAMPLE.com
contains "$OUT" "WARNING: 1 zone(s)" "status ZONE checks that zone"
run 3 "$KNOT_HSM" -c "$CONF" status example.org
contains "$ERR" "zone example.org. is not in" "an unknown zone is UNKNOWN"
run 3 "$KNOT_HSM" -c "$CONF" status --frobnicate
contains "$ERR" "unknown option '--frobnicate'" "unknown option is UNKNOWN (3) for status"
run 3 "$KNOT_HSM" --frobnicate -c "$CONF" status
contains "$ERR" "unknown option '--frobnicate'" "before the command too: UNKNOWN (3)"
contains "$ERR" "usage: knot-hsm [-c knot.conf] status" "with the usage of status"
run 3 "$KNOT_HSM" -c "$CONF" example.com --json status
contains "$ERR" "options go before the zone names" "an option among zones before status: UNKNOWN (3)"
run 2 "$KNOT_HSM" --frobnicate tokens
contains "$ERR" "usage: knot-hsm tokens" "other commands: exit 2 with their usage"

# 40 days: OK (and the first ZSK roll, at 30 days, is planned); JSON parses.
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+40d
run 0 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "state: ok" "40 days left is OK"
contains "$OUT" "next ZSK event: ZSK " "next ZSK event from the timers"
run 0 "$KNOT_HSM" -c "$CONF" status --json
printf '%s' "$OUT" > "$TMP/status.json"
python3 - "$TMP/status.json" <<'PY' || fail "status --json content"
import json, sys, time
d = json.load(open(sys.argv[1]))
assert d["state"] == "ok" and d["exit"] == 0, d
z = d["zones"][0]
assert z["zone"] == "example.com." and z["mode"] == "offline" and z["card_ksk"] == "present", z
left = z["remaining_seconds"]
assert 39 * 86400 < left <= 40 * 86400, left
assert z["valid_until"] > z["period_end"], z
assert z["next_zsk_event"].startswith("ZSK "), z
assert z["ds_at_parent"] is None
PY
pass "status --json parses and matches"
# The manual's rule: a moment X (a name ending in _at, or period_end and
# valid_until) comes with X_iso, the same time in ISO 8601 UTC, or both null.
python3 - "$TMP/status.json" <<'PY' || fail "status --json: a moment without its _iso"
import json, sys, time
d = json.load(open(sys.argv[1]))
seen = []
def walk(o):
    if isinstance(o, list):
        for v in o: walk(v)
    elif isinstance(o, dict):
        for k, v in o.items():
            if k.endswith("_iso") or not (k.endswith("_at") or k in ("period_end", "valid_until")):
                walk(v)
                continue
            assert k + "_iso" in o, "%s has no %s_iso: %s" % (k, k, o)
            iso = o[k + "_iso"]
            assert (v is None) == (iso is None), (k, v, iso)
            if v is not None:
                assert iso == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(v)), (k, v, iso)
            seen.append(k)
walk(d)
assert {"period_end", "valid_until", "resign_at"} <= set(seen), seen
PY
pass "status --json: every moment has its _iso partner"
run 2 "$KNOT_HSM" -c "$CONF" status --json --warn 50 --crit 41
contains "$OUT" '"state": "critical"' "JSON reports critical too"

# Usage errors of status are UNKNOWN (3), not 2.
run 3 "$KNOT_HSM" -c "$CONF" status --warn 1x
contains "$ERR" "--warn takes a number of days" "bad --warn"
run 3 "$KNOT_HSM" -c "$CONF" status --warn 5 --crit 6
contains "$ERR" "must not exceed --warn" "crit above warn"
run 3 "$KNOT_HSM" -c "$TMP/missing.conf" status
contains "$ERR" "missing.conf" "unreadable knot.conf is UNKNOWN"

# What KASP knows about the DS: a KSK in the ready state waits for it.
run 0 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "DS at parent: not checked; check with knot-hsm -c $D/knot-hsm-ksk.conf example.com. submitted" "DS not known, submitted named on the KSK side"
kid=$(keymgr -c "$D/knot-hsm-ksk.conf" example.com. list | awk '$3 == "KSK" { print $1; exit }')
run 0 keymgr -c "$D/knot-hsm-ksk.conf" example.com. set "$kid" ready=+0 active=+30d
run 0 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "DS at parent: a KSK waits for its DS, not confirmed yet; confirm with knot-hsm -c $D/knot-hsm-ksk.conf example.com. submitted" "a ready KSK shown as waiting for its DS"
run 0 "$KNOT_HSM" -c "$CONF" status --json
contains "$OUT" '"ds_at_parent": "waiting"' "and in JSON"

# Count, not time: status asks keymgr once per zone and side (one `list` of
# the ZSK side, one of the KSK side, one show-offline), never a list twice.
cat > "$TMP/keymgr-count" <<SH
#!/bin/sh
echo "\$*" >> "$TMP/keymgr.log"
exec keymgr "\$@"
SH
chmod +x "$TMP/keymgr-count"
: > "$TMP/keymgr.log"
KHSM_KEYMGR="$TMP/keymgr-count" run 0 "$KNOT_HSM" -c "$CONF" status
contains "$OUT" "card KSK: present" "status with the counting keymgr still sees the card KSK"
zsk_lists=$(grep -c -- "-c $CONF -e example.com. list\$" "$TMP/keymgr.log")
ksk_lists=$(grep -c -- "-c $D/knot-hsm-ksk.conf -e example.com. list\$" "$TMP/keymgr.log")
runs=$(wc -l < "$TMP/keymgr.log")
[ "$zsk_lists" -eq 1 ] || fail "status listed the ZSK side's keys $zsk_lists times, not once: $(cat "$TMP/keymgr.log")"
[ "$ksk_lists" -eq 1 ] || fail "status listed the KSK side's keys $ksk_lists times, not once: $(cat "$TMP/keymgr.log")"
[ "$runs" -eq 3 ] || fail "status ran keymgr $runs times for one zone, not 3: $(cat "$TMP/keymgr.log")"
pass "status runs keymgr list once per zone and side (3 keymgr runs for one offline zone)"
