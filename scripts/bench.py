#!/usr/bin/env python3
"""musicfs benchmark: native vs mount, side by side in one run (see scripts/bench.sh).

Usage: python3 scripts/bench.py --bin target/release/musicfs [--files 100000] [--wide 10000]
                                [--big-mb 300] [--work .work/bench] [--repeat 3]

Measures, on a generated library of --files tiny FLACs (the first --wide of them in one album,
so one directory has that many entries) and one --big-mb real FLAC:
  - sequential read of the big file: native, passthrough mount, daemon path (--no-passthrough);
  - stat latency p50/p99 of 2000 random files, mount vs native;
  - `find -type f` and `ls -lR` walks of the whole library, mount vs native;
  - readdir (names only, and with stat) of the --wide directory;
  - `musicfs mount` time with the full catalog, cold and warm; idle daemon RSS;
  - scan rate (tracks/s) with cold and warm page cache, and an unchanged rescan.
Page caches are dropped (root only) before every cold measurement, on both sides alike.
Reports ratios; timings are medians of --repeat runs. Not a test: nothing is asserted.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IS_ROOT = os.geteuid() == 0
ROWS = []  # (metric, native, musicfs, ratio, target)


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def drop_caches():
    os.sync()
    if IS_ROOT:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def median_time(fn, *args, repeat=3, cold=True):
    """Median of `repeat` runs after one untimed run: the untimed run evens out caches below this
    machine's page cache (a VM host's, a disk's), which drop_caches cannot reach, so whichever
    side runs first is not penalised."""
    fn(*args)
    times = []
    for _ in range(repeat):
        if cold:
            drop_caches()
        times.append(timed(fn, *args))
    return statistics.median(times)


def row(metric, native, mounted, ratio=None, target=""):
    ROWS.append((metric, native, mounted, ratio, target))
    log("%s: native=%s musicfs=%s ratio=%s" % (metric, native, mounted, ratio))


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if v >= 100:
        return "%.0f" % v
    if v >= 1:
        return "%.2f" % v
    return "%.3g" % v


class Daemon:
    def __init__(self, binary, state, name):
        self.bin = binary
        self.dir = os.path.join(state, name)
        os.makedirs(self.dir, exist_ok=True)
        self.catalog = os.path.join(self.dir, "catalog.db")
        self.mnt = os.path.join(self.dir, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        self.pid = None

    def cmd(self, *args, check=True):
        full = [self.bin, "--catalog", self.catalog, "--socket", os.path.join(self.dir, "control.sock"),
                "--log-file", os.path.join(self.dir, "musicfs.log")] + list(args)
        res = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and res.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(full), res.returncode, res.stderr.strip()))
        return res

    def fresh_catalog(self):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.catalog + suffix):
                os.remove(self.catalog + suffix)

    def mount(self, source, *extra):
        start = time.perf_counter()
        self.cmd("mount", source, self.mnt, *extra)
        elapsed = time.perf_counter() - start
        self.pid = self.status().get("pid")
        return elapsed

    def status(self):
        return json.loads(self.cmd("status", "--json").stdout)

    def wait_scan(self, timeout=1800):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.status()
            if s.get("scans_completed", 0) >= 1 and not s.get("scanning"):
                return s
            time.sleep(0.2)
        raise RuntimeError("scan did not finish in %d s" % timeout)

    def rss_mb(self):
        with open("/proc/%d/status" % self.pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return None

    def unmount(self):
        if self.cmd("shutdown", check=False).returncode != 0:
            subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL)
        if self.pid:
            deadline = time.time() + 20
            while os.path.exists("/proc/%d" % self.pid) and time.time() < deadline:
                time.sleep(0.05)
        self.pid = None


# --- inputs ----------------------------------------------------------------------------------

def prepare_library(work, files, wide):
    lib = os.path.join(work, "library")
    manifest = os.path.join(work, "library.json")
    try:
        with open(manifest) as fh:
            m = json.load(fh)
        if m.get("large") == files and m.get("wide") == wide:
            return lib
    except (OSError, ValueError):
        pass
    log("generating %d files (%d in one album) in %s" % (files, wide, lib))
    shutil.rmtree(lib, ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts/gen_corpus.py"), "--out", lib,
                    "--large", str(files), "--wide", str(wide), "--manifest", manifest], check=True)
    return lib


def prepare_big(work, big_mb):
    """A real FLAC of about big_mb MB: white noise barely compresses (96 kHz, 24-bit stereo)."""
    d = os.path.join(work, "big")
    path = os.path.join(d, "big.flac")
    stamp = path + ".mb"
    if os.path.exists(path) and os.path.exists(stamp) and open(stamp).read() == str(big_mb):
        return d, path
    os.makedirs(d, exist_ok=True)

    def encode(seconds):
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
                        "-i", "anoisesrc=d=%d:c=white:r=96000:a=1" % seconds, "-ac", "2",
                        "-sample_fmt", "s32", "-c:a", "flac", "-metadata", "title=Noise",
                        "-metadata", "artist=Bench", "-metadata", "album=Big", "-metadata", "track=1",
                        path], check=True)

    encode(10)  # calibrate: how many bytes a second of this noise takes
    seconds = int(big_mb * 1e6 / (os.path.getsize(path) / 10.0)) + 1
    log("encoding a %d s noise FLAC (~%d MB)" % (seconds, big_mb))
    encode(seconds)
    with open(stamp, "w") as fh:
        fh.write(str(big_mb))
    return d, path


# --- measurements ----------------------------------------------------------------------------

def read_all(path):
    buf = bytearray(1 << 20)
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                return total
            total += n


def find_files(root):
    subprocess.run(["find", root, "-type", "f"], stdout=subprocess.DEVNULL, check=True)


def ls_lr(root):
    subprocess.run(["ls", "-lR", root], stdout=subprocess.DEVNULL, check=True)


def list_names(d):
    return len(os.listdir(d))


def list_with_stat(d):
    n = 0
    with os.scandir(d) as it:
        for e in it:
            e.stat(follow_symlinks=False)
            n += 1
    return n


def stat_latencies(paths):
    out = []
    for p in paths:
        t0 = time.perf_counter_ns()
        os.stat(p)
        out.append(time.perf_counter_ns() - t0)
    out.sort()
    return out[len(out) // 2] / 1000.0, out[min(len(out) - 1, int(len(out) * 0.99))] / 1000.0


def all_files(root):
    out = []
    for dirpath, _, names in os.walk(root):
        out.extend(os.path.join(dirpath, n) for n in names)
    return out


def bench_scan(d, lib, files):
    d.fresh_catalog()
    drop_caches()
    cold = timed(d.cmd, "scan", lib)
    d.fresh_catalog()
    warm = timed(d.cmd, "scan", lib)
    again = timed(d.cmd, "scan", lib)
    row("scan rate, cold cache (tracks/s)", None, files / cold)
    row("scan rate, warm cache (tracks/s)", None, files / warm)
    row("rescan, nothing changed (s)", None, again)


def bench_mount(d, lib, files, repeat):
    colds, warms = [], []
    for i in range(repeat):
        drop_caches()
        colds.append(d.mount(lib))
        d.wait_scan()
        d.unmount()
    for i in range(repeat):
        warms.append(d.mount(lib))
        d.wait_scan()
        if i < repeat - 1:
            d.unmount()
    row("musicfs mount, %d-track catalog, cold (ms)" % files, None, statistics.median(colds) * 1000,
        target="< 100 ms")
    row("musicfs mount, %d-track catalog, warm (ms)" % files, None, statistics.median(warms) * 1000,
        target="< 100 ms")
    time.sleep(2)
    row("idle daemon RSS, %d tracks (MB)" % files, None, d.rss_mb(), target="< 50 MB")


def bench_tree(d, lib, wide, repeat):
    mnt = d.mnt
    for name, fn in (("find -type f", find_files), ("ls -lR", ls_lr)):
        n = median_time(fn, lib, repeat=repeat)
        m = median_time(fn, mnt, repeat=repeat)
        row("%s walk, cold (s)" % name, n, m, m / n)
    rng = random.Random(1)
    native_all, mount_all = all_files(lib), all_files(mnt)
    native_paths = rng.sample(native_all, min(2000, len(native_all)))
    mount_paths = rng.sample(mount_all, min(2000, len(mount_all)))
    stat_latencies(native_paths)  # even out caches below the page cache (see median_time)
    stat_latencies(mount_paths)
    # Each side: cold right after a drop, then warm right after that (before the next drop).
    drop_caches()
    cold_n = stat_latencies(native_paths)
    warm_n = stat_latencies(native_paths)
    drop_caches()
    cold_m = stat_latencies(mount_paths)
    warm_m = stat_latencies(mount_paths)
    for label, (n, m) in (("cold", (cold_n, cold_m)), ("warm", (warm_n, warm_m))):
        row("stat p50, %s (us)" % label, n[0], m[0], m[0] / n[0])
        row("stat p99, %s (us)" % label, n[1], m[1], m[1] / n[1])
    if wide:
        native_dir = os.path.join(lib, "wide")
        mount_dir = os.path.join(mnt, "Wide Artist", "Wide Album")
        for name, fn in (("readdir names", list_names), ("readdir + stat", list_with_stat)):
            n = median_time(fn, native_dir, repeat=repeat)
            m = median_time(fn, mount_dir, repeat=repeat)
            row("%s, %d entries, cold (ms)" % (name, wide), n * 1000, m * 1000, m / n)


def bench_reads(binary, state, big_dir, big_path, repeat):
    size_mb = os.path.getsize(big_path) / 1e6
    pt = Daemon(binary, state, "big-passthrough")
    dp = Daemon(binary, state, "big-daemon")
    for d, extra in ((pt, ()), (dp, ("--no-passthrough",))):
        d.fresh_catalog()
        d.mount(big_dir, *extra)
        d.wait_scan()
    try:
        pt_file = all_files(pt.mnt)[0]
        dp_file = all_files(dp.mnt)[0]
        for p in (big_path, pt_file, dp_file):  # even out caches below the page cache (see median_time)
            read_all(p)
        for label, cold in (("cold", True), ("warm", False)):
            if not cold:
                for p in (big_path, pt_file, dp_file):
                    read_all(p)
            native, via_pt, via_dp = [], [], []
            # Interleaved, so drift hits all three alike; warm reads are short, so more of them.
            for _ in range(repeat if cold else max(5, 3 * repeat)):
                for p, acc in ((big_path, native), (pt_file, via_pt), (dp_file, via_dp)):
                    if cold:
                        drop_caches()
                    acc.append(size_mb / timed(read_all, p))
            n = statistics.median(native)
            p = statistics.median(via_pt)
            q = statistics.median(via_dp)
            row("sequential read %d MB, passthrough, %s (MB/s)" % (size_mb, label), n, p, p / n,
                "≥ 0.95" if cold else "")
            row("sequential read %d MB, daemon path, %s (MB/s)" % (size_mb, label), n, q, q / n,
                "≥ 0.5" if cold else "")
        s = pt.status()
        row("passthrough opens / daemon opens (passthrough mount)", None,
            "%s / %s" % (s.get("passthrough_opens"), s.get("daemon_opens")),
            target=str(s.get("passthrough_unavailable") or ""))
    finally:
        pt.unmount()
        dp.unmount()


def print_table(args):
    print()
    print("musicfs benchmark — %s, kernel %s, %d CPUs, page caches %s" % (
        time.strftime("%Y-%m-%d %H:%M"), os.uname().release, os.cpu_count(),
        "dropped before cold runs" if IS_ROOT else "NOT dropped (not root): cold = warm"))
    print("command: bash scripts/bench.sh --files %d --wide %d --big-mb %d --repeat %d" % (
        args.files, args.wide, args.big_mb, args.repeat))
    head = ("metric", "native", "musicfs", "ratio", "target")
    widths = [max(len(head[i]), *(len(fmt(r[i])) for r in ROWS)) for i in range(5)] if ROWS else [10] * 5
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("-" * len(line))
    for r in ROWS:
        print("  ".join(fmt(v).ljust(w) for v, w in zip(r, widths)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "target/release/musicfs"))
    p.add_argument("--files", type=int, default=100000)
    p.add_argument("--wide", type=int, default=10000)
    p.add_argument("--big-mb", type=int, default=300)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--work", default=os.path.join(ROOT, ".work/bench"))
    p.add_argument("--only", help="comma-separated sections: reads,scan,mount,tree")
    args = p.parse_args()
    if not IS_ROOT:
        log("not root: page caches cannot be dropped and passthrough needs CAP_SYS_ADMIN")
    work = os.path.abspath(args.work)
    state = os.path.join(work, "state")
    os.makedirs(state, exist_ok=True)
    sections = set((args.only or "reads,scan,mount,tree").split(","))
    lib = prepare_library(work, args.files, min(args.wide, args.files))
    big_dir, big_path = prepare_big(work, args.big_mb)
    main_daemon = Daemon(args.bin, state, "library")
    steps = [
        ("reads", lambda: bench_reads(args.bin, state, big_dir, big_path, args.repeat)),
        ("scan", lambda: bench_scan(main_daemon, lib, args.files)),
        ("mount", lambda: bench_mount(main_daemon, lib, args.files, args.repeat)),
        ("tree", lambda: bench_tree(main_daemon, lib, min(args.wide, args.files), args.repeat)),
    ]
    try:
        for name, fn in steps:
            if name not in sections:
                continue
            if name == "tree" and main_daemon.pid is None:
                main_daemon.mount(lib)
                main_daemon.wait_scan()
            log("== %s" % name)
            try:
                fn()
            except Exception as e:  # one broken section must not hide the others
                row("%s: FAILED" % name, None, str(e)[:120])
    finally:
        main_daemon.unmount()
    print_table(args)


if __name__ == "__main__":
    main()
