#!/bin/sh
# knot-hsm ceremony (offline KSK, Knot 3.2) with the KSK side on a smartcard
# (cardsim):
#  - the card pulled between two zones (after the first zone's import) and in
#    the middle of a zone's signing (knot-hsm's own card session, and keymgr
#    sign-ksr): the zones before are done, the interrupted zone and the later
#    ones keep their previous SKR (show-offline unchanged, nothing
#    half-imported), knotd keeps serving all zones and BIND's delv validates
#    them under the DS of the card KSKs, a rerun with the card back finishes
#    the job, and the operator is told the card went away;
#  - the PIN given on a descriptor to a KSK side without pin-source: it reaches
#    keymgr through a memfd of knot-hsm, nothing under TMPDIR,
#    and never shows in a command line, an environment, an output or a file;
#  - a slow card (170 ms per signature, real time) on 20 zones: the card makes
#    exactly the signatures the SKRs hold, with one login for the run, and
#    ceremony reports each zone as it finishes (counted in card signatures
#    made before each report: no wall-clock bound here, the run's time is
#    measured by bench/).
. "$KHSM_SRCDIR/tests/integration/lib.sh"
# A PIN that cannot turn up by chance (set before cardsim.sh writes the PIN file).
PIN=739164825
. "$KHSM_SRCDIR/tests/integration/knotd.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"
. "$KHSM_SRCDIR/tests/integration/pinwatch.sh"

REMOVED=$TMP/removed
card_conf "removed_file = $REMOVED"
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card
stanza=$OUT
contains "$stanza" "$CARDSIM" "the keystore stanza names the cardsim module"

# offline_conf DIR PORT ZONE...: a ZSK-side knot.conf in DIR (knotd on PORT
# when PORT is not 0) with the card keystore, the knot-hsm policy rendered by
# `knot-hsm policy --write`, and the KSK side next to it. Sets CONF and KSKC.
offline_conf() {
	oc_dir=$1; oc_port=$2; shift 2
	mkdir -p "$oc_dir/run" "$oc_dir/zones" "$oc_dir/keys"
	CONF=$oc_dir/knot.conf
	KSKC=$oc_dir/knot-hsm-ksk.conf
	zone_files "$oc_dir/zones" 60 "$@"
	oc_write() { # zone lines, include line, zones
		oc_zl=$1; oc_inc=$2; shift 2
		oc_zones=""
		for z; do oc_zones="$oc_zones $z."; done
		oc_listen=""
		[ "$oc_port" = 0 ] || oc_listen="listen=$oc_port"
		knot_conf "$CONF" rundir="$oc_dir/run" $oc_listen storage="$oc_dir" kasp="$oc_dir/keys" \
			log="$oc_dir/knotd.log" include="${oc_inc#include: }" template="    storage: $oc_dir/zones
    file: %s.zone
$oc_zl" $oc_zones
	}
	oc_write "" "" "$@"
	run 0 "$KNOT_HSM" -c "$CONF" "$@" policy --write "$oc_dir/knot-hsm.conf"
	[ -f "$KSKC" ] || fail "policy --write made no KSK side $KSKC"
	contains "$(cat "$KSKC")" "keystore: card" "$oc_dir: the KSK side signs with the card keystore"
	oc_write "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $oc_dir/knot-hsm.conf" "$@"
	run 0 knotc -c "$CONF" conf-check
	# The KSKs, made on the card through the KSK side.
	for z; do
		run 0 "$KNOT_HSM" -c "$KSKC" "$z" generate
		contains "$OUT" "$z. DNSKEY 257 3 13 " "KSK of $z generated on the card"
	done
}

# offline ZONE: the offline records knotd's side holds (Knot 3.2.6 says
# "error: not exists" while there are none: then empty).
offline() {
	keymgr -c "$CONF" "$1." show-offline > "$TMP/offline" 2>&1 || fail "keymgr show-offline $1: $(cat "$TMP/offline")"
	if grep -q "not exists" "$TMP/offline"; then : > "$TMP/offline"; fi
	! grep -q "error" "$TMP/offline" || fail "keymgr show-offline $1: $(cat "$TMP/offline")"
	cat "$TMP/offline"
}
# ksk_side ZONE: the keys of the KSK side's KASP.
ksk_side() {
	keymgr -c "$KSKC" "$1." list > "$TMP/ksklist" 2>&1 || fail "keymgr list (KSK side) $1: $(cat "$TMP/ksklist")"
	cat "$TMP/ksklist"
}

# == 1. the card pulled during a ceremony, with knotd serving ======================
# Three zones: ceremony pipelines them (the next zone is prepared on the ZSK
# side while the card signs the current one, and the previous one is imported
# meanwhile), so the zone the card's absence hits depends on where the
# pipeline stands; the checks below hold wherever it stands: the zones before
# the failing one are done, the failing one and those after it keep their
# previous SKR.
ZONES="example.com example.net example.org"
PORT=$(free_port)
offline_conf "$TMP/a" "$PORT" $ZONES
for z in $ZONES; do
	run 0 "$KNOT_HSM" -c "$KSKC" $z ds
	ds=$(printf '%s\n' "$OUT" | grep ' DS ' | head -n 1)
	[ -n "$ds" ] || fail "knot-hsm ds printed no DS for $z: $OUT"
	printf '%s\n' "$ds" | awk '{ printf "trust-anchors {\n  %s initial-ds %s %s %s \"%s\";\n};\n", $1, $3, $4, $5, $6 }' \
		> "$TMP/$z.anchor"
done
run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+5d
for z in $ZONES; do
	contains "$OUT" "$z.: pre-signed " "first ceremony covers $z"
done

knotd_start "$CONF" "$TMP/a/knotd.out"
for z in $ZONES; do knotd_wait_serial "$CONF" $z.; done

# delv exits 0 whatever the result: the verdict is "; fully validated".
validate() { # label
	for z in $ZONES; do
		for q in "www.$z A" "$z DNSKEY"; do
			out=$(delv_ask "$PORT" "$TMP/$z.anchor" $z $q)
			case "$out" in
				*"; fully validated"*) ;;
				*) cat "$TMP/a/knotd.log" >&2; fail "$1: delv does not validate $q: $out" ;;
			esac
		done
	done
	pass "$1: delv validates the zones served by knotd under the DS of their card KSK"
}
# served ZONE: the DNSKEY set and its signatures as knotd serves them.
served() {
	kdig @127.0.0.1 -p "$PORT" +dnssec +norec "$1." DNSKEY +noall +answer | sort
}
validate "before any removal"
# Negative control: delv rejects a zone under a wrong DS.
awk '/initial-ds/ { d = $NF; gsub(/[";]/, "", d); c = substr(d, 1, 1); $NF = "\"" (c == "0" ? "1" : "0") substr(d, 2) "\";" } { print }' \
	"$TMP/example.com.anchor" > "$TMP/bad.anchor"
cmp -s "$TMP/example.com.anchor" "$TMP/bad.anchor" && fail "the negative control did not change the DS"
out=$(delv_ask "$PORT" "$TMP/bad.anchor" example.com www.example.com A)
lacks "$out" "fully validated" "delv rejects example.com under a wrong DS (negative control)"

# snapshot LABEL: show-offline, DNSKEY set served by knotd, of every zone.
snapshot() {
	for z in $ZONES; do
		offline $z > "$TMP/off.$z.$1"
		served $z > "$TMP/srv.$z.$1"
		[ -s "$TMP/off.$z.$1" ] && [ -s "$TMP/srv.$z.$1" ] || fail "no offline records or no DNSKEY served for $z"
	done
	for z in $ZONES; do ksk_side $z; done > "$TMP/ksk.$1"
}
# interrupted LABEL UNTIL: after a ceremony (stdout/stderr in $OUT/$ERR) that
# failed for the card's absence: the zones before the failing one have their
# new SKR, the failing one and the later ones their previous one (as knotd
# serves them); knotd's zones validate; once the card is back the KSK side is
# unchanged and a rerun finishes. Sets FAILED.
interrupted() {
	FAILED=$(printf '%s\n' "$ERR" | sed -n 's/^error: \(example\.[a-z]*\)\.: .*/\1/p' | head -n 1)
	case " $ZONES " in
		*" $FAILED "*) [ "$FAILED" != example.com ] || fail "$1: the first zone failed: $ERR" ;;
		*) fail "$1: no failing zone named: $ERR" ;;
	esac
	pass "$1: $FAILED fails, after example.com. was done"
	err=$ERR
	seen=0; n=0
	for z in $ZONES; do
		[ "$z" = "$FAILED" ] && seen=1
		if [ $seen -eq 0 ]; then
			n=$((n + 1))
			contains "$OUT" "$z.: pre-signed " "$1: $z is done"
			[ "$(offline $z)" != "$(cat "$TMP/off.$z.$1")" ] || fail "$1: $z reported done but its offline records did not change"
		else
			lacks "$OUT" "$z.: pre-signed" "$1: $z is not reported done"
			equals "$(offline $z)" "$(cat "$TMP/off.$z.$1")" "$1: $z keeps its previous SKR (show-offline unchanged, nothing half-imported)"
			equals "$(served $z)" "$(cat "$TMP/srv.$z.$1")" "$1: knotd serves $z's DNSKEY set as before"
		fi
	done
	contains "$ERR" "$n zone(s) before $FAILED. are done" "$1: says what is done"
	validate "$1, card out"
	rm -f "$REMOVED"
	# (keymgr opens the card keystore even to list the KSK side)
	equals "$(for z in $ZONES; do ksk_side $z; done)" "$(cat "$TMP/ksk.$1")" "$1: the KSK side's KASP is unchanged"
	card_conf "removed_file = $REMOVED"
	run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=$2
	seen=0
	for z in $ZONES; do
		[ "$z" = "$FAILED" ] && seen=1
		if [ $seen -eq 0 ]; then
			contains "$OUT" "$z.: skipped" "$1, rerun: $z, done before, is skipped"
		else
			contains "$OUT" "$z.: pre-signed " "$1, rerun: $z is done"
			[ "$(offline $z)" != "$(cat "$TMP/off.$z.$1")" ] || fail "$1, rerun: $z's offline records did not change"
		fi
	done
	validate "$1, after the rerun"
	# What the operator was told, checked at the end of the test (absence_said).
	printf '%s\n' "$1" >> "$TMP/absence.labels"
	printf '%s\n' "$err" | grep '^error:' > "$TMP/absence.$(printf '%s' "$1" | tr -c 'a-z0-9' _)"
}
# absence_said: every interruption above was reported as the card's absence,
# in words, not as a generic failure. Checked last, so that a vague message
# does not hide the other checks.
absence_said() {
	while read -r label; do
		err=$(cat "$TMP/absence.$(printf '%s' "$label" | tr -c 'a-z0-9' _)")
		case "$err" in
			*"token not available"*|*"removed"*|*"not present"*) pass "$label: the card's absence is reported" ;;
			*) fail "$label: the card's absence is not reported, the operator reads: $err" ;;
		esac
	done < "$TMP/absence.labels"
}

# -- removed BETWEEN zones: right after example.com.'s SKR is imported -----------
# The card answers at once, so the next zone's signatures are usually made
# before example.com.'s import ends, and the card is missing for the third
# zone; whichever zone it is, it must fail cleanly.
cat > "$TMP/keymgr-between" <<SH
#!/bin/sh
keymgr "\$@"
rc=\$?
case " \$* " in *" example.com. import-skr "*) touch "$REMOVED" ;; esac
exit \$rc
SH
chmod +x "$TMP/keymgr-between"
snapshot between
KHSM_KEYMGR="$TMP/keymgr-between" run 1 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+20d
[ -e "$REMOVED" ] || fail "the card was never pulled: the wrapper saw no import-skr of example.com."
pass "the card was pulled after example.com.'s import"
echo "# between zones: $(printf '%s\n' "$ERR" | grep '^error:')"
interrupted between +20d

# -- removed INSIDE a zone: while the card signs example.net. ---------------------
# Signatures take 500 ms. As soon as example.com.'s SKR is archived (the card
# signed it) and the card made one more signature (example.net.'s first), the
# card is pulled; the 500 ms are the puller's margin to act before the card
# is done with example.net. (checked: it made fewer signatures than the zone
# needs). Once with knot-hsm signing in its card session (signer=card, the
# default), once with keymgr sign-ksr (signer=keymgr).
inside() { # label signer until
	card_conf "latency_scale = 1" "latency_sign_ms = 500" "latency_login_ms = 0" "latency_keygen_ms = 0" \
		"removed_file = $REMOVED"
	snapshot "$1"
	: > "$COUNTER"
	rm -f "$TMP/inside.c0"
	touch "$TMP/mark"; sleep 1.1   # -newer compares whole seconds on some filesystems
	(
		i=0
		until [ -n "$(find "$TMP/a/knot-hsm-archive" -name example.com.skr -newer "$TMP/mark")" ]; do
			i=$((i + 1)); [ $i -le 3000 ] || exit 1; sleep 0.01
		done
		c0=$(count sign)
		until [ "$(count sign)" -gt "$c0" ]; do
			i=$((i + 1)); [ $i -le 3000 ] || exit 1; sleep 0.01
		done
		echo "$c0" > "$TMP/inside.c0"
		touch "$REMOVED"
	) </dev/null >/dev/null 2>&1 &
	puller=$!
	# A short retry budget: knot-hsm waits that long for the card to come back.
	KHSM_RETRY_MS=500 run 1 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=$3 signer=$2
	wait $puller || fail "$1: the card was never pulled (example.com.'s SKR or the next signature never came); the ceremony said: $OUT $ERR"
	c0=$(cat "$TMP/inside.c0")
	made=$(( $(count sign) - c0 ))
	pass "$1: the card was pulled after example.com.'s $c0 signatures; example.net. got $made"
	echo "# $1: $(printf '%s\n' "$ERR" | grep '^error:')"
	equals "$(printf '%s\n' "$ERR" | sed -n 's/^error: \(example\.[a-z]*\)\.: .*/\1/p' | head -n 1)" example.net \
		"$1: example.net., whose signing the card left, fails"
	interrupted "$1" "$3"
	n=$(printf '%s\n' "$OUT" | sed -n 's/^example\.net\.: pre-signed .*, \([0-9]*\) card signatures$/\1/p')
	[ "$made" -ge 1 ] && [ "$made" -lt "${n:-0}" ] ||
		fail "$1: example.net. got $made of its ${n:-?} signatures before the card left: not in the middle of its signing"
	pass "$1: the card left in the middle of example.net.'s signing ($made of $n signatures)"
}
inside "inside, signer=card" card +40d
inside "inside, signer=keymgr" keymgr +75d

# == 2. the PIN on a descriptor, a KSK side without pin-source ======================
# The ceremony reads the PIN once from fd 3 and hands it to keymgr in a 0600
# file in a 0700 directory under TMPDIR, removed afterwards. A watcher samples
# every process's command line and environment meanwhile, and notes the files
# under TMPDIR.
sed -i 's|;pin-source=[^ "]*||' "$KSKC"
lacks "$(cat "$KSKC")" "pin-source" "the KSK side has no pin-source"
mkdir -p "$TMP/t"
TMPDIR=$TMP/t run 1 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+100d < /dev/null
contains "$ERR" "PIN for the KSK side" "control: without a PIN the ceremony stops"
pinwatch_controls
: > "$COUNTER"
PINWATCH_DIR=$TMP/t TMPDIR=$TMP/t sample "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+100d \
	--pin-fd 3 3<"$TMP/card.pin"
[ "$STATUS" -eq 0 ] || { printf '%s\n%s\n' "$OUT" "$ERR" >&2; fail "ceremony with --pin-fd: exit $STATUS"; }
for z in $ZONES; do
	contains "$OUT" "$z.: pre-signed " "--pin-fd: $z pre-signed"
done
[ "$(count "login ok")" -ge 1 ] || fail "nobody logged in to the card: the PIN was not used"
equals "$(count "login fail")" 0 "--pin-fd: the PIN from the descriptor is accepted by the card"
[ -z "$HITS" ] || fail "ceremony --pin-fd: the PIN is visible in $HITS"
pass "ceremony --pin-fd: no PIN in any command line or environment ($SAMPLES samples)"
lacks "$OUT$ERR" "$PIN" "ceremony --pin-fd: no PIN in stdout or stderr"
case " $SEEN " in
	*" keymgr "*) echo "# the watcher saw keymgr run" ;;
	*) echo "# keymgr ran between two samples this time" ;;
esac
# No file under TMPDIR held the PIN during the run: keymgr got it (the logins
# above) from a memfd of knot-hsm (lib/handoff; test_ceremony_pin.sh has the
# rest). knotc's conf-export directory (khsm-conf.*) may be seen.
lacks "$FILES" ":pin" "no file under TMPDIR held the PIN: it reached keymgr without a file"
lacks "$FILES" "knot-hsm-ceremony." "no temporary PIN directory was made"
echo "# under TMPDIR during the run: $FILES"
equals "$(ls -A "$TMP/t")" "" "the temporary PIN file and its directory are gone"
# Nothing knot-hsm, keymgr, knotd or libdnssec wrote holds the PIN (SoftHSM
# keeps only a key derived from it).
leaks=$(grep -r -l -a -F "$PIN" "$TMP" | grep -v -x -F -e "$TMP/card.pin" || true)
equals "$leaks" "" "no file under the test directory but the PIN file holds the PIN"
validate "after the ceremony with --pin-fd"

# == 3. a slow card on 20 zones ===================================================
# Own directory and knot.conf, no knotd. Default lifetimes (ZSK 30 d, DNSKEY
# signatures 21 d refreshed 10 d before they expire): a 14-day period needs a
# few DNSKEY signatures per zone (counted from the SKRs below).
card_conf
zones=""
for i in 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19 20; do zones="$zones z$i.example"; done
offline_conf "$TMP/s" 0 $zones
archive=$TMP/s/knot-hsm-archive

# skr_sigs: RRSIGs in the SKRs written since $TMP/mark (one per zone, checked).
skr_sigs() {
	find "$archive" -name '*.skr' -newer "$TMP/mark" > "$TMP/skrs"
	equals "$(wc -l < "$TMP/skrs")" 20 "$1: one new SKR per zone in the archive"
	n=0
	while read -r f; do n=$((n + $(grep -c 'RRSIG' "$f"))); done < "$TMP/skrs"
	echo $n > "$TMP/skr_sigs"
}
# printed_sigs FILE: the sum of "N card signatures" over the zones.
printed_sigs() {
	sed -n 's/.*\.: pre-signed .*, \([0-9]*\) card signatures$/\1/p' "$1" | awk '{ s += $1 } END { print s + 0 }'
}

# The tool overhead: the same ceremony on a card that answers at once, over
# the first 14 days.
card_conf "latency_scale = 1" "latency_sign_ms = 0" "latency_login_ms = 0" "latency_keygen_ms = 0"
: > "$COUNTER"
touch "$TMP/mark"; sleep 1.1   # -newer compares whole seconds on some filesystems
run 0 "$KNOT_HSM" -c "$CONF" $zones ceremony until=+14d
printf '%s\n' "$OUT" > "$TMP/fast.out"
equals "$(grep -c '\.example\.: pre-signed ' "$TMP/fast.out")" 20 "instant card: 20 zones pre-signed"
skr_sigs "instant card"
equals "$(count sign)" "$(cat "$TMP/skr_sigs")" "instant card: the card made exactly the signatures of the SKRs"
equals "$(count "login ok")" 1 "instant card: one login for the run"

# The slow card: 170 ms per signature, 100 ms per login, at scale 1: real
# time (20 zones x 3 signatures x 170 ms is about 10 s, well under 2 min).
# The next 14 days (until=+28d): the same steps as above for every zone.
card_conf "latency_scale = 1" "latency_sign_ms = 170" "latency_login_ms = 100" "latency_keygen_ms = 6000"
: > "$COUNTER"
touch "$TMP/mark"; sleep 1.1
# Each line of output is stamped, when it arrives, with the number of
# signatures the card has made so far, to see progress as it happens.
{ "$KNOT_HSM" -c "$CONF" $zones ceremony until=+28d 2> "$TMP/slow.err"; echo "exit $?"; } |
	while IFS= read -r line; do printf '%s %s\n' "$(count sign)" "$line"; done > "$TMP/slow.ts"
rc=$(sed -n 's/^[0-9]* exit \([0-9]*\)$/\1/p' "$TMP/slow.ts")
[ "$rc" = 0 ] || { cat "$TMP/slow.ts" "$TMP/slow.err" >&2; fail "ceremony on a slow card: exit $rc"; }
pass "ceremony on a slow card succeeds"
cut -d' ' -f2- "$TMP/slow.ts" > "$TMP/slow.out"
for z in $zones; do
	[ "$(grep -c "^$z\.: pre-signed " "$TMP/slow.out")" -eq 1 ] || fail "slow card: not one 'pre-signed' line for $z"
done
pass "slow card: one 'pre-signed' line for each of the 20 zones"
skr_sigs "slow card"
sigs=$(cat "$TMP/skr_sigs")
equals "$(count sign)" "$sigs" "slow card: the card made exactly the $sigs signatures the SKRs hold (no extra card work)"
equals "$(printed_sigs "$TMP/slow.out")" "$sigs" "slow card: the signatures ceremony reports are those of the SKRs"
[ "$sigs" -le 100 ] || fail "$sigs signatures for 20 zones: the policy asks for more than a few per zone"
# One card session for the run (signer=card): every zone is signed by it,
# none is handed to keymgr sign-ksr (which would log in on its own), and the
# card saw exactly one login.
equals "$(grep -c '\.: signed by keymgr sign-ksr' "$TMP/slow.out" || true)" 0 "slow card: no zone handed to keymgr sign-ksr"
equals "$(count "login ok")" 1 "slow card: exactly one login for the 20 zones"
equals "$(count "login fail")" 0 "slow card: no failed login"

# Progress: each zone is reported when it is done, not all at the end. Each
# report is stamped with the card signatures made before it arrived: output
# held back until exit would stamp them all with the total ($sigs).
grep '\.example\.: pre-signed ' "$TMP/slow.ts" | cut -d' ' -f1 > "$TMP/stamps"
equals "$(wc -l < "$TMP/stamps")" 20 "slow card: 20 stamped zone reports"
first=$(head -n 1 "$TMP/stamps")
last=$(tail -n 1 "$TMP/stamps")
echo "# progress: first zone reported after $first signatures, last after $last, of $sigs"
[ "$first" -le $((sigs / 2)) ] || fail "the first zone was reported after $first of $sigs signatures: no progress shown"
[ $((last - first)) -ge $((sigs / 3)) ] || fail "zones reported between signatures $first and $last of $sigs: not as they finish"
sort -n -c "$TMP/stamps" || fail "zone reports stamped out of order: $(tr '\n' ' ' < "$TMP/stamps")"
pass "ceremony reports each zone as it finishes (first after $first, last after $last of $sigs signatures)"
lacks "$(cat "$TMP/slow.out" "$TMP/slow.err")" "$PIN" "no PIN in the output"

# == 4. what the operator was told when the card went away =========================
absence_said
