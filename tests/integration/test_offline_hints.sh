#!/bin/sh
# Offline mode (Knot 3.2): the commands knot-hsm suggests work as printed,
# each copied from the output and run. generate on the KSK side asks the ZSK
# side's knotd (the KSK side has none) and names the ceremony with its -c;
# status names the ceremony with -c knot.conf and submitted on the KSK side;
# a ceremony for a zone without a KSK names generate with -c of the KSK side.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/knotd.sh"

card_keystore
PORT=$(free_port)
D=$TMP/knot
mkdir -p "$D/run" "$D/zones" "$D/keys"
zone_files "$D/zones" 2 example.com example.net
CONF=$D/knot.conf
KSKC=$D/knot-hsm-ksk.conf
write_conf() { # $1: extra zone lines, $2: include
	knot_conf "$CONF" rundir="$D/run" listen="$PORT" storage="$D" kasp="$D/keys" log="$D/knotd.log" \
		include="$2" template="    storage: $D/zones
    file: %s.zone
$1" example.com. example.net.
}
write_conf "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy dnskey-ttl=2s zone-max-ttl=2s --write "$D/knot-hsm.conf"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf"
# The suggestion on the line that starts with $1, from $2 on.
suggestion() { printf '%s\n' "$OUT" | grep "$1" | head -n 1 | sed "s/.*\($2\)/\1/"; }
run_suggested() { # command line as printed; knot-hsm is the binary under test
	cmd=$1
	[ -n "$cmd" ] || fail "no suggestion found"
	eval "set -- $(printf '%s' "$cmd" | sed "s|^knot-hsm |\"\$KNOT_HSM\" |")"
	run 0 "$@"
}

# knotd (ZSK side) not running yet: generate on the KSK side says so.
run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
contains "$OUT" "knotd (ZSK side, $CONF): not running; it gets the KSK with the next ceremony: knot-hsm -c $CONF example.com. ceremony" "generate names the ZSK side and its ceremony"

knotd_start "$CONF" "$D/knotd.out"
run 0 "$KNOT_HSM" -c "$KSKC" example.net generate
contains "$OUT" "knotd (ZSK side, $CONF): running;" "generate on the KSK side asks the ZSK side's knotd"
lacks "$OUT" "knotd: not running" "not the KSK side's control socket"
hint=$(suggestion "knotd (ZSK side" "knot-hsm -c .*")
equals "$hint" "knot-hsm -c $CONF example.net. ceremony" "the suggestion has its -c"
run_suggested "$hint"
contains "$OUT" "example.net.: pre-signed " "the suggested ceremony works"

# status: example.com. has no pre-signed set yet; the suggestion works.
run 2 "$KNOT_HSM" -c "$CONF" status example.com
hint=$(suggestion "no pre-signed DNSKEY set" "knot-hsm -c .*")
equals "$hint" "knot-hsm -c $CONF example.com. ceremony" "status names the ceremony with -c"
run_suggested "$hint"
contains "$OUT" "example.com.: pre-signed " "the ceremony status suggests works"
run 0 "$KNOT_HSM" -c "$CONF" status example.com
hint=$(suggestion "DS at parent" "knot-hsm -c .*")
equals "$hint" "knot-hsm -c $KSKC example.com. submitted" "status names submitted on the KSK side"

# ds on the ZSK side finds no KSK: it names the KSK side, and that works.
run 1 "$KNOT_HSM" -c "$CONF" example.com ds
hint=$(printf '%s\n' "$ERR" | grep -o "knot-hsm -c [^;]* ds" | head -n 1)
equals "$hint" "knot-hsm -c $KSKC example.com. ds" "ds on the ZSK side names the KSK side"
run_suggested "$hint"
contains "$OUT" "example.com. DS " "the suggested ds works"
