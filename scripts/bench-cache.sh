#!/usr/bin/env bash
# The chunk-store benchmark (issue 3; not part of the tests): ratios side by
# side in one run.
#
# Usage: bash scripts/bench-cache.sh [IMAGE_OR_DEVICE] [SIZE_MIB]
#   1. bench_device: random 64 KiB reads at QD1 and QD32, UringBlockDevice
#      vs plain O_DIRECT pread of the same image (alternating rounds, medians).
#   2. bench_store: FastCDC v2020 + xxh3-128 throughput on one core; random
#      64 KiB chunk reads through the store ÷ raw O_DIRECT reads of the same
#      extents at QD1 and QD32; reassembling a 30 MB file ÷ a raw sequential
#      read of the same bytes.
# The ublk vs image-file comparison runs in the VM: VMTEST_BENCH=1 bash scripts/vmtest.sh
# A device given as IMAGE_OR_DEVICE is formatted (destroyed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p musicfs-blockcache --example bench_device --example bench_store
TARGET=${CARGO_TARGET_DIR:-target}
echo "== bench_device"
"$TARGET/release/examples/bench_device"
echo
echo "== bench_store"
"$TARGET/release/examples/bench_store" "$@"
