#!/bin/sh
# The bash completion offers what main.c's command table takes, and only that:
# every command, and each command's options, key= names and fixed values, as
# `knot-hsm --help` prints its synopses from that table. A command or option
# added to one and not to the other fails here.
. "$(dirname "$0")/lib.sh"

COMPLETION=${KHSM_SRCDIR:?}/samples/knot-hsm.bash-completion
[ -r "$COMPLETION" ] || fail "no $COMPLETION"
printf 'server:\n    rundir: %s\n' "$TMP" >"$TMP/knot.conf"

run 0 "$KNOT_HSM" --help
# The queries and, for each, what the synopses say it must offer:
# QUERY-LINE<TAB>WORD WORD... ('=' closing the set when it must be exact)
# [<TAB>WORD...: may be offered too].
printf '%s\n' "$OUT" | python3 -c '
import re, sys
conf = sys.argv[1]
cmds = {}
for line in sys.stdin:
    for syn in re.split(r" \| (?=knot-hsm )", line.strip()):
        if not syn.startswith("knot-hsm "):
            continue
        words = syn.split()
        pos = next((i for i, w in enumerate(words) if i > 0 and re.fullmatch(r"[a-z]+", w)
                   and words[i - 1] not in ("-c", "--module", "--token")), None)
        if pos is None:
            continue
        name, rest = words[pos], " ".join(words[pos + 1:])
        # ZONE... before the name, or [ZONE...] (heal: every online zone when none)
        zone = any(w.lstrip("[").startswith("ZONE") for w in words[1:pos])
        opts = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", rest))
        keys = {}
        for m in re.finditer(r"(?<![\w-])([a-z][a-z0-9-]*)=([^\s\]\[]*)", rest):
            k, vals = m.group(1), set()
            for p in m.group(2).split("|"):  # id=HEX|label=TEXT: two keys
                if "=" in p:
                    break
                if re.fullmatch(r"[a-z][a-z0-9-]*", p):
                    vals.add(p)
            keys.setdefault(k, set()).update(vals)
        for k in re.findall(r"\|([a-z][a-z0-9-]*)=", rest):
            keys.setdefault(k, set())
        c = cmds.setdefault(name, {"zone": zone, "opts": set(), "keys": {}, "conf": False})
        c["conf"] |= any(w.strip("[") == "-c" for w in words[1:pos])
        c["opts"] |= opts
        for k, v in keys.items():
            c["keys"].setdefault(k, set()).update(v)
zone_cmds = sorted(n for n, c in cmds.items() if c["zone"])
other = sorted(n for n, c in cmds.items() if not c["zone"])
if len(zone_cmds) < 8 or len(other) < 6:
    sys.exit("the help names too few commands: %s | %s" % (zone_cmds, other))
print("knot-hsm -c %s example.com \t= %s" % (conf, " ".join(zone_cmds)))
print("knot-hsm -c %s \t%s" % (conf, " ".join(zone_cmds + other)))
for n, c in sorted(cmds.items()):
    head = "knot-hsm -c %s %s%s " % (conf, "example.com " if c["zone"] else "", n)
    # -c before the command name in the synopsis may be offered after it
    print("%s-\t= %s\t%s" % (head, " ".join(sorted(c["opts"] | {"-h", "--help"})),
                              "-c" if c["conf"] else ""))
    if c["zone"]:
        print("%s\t= %s" % (head, " ".join(sorted(k + "=" for k in c["keys"]))))
    for k, vals in sorted(c["keys"].items()):
        if vals:
            print("%s%s=\t%s" % (head, k, " ".join(sorted(vals))))
' "$TMP/knot.conf" >"$TMP/queries" || fail "cannot read the synopses of knot-hsm --help"

# One bash, the completion alone (as without bash-completion), each query's
# COMPREPLY on one line.
cut -f1 "$TMP/queries" | bash --norc --noprofile -c '
	. "$1"
	while IFS= read -r line; do
		COMP_LINE=$line; COMP_POINT=${#line}
		read -ra COMP_WORDS <<<"$line"
		case $line in *" ") COMP_WORDS+=("") ;; esac
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_knot_hsm knot-hsm "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		echo "${COMPREPLY[*]}"
	done' sh "$COMPLETION" >"$TMP/replies" || fail "the completion failed"

n=0
while IFS='	' read -r query want extra; do
	n=$((n + 1))
	got=$(sed -n "${n}p" "$TMP/replies")
	exact=no
	case $want in "= "*) exact=yes; want=${want#= } ;; esac
	for w in $want; do
		case " $got " in
			*" $w "*) ;;
			*) fail "completion of '$query' lacks '$w' (offers: $got)" ;;
		esac
	done
	if [ "$exact" = yes ]; then
		for w in $got; do
			case " $want $extra " in
				*" $w "*) ;;
				*) fail "completion of '$query' offers '$w', which its synopsis does not name" ;;
			esac
		done
	fi
	pass "completion of '$query'"
done <"$TMP/queries"
[ "$n" -gt 40 ] || fail "only $n queries"
pass "$n completion queries, all as the synopses say"
