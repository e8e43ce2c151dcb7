# Offline-KSK ceremony fixture on the real card stack (source after lib.sh,
# knotd.sh and tests/integration/smartcard.sh, once sc_start ran; or with
# SC_LABEL set and SC_LOG empty on a SoftHSM token): a ZSK-side
# knot.conf with the emulated card's keystore, the knot-hsm policy rendered by
# `knot-hsm policy --write` and its KSK side, the KSKs made on the card.
#
# sc_offline_conf DIR PORT ZONE...: sets CONF and KSKC (PORT 0: no listen).
# sc_anchor ZONE: $TMP/ZONE.anchor, delv's trust anchor from `knot-hsm ds`.
# sc_validate LABEL PORT ZONE...: delv validates www.ZONE A and ZONE DNSKEY.
# sc_zsks ZONE / sc_ksks ZONE: key counts in the ZSK side's / KSK side's KASP.

SC_PINF=$TMP/card.pin
pin_file "$SC_PINF"
run 0 "$KNOT_HSM" keystore --token "$SC_LABEL" --pin-file "$SC_PINF" --id card
sc_stanza=$OUT

sc_offline_conf() {
	oc_dir=$1; oc_port=$2; shift 2
	mkdir -p "$oc_dir/run" "$oc_dir/zones" "$oc_dir/keys"
	CONF=$oc_dir/knot.conf
	KSKC=$oc_dir/knot-hsm-ksk.conf
	zone_files "$oc_dir/zones" 60 "$@"
	oc_write() { # zone lines, include line, zones
		oc_zl=$1; oc_inc=$2; shift 2
		{
			printf 'server:\n    rundir: %s/run\n' "$oc_dir"
			[ "$oc_port" = 0 ] || printf '    listen: 127.0.0.1@%s\n' "$oc_port"
			printf 'database:\n    storage: %s\n    kasp-db: %s/keys\n' "$oc_dir" "$oc_dir"
			printf 'log:\n  - target: %s/knotd.log\n    any: info\n' "$oc_dir"
			printf '%s\n%s\n' "$sc_stanza" "$oc_inc"
			printf 'template:\n  - id: default\n    storage: %s/zones\n    file: %%s.zone\n%s\nzone:\n' \
				"$oc_dir" "$oc_zl"
			for z; do printf '  - domain: %s.\n' "$z"; done
		} > "$CONF"
	}
	oc_write "" "" "$@"
	run 0 "$KNOT_HSM" -c "$CONF" "$@" policy --write "$oc_dir/knot-hsm.conf"
	[ -f "$KSKC" ] || fail "policy --write made no KSK side $KSKC"
	contains "$(cat "$KSKC")" "keystore: card" "$oc_dir: the KSK side signs with the card keystore"
	oc_write "    dnssec-signing: on
    dnssec-policy: knot-hsm" "include: $oc_dir/knot-hsm.conf" "$@"
	run 0 knotc -c "$CONF" conf-check
	# All the KSKs in one run: one PIN verification on the card for them
	# all, keymgr import-pkcs11 included (it reaches the card through the
	# run's p11-kit socket, lib/serve.h).
	g0=$(sc_log_count_prefix "generate ")
	v0=$(sc_log_count_prefix "verify ok")
	run 0 "$KNOT_HSM" -c "$KSKC" "$@" generate
	for z; do contains "$OUT" "$z. DNSKEY 257 3 13 " "KSK of $z generated"; done
	if [ -n "$SC_LOG" ]; then
		equals "$(sc_log_count_prefix "generate ")" $((g0 + $#)) "the $# KSK(s) were made by the emulated card"
		equals "$(sc_log_count_prefix "verify ok")" $((v0 + 1)) "one PIN verification on the card for the $# KSK(s)"
	fi
}

# sc_log_count_prefix PREFIX: card log lines starting with PREFIX.
sc_log_count_prefix() {
	if [ -f "$SC_LOG" ]; then grep -c "^$1" "$SC_LOG" || true; else echo 0; fi
}

sc_anchor() {
	run 0 "$KNOT_HSM" -c "$KSKC" "$1" ds
	an_ds=$(printf '%s\n' "$OUT" | grep ' DS ' | head -n 1)
	[ -n "$an_ds" ] || fail "knot-hsm ds printed no DS for $1: $OUT"
	printf '%s\n' "$an_ds" | awk '{ printf "trust-anchors {\n  %s initial-ds %s %s %s \"%s\";\n};\n", $1, $3, $4, $5, $6 }' \
		> "$TMP/$1.anchor"
}

# delv exits 0 whatever the result: the verdict is "; fully validated".
sc_validate() {
	va_label=$1; va_port=$2; shift 2
	for va_z; do
		for va_q in "www.$va_z A" "$va_z DNSKEY"; do
			va_out=$(delv_ask "$va_port" "$TMP/$va_z.anchor" $va_z $va_q)
			case "$va_out" in
				*"; fully validated"*) ;;
				*) knotd_dump_logs "$CONF"; fail "$va_label: delv does not validate $va_q: $va_out" ;;
			esac
		done
	done
	pass "$va_label: delv validates $* served by knotd under the DS of the card KSKs"
}

# sc_zsks ZONE: ZSKs (all states) in the ZSK side's KASP; sc_ksks ZONE: KSKs
# in the KSK side's (keymgr opens the card keystore: the card must be in).
sc_zsks() {
	keymgr -c "$CONF" "$1." list > "$TMP/zsklist" 2>&1 || fail "keymgr list $1: $(cat "$TMP/zsklist")"
	grep -c ' ZSK ' "$TMP/zsklist" || true
}
sc_ksks() {
	keymgr -c "$KSKC" "$1." list > "$TMP/ksklist" 2>&1 || fail "keymgr list (KSK side) $1: $(cat "$TMP/ksklist")"
	grep -c ' KSK ' "$TMP/ksklist" || true
}
