#!/usr/bin/env bash
# The one test command: installs system packages, builds everything, runs all
# tests (unit + end-to-end through real FUSE mounts), then clippy.
#
# Usage: bash scripts/test.sh [--no-setup]
#   --no-setup   skip scripts/setup.sh and scripts/vm-setup.sh (packages,
#                the 6.12 kernel and virtme-ng already installed)
# Steps: setup, vm-setup, build, cargo test (unit + end-to-end through real
# FUSE mounts), vmtest (ublk in a VM, scripts/vmtest.sh), clippy.
# Env: CARGO_TARGET_DIR is honoured; the e2e tests find the binary through
#   MUSICFS_BIN, which this script sets to the freshly built debug binary.
# Exit status: 0 only when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."

run_setup=1
for arg in "$@"; do
  case "$arg" in
    --no-setup) run_setup=0 ;;
    *) echo "usage: bash scripts/test.sh [--no-setup]" >&2; exit 2 ;;
  esac
done

LOG_DIR=.work/test-logs
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log
declare -a STEPS=() RESULTS=()
failed=0

# step NAME COMMAND...: runs it, tees output to .work/test-logs/NAME.log, records the result.
step() {
  local name=$1; shift
  echo
  echo "=== $name: $*"
  local start=$SECONDS
  "$@" 2>&1 | tee "$LOG_DIR/$name.log"
  local rc=${PIPESTATUS[0]}
  local took=$((SECONDS - start))
  STEPS+=("$name")
  if [ "$rc" -eq 0 ]; then RESULTS+=("ok    (${took}s)"); else RESULTS+=("FAILED (exit $rc, ${took}s)"); failed=1; fi
  return "$rc"
}

if [ "$run_setup" = 1 ]; then
  step setup bash scripts/setup.sh || { echo "test.sh: setup failed" >&2; exit 1; }
fi

TARGET_DIR=${CARGO_TARGET_DIR:-target}
export MUSICFS_BIN
MUSICFS_BIN="$(realpath -m "$TARGET_DIR/debug/musicfs")"

if step build cargo build --workspace --all-targets; then
  step test cargo test --workspace --no-fail-fast
  # ublk needs a kernel with ublk_drv: Debian's 6.12 in a virtme-ng VM (TCG).
  if [ "$run_setup" = 1 ]; then
    step vm-setup bash scripts/vm-setup.sh
  fi
  step vmtest bash scripts/vmtest.sh
else
  echo "test.sh: build failed; tests not run" >&2
fi
step clippy cargo clippy --workspace --all-targets -- -D warnings

echo
echo "=================== summary ==================="
for i in "${!STEPS[@]}"; do
  printf '  %-8s %s\n' "${STEPS[$i]}" "${RESULTS[$i]}"
done
if [ -f "$LOG_DIR/test.log" ]; then
  passed=$(grep -Eo '[0-9]+ passed' "$LOG_DIR/test.log" | awk '{s+=$1} END {print s+0}')
  nfail=$(grep -Eo '[0-9]+ failed' "$LOG_DIR/test.log" | awk '{s+=$1} END {print s+0}')
  echo "  tests:   $passed passed, $nfail failed"
  grep -E '^test .* FAILED$' "$LOG_DIR/test.log" | sed 's/^/    /' || true
  grep -o 'MEASURED.*' "$LOG_DIR/test.log" | sed 's/^MEASURED/   /' || true
  if grep -q 'SKIPPED' "$LOG_DIR/test.log"; then
    echo "  skipped (FUSE absent):"
    grep -o 'SKIPPED.*' "$LOG_DIR/test.log" | sed 's/^/    /'
  fi
fi
echo "  logs:    $LOG_DIR/"
if [ "$failed" = 0 ]; then echo "  RESULT:  PASS"; else echo "  RESULT:  FAIL"; fi
exit "$failed"
