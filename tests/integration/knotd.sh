# knotd for integration tests: started in the foreground as a child of the
# test (so its pid is ours to stop), always stopped by a cleanup hook, and
# waited for with bounded loops. Source after lib.sh.

KNOTD_PIDS=""
KNOTD_OUT=""

knotd_stop_all() {
	for pid in $KNOTD_PIDS; do
		kill "$pid" 2>/dev/null || continue
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$pid" 2>/dev/null || true
	done
	KNOTD_PIDS=""
}
on_cleanup knotd_stop_all

# knotd_conf_head DIR PORT KASP_DB [SERVER_LINE]: the server, database and log
# sections of a test knotd: run files and zone storage in DIR, listening on
# 127.0.0.1@PORT only, its log in DIR/knotd.log (which knotd_dump_logs shows);
# SERVER_LINE is one more line of the server section.
knotd_conf_head() {
	cat <<HEAD
server:
    rundir: $1/run
    listen: 127.0.0.1@$2${4:+
    $4}
database:
    storage: $1
    kasp-db: $3
log:
  - target: $1/knotd.log
    any: info
HEAD
}

# knotd_start CONF LOG: start knotd with CONF, wait until knotc answers (10 s at most).
knotd_start() {
	knotd -c "$1" >"$2" 2>&1 &
	KNOTD_OUT=$2
	KNOTD_PIDS="$! $KNOTD_PIDS"
	i=0
	until knotc -c "$1" status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -le 100 ] || { cat "$2" >&2; fail "knotd -c $1 did not answer knotc status within 10 s"; }
		sleep 0.1
	done
}

# knotd_dump_logs CONF: the output of the knotd started last and the log
# files beside CONF, to stderr, so a failure in CI shows why a zone did not load.
knotd_dump_logs() {
	for f in "$KNOTD_OUT" "${1%/*}"/*.log; do
		# without the polling of knotc, which would hide the reason
		[ -f "$f" ] && { echo "--- $f" >&2; grep -v "received command 'zone-status'" "$f" | tail -n 80 >&2; }
	done
	return 0
}

# knotd_wait_serial CONF ZONE: wait until the zone is loaded (30 s at most:
# knotd may first generate keys on a token while other tests load the CPUs).
knotd_wait_serial() {
	i=0
	until knotc -c "$1" zone-status "$2" 2>/dev/null | grep -q 'serial: [0-9]'; do
		i=$((i + 1))
		[ $i -le 300 ] || { knotd_dump_logs "$1"; fail "zone $2 not loaded by knotd -c $1 within 30 s"; }
		sleep 0.1
	done
}

# knotd_online_conf ZONE POLICY-OPTION...: the configuration of a knotd of the
# test's own for ZONE in online mode (Knot 3.5): a free port ($PORT), its
# directory $D with the zone file in $D/zones, $CONF written twice: first
# without a policy (policy needs the zone and the card keystore), then with
# the include of `knot-hsm ZONE policy mode=online POLICY-OPTION... --write
# $D/knot-hsm.conf` (its output in $POLICY_OUT) and dnssec-policy: knot-hsm.
knotd_online_conf() {
	ko_zone=${1%.}
	shift
	PORT=$(free_port)
	D=$TMP/knot
	mkdir -p "$D/run" "$D/zones" "$D/kasp"
	zone_files "$D/zones" 3 "$ko_zone"
	CONF=$D/knot.conf
	knotd_online_write "" ""
	run 0 "$KNOT_HSM" -c "$CONF" "$ko_zone" policy mode=online "$@" --write "$D/knot-hsm.conf"
	POLICY_OUT=$OUT
	knotd_online_write "$D/knot-hsm.conf" "    dnssec-policy: knot-hsm"
}
knotd_online_write() { # include-file dnssec-policy-line
	knot_conf "$CONF" rundir="$D/run" listen="$PORT" storage="$D" kasp="$D/kasp" log="$D/knotd.log" \
		include="$1" template="    storage: $D/zones
    file: %s.zone
    dnssec-signing: on
$2" "$ko_zone."
}
