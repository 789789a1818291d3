#!/usr/bin/env bash
# The one "run the main job" command: builds musicfs, generates a small demo
# library (real FLAC/MP3/Ogg/Opus/M4A files in a messy folder layout), mounts
# it organised by tags, and shows the result.
#
# Usage: bash scripts/demo.sh [MOUNTPOINT]      (default ./.work/mnt)
#   SKIP_SETUP=1   skip scripts/setup.sh
# Everything lives under ./.work (library, catalog, socket, log), never in
# your real musicfs config or data. Unmount with `fusermount3 -u MOUNTPOINT`
# or the `musicfs ... shutdown` line printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/.work
LIB=$WORK/demo-library
STATE=$WORK/demo
MNT=${1:-$WORK/mnt}
mkdir -p "$STATE" "$MNT"
MNT=$(realpath "$MNT")

[ -n "${SKIP_SETUP:-}" ] || bash scripts/setup.sh
cargo build --release -p musicfs-control
BIN=$(realpath -m "${CARGO_TARGET_DIR:-target}/release/musicfs")

musicfs() {
  MUSICFS_CACHE_DIR="$STATE/cache" "$BIN" --catalog "$STATE/catalog.db" --socket "$STATE/control.sock" \
         --log-file "$STATE/musicfs.log" "$@"
}

if [ ! -f "$WORK/demo-manifest.json" ]; then
  echo "demo.sh: generating the demo library in $LIB"
  rm -rf "$LIB"
  python3 scripts/gen_corpus.py --demo --out "$LIB" --manifest "$WORK/demo-manifest.json"
fi

# A previous demo still mounted here? Stop it first.
if mountpoint -q "$MNT" 2>/dev/null || grep -qs " $MNT fuse" /proc/mounts; then
  echo "demo.sh: $MNT is mounted; stopping the previous demo"
  musicfs shutdown 2>/dev/null || fusermount3 -u "$MNT"
fi

echo
echo "The library on disk ($LIB):"
(cd "$LIB" && find . -type f | sort | sed 's/^\.\//  /')

start=$(date +%s%N)
musicfs mount "$LIB" "$MNT"
echo
echo "musicfs mount returned in $(( ($(date +%s%N) - start) / 1000000 )) ms"

# The mount serves the catalog at once and scans in the background; wait for the scan.
for _ in $(seq 1 300); do
  if musicfs status --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if s.get("scans_completed", 0) >= 1 and not s.get("scanning") else 1)'; then
    break
  fi
  sleep 0.1
done

echo
echo "The same library through musicfs ($MNT):"
if command -v tree >/dev/null; then tree "$MNT"; else (cd "$MNT" && find . | sort); fi
echo
musicfs status
echo
echo "Read it with any player, e.g.: ffprobe \"$(find "$MNT" -name '*.flac' | sort | head -1)\""
echo "Unmount with either of:"
echo "  fusermount3 -u $MNT"
echo "  $BIN --socket $STATE/control.sock shutdown"
