#!/usr/bin/env bash
# The overlay read benchmark (not part of the tests): a FLAC and an MP3 of
# about 30 MB with edited tags, read through the mount (synthesized header
# + the original's body) against the same originals read natively, page
# cache dropped before every read, medians of 5. See
# tests/examples/bench_overlay.rs.
#
# Usage: sudo bash scripts/bench-overlay.sh [--mb M] [--rounds R] [--dir D]
# Needs root (dropping the page cache), ffmpeg (scripts/setup.sh).
# Output: .work/bench-overlay.txt
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build -q --release -p musicfs-control --bin musicfs
cargo build -q --release -p musicfs-tests --example bench_overlay
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export MUSICFS_BIN="$TARGET/release/musicfs"
mkdir -p .work
"$TARGET/release/examples/bench_overlay" "$@" 2>&1 | tee .work/bench-overlay.txt
