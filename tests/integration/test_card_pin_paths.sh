#!/bin/sh
# Every command that can make the card check a PIN, on cardsim (3 tries, a
# counter file that logs each C_Login):
#  - a wrong PIN costs exactly ONE try (one `login fail`, nothing else), and
#    the message says "wrong PIN", never "busy";
#  - at the final try nothing logs in (0 logins), and the refusal names --force;
#  - at the final try, --force with the right PIN works;
#  - a locked PIN is never tried, even with --force, and the message says so.
# Paths: keystore, uri, doctor, keys, generate, import, delete (lib/keydelete.c),
# rollover (lib/rollover.c: its first step makes a new KSK on the card),
# standby (lib/standby.c: a KSK on a second keystore), and the ceremony
# signed by knot-hsm (signer=card, PIN from the KSK side's pin-source or from
# --pin-fd) or by keymgr sign-ksr (signer=keymgr: knot-hsm logs in first, so
# keymgr never runs with a wrong PIN or at the final try). Also: a skipped
# ceremony does not log in; a busy card at the start of a ceremony is waited
# for without a login (then one try); two keystores of one card in knot.conf
# cost doctor and keys one try, not two.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"

card_conf "pin_tries = 3"
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card
stanza=$OUT
C=$TMP/knot.conf
card_knot_conf "$C" example.com. example.net.
# A key pair made outside knot-hsm (for import and uri).
pkcs11-tool --module "$CARDSIM" --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 \
	--label outside >/dev/null 2>&1 || fail "pkcs11-tool keygen through cardsim"

# The offline-KSK pair for the ceremony: a ZSK side (no knotd) and the KSK
# side `policy --write` renders next to it, with a KSK on the card per zone.
O=$TMP/o
mkdir -p "$O/run" "$O/zones" "$O/keys"
CONF=$O/knot.conf
KSKC=$O/knot-hsm-ksk.conf
zone_files "$O/zones" 60 example.org example.info
# card2: a second keystore id for the same cardsim token, for standby (it
# must name another keystore than the signing KSK's; the PIN path is the same)
stanza_o="$stanza
$(printf '%s\n' "$stanza" | sed '1{/^keystore:$/d}' | sed 's/- id: card$/- id: card2/')"
conf_write() { # zone lines, include line
	knot_conf "$CONF" rundir="$O/run" storage="$O" kasp="$O/keys" stanza="$stanza_o" include="${2#include: }" template="    storage: $O/zones
    file: %s.zone
$1" example.org. example.info.
}
conf_write "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.org example.info policy keystore=card --write "$O/knot-hsm.conf"
conf_write "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $O/knot-hsm.conf"
run 0 knotc -c "$CONF" conf-check
for z in example.org example.info; do
	run 0 "$KNOT_HSM" -c "$KSKC" $z generate
done
# The KSK side without pin-source: the PIN comes from --pin-fd.
KSKNP=$TMP/ksk-nopin.conf
sed 's|;pin-source=[^ "]*||' "$KSKC" > "$KSKNP"
lacks "$(cat "$KSKNP")" "pin-source" "the --pin-fd KSK side has no pin-source"

(umask 077; printf '%s' 000000 > "$TMP/wrong.pin"; cp "$TMP/card.pin" "$TMP/right.pin")
# use_pin wrong|right: what every pin-source above (card.pin) holds.
use_pin() { cp "$TMP/$1.pin" "$TMP/card.pin"; }

# The commands, each with "$@" (--force or nothing) among its options.
c_keystore() { "$KNOT_HSM" keystore "$@" --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin"; }
c_uri() { "$KNOT_HSM" uri "$@" --module "$CARDSIM" --token "$CARD_LABEL" --object outside --type private \
	--pin-file "$TMP/card.pin"; }
c_doctor() { "$KNOT_HSM" doctor "$@" -c "$C"; }
c_keys() { "$KNOT_HSM" -c "$C" "$@" keys; }
c_generate() { "$KNOT_HSM" -c "$C" "$@" example.com generate; }
c_import() { "$KNOT_HSM" -c "$C" "$@" example.net import label=outside; }
c_ceremony_card() { "$KNOT_HSM" -c "$CONF" "$@" example.org ceremony until=+5d; }
c_ceremony_fd() { "$KNOT_HSM" -c "$CONF" "$@" --pin-fd 3 example.org ceremony until=+30d ksk-conf="$KSKNP" 3<"$TMP/card.pin"; }
c_standby() { "$KNOT_HSM" -c "$CONF" "$@" example.org standby keystore=card2; }
c_ceremony_keymgr() { "$KNOT_HSM" -c "$CONF" "$@" example.info ceremony until=+5d signer=keymgr; }

# check NAME: the four cases for command c_NAME.
check() {
	cmd=c_$1
	# -- a wrong PIN, three tries left: one try spent, said in words --
	card_tries 3
	use_pin wrong
	: > "$COUNTER"
	run 1 $cmd
	use_pin right
	equals "$(count "login fail")" 1 "$1: a wrong PIN costs exactly one try"
	equals "$(count "login ok")" 0 "$1: and nothing else logs in"
	contains "$OUT$ERR" "wrong PIN" "$1: the message says wrong PIN"
	contains "$OUT$ERR" "it was not retried" "$1: and that it was not retried"
	contains "$OUT$ERR" "few tries left" "$1: and that few tries are left"
	lacks "$OUT$ERR" "busy" "$1: not a busy card"
	# -- the final try: no login without --force, even with the right PIN --
	card_tries 1
	: > "$COUNTER"
	run 1 $cmd
	equals "$(count login)" 0 "$1: no login at the final try"
	contains "$OUT$ERR" "final" "$1: the final try is named"
	contains "$OUT$ERR" "--force" "$1: --force is named"
	# -- locked: never tried, even with --force --
	card_tries 0
	: > "$COUNTER"
	run 1 $cmd --force
	equals "$(count login)" 0 "$1: a locked PIN is never tried, even with --force"
	contains "$OUT$ERR" "locked" "$1: the PIN is said to be locked"
	contains "$OUT$ERR" "SO-PIN" "$1: the SO-PIN unblock is named"
	# -- the final try with --force and the right PIN: works --
	card_tries 1
	: > "$COUNTER"
	run 0 $cmd --force
	equals "$(count "login fail")" 0 "$1: --force at the final try with the right PIN: no failed login"
	[ "$(count "login ok")" -ge 1 ] || fail "$1: --force at the final try: nobody logged in"
	equals "$(card_tries)" 3 "$1: --force with the right PIN works and resets the counter"
	lacks "$OUT$ERR" "$PIN" "$1: no PIN in any output"
}

check keystore
check uri
check doctor
check keys
check generate
check import
check ceremony_card
contains "$OUT" "example.org.: pre-signed " "ceremony signer=card: pre-signed with --force"
equals "$(count "login ok")" 1 "ceremony signer=card: one login for the run"
check ceremony_fd
contains "$OUT" "example.org.: pre-signed " "ceremony --pin-fd: pre-signed with --force"
check ceremony_keymgr
contains "$OUT" "example.info.: pre-signed " "ceremony signer=keymgr: pre-signed with --force"
contains "$OUT" "keymgr sign-ksr per zone" "ceremony signer=keymgr: keymgr signed"
# knot-hsm's check login and keymgr sign-ksr's own.
equals "$(count "login ok")" 2 "ceremony signer=keymgr: knot-hsm logs in once before keymgr does"
check standby
contains "$OUT" "example.org.: standby KSK " "standby: made with --force"

# A ceremony with nothing to sign does not use the card at all.
: > "$COUNTER"
run 0 "$KNOT_HSM" -c "$CONF" example.org ceremony until=+5d
contains "$OUT" "example.org.: skipped" "a rerun skips the zone"
equals "$(count login)" 0 "a skipped ceremony does not log in"

# A busy card at the start of a ceremony (busy = fail: CKR_DEVICE_ERROR while
# another program holds it) is waited for without logging in, then knot-hsm
# logs in once: a wrong PIN still costs one try, a right one logs in once.
# The other program holds the card until knot-hsm says it waits for it.
card_conf "pin_tries = 3" "busy = fail"
for pin in wrong right; do
	card_tries 3
	use_pin $pin
	: > "$COUNTER"
	: > "$TMP/busy.err"
	flock "$CARD_LOCK" sh -c 'i=0; until grep -q "note: card busy while" "$1"; do
		i=$((i + 1)); [ $i -le 1200 ] || exit 1; sleep 0.05; done' sh "$TMP/busy.err" &
	holder=$!
	until ! flock -n "$CARD_LOCK" true; do sleep 0.01; done   # held
	set +e
	"$KNOT_HSM" -c "$CONF" example.org ceremony until=+60d > "$TMP/busy.out" 2> "$TMP/busy.err"
	rc=$?
	set -e
	wait "$holder" || fail "busy card, $pin PIN: knot-hsm never said it waits for the card"
	use_pin right
	OUT=$(cat "$TMP/busy.out"); ERR=$(cat "$TMP/busy.err")
	contains "$ERR" "note: card busy while reaching the card before the login" "busy card, $pin PIN: waited for before the login"
	if [ $pin = wrong ]; then
		equals "$rc" 1 "busy card, wrong PIN: the ceremony fails"
		equals "$(count "login fail")" 1 "busy card, wrong PIN: exactly one try"
		equals "$(count "login ok")" 0 "busy card, wrong PIN: nothing else logs in"
		contains "$ERR" "wrong PIN" "busy card, wrong PIN: said"
		lacks "$(printf '%s\n' "$ERR" | grep '^error:')" "busy" "busy card, wrong PIN: the error is not a busy card"
	else
		equals "$rc" 0 "busy card, right PIN: the ceremony succeeds"
		equals "$(count "login ok")" 1 "busy card, right PIN: one login"
		equals "$(count "login fail")" 0 "busy card, right PIN: no failed login"
		contains "$OUT" "example.org.: pre-signed " "busy card, right PIN: pre-signed"
	fi
done

# Two keystores of the same card in one knot.conf: doctor and keys check
# both, yet a wrong PIN costs one try for the command, not one per keystore.
card_conf "pin_tries = 3"
card_tries 3
run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card2
C2=$TMP/knot2.conf
{
	printf 'server:\n    rundir: %s\ndatabase:\n    kasp-db: %s/kasp2\n' "$TMP" "$TMP"
	printf '%s\n' "$stanza"
	printf '%s\n' "$OUT" | grep -v '^keystore:'
	printf 'policy:\n  - id: card\n    keystore: card\n    manual: on\n'
	printf '  - id: card2\n    keystore: card2\n    manual: on\n'
	printf 'zone:\n  - domain: example.com.\n    dnssec-policy: card\n'
	printf '  - domain: example.net.\n    dnssec-policy: card2\n'
} > "$C2"
run 0 knotc -c "$C2" conf-check
for cmd in doctor keys; do
	card_tries 3
	use_pin wrong
	: > "$COUNTER"
	if [ $cmd = doctor ]; then run 1 "$KNOT_HSM" doctor -c "$C2"; else run 1 "$KNOT_HSM" -c "$C2" keys; fi
	use_pin right
	equals "$(count "login fail")" 1 "two keystores, $cmd: a wrong PIN costs one try for the command"
	equals "$(count "login ok")" 0 "two keystores, $cmd: nothing else logs in"
	contains "$OUT$ERR" "wrong PIN" "two keystores, $cmd: wrong PIN said"
	[ $cmd = keys ] || contains "$OUT" "a PIN was already refused in this run" "two keystores, doctor: the second is not tried, said"
done
run 0 "$KNOT_HSM" doctor -c "$C2"
contains "$OUT" "ok    keystore card2: login: one login through GnuTLS succeeded" "two keystores, right PIN: both checked"

# delete id=… (lib/keydelete.c) and rollover (lib/rollover.c, whose first
# step generates the new KSK on the card): the same four cases. The key to
# delete has timers far ahead (deletable), in a zone of its own (a second
# KSK beside an active one is refused); it is gone after the --force case.
card_conf "pin_tries = 3"
card_tries 3
C3=$TMP/knot3.conf
card_knot_conf "$C3" example.edu.
run 0 "$KNOT_HSM" -c "$C3" example.edu generate publish=+1000d active=+1000d
spare=$(printf '%s\n' "$OUT" | sed -n 's/^key id: //p')
[ -n "$spare" ] || fail "generate printed no key id: $OUT"
c_delete() { "$KNOT_HSM" -c "$C3" "$@" example.edu delete id="$spare"; }
c_rollover() { "$KNOT_HSM" -c "$CONF" "$@" example.info rollover; }
check delete
contains "$OUT" "deleted KSK $spare" "delete: deleted with --force at the final try"
check rollover
contains "$OUT" "example.info.: step published" "rollover: the new KSK generated with --force at the final try"
