# The test DNS responder (dnsresp.py) for example.com. DS, started and
# stopped by the test that sources this (after lib.sh).

# dnsresp_start NAME ADDRESS PORT [ARGS...]: the test responder for
# example.com. DS on ADDRESS@PORT (log in $TMP/NAME.log), stopped on exit.
DNSRESP_PIDS=""
dnsresp_stop_all() { for p in $DNSRESP_PIDS; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
on_cleanup dnsresp_stop_all
dnsresp_start() {
	dr_name=$1 dr_addr=$2 dr_port=$3; shift 3
	rm -f "$TMP/$dr_name.pid" "$TMP/$dr_name.log"
	python3 "$KHSM_SRCDIR/tests/integration/dnsresp.py" --address "$dr_addr" --port "$dr_port" \
		--zone example.com. --log "$TMP/$dr_name.log" --pidfile "$TMP/$dr_name.pid" \
		--lifetime 120 "$@" 2>"$TMP/$dr_name.err" &
	DNSRESP_PIDS="$! $DNSRESP_PIDS"
	i=0
	until [ -s "$TMP/$dr_name.pid" ]; do
		i=$((i + 1)); [ $i -le 100 ] || fail "dnsresp $dr_name did not start: $(cat "$TMP/$dr_name.err")"
		sleep 0.1
	done
}
dnsresp_stop() { # NAME
	kill "$(cat "$TMP/$1.pid")"
	i=0
	while kill -0 "$(cat "$TMP/$1.pid")" 2>/dev/null; do
		i=$((i + 1)); [ $i -le 50 ] || fail "dnsresp $1 did not stop"; sleep 0.1
	done
}
# ds_rdata "ZONE DS TAG ALG TYPE HEX": the DS rdata in hex.
ds_rdata() { printf '%s\n' "$1" | awk '{ printf "%04x%02x%02x%s\n", $3, $4, $5, $6 }'; }
