#!/bin/sh
# knot-hsm benchmarks: sh bench/run.sh [--quick] [--check]
# Installs what is missing (samples/deps.sh), builds knot-hsm, cardsim and
# bench/ecdsa_rate, runs every benchmark several times on this machine and
# writes the table and plots to doc/benchmarks.rst and doc/bench-*.png.
# --quick: smaller sizes (smoke; a 1,000-zone ceremony included). --check: exit 1 when a
# target (ceremony ratio <= 1.05 at 100 and at 1,000 zones, <= 1.10 at 10,000
# zones in the full run, offline signing within 2% of
# all-software Knot; in the full run also 2 and 4 cards at >= 1.8x and >= 3.2x
# one card's ceremony throughput) is missed. Everything runs in a temporary directory on
# 127.0.0.1; every knotd it starts is stopped.
set -eu
KHSM_TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$KHSM_TOP/samples/deps.sh"
KHSM_RUN_PKGS="$KHSM_RUN_PKGS gnuplot-nox bind9-utils"
khsm_install_deps || exit 1

BUILD=${KHSM_BENCH_BUILD:-${TMPDIR:-/tmp}/knot-hsm-bench-build}
mkdir -p "$(dirname "$BUILD")"
khsm_build "$BUILD" || exit 1
ninja -C "$BUILD" tests/cardsim/libcardsim.so >/dev/null || exit 1
cc -O2 -Wall -Wextra -o "$BUILD/ecdsa_rate" "$KHSM_TOP/bench/ecdsa_rate.c" \
	$(pkg-config --cflags --libs gnutls) -lpthread || exit 1

exec python3 "$KHSM_TOP/bench/bench.py" --top "$KHSM_TOP" --build "$BUILD" "$@"
