# The test-only Knot 3.5 build (sh tests/knot35/build.sh) for the online-mode
# tests: knot-hsm runs its tools through KHSM_*, the test and knotd.sh through
# PATH. Without the build the test fails; it does not skip. Source after lib.sh.

K35=${KHSM_KNOT35_DIR:-/var/cache/knot-hsm/knot35}/inst
for t in knotd knotc keymgr; do
	[ -x "$K35/sbin/$t" ] || fail "Knot 3.5 not built: run sh tests/knot35/build.sh (no $K35/sbin/$t)"
done
export KHSM_KEYMGR="$K35/sbin/keymgr" KHSM_KNOTC="$K35/sbin/knotc" KHSM_KNOTD="$K35/sbin/knotd"
PATH=$K35/sbin:$PATH
export PATH

k35_v=$(knotd --version | sed -n 's/^knotd, Knot DNS \([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p')
set -- $k35_v
[ $# -eq 2 ] && { [ "$1" -gt 3 ] || { [ "$1" -eq 3 ] && [ "$2" -ge 5 ]; }; } ||
	fail "$K35/sbin/knotd is not Knot 3.5 or later: $(knotd --version)"
pass "knotd from $K35 is Knot $1.$2"
