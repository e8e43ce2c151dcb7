#!/bin/sh
# The keymgr runs of a ceremony or a status over several zones read knot.conf
# cut down to their zone (lib/zoneconf.c): every run of a zone, on both sides
# and card work included, is given /proc/<knot-hsm>/fd/<n> (a memfd) holding that zone's
# entry and no other; the runs that only read KASP (list, dnskey) get a cut
# whose keystores are an empty PEM directory, so that they load no PKCS #11
# module (the card is never opened beside a signature); nothing is left in
# TMPDIR; with catalog zones (an entry names another zone) every run reads
# the whole file, as before.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/run" "$D/zones" "$D/keys" "$TMP/t"
CONF=$D/knot.conf
KSKC=$D/knot-hsm-ksk.conf
ZONES="a.example b.example c.example"
zone_files "$D/zones" 60 $ZONES
conf_write() { # zone lines, include line, more sections
	knot_conf "$CONF" rundir="$D/run" storage="$D" kasp="$D/keys" include="$2" sections="${3:-}" \
		template="    storage: $D/zones
    file: %s.zone
$1" a.example. b.example. c.example.
}
conf_write "" ""
run 0 "$KNOT_HSM" -c "$CONF" $ZONES policy --write "$D/knot-hsm.conf"
conf_write "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf"
for z in $ZONES; do run 0 "$KNOT_HSM" -c "$KSKC" $z generate; done

# A keymgr wrapper records per run: "SUBCOMMAND proc|file ENTRIES ZONE-ENTRY KEYSTORE"
# (ENTRIES: the domain lines of the configuration it was given, ZONE-ENTRY:
# yes when the zone of the run is one of them, KEYSTORE: card when the
# configuration has a pkcs11 keystore, else pem and the directory's entries).
REC=$TMP/runs.rec
keymgr_wrapper "$TMP/keymgr" "$(cat <<SH
case "\$conf" in /proc/[0-9]*/fd/[0-9]*) kind=proc ;; *) kind=file ;; esac
n=\$(grep -c 'domain:' "\$conf")
has=no
grep -qi "domain: \"\\{0,1\}\$zone\\.\\{0,1\}\"\\{0,1\}\$" "\$conf" && has=yes
if grep -q 'backend: "pkcs11"' "\$conf"; then ks=card
else
	d=\$(sed -n 's/^    config: "\(.*\)"\$/\1/p' "\$conf" | head -1)
	ks="pem:\$(ls -A "\$d" 2>/dev/null | wc -l)"
fi
echo "\$sub \$kind \$n \$has \$ks" >> "$REC"
SH
)"
export KHSM_KEYMGR="$TMP/keymgr"
runs() { grep -c "$1" "$REC" || true; }

: > "$REC"
TMPDIR=$TMP/t run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+30d
for z in $ZONES; do contains "$OUT" "$z.: pre-signed " "$z pre-signed"; done
total=$(wc -l < "$REC")
[ "$total" -ge 15 ] || fail "only $total keymgr runs recorded: $(cat "$REC")"
equals "$(runs ' proc 1 yes ')" "$total" "all $total keymgr runs read their zone's entry alone, from a memfd"
for sub in show-offline list pregenerate generate-ksr validate-skr import-skr; do
	[ "$(runs "^$sub proc 1 yes ")" -ge 3 ] || fail "keymgr $sub without its zone's cut: $(cat "$REC")"
done
pass "both sides' runs (list and dnskey on the KSK side, the rest on the ZSK side) are cut"
equals "$(runs '^list proc 1 yes pem:0$')" 3 "list on the KSK side: keyless (an empty PEM directory, no card module)"
equals "$(runs '^dnskey proc 1 yes pem:0$')" 3 "dnskey on the KSK side: keyless"
equals "$(runs '^\(list\|dnskey\) .* card$')" 0 "no list or dnskey run is given the card's keystore"
equals "$(ls -A "$TMP/t")" "" "nothing is left in TMPDIR"

# signer=keymgr: sign-ksr (card work) reads its zone's cut of the KSK side too.
: > "$REC"
TMPDIR=$TMP/t run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+60d signer=keymgr
contains "$OUT" "keymgr sign-ksr per zone" "ceremony signer=keymgr: keymgr signed"
equals "$(runs '^sign-ksr proc 1 yes card$')" 3 "sign-ksr reads its zone's entry alone, with the card, once per zone"
equals "$(runs ' file ')" 0 "no run reads the whole file"

# status over the three zones: its runs (both sides) read their zone's cut.
: > "$REC"
"$KNOT_HSM" -c "$CONF" status > "$TMP/status.out" 2>&1 || true
for z in $ZONES; do contains "$(cat "$TMP/status.out")" "$z." "status reports $z"; done
[ "$(wc -l < "$REC")" -ge 6 ] || fail "status ran keymgr $(wc -l < "$REC") times: $(cat "$TMP/status.out")"
equals "$(runs ' proc 1 yes ')" "$(wc -l < "$REC")" "every keymgr run of status reads its zone's entry alone"
[ "$(runs '^list proc 1 yes pem:0$')" -ge 6 ] || fail "status's list runs are not keyless: $(cat "$REC")"
equals "$(runs '^\(list\|dnskey\) .* card$')" 0 "status's list runs (both sides) are keyless"

# Catalog zones in knot.conf: c.example. is a member of cat.example., whose
# entry the member's needs; the ZSK side's runs read the whole file.
zone_files "$D/zones" 60 cat.example
conf_write "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf"
python3 - "$CONF" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
s = s.replace("  - domain: c.example.\n", "  - domain: c.example.\n    catalog-role: member\n    catalog-zone: cat.example.\n")
s += "  - domain: cat.example.\n    catalog-role: generate\n    dnssec-signing: off\n"
open(p, "w").write(s)
PY
run 0 knotc -c "$CONF" conf-check
: > "$REC"
TMPDIR=$TMP/t run 0 "$KNOT_HSM" -c "$CONF" $ZONES ceremony until=+90d
for z in $ZONES; do contains "$OUT" "$z.: pre-signed " "with catalog zones: $z pre-signed"; done
equals "$(grep -E '^(show-offline|pregenerate|generate-ksr|validate-skr|import-skr) proc' "$REC" | wc -l)" 0 \
	"with catalog zones no ZSK-side run is given a cut"
equals "$(runs '^list proc 1 yes pem:0$')" 3 "the KSK side (no catalog zones) still is, keyless"
[ "$(runs '^show-offline file 4 yes ')" -ge 3 ] || fail "show-offline runs on the whole file: $(cat "$REC")"
pass "the ZSK side's runs read the whole knot.conf (4 zones)"
