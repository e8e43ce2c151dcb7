#!/bin/sh
# knot-hsm policy on Knot 3.2.6: offline by default, online refused with the
# reason; options in Knot's time units only; the rendered pieces pass knotc
# conf-check before anything is written; only files knot-hsm owns are
# written (marker line, atomically, 0640); a check failure writes nothing;
# shared-ksk gives the zones one card KSK.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/keys"
CONF=$D/knot.conf
write_conf() { # $1: zone policy lines, $2: include, $3: more
	cat > "$CONF" <<CONF
server:
    rundir: $D
database:
    storage: $D
    kasp-db: $D/keys
$stanza
$3
$2
template:
  - id: default
$1
zone:
  - domain: example.com.
  - domain: example.net.
CONF
}
write_conf "    storage: $D" "" ""

# To stdout: both files, the arithmetic, nothing written.
run 0 "$KNOT_HSM" -c "$CONF" Example.COM example.net policy
contains "$OUT" "# ==> $D/knot-hsm.conf <==
# Written by knot-hsm policy; do not edit" "include shown with its marker"
contains "$OUT" "# ==> $D/knot-hsm-ksk.conf <==" "KSK side shown, next to knot.conf"
contains "$OUT" "    offline-ksk: on" "offline-ksk on"
contains "$OUT" "    manual: on" "manual on"
contains "$OUT" "    zsk-lifetime: 30d" "default ZSK lifetime"
contains "$OUT" "    dnskey-ttl: 1h" "explicit dnskey-ttl"
contains "$OUT" "    zone-max-ttl: 1d" "explicit zone-max-ttl"
contains "$OUT" "  - domain: example.com.
    dnssec-policy: knot-hsm-ksk" "zone normalised on the KSK side"
contains "$OUT" "# card signatures per zone and year: 70" "signatures per zone-year"
contains "$OUT" "# longest card outage survived: 80 days" "outage survived"
[ ! -e "$D/knot-hsm.conf" ] && [ ! -e "$D/knot-hsm-ksk.conf" ] || fail "policy without --write wrote a file"
pass "nothing written without --write"

# Options: Knot's units only; refusals explained.
run 0 "$KNOT_HSM" -c "$CONF" example.com policy zsk-lifetime=7d rrsig-lifetime=2d rrsig-refresh=36h algorithm=ecdsap384sha384
contains "$OUT" "    zsk-lifetime: 7d" "zsk-lifetime option"
contains "$OUT" "    rrsig-refresh: 36h" "rrsig-refresh option"
contains "$OUT" "    algorithm: ecdsap384sha384" "algorithm option"
run 2 "$KNOT_HSM" -c "$CONF" example.com policy zsk-lifetime=1w
contains "$ERR" "unknown unit 'w'; Knot's units are s, m, h and d" "week unit refused"
run 2 "$KNOT_HSM" -c "$CONF" example.com policy rrsig-refresh=-1d
contains "$ERR" "is not a duration" "negative refused"
run 2 "$KNOT_HSM" -c "$CONF" example.com policy ksk-lifetime=1d
contains "$ERR" "'policy' does not take 'ksk-lifetime='" "unknown option refused"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy rrsig-refresh=30d
contains "$ERR" "is not below rrsig-lifetime" "refresh above lifetime refused"
run 2 "$KNOT_HSM" -c "$CONF" example.com policy shared-ksk=on
contains "$ERR" "shared-ksk= takes yes or no" "shared-ksk takes yes/no"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy mode=online
contains "$ERR" "online mode needs Knot 3.5 or later (installed: 3.2)" "online refused on 3.2 with the reason"
run 1 "$KNOT_HSM" -c "$CONF" example.org policy
contains "$ERR" "zone example.org. is not in $CONF" "unknown zone refused"
# A short test policy gets an rrsig-pre-refresh that fits...
run 0 "$KNOT_HSM" -c "$CONF" example.com policy zsk-lifetime=40s rrsig-lifetime=60s rrsig-refresh=20s dnskey-ttl=2s zone-max-ttl=2s propagation-delay=2s
contains "$OUT" "    rrsig-pre-refresh: 10s" "pre-refresh fitted for Knot"

# --write: both files, marker first, 0640, KASP directory of the KSK side,
# which (as root) gets the owner of its parent, as knot owns /var/lib/knot.
[ "$(id -u)" = 0 ] && chown nobody "$D"
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy --write "$D/knot-hsm.conf"
equals "$(stat -c %U "$D/knot-hsm-ksk")" "$(stat -c %U "$D")" "KSK-side KASP owned like its parent"
[ "$(id -u)" = 0 ] && chown root "$D"
contains "$OUT" "wrote $D/knot-hsm.conf (ZSK side, for knotd)" "include written"
contains "$OUT" "wrote $D/knot-hsm-ksk.conf (KSK side, for the ceremony; KASP $D/knot-hsm-ksk)" "KSK side written"
contains "$OUT" "add to $CONF, before its zone section: include: $D/knot-hsm.conf" "include step named"
contains "$OUT" "zone example.com.: set dnssec-signing: on and dnssec-policy: knot-hsm" "zone step named"
contains "$OUT" "KSK on the card, per zone without one: knot-hsm -c $D/knot-hsm-ksk.conf ZONE generate" "generate step on the KSK side"
contains "$OUT" "then: knot-hsm -c $CONF ZONE... ceremony" "ceremony step with the -c given"
equals "$(head -n 1 "$D/knot-hsm.conf")" "# Written by knot-hsm policy; do not edit" "marker line"
equals "$(stat -c %a "$D/knot-hsm.conf") $(stat -c %a "$D/knot-hsm-ksk.conf")" "640 640" "mode 0640"
[ -d "$D/knot-hsm-ksk" ] || fail "KSK-side KASP directory not created"
pass "KSK-side KASP directory created"
run 0 knotc -c "$D/knot-hsm-ksk.conf" conf-check
# The operator includes it; a rerun replaces it in place (checked against
# knot.conf with the new text instead of the old, no duplicate ids).
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: knot-hsm.conf" ""
run 0 knotc -c "$CONF" conf-check
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy zsk-lifetime=20d --write "$D/knot-hsm.conf"
lacks "$OUT" "add to $CONF" "already included: no include step"
lacks "$OUT" "zone example.com.: set" "zones already on the policy"
contains "$(cat "$D/knot-hsm.conf")" "    zsk-lifetime: 20d" "rewritten in place"
run 0 knotc -c "$CONF" conf-check

# Never clobber the operator's file; --force does.
write_conf "    storage: $D" "" ""
printf 'policy:\n  - id: mine\n' > "$TMP/mine.conf"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$TMP/mine.conf"
contains "$ERR" "was not written by knot-hsm" "operator's file refused"
equals "$(cat "$TMP/mine.conf")" "policy:
  - id: mine" "operator's file untouched"
[ ! -e "$TMP/mine-ksk.conf" ] || fail "KSK side written although the include was refused"
printf '# mine\n' > "$TMP/other-ksk.conf"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$TMP/other.conf"
contains "$ERR" "$TMP/other-ksk.conf exists and was not written by knot-hsm" "operator's KSK-side file refused"
[ ! -e "$TMP/other.conf" ] || fail "include written although its KSK side was refused"
pass "nothing written when one file is refused"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy --write "$TMP/mine.conf" --force
equals "$(head -n 1 "$TMP/mine.conf")" "# Written by knot-hsm policy; do not edit" "--force overwrites"

# A rendering knotc refuses is not written: here knot.conf already has a
# policy with knot-hsm's id, and does not include knot-hsm's file.
write_conf "    storage: $D" "" "policy:
  - id: knot-hsm"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$TMP/new.conf"
contains "$ERR" "knotc conf-check refuses the rendered configuration" "conf-check failure reported"
contains "$ERR" "duplicate identifier" "with knotc's reason"
[ ! -e "$TMP/new.conf" ] && [ ! -e "$TMP/new-ksk.conf" ] || fail "a refused rendering was written"
pass "a refused rendering is not written"

# No card keystore, or two: explained.
stanza_saved=$stanza
stanza=""
write_conf "    storage: $D" "" ""
run 1 "$KNOT_HSM" -c "$CONF" example.com policy
contains "$ERR" "has no pkcs11 keystore for the card" "no card keystore explained"
stanza="$stanza_saved
  - id: card2
    backend: pkcs11
    config: \"pkcs11:token=other /usr/lib/none.so\""
write_conf "    storage: $D" "" ""
run 1 "$KNOT_HSM" -c "$CONF" example.com policy
contains "$ERR" "several pkcs11 keystores; name one with keystore=ID" "two keystores: asks"
run 0 "$KNOT_HSM" -c "$CONF" example.com policy keystore=card
contains "$OUT" "    keystore: card" "keystore= picks one"
stanza=$stanza_saved

# shared-ksk=yes: the ceremony makes one card KSK and shares it.
write_conf "    storage: $D" "" ""
rm -f "$D/knot-hsm.conf" "$D/knot-hsm-ksk.conf"
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy shared-ksk=yes --write "$D/knot-hsm.conf"
contains "$(cat "$D/knot-hsm-ksk.conf")" "# knot-hsm: shared-ksk=yes" "shared-ksk recorded for the ceremony"
write_conf "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $D/knot-hsm.conf" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net ceremony until=+2d generate-ksk=yes
contains "$OUT" "example.com.: generating the KSK on the card" "first zone generates"
contains "$OUT" "example.net.: sharing the KSK on the card" "second zone shares"
com=$(keymgr -c "$D/knot-hsm-ksk.conf" example.com. list | awk '$3 == "KSK" { print $1 }')
net=$(keymgr -c "$D/knot-hsm-ksk.conf" example.net. list | awk '$3 == "KSK" { print $1 }')
[ -n "$com" ] || fail "no KSK for example.com."
equals "$net" "$com" "one KSK for both zones"

# Planted links and odd files at the outputs: refused, even with --force, and
# nothing is written through them; the link itself stays.
write_conf "    storage: $D" "" ""
S=$TMP/planted
mkdir -p "$S"
printf '# Written by knot-hsm policy; do not edit\nvictim\n' > "$TMP/victim.conf"
ln -s "$TMP/victim.conf" "$S/link.conf"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$S/link.conf"
contains "$ERR" "$S/link.conf is a symbolic link; knot-hsm never writes through a link" "a link at the include refused"
[ -L "$S/link.conf" ] || fail "the planted link was replaced"
equals "$(cat "$TMP/victim.conf")" "# Written by knot-hsm policy; do not edit
victim" "the link's target untouched"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$S/link.conf" --force
contains "$ERR" "is a symbolic link" "a link refused with --force too"
ln -s "$TMP/victim.conf" "$S/side-ksk.conf"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$S/side.conf"
contains "$ERR" "$S/side-ksk.conf is a symbolic link" "a link at the KSK side refused"
[ ! -e "$S/side.conf" ] || fail "include written although its KSK side is a link"
pass "nothing written when the KSK side is a link"
ln -s "$TMP/nowhere" "$S/dangling.conf"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$S/dangling.conf"
contains "$ERR" "is a symbolic link" "a dangling link refused"
[ ! -e "$TMP/nowhere" ] || fail "a file was created through a dangling link"
mkdir "$S/dir.conf"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$S/dir.conf" --force
contains "$ERR" "$S/dir.conf exists and is not a regular file" "a directory at the include refused"
mkfifo "$S/fifo.conf"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$S/fifo.conf" --force
contains "$ERR" "$S/fifo.conf exists and is not a regular file" "a FIFO at the include refused"
# The KSK-side KASP directory planted as a link to another directory.
mkdir "$TMP/elsewhere"
ln -s "$TMP/elsewhere" "$S/kasp-link"
run 1 "$KNOT_HSM" -c "$CONF" example.com policy --write "$S/ok.conf" ksk-kasp-db="$S/kasp-link"
contains "$ERR" "$S/kasp-link is not a directory (a symbolic link)" "a link as KSK-side KASP refused"
[ ! -e "$S/ok.conf" ] && [ ! -e "$S/ok-ksk.conf" ] || fail "written although the KASP directory is a link"
pass "nothing written when the KASP directory is a link"
# A clean run there: regular files, 0640, no temporary file left; as root
# the group of the directory, given through the descriptor.
[ "$(id -u)" = 0 ] && chgrp nogroup "$S"
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy --write "$S/ok.conf"
[ -f "$S/ok.conf" ] && [ ! -L "$S/ok.conf" ] && [ -f "$S/ok-ksk.conf" ] || fail "outputs not regular files"
equals "$(stat -c %a "$S/ok.conf") $(stat -c %a "$S/ok-ksk.conf")" "640 640" "outputs 0640"
equals "$(stat -c %G "$S/ok.conf")" "$(stat -c %G "$S")" "outputs have the directory's group"
equals "$(ls -A "$S" | grep -c '^\.')" "0" "no temporary file left"

# The guard by default: a guard configuration naming the card's module puts
# the card keystore through the guard; guard=no keeps it out; without one,
# or with the shipped file (all commented out), it stays out with a note.
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"
write_conf "    storage: $D" "" ""
GC=$TMP/guard.conf
printf 'module = %s\naudit_log = %s\n' "$SOFTHSM_MODULE" "$TMP/audit.log" > "$GC"
run 0 env KHSM_GUARD_CONF=$GC "$KNOT_HSM" -c "$CONF" example.com policy
contains "$OUT" " $KHSM_GUARD_MODULE\"" "guard configuration present: the card keystore goes through the guard"
lacks "$ERR" "note: the card keystore does not go through the guard" "guard configuration present: no note"
run 0 env KHSM_GUARD_CONF=$GC "$KNOT_HSM" -c "$CONF" example.com policy guard=no
lacks "$OUT" "$KHSM_GUARD_MODULE" "guard=no: the card keystore does not go through the guard"
lacks "$ERR" "note: the card keystore does not go through the guard" "guard=no: no note"
run 0 env KHSM_GUARD_CONF=$TMP/none.conf "$KNOT_HSM" -c "$CONF" example.com policy
lacks "$OUT" "$KHSM_GUARD_MODULE" "no guard configuration: the card keystore does not go through the guard"
contains "$ERR" "note: the card keystore does not go through the guard (no guard configuration at $TMP/none.conf" \
	"no guard configuration: the note says why"
contains "$ERR" "; knot-hsm keystore --token 'SmartCard-HSM (UserPIN)' --pin-file $PINF --guard sets the guard up in one step" \
	"no guard configuration: the note names the one step"
run 0 env KHSM_GUARD_CONF=$KHSM_SRCDIR/samples/knot-hsm-guard.conf "$KNOT_HSM" -c "$CONF" example.com policy
lacks "$OUT" "$KHSM_GUARD_MODULE" "the shipped, commented-out guard configuration does not count"
contains "$ERR" "note: the card keystore does not go through the guard" "shipped guard configuration: the note"
printf 'module = /usr/lib/other-pkcs11.so\naudit_log = %s\n' "$TMP/audit.log" > "$GC"
run 0 env KHSM_GUARD_CONF=$GC "$KNOT_HSM" -c "$CONF" example.com policy
lacks "$OUT" "$KHSM_GUARD_MODULE" "a guard configuration naming another module does not count"
