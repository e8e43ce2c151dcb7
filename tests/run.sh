#!/bin/sh
# The whole test suite, as CI runs it: installs what is missing, builds with
# warnings as errors, runs every meson test and ends with "N passed, N failed".
set -u
KHSM_TOP=$(cd "$(dirname "$0")/.." && pwd)
export KHSM_TOP
KHSM_WITH_TEST_PKGS=1
. "$KHSM_TOP/samples/deps.sh"

khsm_install_deps || exit 1

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

# Count from meson's own log. A skipped test is not a pass; in CI it is a failure.
python3 - "$builddir/meson-logs/testlog.json" <<'PY'
import json, os, sys
passed = failed = skipped = 0
names = []
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
for line in lines:
    r = json.loads(line)
    res = r.get("result")
    if res in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif res == "SKIP":
        skipped += 1
        names.append(r["name"] + " (skipped)")
    else:
        failed += 1
        names.append(r["name"])
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
