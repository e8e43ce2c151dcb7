# Helpers for tests on cardsim (tests/cardsim): a SoftHSM token seen through a
# PKCS#11 module that behaves like a SmartCard-HSM. Source after lib.sh.
# Environment (set by meson): CARDSIM = path of libcardsim.so.
: "${CARDSIM:?CARDSIM must name the built libcardsim.so}"

CARD_LABEL="SmartCard-HSM (UserPIN)"    # what cardsim reports, whatever SoftHSM's label
CARD_URI="pkcs11:token=SmartCard-HSM%20%28UserPIN%29"
token_init "softhsm under cardsim"
pin_file "$TMP/card.pin"
export KHSM_CARDSIM_CONF="$TMP/cardsim.conf"
CARD_LOCK="$TMP/cardsim.conf.lock"        # cardsim's card lock (conf path + .lock)
COUNTER="$TMP/counter"
# knot-hsm's own lock (lib/retry.h) in the test directory, not the machine's.
export KHSM_LOCK_FILE="$TMP/knot-hsm.lock"

# card_conf [LINE...]: fast latencies, counter on, then the given lines
# (a later key may not repeat an earlier one: cardsim refuses duplicates).
card_conf() {
	{
		case "$*" in *latency_scale*) ;; *) echo "latency_scale = 0.01" ;; esac
		echo "counter_file = $COUNTER"
		printf '%s\n' "$@"
	} > "$KHSM_CARDSIM_CONF"
}

# count EVENT [PID]: lines of the cardsim counter, e.g. count "login fail".
count() {
	if [ -f "$COUNTER" ]; then
		grep -c "^$1 ${2:-}" "$COUNTER" || true
	else
		echo 0
	fi
}

# card_tries [N]: set the user-PIN tries left of the card (cardsim's
# state_file, default conf path + .state: 1 is the final try, 0 locked), or
# print them (no state file yet: none failed, print "full").
card_tries() {
	if [ $# -gt 0 ]; then
		printf 'user_pin_tries_left %s\n' "$1" > "$KHSM_CARDSIM_CONF.state"
	elif [ -f "$KHSM_CARDSIM_CONF.state" ]; then
		sed -n 's/^user_pin_tries_left \([0-9]*\)$/\1/p' "$KHSM_CARDSIM_CONF.state"
	else
		echo full
	fi
}

# card_knot_conf FILE ZONE...: knot_conf (lib.sh) with the keystore that
# `knot-hsm keystore --module $CARDSIM` prints, a manual policy on it, and the zones.
card_knot_conf() {
	ckc_file=$1; shift
	run 0 "$KNOT_HSM" keystore --module "$CARDSIM" --token "$CARD_LABEL" --pin-file "$TMP/card.pin" --id card
	knot_conf "$ckc_file" stanza="$OUT" policy=card "$@"
}

# point_id LABEL: SHA-1 of the raw EC point of the public key labelled LABEL,
# computed here from what SoftHSM stores (not through cardsim): the id a
# SmartCard-HSM gives its keys.
point_id() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "softhsm under cardsim" --list-objects \
		--type pubkey 2>/dev/null | awk -v lbl="$1" '
		/^Public Key Object/ { point = ""; name = "" }
		$1 == "EC_POINT:" { point = $2 }
		$1 == "label:" { sub(/^[[:space:]]*label:[[:space:]]*/, ""); name = $0
		                 if (name == lbl) print point }' | head -1 |
		python3 -c 'import sys, hashlib
p = bytes.fromhex(sys.stdin.read().strip())
assert p[0] == 4, "not an OCTET STRING"
n, off = (p[1], 2) if p[1] < 0x80 else (int.from_bytes(p[2:2 + (p[1] & 0x7f)], "big"), 2 + (p[1] & 0x7f))
assert off + n == len(p)
print(hashlib.sha1(p[off:]).hexdigest())'
}

# private_keys: number of private keys on the token (SoftHSM, no cardsim).
private_keys() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "softhsm under cardsim" --login --pin "$PIN" \
		--list-objects --type privkey 2>/dev/null | grep -c '^Private Key Object' || true
}

# kasp_ids ZONE: key ids in Knot's KASP for ZONE.
kasp_ids() {
	keymgr -c "$C" "$1" list > "$TMP/kasp_ids" 2>&1 || fail "keymgr $1 list: $(cat "$TMP/kasp_ids")"
	! grep -q "error" "$TMP/kasp_ids" || fail "keymgr $1 list: $(cat "$TMP/kasp_ids")"
	awk '{print $1}' "$TMP/kasp_ids"
}
