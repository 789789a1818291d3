#!/usr/bin/env bash
# The benchmark (not part of the tests): native vs musicfs side by side in one run.
#
# Usage: sudo bash scripts/bench.sh [--files 100000] [--wide 10000] [--big-mb 300] [--repeat 3]
#                                   [--only reads,scan,mount,tree]
#   quick smoke run: bash scripts/bench.sh --files 2000 --wide 1000 --big-mb 50 --repeat 1
# Needs root to drop page caches (fair cold runs) and for kernel passthrough.
# Generated inputs and state stay in ./.work/bench (reused between runs).
# Prints a table: metric, native, musicfs, ratio, target. See scripts/bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SKIP_SETUP:-}" ] || bash scripts/setup.sh >/dev/null
cargo build --release -p musicfs-control
exec python3 scripts/bench.py --bin "$(realpath -m "${CARGO_TARGET_DIR:-target}/release/musicfs")" "$@"
