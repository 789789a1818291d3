#!/usr/bin/env bash
# ublk in a VM: boots Debian's 6.12 kernel with virtme-ng under qemu (TCG),
# loads ublk_drv, serves /dev/ublkb0 over a backing image with ublk_serve,
# runs the chunk-store suite on it, kills the server with -9 in the middle
# of a write workload, restarts it over the same backing image, checks that
# the store reopens consistent with every acknowledged chunk intact, and
# removes the device. Then the daemon phase (scripts/vmtest-daemon.sh):
# the musicfs daemon serves its cache on /dev/ublkb0 (`[cache] kind =
# "ublk"`), removes it on shutdown, and reattaches to the same content
# after a clean stop and after kill -9. Prints PASS/FAIL lines; exits
# non-zero on failure.
#
# Needs scripts/vm-setup.sh once (qemu, the 6.12 kernel, libclang, vng).
# Environment: VMTEST_KVM=1 uses KVM when /dev/kvm works (default: TCG,
# --disable-kvm, as on CI); VMTEST_BENCH=1 also runs bench_device on
# /dev/ublkb0 and on the backing image inside the VM.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

KERNEL=${VMTEST_KERNEL:-$(ls /boot/vmlinuz-6.12* 2>/dev/null | grep -v -e '-rt-' -e '-cloud-' | sort -V | tail -n1 || true)}
if [ -z "$KERNEL" ] || [ ! -e "$KERNEL" ]; then
    echo "FAIL vmtest: no /boot/vmlinuz-6.12* kernel; run scripts/vm-setup.sh" >&2
    exit 1
fi
if ! command -v vng >/dev/null 2>&1 || ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "FAIL vmtest: vng or qemu-system-x86_64 missing; run scripts/vm-setup.sh" >&2
    exit 1
fi

START=$(date +%s)
echo "vmtest: building test binaries on the host"
# Release: the guest runs under TCG, where debug builds crawl.
cargo build -q --release -p musicfs-blockcache --features ublk --examples \
    || { echo "FAIL vmtest: cargo build --features ublk --examples" >&2; exit 1; }
# The daemon (its ublk feature is on by default).
cargo build -q --release -p musicfs-control \
    || { echo "FAIL vmtest: cargo build -p musicfs-control" >&2; exit 1; }
TESTBIN=$(cargo test -q --release -p musicfs-blockcache --features ublk --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])' | tail -n1)
TARGET=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET/release/examples"
for b in ublk_serve store_suite; do
    [ -x "$BIN/$b" ] || { echo "FAIL vmtest: $BIN/$b not built" >&2; exit 1; }
done
MUSICFS="$TARGET/release/musicfs"
[ -x "$MUSICFS" ] || { echo "FAIL vmtest: $MUSICFS not built" >&2; exit 1; }

OUT=$(mktemp -d /tmp/vmtest.XXXXXX)
# VMTEST_KEEP=1 keeps the guest's logs (vng.log, log, daemon/) for a look.
if [ "${VMTEST_KEEP:-0}" = 1 ]; then echo "vmtest: keeping $OUT"; else trap 'rm -rf "$OUT"' EXIT; fi
cat > "$OUT/inner.sh" <<'INNER'
#!/bin/bash
# Runs inside the VM as root. $1 = examples dir, $2 = lib test binary,
# $3 = host dir for results (writable), $4 = 1 to run the benchmark,
# $5 = the musicfs binary, $6 = scripts/vmtest-daemon.sh.
set -u
BIN=$1 TESTBIN=$2 OUT=$3 BENCH=$4 MUSICFS=$5 DAEMON_TEST=$6
# The guest console interleaves with the host's output: log to a file the
# host prints once the VM is done.
exec >"$OUT/log" 2>&1
W=/run/musicfs-vmtest            # tmpfs inside the guest
mkdir -p "$W"
B=$W/backing.img
FAILS=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
finish() { echo "$FAILS" > "$OUT/result"; exit 0; }

SP=""
serve() {  # starts ublk_serve over $B; sets SP and DEV
    : > "$W/serve.out"
    "$BIN/ublk_serve" "$B" --id 0 --size $((96 << 20)) >"$W/serve.out" 2>>"$W/serve.err" &
    SP=$!
    DEV=""
    for _ in $(seq 300); do
        DEV=$(awk '/^READY/ {print $2}' "$W/serve.out")
        [ -n "$DEV" ] && break
        kill -0 "$SP" 2>/dev/null || break
        sleep 0.2
    done
    [ -n "$DEV" ] && [ -b "$DEV" ]
}

if ! modprobe ublk_drv; then fail "modprobe ublk_drv"; finish; fi
pass "ublk_drv loaded ($(uname -r))"

if [ -n "$TESTBIN" ] && [ -x "$TESTBIN" ]; then
    # The io_uring device's and the ublk server's own tests on this kernel,
    # including the ignored ones that need root and ublk_drv (temp files on
    # tmpfs).
    if TMPDIR=$W "$TESTBIN" -q --include-ignored uring:: ublk:: >"$W/unit.log" 2>&1; then
        pass "UringBlockDevice and UblkServer unit tests on $(uname -r) ($(grep -o '[0-9]* passed' "$W/unit.log"))"
    else
        tail -30 "$W/unit.log"; fail "UringBlockDevice and UblkServer unit tests on $(uname -r)"
    fi
fi

if serve; then pass "ublk_serve: $DEV over $B"; else cat "$W/serve.err"; fail "ublk_serve did not come up"; finish; fi

if "$BIN/store_suite" "$DEV" full 64; then
    pass "chunk-store suite on $DEV"
else
    fail "chunk-store suite on $DEV"
fi

# kill -9 of the server in the middle of a write workload.
"$BIN/store_suite" "$DEV" format >/dev/null || fail "format $DEV"
"$BIN/store_suite" "$DEV" write 5 400 >"$W/acks" 2>"$W/writer.err" &
WP=$!
for _ in $(seq 600); do
    [ "$(grep -c '^ACK' "$W/acks")" -ge 25 ] && break
    kill -0 "$WP" 2>/dev/null || break
    sleep 0.1
done
kill -9 "$SP"
wait "$SP" 2>/dev/null
# The writer sees I/O errors and exits; do not let it hang the run.
for _ in $(seq 300); do kill -0 "$WP" 2>/dev/null || break; sleep 0.1; done
kill -9 "$WP" 2>/dev/null
wait "$WP" 2>/dev/null
ACKED=$(grep -c '^ACK' "$W/acks" || true)
echo "vmtest: killed ublk_serve -9 after $ACKED acknowledged chunks"
[ "$ACKED" -ge 25 ] || fail "writer acknowledged only $ACKED chunks before the kill"

if serve; then pass "ublk_serve restarted over the same backing: $DEV"; else cat "$W/serve.err"; fail "restart after kill -9"; finish; fi
if "$BIN/store_suite" "$DEV" check 5 400 "$W/acks"; then
    pass "reattach after kill -9: store consistent, all $ACKED acknowledged chunks intact"
else
    fail "reattach after kill -9"
fi

# Second round on the recovered store: more writes, clean stop, check.
if "$BIN/store_suite" "$DEV" write 6 40 >"$W/acks6" 2>"$W/writer.err"; then
    pass "writes after recovery"
else
    cat "$W/writer.err"; fail "writes after recovery"
fi

if [ "$BENCH" = 1 ] && [ -x "$BIN/bench_device" ]; then
    "$BIN/bench_device" "$DEV" --compare "$B" || fail "bench_device"
fi

kill -TERM "$SP"
if wait "$SP"; then pass "ublk_serve stopped on SIGTERM"; else cat "$W/serve.err"; fail "ublk_serve exit status"; fi
if [ -e "$DEV" ] || [ -e /sys/class/ublk-char/ublkc0 ]; then
    fail "device still present after stop"
else
    pass "device removed"
fi

# Reattach once more (clean stop this time) and check both workloads.
if serve; then
    "$BIN/store_suite" "$DEV" check 5 400 "$W/acks" >/dev/null && "$BIN/store_suite" "$DEV" check 6 40 "$W/acks6" \
        && pass "reattach after clean stop" || fail "reattach after clean stop"
    kill -TERM "$SP"; wait "$SP" || fail "final stop"
else
    fail "restart after clean stop"
fi

# The daemon serving its own cache on /dev/ublkb0.
T0=$(date +%s)
bash "$DAEMON_TEST" "$MUSICFS" "$BIN" "$W" "$OUT"
DF=$?
FAILS=$((FAILS + DF))
echo "vmtest: daemon phase took $(( $(date +%s) - T0 ))s"
finish
INNER
chmod +x "$OUT/inner.sh"

KVM=(--disable-kvm)
if [ "${VMTEST_KVM:-0}" = 1 ]; then KVM=(); fi
# VMTEST_VERBOSE=1: the guest kernel's console in vng.log too.
if [ "${VMTEST_VERBOSE:-0}" = 1 ]; then KVM+=(--verbose); fi
echo "vmtest: booting $KERNEL (${KVM[*]:-kvm})"
set +e
timeout 600 vng --run "$KERNEL" "${KVM[@]}" --memory 1G --cpus 2 --rwdir "$OUT" \
    --exec "bash $OUT/inner.sh $BIN '$TESTBIN' $OUT ${VMTEST_BENCH:-0} $MUSICFS $ROOT/scripts/vmtest-daemon.sh" </dev/null >"$OUT/vng.log" 2>&1
VNG_RC=$?
set -e

ELAPSED=$(( $(date +%s) - START ))
[ -f "$OUT/log" ] && cat "$OUT/log"
if [ ! -f "$OUT/result" ]; then
    tail -n 30 "$OUT/vng.log"
    echo "FAIL vmtest: the VM did not finish (vng exit $VNG_RC) after ${ELAPSED}s"
    exit 1
fi
FAILS=$(cat "$OUT/result")
if [ "$FAILS" = 0 ]; then
    echo "PASS vmtest: ublk in a VM (${ELAPSED}s)"
    exit 0
fi
echo "FAIL vmtest: $FAILS failures (${ELAPSED}s)"
exit 1
