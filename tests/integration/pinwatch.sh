# The PIN watcher of the PIN-safety tests: while a command runs, every
# process's /proc/PID/cmdline and /proc/PID/environ are read every 10 ms and
# searched for the PIN. Source after lib.sh.
#
# PINWATCH_PIN_FILE: the file the watcher reads the PIN from (never from its
# own arguments); default $TMP/card.pin.
# PINWATCH_DIR: optional; the watcher also notes every entry under that
# directory while the command runs, and which files hold the PIN ($FILES).

# sample CMD...: run CMD (stdout/stderr in $OUT/$ERR, status in $STATUS) while
# the watcher samples every process every 10 ms, with one last full pass
# after CMD ends. Sets $HITS (where the PIN was seen), $SAMPLES, $SEEN (names
# of the processes seen) and $FILES ("path:d|f:MODE[:pin] ..." under $PINWATCH_DIR, MODE in octal,
# ":pin" on files that held the PIN when seen).
sample() {
	rm -f "$TMP/watch.stop" "$TMP/watch.ready"
	python3 - "${PINWATCH_PIN_FILE:-$TMP/card.pin}" "$TMP/watch.stop" "$TMP/watch.ready" \
		"${PINWATCH_DIR:-}" >"$TMP/watch.out" <<'PY' &
import os, stat, sys, time
pin = open(sys.argv[1], "rb").read()
stop, ready, watch_dir = sys.argv[2], sys.argv[3], sys.argv[4]
assert pin, "empty PIN file"
me = str(os.getpid())
hits, seen, files, samples = set(), set(), set(), 0
deadline = time.monotonic() + 300          # bounded even if the test dies
open(ready, "w").close()
while time.monotonic() < deadline:
    last = os.path.exists(stop)
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        try:
            comm = open(f"/proc/{pid}/comm", "rb").read().strip().decode(errors="replace")
        except OSError:
            continue
        for what in ("cmdline", "environ"):
            try:
                data = open(f"/proc/{pid}/{what}", "rb").read()
            except OSError:
                continue
            if pin in data:
                hits.add(f"{comm}[{pid}]:{what}")
        seen.add(comm)
    if watch_dir:
        for root, dirs, names in os.walk(watch_dir):
            for n in dirs + names:
                p = os.path.join(root, n)
                try:
                    st = os.lstat(p)
                    kind = "d" if stat.S_ISDIR(st.st_mode) else "f"
                    entry = f"{p}:{kind}:{stat.S_IMODE(st.st_mode):o}"
                    if stat.S_ISREG(st.st_mode) and pin in open(p, "rb").read():
                        entry += ":pin"
                    files.add(entry)
                except OSError:
                    pass
    samples += 1
    if last:
        break
    time.sleep(0.01)
print("HITS", " ".join(sorted(hits)))
print("SAMPLES", samples)
print("SEEN", " ".join(sorted(seen)))
print("FILES", " ".join(sorted(files)))
PY
	watcher=$!
	while [ ! -e "$TMP/watch.ready" ]; do
		kill -0 "$watcher" 2>/dev/null || fail "the PIN watcher did not start"
		sleep 0.01
	done
	set +e
	"$@" >"$TMP/out" 2>"$TMP/err"
	STATUS=$?
	set -e
	touch "$TMP/watch.stop"
	wait "$watcher" || fail "the PIN watcher failed"
	OUT=$(cat "$TMP/out"); ERR=$(cat "$TMP/err")
	HITS=$(sed -n 's/^HITS //p' "$TMP/watch.out")
	SAMPLES=$(sed -n 's/^SAMPLES //p' "$TMP/watch.out")
	SEEN=$(sed -n 's/^SEEN //p' "$TMP/watch.out")
	FILES=$(sed -n 's/^FILES //p' "$TMP/watch.out")
	[ "${SAMPLES:-0}" -ge 2 ] || fail "the watcher took no samples while running $*"
}

# watch WHAT CMD...: sample CMD; it succeeds and the PIN is in no process and
# no output.
watch() {
	what=$1; shift
	sample "$@"
	[ -z "$HITS" ] || fail "$what: the PIN is visible in $HITS"
	pass "$what: no PIN in any command line or environment ($SAMPLES samples)"
	lacks "$OUT$ERR" "$(cat "${PINWATCH_PIN_FILE:-$TMP/card.pin}")" "$what: no PIN in stdout or stderr"
	[ "$STATUS" -eq 0 ] || { printf '%s\n%s\n' "$OUT" "$ERR" >&2; fail "$what: exit $STATUS"; }
}

# pinwatch_controls: the watcher finds a PIN put in a command line and in an
# environment on purpose, so that finding nothing later means something.
pinwatch_controls() {
	pw_pin=$(cat "${PINWATCH_PIN_FILE:-$TMP/card.pin}")
	sample sh -c 'sleep 0.2' sh "$pw_pin"
	contains "$HITS" ":cmdline" "control: the watcher sees a PIN in a command line"
	sample env "KHSM_CONTROL=$pw_pin" sleep 0.2
	contains "$HITS" ":environ" "control: the watcher sees a PIN in an environment"
	unset pw_pin
}
