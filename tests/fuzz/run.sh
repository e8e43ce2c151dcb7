#!/bin/sh
# Fuzz smoke: builds the libFuzzer targets (clang, ASan + UBSan) and runs each
# on its seed corpus in tests/fuzz/corpus/<target> for its share of
# SECONDS_TOTAL (default 60). Fails when a target crashes, leaks, hits
# undefined behaviour or breaks one of its properties; the input is kept in
# <builddir>/fuzz-artifacts/ and must become a regression unit test.
#
#   tests/fuzz/run.sh [SECONDS_TOTAL]
#
# Build directory: $KHSM_FUZZ_BUILD_DIR, default build-fuzz next to the normal
# build directory ($KHSM_BUILD_DIR, default build). New inputs found while
# fuzzing go to a temporary directory: the corpus in the repository changes
# only by hand. With $KHSM_FUZZ_RESULTS set, one JSON line per target
# ({"name": "fuzz.<target>", "result": "OK"|"FAIL"}) is appended there, in the
# shape of meson's testlog.json, for tests/run.sh to count.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
total=${1:-60}
case $total in
	''|*[!0-9]*) echo "usage: $0 [SECONDS_TOTAL]" >&2; exit 2 ;;
esac
main_build=${KHSM_BUILD_DIR:-$top/build}
builddir=${KHSM_FUZZ_BUILD_DIR:-$(dirname "$main_build")/build-fuzz}
results=${KHSM_FUZZ_RESULTS:-}
targets="uri keymgr_list keymgr_ds dnskey_text zone_name kv knotconf skr audit guard_conf json dns_reply"

record() { # name result
	[ -n "$results" ] && printf '{"name": "fuzz.%s", "result": "%s"}\n' "$1" "$2" >>"$results"
	return 0
}

mkdir -p "$builddir"
if [ ! -f "$builddir/build.ninja" ]; then
	if ! CC=clang meson setup "$builddir" "$top" -Dfuzz=true -Dtests=disabled \
		-Db_sanitize=address,undefined -Db_lundef=false >"$builddir/setup.log" 2>&1; then
		tail -30 "$builddir/setup.log" >&2
		record build FAIL
		echo "fuzz: cannot configure $builddir" >&2
		exit 1
	fi
fi
# Only the targets: the rest of the tree is built and tested elsewhere.
if ! ninja -C "$builddir" $(for t in $targets; do echo "tests/fuzz/fuzz_$t"; done) \
	>"$builddir/build.log" 2>&1; then
	tail -40 "$builddir/build.log" >&2
	record build FAIL
	echo "fuzz: build failed" >&2
	exit 1
fi

count=$(echo $targets | wc -w)
share=$((total / count))
[ "$share" -ge 1 ] || share=1
work=$(mktemp -d "${TMPDIR:-/tmp}/knot-hsm-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
artifacts=$builddir/fuzz-artifacts
mkdir -p "$artifacts"

# Any sanitizer report is fatal; leaks are reported (libFuzzer's -detect_leaks).
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
for t in $targets; do
	exe=$builddir/tests/fuzz/fuzz_$t
	seeds=$top/tests/fuzz/corpus/$t
	mkdir -p "$work/$t"
	if [ ! -x "$exe" ] || [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
		echo "FAIL fuzz_$t: no executable or no seed corpus in $seeds" >&2
		record "$t" FAIL
		failed=$((failed + 1))
		continue
	fi
	"$exe" -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$artifacts/$t-" "$work/$t" "$seeds" >"$work/$t.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log")
	if [ "$rc" -eq 0 ]; then
		echo "ok fuzz_$t: ${runs:-?} runs in ${share}s, ${speed:-?} exec/s"
		record "$t" OK
	else
		echo "FAIL fuzz_$t (exit $rc); input kept as $artifacts/$t-*:" >&2
		grep -E 'ERROR|SUMMARY|runtime error|property failed|Test unit written|^ +#[0-9]' \
			"$work/$t.log" | head -30 >&2
		cp "$work/$t.log" "$artifacts/$t.log"
		record "$t" FAIL
		failed=$((failed + 1))
	fi
done
[ "$failed" -eq 0 ]
