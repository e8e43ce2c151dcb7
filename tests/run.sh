#!/bin/sh
# The whole test suite, as CI runs it: installs what is missing, builds with
# warnings as errors, runs every meson test and ends with "N passed, N failed".
set -u
KHSM_TOP=$(cd "$(dirname "$0")/.." && pwd)
export KHSM_TOP
KHSM_WITH_TEST_PKGS=1
. "$KHSM_TOP/samples/deps.sh"

khsm_install_deps || exit 1

# The online-mode tests need Knot >= 3.5, built from Debian's source package
# outside the repository (cached: later runs take no time). If it cannot be
# built, the suite still runs and those tests fail saying so.
sh "$KHSM_TOP/tests/knot35/build.sh" >&2 ||
	echo "error: Knot 3.5 build failed; the online-mode tests will fail" >&2

builddir=${KHSM_BUILD_DIR:-$KHSM_TOP/build}
if [ ! -f "$builddir/build.ninja" ]; then
	meson setup -Dwerror=true "$builddir" "$KHSM_TOP" >"$builddir.setup.log" 2>&1 ||
	{ cat "$builddir.setup.log" >&2; echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$builddir" >"$builddir.build.log" 2>&1; then
	tail -60 "$builddir.build.log" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

meson test -C "$builddir" --print-errorlogs --num-processes 2 "$@"
status=$?
whole_suite=$#
set -- "" "$builddir/meson-logs/testlog.json"

# Bad input and memory safety, when the whole suite runs (no arguments):
# (a) a fuzz smoke of about 60 s, one result per libFuzzer target;
# (b) unit, integration and cardsim again in an ASan + UBSan build, where any
#     sanitizer report (leaks included) fails the test. tests/lsan.supp names
#     the third-party modules whose leaks are not ours. cardsim itself is built
#     without sanitizers there: keymgr, knotd and pkcs11-tool load it. The
#     long time-driven scenarios (suite scenario: outages, online signing,
#     slow cards) and the package test run once, in the plain build only.
if [ "$whole_suite" -eq 0 ]; then
	t0=$(date +%s)
	fuzzlog=$builddir/meson-logs/fuzz.json
	: >"$fuzzlog"
	KHSM_BUILD_DIR=$builddir KHSM_FUZZ_RESULTS=$fuzzlog "$KHSM_TOP/tests/fuzz/run.sh" 60
	t1=$(date +%s)

	asandir=$(dirname "$builddir")/build-asan
	asanlog=$asandir/meson-logs/testlog.json
	mkdir -p "$asandir/meson-logs"
	rm -f "$asanlog"
	if { [ -f "$asandir/build.ninja" ] ||
	     meson setup "$asandir" "$KHSM_TOP" -Db_sanitize=address,undefined -Db_lundef=false \
	         >"$asandir/setup.log" 2>&1; } &&
	   ninja -C "$asandir" >"$asandir/build.log" 2>&1; then
		ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1 \
		LSAN_OPTIONS=suppressions=$KHSM_TOP/tests/lsan.supp:print_suppressions=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C "$asandir" --print-errorlogs --num-processes 2 \
			--suite unit --suite integration --suite cardsim
	else
		tail -40 "$asandir/setup.log" "$asandir/build.log" 2>/dev/null >&2
		echo '{"name": "build", "result": "FAIL"}' >"$asanlog"
	fi
	t2=$(date +%s)
	echo "fuzz smoke: $((t1 - t0)) s; sanitizer build and tests: $((t2 - t1)) s"
	set -- "$@" "" "$fuzzlog" "asan:" "$asanlog"
fi

# Count from meson's own logs (and the fuzz runner's, in the same format),
# given as PREFIX PATH pairs; a missing extra log is a failure. A skipped test
# is not a pass; in CI it is a failure.
python3 - "$@" <<'PY'
import json, os, sys
passed = failed = skipped = 0
names = []
args = sys.argv[1:]
for i, (prefix, path) in enumerate(zip(args[0::2], args[1::2])):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        lines = []
        if i > 0:
            failed += 1
            names.append(prefix + path + " (no results)")
    for line in lines:
        r = json.loads(line)
        res = r.get("result")
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            skipped += 1
            names.append(prefix + r["name"] + " (skipped)")
        else:
            failed += 1
            names.append(prefix + r["name"])
if os.environ.get("CI") and skipped:
    failed += skipped
    skipped = 0
if names:
    print("not passed: " + ", ".join(names))
if passed + failed + skipped == 0:
    failed = 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY
summary=$?
[ $status -eq 0 ] && [ $summary -eq 0 ]
