#!/bin/sh
# The audit log against an anchor its writers cannot forge: the guard (as
# root) appends the head (line count, hash) to anchor_file every anchor_every
# lines and at C_Finalize; `knot-hsm audit verify --anchor FILE` / `--head HEX`
# compare. A full rewrite with a recomputed chain, a deleted log, a cut tail
# and a forged tail are all caught (exit 1); a torn line followed by more is
# an incident (exit 4), the rest verified; usage errors exit 2, unreadable 3.
# Human output escapes control characters; --json keeps JSON escaping.
# anchor_syslog = yes sends the head to syslog (a socket of the test's own in
# a private mount namespace), where --head finds it.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"
: "${GUARD_SIGN:?GUARD_SIGN must name the built tests/guard/guard_sign}"
GUARD=$KHSM_GUARD_MODULE
[ "$(id -u)" -eq 0 ] || fail "the anchor is root's: run this test as root"
card_conf "latency_scale = 0"
mkdir "$TMP/audit" "$TMP/anchors"
chmod 0755 "$TMP/anchors"
LOG=$TMP/audit/audit.log
ANCHOR=$TMP/anchors/audit.anchor
export KHSM_GUARD_CONF="$TMP/guard.conf"
printf 'module = %s\naudit_log = %s\nanchor_file = %s\nanchor_every = 10\n' "$CARDSIM" "$LOG" "$ANCHOR" > "$KHSM_GUARD_CONF"

# Rewrite the log with python: drop line N (0: none), recompute every "prev".
rechain() {
	python3 - "$LOG" "$1" <<'PY'
import hashlib, json, sys
path, drop = sys.argv[1], int(sys.argv[2])
lines = open(path, encoding="utf-8").read().split("\n")[:-1]
if drop:
    del lines[drop - 1]
prev = hashlib.sha256(b"knot-hsm audit log v1").hexdigest()
out = []
for l in lines:
    o = json.loads(l)
    o["prev"] = prev
    l = json.dumps(o, separators=(",", ":"), ensure_ascii=False)
    out.append(l)
    prev = hashlib.sha256(l.encode()).hexdigest()
open(path, "w", encoding="utf-8").write("\n".join(out) + "\n")
PY
}

run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" keygen "anchored key"
run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" sign "anchored key" 1 3
[ -f "$ANCHOR" ] || fail "no anchor file written"
equals "$(stat -c '%u %a' "$ANCHOR")" "0 644" "the anchor file is root's, 0644"
last=$(tail -n 1 "$ANCHOR")
n=$(printf '%s\n' "$last" | sed -n 's/.* lines=\([0-9]*\) .*/\1/p')
equals "$n" "$(wc -l < "$LOG")" "the last anchor (C_Finalize) records every line of the log"
head_hex=$(printf '%s\n' "$last" | sed -n 's/.* head=\([0-9a-f]*\) .*/\1/p')
equals "$head_hex" "$(tail -n 1 "$LOG" | tr -d '\n' | sha256sum | cut -d' ' -f1)" "and the hash of its last line"
[ "$(wc -l < "$ANCHOR")" -ge 4 ] || fail "anchor_every = 10 wrote fewer than 4 anchors: $(cat "$ANCHOR")"
pass "anchors every 10 lines and at each C_Finalize"
entries=$(wc -l < "$ANCHOR")

run 0 "$KNOT_HSM" audit verify
contains "$OUT" "anchor: $ANCHOR: $entries of $entries entries matched" "audit verify uses the configuration's anchor_file"
run 0 "$KNOT_HSM" audit verify "$LOG" --anchor "$ANCHOR" --head "$head_hex"
contains "$OUT" "recorded head: line $n" "--head: the recorded head is line $n"
cp "$LOG" "$TMP/saved.log"

# -- tampering -----------------------------------------------------------------------------
sig=$(grep -n '"fn":"C_Sign",' "$LOG" | head -1 | cut -d: -f1)
rechain "$sig"
run 0 "$KNOT_HSM" audit verify "$LOG"
contains "$OUT" "chain: intact" "a signature line removed and the chain recomputed: the file alone looks intact"
run 1 "$KNOT_HSM" audit verify "$LOG" --anchor "$ANCHOR"
contains "$ERR" "the log was rewritten" "against the anchor: caught"
run 1 "$KNOT_HSM" audit verify "$LOG" --head "$head_hex"
contains "$ERR" "is not the hash of any line" "against the recorded head: caught"

rm "$LOG"
run 3 "$KNOT_HSM" audit verify "$LOG"
contains "$ERR" "cannot read the audit log" "a missing log without an anchor: cannot read (exit 3)"
run 1 "$KNOT_HSM" audit verify "$LOG" --anchor "$ANCHOR"
contains "$ERR" "the log is missing, but the anchor" "a deleted log against the anchor: tampering (exit 1)"

head -n -3 "$TMP/saved.log" > "$LOG"
run 0 "$KNOT_HSM" audit verify "$LOG"
pass "the last 3 lines cut: the file alone cannot tell"
run 1 "$KNOT_HSM" audit verify "$LOG" --anchor "$ANCHOR"
contains "$ERR" "the log ends after line $((n - 3)), but the anchor" "against the anchor: caught"

head -n -3 "$TMP/saved.log" > "$LOG"
rechain 0
python3 - "$LOG" <<'PY'
import hashlib, json, sys
path = sys.argv[1]
lines = open(path).read().split("\n")[:-1]
prev = hashlib.sha256(lines[-1].encode()).hexdigest()
with open(path, "a") as f:
    for i in range(3):
        l = json.dumps({"time": "2026-01-01T00:00:00.000Z", "fn": "C_Verify", "rv": "CKR_OK", "prev": prev}, separators=(",", ":"))
        f.write(l + "\n")
        prev = hashlib.sha256(l.encode()).hexdigest()
PY
run 0 "$KNOT_HSM" audit verify "$LOG"
pass "a forged tail that chains: the file alone looks intact"
run 1 "$KNOT_HSM" audit verify "$LOG" --anchor "$ANCHOR"
contains "$ERR" "line $n is not the line the anchor" "against the anchor: caught"

# -- a torn line, then more: an incident, not tampering ----------------------------------------
cp "$TMP/saved.log" "$LOG"
printf '{"time":"2026-01-01T00:00:00.000Z","pid":1,"fn":"C_Si' >> "$LOG"   # a write cut short
run 4 "$KNOT_HSM" audit verify "$LOG" --anchor "$ANCHOR"
contains "$OUT" "line $((n + 1)), after " "a torn last line: an incident with its time"
run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" sign "anchored key" 1 1
grep -q '"fn":"audit_resync","torn":"[0-9a-f]*","torn_len":53,' "$LOG" || fail "no resynchronisation marker"
pass "the next write resynchronises with a marker naming the torn line"
run 4 "$KNOT_HSM" audit verify "$LOG" --anchor "$ANCHOR"
contains "$OUT" "incidents: 1" "one incident"
contains "$OUT" "line $((n + 1)), after " "the torn line, with the time of the line before"
contains "$OUT" "torn line (53 bytes): a write was cut short; resynchronised on the next line" "and what happened"
contains "$OUT" "chain: intact" "the rest verified"
lacks "$OUT" " 0 of " "every anchor matched, the new ones too"
contains "$ERR" "warning: $LOG: 1 torn line(s)" "a warning on stderr"
run 4 "$KNOT_HSM" audit verify "$LOG" --json
contains "$OUT" "\"incidents\": [{\"line\": $((n + 1)), " "--json lists the incident"

# -- usage -------------------------------------------------------------------------------------
run 2 "$KNOT_HSM" audit verify "$LOG" --head xyz
contains "$ERR" "--head: the head must be 64 lowercase hex digits" "a malformed head is a usage error (exit 2)"
run 2 "$KNOT_HSM" audit tail "$LOG" --anchor "$ANCHOR"
contains "$ERR" "--head and --anchor are options of audit verify" "audit tail takes no anchor"
printf 'garbage\n' > "$TMP/bad.anchor"
run 3 "$KNOT_HSM" audit verify "$LOG" --anchor "$TMP/bad.anchor"
contains "$ERR" "bad.anchor:1: not an anchor line" "a malformed anchor file: exit 3, with its line"

# -- control characters from card labels: escaped in human output ------------------------------
esc=$(printf 'evil\033]0;owned\007')
run 0 "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" keygen "$esc"
run 4 "$KNOT_HSM" audit verify "$LOG"
run 0 "$KNOT_HSM" audit tail "$LOG"
contains "$OUT" 'evil\x1b]0;owned\x07' "audit tail: the label's control characters as \\xNN"
case "$OUT" in *"$(printf '\033')"*) fail "a raw ESC reached the terminal" ;; esac
pass "no raw escape character in the output"
run 0 "$KNOT_HSM" audit tail "$LOG" --json
contains "$OUT" '"label":"evil\u001b]0;owned\u0007"' "--json keeps JSON escaping"

# -- anchor_syslog: the head in syslog too (knotd's case: not root) ----------------------------
# A private mount namespace whose /dev has a log socket of our own; nothing
# outside it sees the change.
mkdir "$TMP/dev"
for d in null zero urandom random; do : > "$TMP/dev/$d"; done
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", 0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")' "$TMP/dev/log" "$TMP/syslog.out" &
LISTENER=$!
stop_listener() { kill "$LISTENER" 2>/dev/null || true; }
on_cleanup stop_listener
i=0
until [ -S "$TMP/dev/log" ]; do
	i=$((i + 1)); [ $i -le 100 ] || fail "the syslog listener did not start"; sleep 0.05
done
echo "anchor_syslog = yes" >> "$KHSM_GUARD_CONF"
run 0 unshare -m sh -c 'for d in null zero urandom random; do mount --bind /dev/$d "$0/$d"; done
mount --rbind "$0" /dev && exec "$@"' "$TMP/dev" "$GUARD_SIGN" "$GUARD" "$TMP/card.pin" sign "anchored key" 1 1
i=0
until grep -q "knot-hsm-guard: audit log $LOG lines=" "$TMP/syslog.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -le 100 ] || fail "no head in syslog: $(cat "$TMP/syslog.out" 2>&1)"; sleep 0.05
done
pass "anchor_syslog = yes: the head goes to syslog"
msg=$(grep "knot-hsm-guard: audit log $LOG lines=" "$TMP/syslog.out" | tail -n 1)
contains "$msg" "<85>" "as LOG_AUTHPRIV (10), notice (5)"
sys_head=$(printf '%s\n' "$msg" | sed -n 's/.* head=\([0-9a-f]*\).*/\1/p')
run 4 "$KNOT_HSM" audit verify "$LOG" --head "$sys_head"
contains "$OUT" "recorded head: line " "audit verify --head finds the head syslog recorded"
