#!/bin/sh
# Several signer hosts, one card: the card host runs `p11-kit server` on the
# guard module in front of the card (cardsim), the signer host reaches it
# with p11-kit-client.so. Each side runs in its own mount and network
# namespace; they share only the socket directory (the part ssh carries in
# production, samples/knot-hsm-remote-tunnel.service):
#  - the signer host sees no card of its own (control);
#  - `keystore --remote` prints the client-side stanza and the address knotd
#    needs; doctor checks it end to end (socket, module, token, login);
#  - a wrong PIN on the signer costs the card exactly one try;
#  - a KSK generated from the signer is made, test-signed and listed through
#    the remote card; the guard's audit log on the card host has those calls,
#    made by p11-kit's remote process, and its chain verifies;
#  - the server gone: doctor and `keys` fail with an error naming the socket
#    and the remedy; the server back: both work again.
. "$KHSM_SRCDIR/tests/integration/lib.sh"
. "$KHSM_SRCDIR/tests/integration/cardsim.sh"
: "${KHSM_GUARD_MODULE:?KHSM_GUARD_MODULE must name the built libknothsm-guard.so}"
GUARD=$KHSM_GUARD_MODULE
CLIENT=$(dpkg -L p11-kit-modules | grep '/p11-kit-client\.so$' | head -1)
[ -f "$CLIENT" ] || fail "p11-kit-client.so not found (install p11-kit-modules)"

# The card host's files (token store, cardsim state, guard, audit log), the
# signer host's files, and the one directory both see.
CARD=$TMP/card; SIGNER=$TMP/signer; SOCKDIR=$TMP/sock
mkdir -p "$CARD" "$SIGNER" "$SOCKDIR"
SOCK=$SOCKDIR/pkcs11
export KHSM_CARDSIM_CONF="$CARD/cardsim.conf"
COUNTER=$CARD/counter
card_conf
LOG=$CARD/audit.log
cat > "$CARD/guard.conf" <<CONF
module = $CARDSIM
audit_log = $LOG
CONF
cp "$TMP/card.pin" "$SIGNER/card.pin"
chmod 600 "$SIGNER/card.pin"
(umask 077; printf '%s' 111111 > "$SIGNER/wrong.pin")

# card_host CMD...: CMD on the card host, which cannot see the signer's files.
card_host() {
	KHSM_GUARD_CONF=$CARD/guard.conf unshare --net --mount --propagation private \
		sh -c 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"' sh "$SIGNER" "$@"
}
# signer CMD...: CMD on the signer host (env NAME=VALUE CMD for its environment): no card token store, no cardsim or
# guard configuration, no registered module, only the socket directory.
signer() {
	env -u SOFTHSM2_CONF -u KHSM_CARDSIM_CONF -u KHSM_GUARD_CONF \
		unshare --net --mount --propagation private \
		sh -c 'for d in "$1" "$2" "$3"; do mount -t tmpfs tmpfs "$d" || exit 1; done; shift 3; exec "$@"' \
		sh "$TMP/tokens" "$CARD" "$P11_REGISTRY" "$@"
}
ADDR="P11_KIT_SERVER_ADDRESS=unix:path=$SOCK"

SERVER_PID=
server_start() {
	rm -f "$SOCK"
	# Not through card_host (a function would run in a subshell): $! is the server.
	KHSM_GUARD_CONF=$CARD/guard.conf unshare --net --mount --propagation private \
		sh -c 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"' sh "$SIGNER" \
		p11-kit server -f --provider "$GUARD" -n "$SOCK" "$CARD_URI" \
		> "$TMP/server.out" 2> "$TMP/server.err" &
	SERVER_PID=$!
	n=0
	while [ ! -S "$SOCK" ]; do
		n=$((n + 1))
		[ $n -le 200 ] || fail "p11-kit server made no socket: $(cat "$TMP/server.err")"
		kill -0 "$SERVER_PID" 2>/dev/null || fail "p11-kit server exited: $(cat "$TMP/server.err")"
		sleep 0.05
	done
}
server_stop() {
	[ -n "$SERVER_PID" ] || return 0
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}
on_cleanup server_stop

# -- the signer host has no card of its own --------------------------------------------
run 1 signer "$KNOT_HSM" tokens
contains "$ERR" "error: " "control: the signer host sees no token without the server"

server_start
pass "p11-kit server serves the guard on $SOCK from the card host"

# -- keystore --remote ---------------------------------------------------------------
run 2 signer "$KNOT_HSM" keystore --remote "$SOCK" --module "$CARDSIM" --token "$CARD_LABEL" \
	--pin-file "$SIGNER/card.pin"
contains "$ERR" "--remote takes no --module" "keystore --remote refuses --module"
run 1 signer "$KNOT_HSM" keystore --remote relative/sock --token "$CARD_LABEL" --pin-file "$SIGNER/card.pin"
contains "$ERR" "is not an absolute path" "keystore --remote wants an absolute socket path"
: > "$COUNTER"
run 0 signer "$KNOT_HSM" keystore --remote "$SOCK" --token "$CARD_LABEL" --pin-file "$SIGNER/card.pin" --id card
contains "$OUT" "config: \"$CARD_URI;pin-source=%2F" "keystore --remote: the card's URI, percent-encoded"
contains "$OUT" " $CLIENT\"" "with p11-kit's client as the module"
contains "$OUT" "# knotd needs P11_KIT_SERVER_ADDRESS=unix:path=$SOCK in its environment" \
	"and the address knotd needs"
equals "$(count "login ok")" 1 "keystore --remote checked the stanza with one login on the card"
stanza=$(printf '%s\n' "$OUT" | grep -v '^#')
C=$SIGNER/knot.conf
knot_conf "$C" rundir="$SIGNER" kasp="$SIGNER/kasp" stanza="$stanza" policy=card example.com

# -- doctor, end to end ------------------------------------------------------------------
run 0 signer "$KNOT_HSM" -c "$C" doctor --remote "$SOCK"
contains "$OUT" "keystore card: remote socket: a p11-kit server answers on $SOCK" "doctor: the socket answers"
contains "$OUT" "keystore card: module: $CLIENT loads" "doctor: the client module loads"
contains "$OUT" "keystore card: token present: '$CARD_LABEL'" "doctor: the remote token is present"
contains "$OUT" "keystore card: login: one login through GnuTLS succeeded" "doctor: login through the server"
contains "$OUT" "0 failed" "doctor passes"
run 0 signer env "$ADDR" "$KNOT_HSM" -c "$C" doctor
contains "$OUT" "0 failed" "doctor passes with P11_KIT_SERVER_ADDRESS as knotd's unit sets it"
run 1 signer "$KNOT_HSM" -c "$C" doctor
contains "$OUT" "P11_KIT_SERVER_ADDRESS is not set" "doctor without an address says which"

# One PIN try: a wrong PIN from the signer is tried once, never again.
: > "$COUNTER"
run 1 signer "$KNOT_HSM" doctor --remote "$SOCK" --token "$CARD_LABEL" --pin-file "$SIGNER/wrong.pin"
contains "$OUT" "FAIL  login:" "doctor: a wrong PIN fails the login"
equals "$(count "login fail")" 1 "the wrong PIN cost the card exactly one try"
# At the final try the guard (login_final_try = refuse) answers "PIN locked"
# without asking the card; knot-hsm --force says that, not "unblock it".
card_tries 1
: > "$COUNTER"
run 1 signer "$KNOT_HSM" keystore --remote "$SOCK" --token "$CARD_LABEL" --pin-file "$SIGNER/card.pin" --force
equals "$(count login)" 0 "final try through the guard: the card is not asked"
contains "$ERR" "login_final_try = allow" "final try through the guard: the guard's setting named"
contains "$ERR" "no try was spent" "and that no try was spent"
lacks "$ERR" "SO-PIN" "not sent to the SO-PIN unblock: the PIN is not locked"
card_tries 3

# -- a KSK made and used through the remote card ---------------------------------------
lines_before=$(wc -l < "$LOG")
: > "$COUNTER"
run 0 signer env "$ADDR" "$KNOT_HSM" -c "$C" example.com generate ksk=yes
contains "$OUT" "DS" "generate from the signer host: a KSK on the remote card, its DS"
[ "$(count sign)" -ge 1 ] || fail "the card made no signature for generate's test signature"
pass "the test signature was made on the card"
run 0 signer env "$ADDR" "$KNOT_HSM" -c "$C" keys
contains "$OUT" "example.com" "keys from the signer host: the KSK on the remote card, used by example.com"
tail -n +"$((lines_before + 1))" "$LOG" > "$TMP/new.log"
KEYID=$(printf '%s\n' "$OUT" | awk '$2 == "tag" || $3 == "tag" { print $1; exit }')
[ -n "$KEYID" ] || fail "keys printed no key id"
grep -q "\"comm\":\"p11-kit-remote\",\"fn\":\"C_GenerateKeyPair\".*\"label\":\"example.com. KSK\",\"id\":\"$KEYID\".*\"rv\":\"CKR_OK\"" "$TMP/new.log" ||
	fail "no C_GenerateKeyPair of key $KEYID by p11-kit-remote in the card host's audit log"
pass "the card host's audit log has the key generation (id $KEYID), made for the signer"
grep -q "\"comm\":\"p11-kit-remote\",\"fn\":\"C_Sign\".*\"id\":\"$KEYID\".*\"rv\":\"CKR_OK\"" "$TMP/new.log" ||
	fail "no C_Sign with key $KEYID by p11-kit-remote in the card host's audit log"
pass "and the test signature with it"
equals "$(grep -c '"fn":"C_Login".*"rv":"CKR_PIN_INCORRECT"' "$LOG")" 1 \
	"the audit log has the signer's one wrong PIN, once"
run 0 card_host "$KNOT_HSM" audit verify "$LOG"
pass "the audit chain verifies on the card host"

# -- the server gone, then back -----------------------------------------------------------
server_stop
run 1 signer "$KNOT_HSM" -c "$C" doctor --remote "$SOCK"
contains "$OUT" "FAIL  keystore card: remote socket:" "server gone: doctor fails on the socket"
contains "$OUT" "$SOCK" "naming the socket"
contains "$OUT" "knot-hsm-p11-kit-server" "and the remedy"
run 1 signer env "$ADDR" KHSM_RETRY_MS=100 "$KNOT_HSM" -c "$C" keys
contains "$ERR" "error: " "server gone: keys fails"
contains "$ERR" "$SOCK" "with an error naming the socket"
server_start
run 0 signer "$KNOT_HSM" -c "$C" doctor --remote "$SOCK"
contains "$OUT" "0 failed" "server back: doctor passes again"
run 0 signer env "$ADDR" "$KNOT_HSM" -c "$C" keys
contains "$OUT" "example.com" "server back: keys lists the KSK again"
server_stop
