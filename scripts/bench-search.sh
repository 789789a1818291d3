#!/usr/bin/env bash
# The search benchmark (not part of the tests): a catalog of 1M synthetic
# tracks, its search index built from scratch, ~1000 mixed queries
# (artist:, year ranges, bare words, one-typo words), p50 and p99. See
# tests/examples/bench_search.rs.
#
# Usage: bash scripts/bench-search.sh [--files N] [--queries Q] [--dir D]
# Needs about 2 GB free under D (default /tmp/musicfs-bench-search).
# Output: .work/bench-search.txt
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build -q --release -p musicfs-tests --example bench_search
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
mkdir -p .work
"$TARGET/release/examples/bench_search" "$@" 2>&1 | tee .work/bench-search.txt
