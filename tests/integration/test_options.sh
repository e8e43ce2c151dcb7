#!/bin/sh
# Every command refuses an option it does not take (main.c's command table is
# the one place that says which it takes): exit 2 (status: 3), the message
# names the option and the command, nothing runs. An unknown command with
# --help is a usage error, not the general help. heal alone may go without a
# zone, reading /etc/knot/knot.conf without -c.
. "$(dirname "$0")/lib.sh"

token_init "card"
pin_file "$TMP/pin"

# refused EXIT OPTION COMMAND-LINE...: the command line is refused for OPTION.
refused() {
	want=$1; opt=$2; shift 2
	run "$want" "$KNOT_HSM" "$@"
	cmd=$(printf '%s\n' "$ERR" | sed -n "s/^error: '\([a-z]*\)' does not take .*/\1/p")
	contains "$ERR" "does not take $opt" "$* refused for $opt (exit $want)"
	[ -n "$cmd" ] || fail "$*: no command named in '$ERR'"
	[ -z "$OUT" ] || fail "$*: printed '$OUT' on stdout"
}

refused 2 --token    tokens --token x
refused 2 --pin-file tokens --pin-file "$TMP/pin"
refused 2 --conf     tokens -c "$TMP/knot.conf"
refused 2 --json     uri --token card --json
refused 2 --conf     keystore --token card -c "$TMP/knot.conf"
refused 2 --write    doctor --write "$TMP/x"
refused 2 --token    keys --token card
refused 2 --module   example.com generate --module "$SOFTHSM_MODULE"
refused 2 --warn     example.com import label=x --warn 3
refused 2 --pin-file example.com ds --pin-file "$TMP/pin"
refused 2 --pin-file example.com submitted --pin-file "$TMP/pin"
refused 2 --pin-fd   example.com policy --pin-fd 0
refused 2 --module   example.com ceremony --module "$SOFTHSM_MODULE"
refused 3 --token    status --token card
refused 2 --force    audit verify "$TMP/log" --force
refused 2 --json     example.com delete id=00 --json
refused 2 --json     example.com rollover --json
refused 2 --json     example.com standby keystore=card --json
refused 2 --pin-file example.com failover keystore=card --pin-file "$TMP/pin"
refused 2 --json     example.com heal --json
# Before the command name too.
refused 2 --token    --token card tokens
refused 3 --module   --module "$SOFTHSM_MODULE" status

# The message names the command.
run 2 "$KNOT_HSM" tokens --token x
contains "$ERR" "error: 'tokens' does not take --token" "the message names command and option"
contains "$ERR" "usage: knot-hsm tokens" "the command's synopsis follows"

# Options a command does take still work.
run 0 "$KNOT_HSM" tokens --module "$SOFTHSM_MODULE" --json
contains "$OUT" '"label": "card"' "tokens takes --module and --json"
run 0 "$KNOT_HSM" uri --token card --module "$SOFTHSM_MODULE" --pin-file "$TMP/pin"
contains "$OUT" "pkcs11:" "uri takes --token, --module and --pin-file"

# An unknown command with --help is a usage error, not the general help.
run 2 "$KNOT_HSM" NOSUCHCOMMAND --help
contains "$ERR" "unknown command 'NOSUCHCOMMAND'" "NOSUCHCOMMAND --help is a usage error"
[ -z "$OUT" ] || fail "NOSUCHCOMMAND --help printed the general help"
run 2 "$KNOT_HSM" example.com NOSUCHCOMMAND --help
contains "$ERR" "unknown command" "ZONE NOSUCHCOMMAND --help is a usage error"
# Help of a real command, and the general help, still exit 0.
run 0 "$KNOT_HSM" example.com ds --help
contains "$OUT" "Usage: knot-hsm [-c knot.conf] ZONE... ds" "ZONE ds --help prints ds's help"
run 0 "$KNOT_HSM" --help status
contains "$OUT" "status [ZONE...]" "--help before a command prints that command's help"
run 0 "$KNOT_HSM" --help
contains "$OUT" "Usage: knot-hsm [OPTIONS] COMMAND" "--help alone prints the general help"

# heal may go without a zone (the command table says so, main.c), ds may not;
# without -c heal reads /etc/knot/knot.conf, as the other commands do. knotc
# runs through a wrapper that records its arguments and gives the real knotc
# a file of the test's in place of /etc/knot/knot.conf, so that what the
# machine has there changes nothing.
run 2 "$KNOT_HSM" ds
contains "$ERR" "'ds' needs at least one zone before it" "ds without a zone is still a usage error"
mkdir -p "$TMP/etc"
cat > "$TMP/knotc" <<SH
#!/bin/sh
printf '%s\n' "\$*" >> "$TMP/knotc.runs"
for a; do
	shift
	[ "\$a" = /etc/knot/knot.conf ] && a="$TMP/etc/knot.conf"
	set -- "\$@" "\$a"
done
exec "$(command -v knotc)" "\$@"
SH
chmod +x "$TMP/knotc"
KHSM_KNOTC="$TMP/knotc" run 1 "$KNOT_HSM" heal
grep -q -- "-c /etc/knot/knot.conf conf-export" "$TMP/knotc.runs" ||
	fail "heal did not read /etc/knot/knot.conf: $(cat "$TMP/knotc.runs")"
pass "heal without -c reads /etc/knot/knot.conf"
contains "$ERR" "error: /etc/knot/knot.conf: configuration error: knotc rejects /etc/knot/knot.conf: " \
	"no /etc/knot/knot.conf: the error names it"
contains "$ERR" "(not exists)" "and says it does not exist"
[ -z "$OUT" ] || fail "heal printed '$OUT' on stdout"
knot_conf "$TMP/etc/knot.conf" example.com.
KHSM_KNOTC="$TMP/knotc" run 0 "$KNOT_HSM" heal
equals "$OUT" "ok: no zone of /etc/knot/knot.conf keeps its KSK on a card in online mode: nothing to heal" \
	"heal without a zone: an /etc/knot/knot.conf without online card zones has nothing to heal"
