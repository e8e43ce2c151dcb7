#!/bin/sh
# keymgr children that do card work (sign-ksr of a ceremony signer=keymgr,
# delete) run while knot-hsm holds the card lock
# (KHSM_LOCK_FILE, flock LOCK_EX): a keymgr wrapper in front (KHSM_KEYMGR)
# tries a shared flock without waiting and records, per subcommand, whether
# the lock was held. The ceremony's KSK-side list and dnskey (keymgr opens the
# card keystore for them too) are held; control: the ZSK side's keymgr
# children (PEM keys) run without it, so the probe tells the two apart.
# import-pkcs11 of import reaches the card only through the card knot-hsm
# serves (its keystore is p11-kit-client.so), whose every call takes the
# lock (unit.serve): the run itself holds none, and the card signs on.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
D=$TMP/knot
mkdir -p "$D/run" "$D/zones" "$D/keys"
CONF=$D/knot.conf
KSKC=$D/knot-hsm-ksk.conf
zone_files "$D/zones" 60 example.com example.net
conf_write() { # zone lines, include line
	knot_conf "$CONF" rundir="$D/run" storage="$D" kasp="$D/keys" include="$2" template="    storage: $D/zones
    file: %s.zone
$1" example.com. example.net.
}
conf_write "" ""
run 0 "$KNOT_HSM" -c "$CONF" example.com example.net policy --write "$D/knot-hsm.conf"
conf_write "    dnssec-signing: on
    dnssec-policy: knot-hsm" "$D/knot-hsm.conf"
run 0 knotc -c "$CONF" conf-check

REC=$TMP/lock.rec
cat > "$TMP/keymgr" <<SH
#!/bin/sh
sub=
for a; do case "\$a" in sign-ksr|import-pkcs11|delete|list|dnskey|pregenerate) sub=\$a; break;; esac; done
if [ ! -e "$KHSM_LOCK_FILE" ]; then state=free
elif flock -n -s "$KHSM_LOCK_FILE" true; then state=free
else state=held; fi
conf= prev=
for a; do [ "\$prev" = -c ] && conf=\$a; prev=\$a; done
ks=own
if [ -n "\$conf" ] && grep -q 'p11-kit-client' "\$conf" 2>/dev/null; then ks=client; fi
echo "\${sub:-other} \$state \$ks" >> "$REC"
exec keymgr "\$@"
SH
chmod +x "$TMP/keymgr"
export KHSM_KEYMGR="$TMP/keymgr"

# state SUB: what the wrapper saw for keymgr SUB (all runs so far; one word
# when they agree).
state() { awk -v s="$1" '$1 == s { print $2 }' "$REC" | sort -u | tr '\n' ' ' | sed 's/ $//'; }
# keystore SUB: whether those runs' keymgr reached the card on its own or
# through p11-kit's client (the card knot-hsm serves).
keystore() { awk -v s="$1" '$1 == s { print $3 }' "$REC" | sort -u | tr '\n' ' ' | sed 's/ $//'; }

: > "$REC"
run 0 "$KNOT_HSM" -c "$KSKC" example.com generate
: > "$REC"
run 0 "$KNOT_HSM" -c "$CONF" example.com ceremony until=+5d signer=keymgr
contains "$OUT" "keymgr sign-ksr per zone" "ceremony signer=keymgr: keymgr signed"
equals "$(state sign-ksr)" held "ceremony signer=keymgr: keymgr sign-ksr runs inside knot-hsm's card lock"
# keymgr opens the KSK side's card keystore to list keys or print a DNSKEY too:
# the ceremony runs those inside the lock, never beside a signature.
equals "$(state list)" held "ceremony: the KSK side's keymgr list runs inside the card lock"
equals "$(state dnskey)" held "ceremony: the KSK side's keymgr dnskey runs inside the card lock"
# The control: keymgr children of the ZSK side (PEM keys, no card) run without it.
[ -n "$(state pregenerate)" ] || fail "no keymgr pregenerate child recorded: $(cat "$REC")"
equals "$(state pregenerate)" free "ceremony: the ZSK side's keymgr pregenerate runs without the card lock"

keygen_p11tool "$LABEL" "spare ksk" 5a5a
run 0 "$KNOT_HSM" -c "$KSKC" example.net import id=5a5a publish=+1000d active=+1000d
equals "$(keystore import-pkcs11)" client "import: keymgr import-pkcs11 reaches the card through the card knot-hsm serves"
equals "$(state import-pkcs11)" free "import: keymgr import-pkcs11 runs without the card lock (each served call takes it)"
equals "$(keystore sign-ksr)" own "control: keymgr sign-ksr opens the card keystore itself"

run 0 "$KNOT_HSM" -c "$KSKC" example.net delete id=5a5a
contains "$OUT" "deleted KSK" "delete: deleted"
equals "$(state delete)" held "delete: keymgr delete runs inside knot-hsm's card lock"

