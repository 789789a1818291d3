#!/bin/bash
# The daemon phase of scripts/vmtest.sh, run inside the VM as root after
# the ublk_serve phase: the musicfs daemon itself serves its chunk cache on
# /dev/ublkb0 (config `[cache] kind = "ublk"`), the device lives and dies
# with the daemon, and a restart — after a clean shutdown and after kill -9
# — reattaches to the same cache content.
#
# Usage: vmtest-daemon.sh MUSICFS EXAMPLES_DIR WORKDIR [LOGDIR]
# (LOGDIR: where the daemon's log goes, default WORKDIR; vmtest.sh passes
# its host-visible results dir.) Prints PASS/FAIL lines; exits with the number of failures (0 = passed).
set -u
MUSICFS=$1 BIN=$2 W=$3/daemon LOG=${4:-$3/daemon}/musicfs.log
mkdir -p "$W"
FAILS=0
pass() { echo "PASS daemon: $*"; }
fail() { echo "FAIL daemon: $*"; FAILS=$((FAILS + 1)); }
# Stop at the first broken step: later ones would only fail for its sake.
abort() { fail "$*"; cleanup; echo "daemon log (tail):"; tail -n 40 "$LOG" 2>/dev/null; exit "$FAILS"; }

LIB=$W/lib MNT=$W/mnt BK=$W/backing.img CFG=$W/config.toml
DEV=/dev/ublkb0 SEED=11 N=40
mkdir -p "$LIB" "$MNT"
cat >"$CFG" <<EOF
catalog = "$W/catalog.db"
cache_dir = "$W/cache"
socket = "$W/control.sock"
log_file = "$LOG"
log_level = "info"

[cache]
kind = "ublk"
ublk_backing = "$BK"
ublk_id = 0
EOF
mf() { "$MUSICFS" --config "$CFG" "$@"; }

# One field of a JSON object on stdin.
field() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

mounted() { grep -q " $MNT fuse" /proc/mounts; }
not_mounted() { ! mounted; }
# Gone or a zombie (the detached daemon's parent is the VM's init).
dead() { [ ! -d "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
cleanup() {
    local pid
    pid=$(mf status --json 2>/dev/null | field pid)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    mounted && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; }
}

# Polls for up to $1 tenths of a second (wall clock: a musicfs call alone
# takes a while under TCG) for command $2... to succeed.
wait_for() {
    local end=$(($(date +%s%N) + $1 * 100000000))
    shift
    while :; do
        "$@" && return 0
        [ "$(date +%s%N)" -lt "$end" ] || return 1
        sleep 0.1
    done
}
cache_open() { [ "$(mf status --json 2>/dev/null | field cache_state)" = open ]; }
dev_gone() { [ ! -e "$DEV" ] && [ ! -e /sys/class/ublk-char/ublkc0 ]; }

# Starts the daemon and waits for its cache to be open on /dev/ublkb0.
start() {  # $1 = what this start is, for the messages
    mf mount "$LIB" "$MNT" >>"$W/mount.out" 2>&1 || abort "$1: musicfs mount failed: $(tail -n 3 "$W/mount.out")"
    mounted || abort "$1: $MNT is not a FUSE mount after musicfs mount"
    if ! wait_for 300 cache_open; then
        abort "$1: cache not open after 30 s: $(mf status --json 2>&1 | tail -n 1)"
    fi
    [ -b "$DEV" ] || abort "$1: $DEV is not a block device while the daemon serves it"
}

# The daemon's stats show the ublk device and the N chunks written offline;
# its verify is clean.
check_served() {  # $1 = what this start is
    # The live device is claimed: even --force must not format it.
    local f
    if f=$(mf cache format "$DEV" --force 2>&1); then
        fail "$1: musicfs cache format $DEV --force overwrote the device the daemon serves: $f"
    elif grep -q "in use" <<<"$f"; then
        pass "$1: cache format $DEV --force refused while served"
    else
        fail "$1: cache format $DEV --force failed for another reason: $f"
    fi
    local s
    s=$(mf cache stats --json 2>&1) || abort "$1: cache stats: $s"
    local src kind dev chunks corrupt
    src=$(field source <<<"$s") kind=$(field kind <<<"$s") dev=$(field device <<<"$s")
    chunks=$(field chunks <<<"$s") corrupt=$(field corrupt_chunks <<<"$s")
    if [ "$src" = daemon ] && [ "$kind" = ublk ] && [[ "$dev" == "$DEV"* ]] \
        && [ "$chunks" = "$N" ] && [ "$corrupt" = 0 ]; then
        pass "$1: the daemon serves $dev (kind $kind), $chunks chunks as written offline"
    else
        fail "$1: cache stats: $s"
    fi
    local v
    if v=$(mf cache verify 2>&1); then
        pass "$1: cache verify through the daemon: $(tail -n 1 <<<"$v")"
    else
        fail "$1: cache verify: $v"
    fi
}

# Shuts the daemon down; the mount and the ublk device must be gone.
stop() {  # $1 = what this stop is
    local out
    out=$(mf shutdown 2>&1) || fail "$1: musicfs shutdown: $out"
    if wait_for 100 not_mounted; then
        pass "$1: mount gone after shutdown"
    else
        fail "$1: $MNT still mounted after shutdown"
    fi
    if wait_for 100 dev_gone; then
        pass "$1: $DEV removed with the daemon"
    else
        abort "$1: $DEV still present 10 s after the daemon stopped"
    fi
}

# The backing holds the N chunks of SEED byte for byte (offline, no daemon).
check_backing() {  # $1 = after what
    local acks=$W/acks.all
    seq 0 $((N - 1)) | sed 's/^/ACK /' >"$acks"
    local out
    if out=$("$BIN/store_suite" "$BK" check "$SEED" "$N" "$acks" 2>&1); then
        pass "$1: backing image intact offline ($out)"
    else
        fail "$1: backing check: $out"
    fi
}

dev_gone || abort "$DEV present before the daemon phase (the ublk_serve phase left it)"
modprobe fuse 2>/dev/null
[ -e /dev/fuse ] || abort "no /dev/fuse in the VM"

# An empty library (the mount works with zero files), a 64 MiB backing on
# tmpfs formatted by musicfs and filled offline with N known chunks.
if out=$(mf cache format "$BK" --size 64MiB 2>&1); then
    pass "musicfs cache format $BK"
else
    abort "musicfs cache format: $out"
fi
"$BIN/store_suite" "$BK" write "$SEED" "$N" >"$W/acks.write" 2>&1 \
    || abort "store_suite write: $(tail -n 3 "$W/acks.write")"
[ "$(grep -c '^ACK' "$W/acks.write")" = "$N" ] || abort "store_suite acknowledged $(grep -c '^ACK' "$W/acks.write") of $N chunks"

T0=$(date +%s)
start "first start"
pass "first start: mounted, cache open on $DEV ($(($(date +%s) - T0))s)"
check_served "first start"
stop "clean shutdown"
check_backing "after clean shutdown"

# kill -9: the ublk server dies with the daemon; the next start reclaims
# the dead device (same id) over the same backing.
start "second start"
PID=$(mf status --json | field pid)
[ -n "$PID" ] || abort "no daemon pid in status --json"
kill -9 "$PID" 2>/dev/null || abort "kill -9 $PID"
wait_for 100 dead "$PID" || abort "daemon $PID still alive after kill -9"
mounted && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; }
mounted && abort "could not clear the dead mount at $MNT"
pass "daemon $PID killed with -9, dead mount cleared"
T0=$(date +%s)
start "restart after kill -9"
pass "restart after kill -9: $DEV reclaimed, cache open ($(($(date +%s) - T0))s)"
check_served "restart after kill -9"
stop "final shutdown"
check_backing "after kill -9 and restart"
exit "$FAILS"
