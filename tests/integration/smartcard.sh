# The real card stack for a test: opensc-pkcs11.so -> libpcsclite -> our own
# pcscd -> vpcd reader driver -> the emulated SmartCard-HSM (tests/smartcard/
# schsm.py). Source after lib.sh. Needs root: the test re-runs itself in a
# private mount and network namespace (only loopback, its own /run/pcscd, only
# the vpcd reader driver, and a p11-kit registry holding only OpenSC), so it
# never sees the host's pcscd, readers, cards or modules, and vpcd's port is
# reachable from nothing outside.
#
# Functions: sc_conf (emulator knobs), sc_start, sc_stop, pcscd_start,
# pcscd_kill9, pcscd_restart, card_remove, card_insert, sc_log_count,
# sc_card_conf, sc_knotd_dir, sc_knotd_conf, sc_guard_stanza, sc_online_knotd.
# Variables: OPENSC_MODULE, SC_LABEL, SC_URI, SC_STATE, SC_LOG.

if [ -z "${KHSM_SC_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || fail "the real card stack tests need root (private mount and network namespace)"
	for t in unshare ip pcscd python3 opensc-tool; do
		command -v "$t" >/dev/null 2>&1 || fail "$t missing: install the test packages of samples/deps.sh"
	done
	# Run this test again, whole, in its own namespaces; this copy made
	# only $TMP, which the new one makes afresh.
	rm -rf "$TMP"
	trap - EXIT
	KHSM_SC_NS=1 exec unshare --mount --net --propagation private sh "$0" "$@"
fi

SC_DIR=$KHSM_SRCDIR/tests/smartcard
SC_STATE=$TMP/schsm.json
SC_CONF=$TMP/schsm.conf
SC_LOG=$TMP/schsm.log
SC_LABEL="SmartCard-HSM (UserPIN)"
SC_URI="pkcs11:token=SmartCard-HSM%20%28UserPIN%29"
SC_PID=""
PCSCD_PID=""

OPENSC_MODULE=""
for m in /usr/lib/*/opensc-pkcs11.so /usr/lib/*/pkcs11/opensc-pkcs11.so /usr/lib/opensc-pkcs11.so; do
	[ -f "$m" ] && OPENSC_MODULE=$(readlink -f "$m") && break
done
[ -n "$OPENSC_MODULE" ] || fail "opensc-pkcs11.so not found (install opensc-pkcs11)"
VPCD_DRIVER=""
for d in /usr/lib/pcsc/drivers/serial/libifdvpcd.so /usr/lib/*/pcsc/drivers/serial/libifdvpcd.so; do
	[ -f "$d" ] && VPCD_DRIVER=$d && break
done
[ -n "$VPCD_DRIVER" ] || fail "libifdvpcd.so not found (install vsmartcard-vpcd)"

ip link set lo up || fail "cannot bring loopback up in the test's network namespace"
mount -t tmpfs tmpfs /run/pcscd 2>/dev/null || { mkdir -p /run/pcscd && mount -t tmpfs tmpfs /run/pcscd; } ||
	fail "cannot mount a private /run/pcscd"
# Only the vpcd reader driver: no USB reader of the host is ever opened.
mkdir -p "$TMP/reader.conf.d"
cp "$(readlink -f "$VPCD_DRIVER")" "$TMP/libifdvpcd.so"
mount -t tmpfs tmpfs /usr/lib/pcsc/drivers || fail "cannot hide the host's reader drivers"
mkdir -p /usr/lib/pcsc/drivers/serial
cp "$TMP/libifdvpcd.so" /usr/lib/pcsc/drivers/serial/libifdvpcd.so
cat > "$TMP/reader.conf.d/vpcd" <<CONF
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so
CHANNELID    0x8C7B
CONF
SC_PORT=35963   # vpcd's first reader, in this namespace only
# p11-kit sees only OpenSC (GnuTLS, p11tool and knot-hsm read this registry):
# lib.sh's private registries, emptied of SoftHSM.
p11_hide
p11_register opensc "$OPENSC_MODULE"
# OpenSC: no file cache of an earlier test's card, default configuration.
export HOME=$TMP
export OPENSC_CONF=/etc/opensc/opensc.conf
[ -f "$OPENSC_CONF" ] || OPENSC_CONF=/etc/opensc.conf

# sc_conf [KEY=JSONVALUE...]: emulator knobs, fast by default (no latency), log on.
sc_conf() {
	python3 - "$SC_CONF" "$SC_LOG" "$@" <<'PY'
import json, sys
conf = {"sign_latency_ms": 0, "keygen_latency_ms": 0, "log": sys.argv[2]}
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    conf[k] = json.loads(v)
json.dump(conf, open(sys.argv[1], "w"))
PY
}

# sc_log_count LINE: how many times the card logged LINE (e.g. "verify fail").
sc_log_count() {
	if [ -f "$SC_LOG" ]; then grep -c "^$1\$" "$SC_LOG" || true; else echo 0; fi
}

# card_seen: 0 when pcscd's reader holds a card and OpenSC's sc-hsm driver
# talks to it (a round trip to the card, not pcscd's cached presence).
card_seen() {
	opensc-tool -l 2>/dev/null | grep -q "^0[[:space:]]*Yes[[:space:]]*Virtual PCD 00 00" &&
		opensc-tool --reader 0 --name 2>/dev/null | grep -q "SmartCard-HSM"
}
# card_absent: 0 when pcscd reports the reader empty.
card_absent() {
	opensc-tool -l 2>/dev/null | grep -q "^0[[:space:]]*No[[:space:]]*Virtual PCD 00 00"
}

# wait_until WHAT CMD...: polls CMD up to 200 times, 0.05 s apart.
wait_until() {
	wu_what=$1; shift
	wu_i=0
	until "$@"; do
		wu_i=$((wu_i + 1))
		[ $wu_i -le 200 ] || fail "$wu_what"
		sleep 0.05
	done
}

pcscd_alive() { [ -n "$PCSCD_PID" ] && kill -0 "$PCSCD_PID" 2>/dev/null; }

pcscd_start() {
	pcscd -f -c "$TMP/reader.conf.d" >> "$TMP/pcscd.log" 2>&1 &
	PCSCD_PID=$!
	wait_until "pcscd did not create /run/pcscd/pcscd.comm" test -S /run/pcscd/pcscd.comm
}

# pcscd_kill9: pcscd dies as in a crash; returns once it is gone.
pcscd_kill9() {
	kill -9 "$PCSCD_PID" 2>/dev/null || true
	wait "$PCSCD_PID" 2>/dev/null || true
	rm -f /run/pcscd/pcscd.comm /run/pcscd/pcscd.pid
	PCSCD_PID=""
}

# pcscd_restart: a new pcscd after the old one is gone; waits for the card.
pcscd_restart() {
	if pcscd_alive; then pcscd_kill9; fi
	pcscd_start
	wait_until "the card did not come back after the pcscd restart" card_seen
}

sc_emulator_start() {
	rm -f "$TMP/schsm.ready"
	python3 "$SC_DIR/schsm.py" --state "$SC_STATE" --config "$SC_CONF" --port "$SC_PORT" \
		--ready "$TMP/schsm.ready" >> "$TMP/schsm.out" 2>&1 &
	SC_PID=$!
}

# sc_start: pcscd and the emulated card (knobs from sc_conf; fast by default);
# returns once OpenSC sees the card in the reader.
sc_start() {
	[ -f "$SC_CONF" ] || sc_conf
	pcscd_start
	sc_emulator_start
	wait_until "the emulated card is not seen in the reader (see $TMP/pcscd.log, $TMP/schsm.out)" card_seen
}

# sc_stop: the emulator and pcscd stopped, and gone. Runs on every exit.
sc_stop() {
	if [ -n "$SC_PID" ]; then
		kill "$SC_PID" 2>/dev/null || true
		wait "$SC_PID" 2>/dev/null || true
		SC_PID=""
	fi
	if [ -n "$PCSCD_PID" ]; then
		kill "$PCSCD_PID" 2>/dev/null || true
		wait "$PCSCD_PID" 2>/dev/null || true
		PCSCD_PID=""
	fi
}
on_cleanup sc_stop

# sc_restart_emulator: the card process restarted (state kept in $SC_STATE).
sc_restart_emulator() {
	kill "$SC_PID" 2>/dev/null || true
	wait "$SC_PID" 2>/dev/null || true
	wait_until "the reader still reports the stopped card" card_absent
	sc_emulator_start
	wait_until "the emulated card did not come back" card_seen
}

# card_remove / card_insert: the card pulled from the reader and put back.
card_remove() {
	kill -USR1 "$SC_PID"
	wait_until "the card is still seen after its removal" card_absent
}
card_insert() {
	kill -USR2 "$SC_PID"
	wait_until "the card is not seen after its insertion" card_seen
}

# p11 ARGS...: pkcs11-tool on the card through OpenSC.
p11() {
	pkcs11-tool --module "$OPENSC_MODULE" "$@"
}

# sc_card_conf FILE ZONE...: the emulated card's keystore stanza (id card, as
# `knot-hsm keystore --id card` prints it, the PIN in $PINF) in a knot.conf
# whose zones use policy card (manual, that keystore).
sc_card_conf() {
	run 0 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$PINF" --id card
	scc_file=$1; shift
	knot_conf "$scc_file" stanza="$OUT" policy=card "$@"
}

# sc_knotd_dir: a knotd of the test's own on a free port ($PORT) under $D,
# serving example.com. from $D/zones; its configuration is $CONF.
sc_knotd_dir() {
	PORT=$(free_port)
	D=$TMP/knot
	mkdir -p "$D/run" "$D/zones" "$D/kasp"
	zone_files "$D/zones" 3 example.com
	CONF=$D/knot.conf
}

# sc_knotd_conf STANZA INCLUDE-LINE POLICY-LINE: write $CONF, the card's
# keystore stanza, an optional include and the zone's dnssec-policy line.
sc_knotd_conf() {
	cat > "$CONF" <<CONF
$(knotd_conf_head "$D" "$PORT" "$D/kasp")
$1
$2
template:
  - id: default
    storage: $D/zones
    file: %s.zone
    dnssec-signing: on
$3
zone:
  - domain: example.com.
CONF
}

# sc_guard_stanza [LINE...]: the guard in front of OpenSC: its configuration
# $KHSM_GUARD_CONF (exported; module OpenSC, audit log $LOG, then the LINEs
# given, e.g. "recover = no"), the PIN in $PINF, and $SC_GUARD_STANZA, the
# card's keystore stanza through the guard (keystore --guard).
sc_guard_stanza() {
	: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"
	PINF=$TMP/card.pin
	pin_file "$PINF"
	LOG=$TMP/audit.log
	export KHSM_GUARD_CONF="$TMP/guard.conf"
	{
		printf 'module = %s\naudit_log = %s\n' "$OPENSC_MODULE" "$LOG"
		for sgs_line; do printf '%s\n' "$sgs_line"; done
	} > "$KHSM_GUARD_CONF"
	run 0 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$PINF" --id card --guard
	contains "$OUT" " $KHSM_GUARD_MODULE\"" "the keystore goes through the guard"
	SC_GUARD_STANZA=$(printf '%s\n' "$OUT" | grep -v '^#')
}

# sc_online_knotd STANZA POLICY-ARG...: knotd (Knot 3.5, online mode) serving
# example.com. with the KSK on the card of keystore STANZA: sc_knotd_dir, the
# policy `knot-hsm policy mode=online` renders (TTLs and propagation delay
# 3 s, then the POLICY-ARGs) written to $D/knot-hsm.conf and included, knotd
# started and the zone signed. Sets KSK_TAG, the tag of the KSK knotd made on
# the card, and writes $TMP/example.com.anchor, delv's trust anchor from the
# DS knot-hsm ds prints.
sc_online_knotd() {
	sok_stanza=$1; shift
	sc_knotd_dir
	sc_knotd_conf "$sok_stanza" "" ""
	run 0 "$KNOT_HSM" -c "$CONF" example.com policy mode=online dnskey-ttl=3s zone-max-ttl=3s \
		propagation-delay=3s "$@" --write "$D/knot-hsm.conf"
	sc_knotd_conf "$sok_stanza" "include: $D/knot-hsm.conf" "    dnssec-policy: knot-hsm"
	run 0 knotc -c "$CONF" conf-check
	knotd_start "$CONF" "$D/knotd.out"
	knotd_wait_serial "$CONF" example.com.
	run 0 keymgr -c "$CONF" example.com. list
	contains "$(printf '%s\n' "$OUT" | awk '$3 == "KSK"')" "PKCS11/knot-hsm-card" "knotd generated the KSK on the card"
	KSK_TAG=$(printf '%s\n' "$OUT" | awk '$3 == "KSK" { print $2 }')
	run 0 "$KNOT_HSM" -c "$CONF" example.com ds
	sok_ds=$(printf '%s\n' "$OUT" | grep ' DS ' | head -n 1)
	[ -n "$sok_ds" ] || fail "knot-hsm ds printed no DS: $OUT"
	equals "$(printf '%s\n' "$sok_ds" | awk '{ print $3 }')" "$KSK_TAG" "the DS is the card KSK's"
	printf '%s\n' "$sok_ds" | awk '{ printf "trust-anchors {\n  %s initial-ds %s %s %s \"%s\";\n};\n", $1, $3, $4, $5, $6 }' \
		> "$TMP/example.com.anchor"
}
