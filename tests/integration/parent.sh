# A parent zone (com.) served by a second knotd on 127.0.0.1, unsigned, whose
# DS RRset for example.com. the test changes as a registry would. Source after
# lib.sh and knotd.sh; set P (its directory), PPORT and PTTL (TTL of every
# record, the DS included) first.

# parent_zone SERIAL RR...: the com. zone file, to stdout.
parent_zone() {
	pz_serial=$1; shift
	printf '$ORIGIN com.\n$TTL %s\n@ SOA ns hostmaster %s 3600 600 86400 %s\n' "$PTTL" "$pz_serial" "$PTTL"
	printf '@ NS ns\nns A 127.0.0.1\nexample NS ns1.example.com.\nns1.example A 127.0.0.1\n'
	for pz_rr in "$@"; do printf '%s\n' "$pz_rr"; done
}

# parent_start: write $P/knot.conf and start the parent knotd with serial 1 and no DS.
parent_start() {
	mkdir -p "$P/run" "$P/zones"
	PCONF=$P/knot.conf
	cat > "$PCONF" <<CONF
server:
    rundir: $P/run
    listen: 127.0.0.1@$PPORT
log:
  - target: $P/knotd.log
    any: info
zone:
  - domain: com.
    storage: $P/zones
    file: com.zone
    zonefile-sync: -1
CONF
	parent_zone 1 > "$P/zones/com.zone"
	knotd_start "$PCONF" "$P/knotd.out"
	knotd_wait_serial "$PCONF" com.
}

# parent_publish SERIAL RR...: the parent serves this com. zone (waited for).
parent_publish() {
	parent_zone "$@" > "$P/zones/com.zone"
	run 0 knotc -c "$PCONF" zone-reload com.
	pp_i=0
	until kdig @127.0.0.1 -p "$PPORT" com. SOA +norec +short | grep -q " $1 3600 "; do
		pp_i=$((pp_i + 1)); [ $pp_i -le 50 ] || fail "parent did not load serial $1"; sleep 0.1
	done
}

# parent_ds: the DS records the parent serves for example.com., one per line
# ("example.com. DS TAG ALG TYPE HEX"), sorted.
parent_ds() {
	kdig @127.0.0.1 -p "$PPORT" example.com. DS +norec +noall +answer |
		awk '$4 == "DS" { d = ""; for (i = 8; i <= NF; i++) d = d $i; print $1, "DS", $5, $6, $7, tolower(d) }' | sort
}

# Validation from the parent's DS, as a resolver that starts there would
# (delv_ask of lib.sh, against the child's knotd on PORT): validate_start
# once, then validate_poll at each step, which also asks under the DS of the
# poll before when the parent changed it (a resolver may still hold it).
# CHECKS and FAILURES count the questions and the failed validations.

# anchor_file DS-LINES FILE: a delv trust-anchors block with one initial-ds per DS.
anchor_file() {
	{
		echo "trust-anchors {"
		printf '%s\n' "$1" | awk 'NF { printf "  %s initial-ds %s %s %s \"%s\";\n", $1, $3, $4, $5, $6 }'
		echo "};"
	} > "$2"
}
validate_under() { # DS-LINES label
	anchor_file "$1" "$TMP/anchor"
	for q in "www.example.com A" "example.com DNSKEY"; do
		out=$(delv_ask "$PORT" "$TMP/anchor" example.com $q)
		CHECKS=$((CHECKS + 1))
		case "$out" in
			*"; fully validated"*) ;;
			*) FAILURES=$((FAILURES + 1)); echo "validation failure ($2, $q): $out" >&2 ;;
		esac
	done
}
validate_start() {
	CHECKS=0
	FAILURES=0
	PREV_DS=$(parent_ds)
}
validate_poll() {
	cur=$(parent_ds)
	validate_under "$cur" "parent now"
	[ "$cur" = "$PREV_DS" ] || validate_under "$PREV_DS" "parent a poll ago"
	PREV_DS=$cur
}

# cds_note STEP: the key tags of the CDS the child's knotd (PORT) serves now,
# noted with the rollover step in $TMP/cds.log. cds_tags STEP: the tags noted
# at that step, sorted, once each.
cds_note() {
	cn_tags=$(kdig @127.0.0.1 -p "$PORT" example.com. CDS +short | awk '{ print $1 }' | sort -u | tr '\n' ' ')
	printf '%s %s\n' "$1" "$cn_tags" >> "$TMP/cds.log"
}
cds_tags() {
	awk -v s="$1" '$1 == s { for (i = 2; i <= NF; i++) print $i }' "$TMP/cds.log" 2>/dev/null | sort -u | tr '\n' ' '
}

# roll_kills_setup: with ROLL_KILLS set, the points at which a rollover run is
# killed once each, through a keymgr in front of the real one: "generated"
# when the card has made the new pair and keymgr is to register it (the next
# run adopts the pair), "import" right after keymgr import-pkcs11 registered
# the new KSK (before knot-hsm confirmed it), "retire" after the new KSK's
# active timer was set and before the old KSK's retire timer is, "remove"
# before the old KSK's remove timer is set, "delete" when delete-old is to
# delete the old KSK from KASP and the card. POINT:TERM sends SIGTERM
# instead of SIGKILL. The next poll's run goes on.
# Then rollover_run makes one rollover run ($CONF, $ROLL_KS, $PPORT), killed
# there once each.
roll_kills_setup() {
	KILLED=0
	[ -n "${ROLL_KILLS:-}" ] || return 0
	printf '%s\n' $ROLL_KILLS > "$TMP/kills"
	REAL_KEYMGR=$(command -v keymgr)
	cat > "$TMP/keymgr" <<SHIM
#!/bin/sh
case " \$* " in
	*" import-pkcs11 "*) point=import; grep -q '^generated' "$TMP/kills" && point=generated ;;
	*" set "*" retire="*) point=retire ;;
	*" set "*" remove="*) point=remove ;;
	*" delete "*) point=delete ;;
	*) point= ;;
esac
entry=\$(grep -E "^\$point(:TERM)?\$" "$TMP/kills" | head -n 1)
if [ -n "\$point" ] && [ -n "\$entry" ]; then
	grep -vx "\$entry" "$TMP/kills" > "$TMP/kills.new"; mv "$TMP/kills.new" "$TMP/kills"
	echo "\$entry" >> "$TMP/killed"
	if [ "\$point" = import ]; then "$REAL_KEYMGR" "\$@"; fi
	case \$entry in *:TERM) kill -TERM \$PPID ;; *) kill -9 \$PPID ;; esac
	exit 1
fi
exec "$REAL_KEYMGR" "\$@"
SHIM
	chmod +x "$TMP/keymgr"
}
rollover_run() {
	if [ -z "${ROLL_KILLS:-}" ]; then
		run 0 "$KNOT_HSM" -c "$CONF" example.com rollover $ROLL_KS delete-old=yes server=127.0.0.1@$PPORT
		return
	fi
	set +e
	KHSM_KEYMGR=$TMP/keymgr "$KNOT_HSM" -c "$CONF" example.com rollover $ROLL_KS delete-old=yes \
		server=127.0.0.1@$PPORT >"$TMP/out" 2>"$TMP/err"
	got=$?
	set -e
	OUT=$(cat "$TMP/out"); ERR=$(cat "$TMP/err")
	n=$(cat "$TMP/killed" 2>/dev/null | wc -l)
	if [ "$n" -gt "$KILLED" ]; then
		case $(tail -n 1 "$TMP/killed") in *:TERM) want=143 ;; *) want=137 ;; esac
		[ "$got" -eq "$want" ] || fail "rollover run not killed at $(tail -n 1 "$TMP/killed") (exit $got): $OUT $ERR"
		KILLED=$n
		OUT="example.com.: step killed"
		return
	fi
	[ "$got" -eq 0 ] || fail "rollover exit $got: $OUT $ERR"
}


# parent_setup: the parent knotd's free port PPORT (not the child's PORT),
# its directory P and its DS TTL PTTL, for parent_start.
parent_setup() {
	PPORT=$(free_port)
	while [ "$PPORT" = "${PORT:-}" ]; do PPORT=$(free_port); done
	P=$TMP/parent
	PTTL=2
}

# online_first_day: online mode, knotd's first KSK's DS (OLD_DS, OLD_TAG)
# put at a parent started here (SERIAL 2), and confirmed to knotd with
# `submitted` (its output in OUT).
online_first_day() {
	run 0 "$KNOT_HSM" -c "$CONF" example.com ds
	OLD_DS=$(printf '%s\n' "$OUT" | grep ' DS ' | head -n 1)
	OLD_TAG=$(printf '%s\n' "$OLD_DS" | awk '{ print $3 }')
	[ -n "$OLD_TAG" ] || fail "no DS for the first KSK: $OUT"
	parent_start
	SERIAL=2
	parent_publish $SERIAL "$OLD_DS"
	run 0 "$KNOT_HSM" -c "$CONF" example.com submitted server=127.0.0.1@$PPORT
}
