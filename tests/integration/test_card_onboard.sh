#!/bin/sh
# ONE card login for a run over many zones: onboarding (ceremony
# generate-ksk=yes, a shared KSK and one KSK per zone) and generate over
# several zones. Each zone's step opens its own keystore; the run keeps the
# first login (khsm_login_hold_t) through the zones and the signing, and
# Knot 3.2's keymgr import-pkcs11, which loads the private key of each key it
# registers, reaches the card through the run's p11-kit RPC socket
# (lib/serve.h) and finds it logged in. The cardsim counter names the
# process of each login: knot-hsm's are counted apart from keymgr's (a keymgr
# wrapper records their pids).
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

card_conf "max_keypairs = 40"
N=4
PIDS=$TMP/keymgr.pids
keymgr_wrapper "$TMP/keymgr" "echo \"\$\$ \$sub\" >> '$PIDS'; [ \"\$sub\" != import-pkcs11 ] || grep 'config:' \"\$conf\" >> '$TMP/configs'"

# logins WHO: successful logins of knot-hsm ("own") or of keymgr ("keymgr")
logins() {
	awk -v who="$1" 'NR == FNR { k[$1] = 1; next }
		$1 == "login" && $2 == "ok" { if ((who == "keymgr") == ($3 in k)) n++ }
		END { print n + 0 }' "$PIDS" "$COUNTER"
}
imports() { grep -c ' import-pkcs11$' "$PIDS" || true; }

run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card
stanza=$OUT

onboard() { # shared-ksk=yes|no, zone name prefix
	onboard_conf "$1" "$2" $N
	: > "$PIDS"; : > "$COUNTER"
	# shellcheck disable=SC2086
	mkdir -p "$TMP/t"
	TMPDIR=$TMP/t KHSM_KEYMGR=$TMP/keymgr run 0 "$KNOT_HSM" -c "$D/knot.conf" $ZONES ceremony until=+30d generate-ksk=yes
	for z in $ZONES; do contains "$OUT" "$z.: pre-signed " "shared-ksk=$1: $z pre-signed"; done
	[ "$(count keygen)" -eq "$3" ] || fail "shared-ksk=$1: $(count keygen) key pairs made, want $3"
	own=$(logins own)
	[ "$own" -eq 1 ] || fail "shared-ksk=$1: knot-hsm logged in $own times for $N zones: $(sort "$COUNTER" | uniq -c)"
	pass "shared-ksk=$1: one login of knot-hsm for $N zones, their KSKs and their signatures"
	[ "$(imports)" -eq "$3" ] || fail "shared-ksk=$1: $(imports) keymgr import-pkcs11 runs, want $3"
	[ "$(logins keymgr)" -eq 0 ] || fail "shared-ksk=$1: keymgr logged in $(logins keymgr) times"
	pass "shared-ksk=$1: $3 key(s) registered by keymgr import-pkcs11 through the run's login"
	left=$(ls -A "$TMP/t")
	[ -z "$left" ] || fail "shared-ksk=$1: left behind in TMPDIR: $left"
	pass "shared-ksk=$1: nothing left in TMPDIR (the served card's socket, the import configurations)"
	# the served card was there: keymgr's import-pkcs11 read a configuration
	# naming p11-kit's client (the wrapper records its keystore config)
	grep -q "p11-kit-client.so" "$TMP/configs" ||
		fail "shared-ksk=$1: no keymgr run was given p11-kit-client.so"
	pass "shared-ksk=$1: keymgr import-pkcs11 reached the card through p11-kit's client"
	! grep -q 'pin-' "$TMP/configs" || fail "shared-ksk=$1: a served keymgr was given a PIN source: $(cat "$TMP/configs")"
	pass "shared-ksk=$1: the served keymgr has no PIN source (it cannot log in itself)"
	: > "$TMP/configs"
	# Each key is proven once by a signature (its self-test); the card's
	# other signatures are the SKRs' RRSIGs. A shared KSK, proven when made,
	# is shared with the other zones without the card (khsm_enroll_memo_t).
	rrsigs=$(cat "$D"/knot-hsm-archive/*/*.skr | grep -c ' RRSIG ')
	equals "$(( $(count sign) - rrsigs ))" "$3" "shared-ksk=$1: one self-test signature per key made ($3)"
	[ "$3" -gt 1 ] || return 0
	# The pipeline (khsm_ceremony_t.before_prepare): a zone's KSK is made
	# while the card signs the zone before, so the card signs DNSKEY sets
	# (more than the one self-test signature per key) before the last key
	# generation; made all first, it would not.
	early=$(awk '$1 == "keygen" { k++; s_at = s; k_at = k } $1 == "sign" { s++ }
		END { print s_at - (k_at - 1) }' "$COUNTER")
	[ "$early" -gt 0 ] || fail "shared-ksk=$1: the card signed no zone before its last key generation: $(cat "$COUNTER")"
	pass "shared-ksk=$1: the zones' KSKs are made while the card signs the zones before"
}
onboard yes s 1
onboard no p $N

# generate over several zones: one login of knot-hsm for all of them
C=$TMP/knot.conf
card_knot_conf "$C" g1.example. g2.example. g3.example.
: > "$PIDS"; : > "$COUNTER"
KHSM_KEYMGR=$TMP/keymgr run 0 "$KNOT_HSM" -c "$C" g1.example g2.example g3.example generate ksk=yes
[ "$(count keygen)" -eq 3 ] || fail "generate: $(count keygen) key pairs for 3 zones"
own=$(logins own)
[ "$own" -eq 1 ] && [ "$(logins keymgr)" -eq 0 ] ||
	fail "generate over 3 zones: knot-hsm logged in $own times, keymgr $(logins keymgr): $(sort "$COUNTER" | uniq -c)"
pass "generate over 3 zones: one login"
# the keys are Knot's as any other: keymgr on the card itself sees them
for z in g1 g2 g3; do
	run 0 keymgr -c "$C" $z.example list
	contains "$OUT" " KSK ECDSAP256SHA256 " "$z.example has its KSK in KASP"
done
# import of one card key into several zones: the card proves it once
run 0 keymgr -c "$C" g1.example list
gid=$(printf '%s\n' "$OUT" | awk '$3 == "KSK" { print $1 }')
card_knot_conf "$C" g1.example. g2.example. g3.example. h1.example. h2.example.
: > "$PIDS"; : > "$COUNTER"
KHSM_KEYMGR=$TMP/keymgr run 0 "$KNOT_HSM" -c "$C" h1.example h2.example import id="$gid" ksk=yes
equals "$(count sign)" 1 "import of one key into two zones: one self-test signature"
for z in h1 h2; do
	run 0 keymgr -c "$C" $z.example list
	contains "$OUT" "$gid" "$z.example has the imported key in KASP"
done
# one zone alone: one login too, keymgr import-pkcs11 served
: > "$PIDS"; : > "$COUNTER"
KHSM_KEYMGR=$TMP/keymgr run 0 "$KNOT_HSM" -c "$C" g1.example generate zsk=yes
[ "$(logins own)" -eq 1 ] && [ "$(logins keymgr)" -eq 0 ] ||
	fail "generate for one zone: knot-hsm logged in $(logins own) times, keymgr $(logins keymgr)"
pass "generate for one zone: one login"

# A zone's KSK that cannot be made (the card full at the third zone) stops
# the run there, whichever thread was ahead: the zones before it are
# pre-signed, the zone after it gets no KSK and no ZSK-side work; the rerun,
# with room on the card, finishes them.
n=$(private_keys)
card_conf "max_keypairs = $((n + 2))"
onboard_conf no f 4
mkdir -p "$TMP/t"
TMPDIR=$TMP/t run 1 "$KNOT_HSM" -c "$D/knot.conf" $ZONES ceremony until=+30d generate-ksk=yes
for z in f1 f2; do contains "$OUT" "$z.example.: pre-signed " "a full card at f3: $z pre-signed"; done
contains "$ERR" "the card has no room for another key pair" "a full card at f3: said in words"
for z in f3 f4; do lacks "$OUT" "$z.example.: pre-signed " "a full card at f3: $z not pre-signed"; done
lacks "$OUT" "f4.example.: generating" "a full card at f3: no KSK tried for f4"
equals "$(private_keys)" "$((n + 2))" "a full card at f3: two key pairs made"
keymgr -c "$D/knot.conf" f4.example. list > "$TMP/f4.list" 2>&1 || true
equals "$(grep -c ZSK "$TMP/f4.list")" 0 "a full card at f3: no ZSK-side work for f4"
card_conf "max_keypairs = $((n + 10))"
TMPDIR=$TMP/t run 0 "$KNOT_HSM" -c "$D/knot.conf" $ZONES ceremony until=+30d generate-ksk=yes
for z in f3 f4; do contains "$OUT" "$z.example.: pre-signed " "the rerun: $z pre-signed"; done
for z in f1 f2; do contains "$OUT" "$z.example.: skipped" "the rerun: $z skipped (done before)"; done
equals "$(private_keys)" "$((n + 4))" "the rerun: the two missing key pairs made, no more"
