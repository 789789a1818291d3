#!/usr/bin/env bash
# The remote-origins benchmark (not part of the tests): musicfs and
# `rclone mount --vfs-cache-mode full` side by side in one run, on the same
# sshd (SFTP) and SeaweedFS (S3) servers and the same files, each client
# behind a byte-counting proxy. See tests/examples/bench_remote.rs.
#
# Usage: sudo bash scripts/bench-remote.sh [--files N] [--mb M] [--readahead SIZE]
#   SFTP: N tracks of 5–8 MB FLAC (default 40) plus two M MB files (default 30);
#   the generated library is kept under /tmp and reused by later runs.
#   S3 runs with the same library unless $S3_ARGS says otherwise
#   (e.g. S3_ARGS="--files 5 --mb 10" for a quick run).
# Needs root (dropping the page cache, passthrough), ffmpeg, mutagen,
# rclone, weed and sshd (scripts/setup.sh). Output: .work/bench-remote.txt
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
cargo build -q --release -p musicfs-control --bin musicfs
cargo build -q --release -p musicfs-tests --example bench_remote
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export MUSICFS_BIN="$TARGET/release/musicfs"
BENCH="$TARGET/release/examples/bench_remote"
mkdir -p .work
# shellcheck disable=SC2086 # S3_ARGS is a list of arguments
{
    "$BENCH" --only sftp "$@"
    # S3_ARGS last: they win over --files/--mb given for SFTP.
    "$BENCH" --only s3 "$@" ${S3_ARGS:-}
} 2>&1 | tee .work/bench-remote.txt
