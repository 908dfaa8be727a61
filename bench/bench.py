#!/usr/bin/env python3
"""Start-up benchmark: vessel against runc and crun.

Usage (as root, from the repository root):

    python3 bench/bench.py [--runs N] [--vessel PATH] [--runc PATH]
                           [--crun PATH] [--rootfs DIR] [--json FILE]
                           [--crun-wrapper auto|always|never]

For every runtime whose binary exists (a missing one is reported as
skipped) it measures, after 3 warm-up iterations, N iterations of:

  run  `RT --root R run --bundle B ID` of /bin/true (foreground, so the
       runtime waits for the container and deletes it);
  csd  `RT --root R create --bundle B --pid-file P ID`, `start ID`, a wait
       for the container process to exit (pidfd_open + poll on the pid
       from the pid file; no sleeping), then `delete ID`.  After the wait,
       and outside the timed region, `state ID` must say "stopped".

Each timed runtime invocation is started with posix_spawn and reaped with
wait4(); its wall time is taken with perf_counter_ns.

Peak RSS is measured in N extra, untimed `run` iterations.  wait4() on a
process that Python spawned directly is useless for this: exec() records
the RSS high-water mark of the image it replaces, so every direct child
reports at least Python's own RSS (~10 MiB here).  The runtime is instead
started by /bin/sh as a background job (sh forks a small copy of itself
that execs the runtime) and, once sh has exited, waited for directly with
wait4(); the floor left by sh is about 1 MiB, the same as GNU time(1)
gives for /bin/true.  ru_maxrss covers the runtime process and the
children it reaps itself (for `run`: the container's init, which starts as
a copy of the runtime or as `runc init`).  The table shows the largest
value over those runs, in KiB.

The benchmark makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so
a container whose runtime has exited (create/start) is re-parented to it
and reaped by it, as containerd's shim would do.  Only processes that this
script started (and the containers it created) are ever waited on,
killed (`delete --force` during clean-up) or reaped.

crun 1.8.1 refuses hybrid cgroup hosts (cgroup v1 controllers plus a
cgroup2 mount at /sys/fs/cgroup/unified).  On such a host every crun call
runs as

    unshare -m --propagation private /bin/sh -c \
        'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh crun ARGS

The umount happens only inside that private mount namespace; nothing is
ever unmounted in the host namespace.  The wrapper's own cost is measured
(same command exec'ing /bin/true) and its median is subtracted from crun's
times: once per `run`, three times per create+start+wait+delete.

Containers get ids vessel-bench-<runtime>-<scenario>-<benchpid>-<i> and
the explicit cgroupsPath /vessel-bench-<benchpid> (one container at a time;
without one, runc and crun would put the memory cgroup under the machine's
own cgroup).  At the end the script checks that no
/sys/fs/cgroup/vessel-bench* or /sys/fs/cgroup/*/vessel-bench* directory
of this run is left (and removes empty ones that are).

Exit status: 0 when every runtime that was present ran cleanly, 1 when a
runtime failed or something was left behind, 2 on a usage or setup error.
"""

import argparse
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procs import (BenchError, Runtime, Spawner, reap_strays,  # noqa: E402
                   set_subreaper, wait_exit, WRAPPER_SCRIPT)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 3
CGROUP_MNT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"

# `runc spec` output of runc 1.1, used when no runc binary is available to
# write it.
RUNC_SPEC = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
        ],
        "cwd": "/",
        "capabilities": {
            k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            for k in ("bounding", "effective", "permitted", "ambient")
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                     "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in
                       ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
            "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
        ],
        "readonlyPaths": [
            "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
            "/proc/sysrq-trigger",
        ],
    },
}


def die(msg, code=2):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(code)


def cgroup_mode():
    """Returns 'v1', 'v2', 'hybrid' or 'unknown' from /proc/self/mountinfo."""
    fstype = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mnt = left.split()[4]
            fstype[mnt] = right.split()[0]
    top = fstype.get(CGROUP_MNT)
    if top == "cgroup2":
        return "v2"
    v1 = any(m.startswith(CGROUP_MNT + "/") and t == "cgroup"
             for m, t in fstype.items())
    if v1 and fstype.get(UNIFIED) == "cgroup2":
        return "hybrid"
    return "v1" if v1 else "unknown"


class Bench:
    def __init__(self, args, tmp, bundle):
        self.args, self.tmp, self.bundle = args, tmp, bundle
        self.sp = Spawner(tmp)
        self.token = str(os.getpid())
        self.strays = 0
        self.subreaper = False

    def cid(self, rt, scen, i):
        return f"vessel-bench-{rt.name}-{scen}-{self.token}-{i}"

    def check(self, rt, res, what):
        if res.rc != 0:
            msg = (res.err.strip() or res.out.strip() or "(no output)")
            raise BenchError(f"`{what}` exited {res.rc}: {msg[-600:]}")

    def state(self, rt, cid):
        res = self.sp.call(rt.argv("state", cid))
        if res.rc != 0:
            return None, res
        try:
            return json.loads(res.out).get("status"), res
        except ValueError:
            raise BenchError(f"`state {cid}` printed no JSON: {res.out[:200]!r}")

    def one_run(self, rt, cid, verify, rss=False):
        rt.live.add(cid)
        argv = rt.argv("run", "--bundle", self.bundle, cid)
        res = self.sp.call_rss(argv) if rss else self.sp.call(argv)
        self.check(rt, res, f"run {cid}")
        if verify:
            st, _ = self.state(rt, cid)
            if st is not None:
                raise BenchError(f"container {cid} still exists after "
                                 f"foreground run (state {st})")
        rt.live.discard(cid)
        self.strays += reap_strays()
        return res.ns, res.maxrss

    def one_csd(self, rt, cid, verify):
        pidfile = os.path.join(self.tmp, "pid-" + cid)
        rt.live.add(cid)
        t = time.perf_counter_ns()
        res = self.sp.call(rt.argv("create", "--bundle", self.bundle,
                                   "--pid-file", pidfile, cid))
        self.check(rt, res, f"create {cid}")
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.unlink(pidfile)
        elapsed = time.perf_counter_ns() - t
        if verify:
            st, r = self.state(rt, cid)
            if st != "created":
                raise BenchError(f"after create, state of {cid} is {st!r} "
                                 f"(expected 'created') {r.err.strip()}")
        t = time.perf_counter_ns()
        res = self.sp.call(rt.argv("start", cid))
        self.check(rt, res, f"start {cid}")
        wait_exit(pid)
        elapsed += time.perf_counter_ns() - t
        st, r = self.state(rt, cid)   # untimed check
        if st != "stopped":
            raise BenchError(f"after the container exited, state of {cid} "
                             f"is {st!r} (expected 'stopped') {r.err.strip()}")
        t = time.perf_counter_ns()
        res = self.sp.call(rt.argv("delete", cid))
        elapsed += time.perf_counter_ns() - t
        self.check(rt, res, f"delete {cid}")
        rt.live.discard(cid)
        if verify:
            st, _ = self.state(rt, cid)
            if st is not None:
                raise BenchError(f"container {cid} still exists after delete")
        self.strays += reap_strays()
        return elapsed

    def bench_runtime(self, rt):
        n = self.args.runs
        for i in range(WARMUP):
            self.one_run(rt, self.cid(rt, "run", f"w{i}"), verify=True)
        for i in range(n):
            ns, _ = self.one_run(rt, self.cid(rt, "run", i), verify=False)
            rt.samples["run"].append(ns)
        for i in range(WARMUP):
            self.one_csd(rt, self.cid(rt, "csd", f"w{i}"), verify=True)
        for i in range(n):
            rt.samples["csd"].append(
                self.one_csd(rt, self.cid(rt, "csd", i), verify=False))
        if self.subreaper:
            for i in range(n):
                _, rss = self.one_run(rt, self.cid(rt, "rss", i),
                                      verify=False, rss=True)
                rt.rss.append(rss)

    def bench_wrapper(self, unshare):
        argv = [unshare, "-m", "--propagation", "private",
                "/bin/sh", "-c", WRAPPER_SCRIPT, "sh", "/bin/true"]
        out = []
        for i in range(WARMUP + self.args.runs):
            res = self.sp.call(argv)
            if res.rc != 0:
                raise BenchError("crun wrapper (unshare + umount) failed: "
                                 + (res.err.strip() or f"exit {res.rc}"))
            if i >= WARMUP:
                out.append(res.ns)
        rss = None
        if self.subreaper:
            rss = max(self.sp.call_rss(argv).maxrss for _ in range(5))
        return out, rss

    def cleanup(self, rt):
        """delete --force every container of ours that may still exist."""
        ids = set(rt.live)
        if os.path.isdir(rt.root):
            ids.update(e for e in os.listdir(rt.root)
                       if e.startswith("vessel-bench-") and f"-{self.token}-" in e)
        left = []
        for cid in sorted(ids):
            res = self.sp.call(rt.argv("delete", "--force", cid))
            if res.rc != 0:
                st, _ = self.state(rt, cid)
                if st is not None:
                    left.append(f"{cid} ({st}): {res.err.strip()}")
        self.strays += reap_strays()
        return left


def leftover_cgroups(token=None):
    pats = [os.path.join(CGROUP_MNT, "vessel-bench*"),
            os.path.join(CGROUP_MNT, "*", "vessel-bench*")]
    found = set()
    for p in pats:
        for d in glob.glob(p):
            if os.path.isdir(d) and (token is None or f"-{token}-" in os.path.basename(d)):
                found.add(d)
    return sorted(found)


def remove_empty_cgroups(dirs):
    still = []
    for d in dirs:
        try:
            for root, subdirs, _ in os.walk(d, topdown=False):
                for s in subdirs:
                    os.rmdir(os.path.join(root, s))
            os.rmdir(d)
        except OSError as e:
            still.append(f"{d} ({e.strerror})")
    return still


def first_line(binary):
    try:
        r = subprocess.run([binary, "--version"], capture_output=True,
                           text=True, timeout=10)
        return (r.stdout.strip().splitlines() or [""])[0]
    except (OSError, subprocess.SubprocessError) as e:
        return f"? ({e})"


def make_bundle(args, tmp):
    bundle = os.path.join(tmp, "bundle")
    os.mkdir(bundle)
    if args.rootfs:
        rootfs = os.path.abspath(args.rootfs)
        if not os.path.exists(os.path.join(rootfs, "bin", "true")):
            die(f"--rootfs {rootfs}: no bin/true in it")
    else:
        rootfs = os.path.join(bundle, "rootfs")
        script = os.path.join(REPO, "bundles", "busybox", "build-rootfs.sh")
        r = subprocess.run(["sh", script, rootfs], capture_output=True, text=True)
        if r.returncode != 0:
            die("building the rootfs failed: " + (r.stderr.strip() or r.stdout.strip()))
    spec = None
    if os.access(args.runc, os.X_OK):
        r = subprocess.run([args.runc, "spec", "--bundle", bundle],
                           capture_output=True, text=True)
        if r.returncode == 0:
            with open(os.path.join(bundle, "config.json")) as f:
                spec = json.load(f)
    if spec is None:
        spec = json.loads(json.dumps(RUNC_SPEC))
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    spec["root"]["path"] = "rootfs" if not args.rootfs else rootfs
    # An explicit absolute path: with none, runc and crun put the memory
    # cgroup under the benchmark's own (the machine's) cgroup. Containers
    # run one at a time, so one path serves every iteration.
    spec.setdefault("linux", {})["cgroupsPath"] = "/vessel-bench-%d" % os.getpid()
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent="\t")
    return bundle


def ms(ns):
    return ns / 1e6


def summarize(samples):
    if not samples:
        return None
    return {"median": statistics.median(samples), "min": min(samples),
            "max": max(samples)}


def render_table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: " | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    out = [line(header), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description="Benchmark vessel against runc and crun.")
    ap.add_argument("--runs", type=int, default=30, metavar="N",
                    help="measured iterations per runtime and scenario (default 30)")
    # `make` builds for the host triple (static); a plain `cargo build --release` does not.
    built = sorted(glob.glob(os.path.join(REPO, "target", "*", "release", "vessel")))
    ap.add_argument("--vessel", default=built[0] if built else os.path.join(REPO, "target", "release", "vessel"))
    ap.add_argument("--runc", default="/usr/sbin/runc")
    ap.add_argument("--crun", default="/usr/bin/crun")
    ap.add_argument("--rootfs", metavar="DIR",
                    help="use this existing rootfs instead of building one")
    ap.add_argument("--json", metavar="FILE", help="write raw numbers to FILE")
    ap.add_argument("--crun-wrapper", choices=("auto", "always", "never"),
                    default="auto",
                    help="run crun in a private mount namespace without "
                         "/sys/fs/cgroup/unified (auto: on hybrid hosts)")
    args = ap.parse_args()
    if args.runs < 1:
        die("--runs must be at least 1")
    if not sys.platform.startswith("linux"):
        die("this benchmark runs on Linux only")
    if os.geteuid() != 0:
        die("must run as root (the runtimes create namespaces and cgroups); "
            "try: sudo python3 bench/bench.py")
    for a in ("vessel", "runc", "crun"):
        setattr(args, a, os.path.abspath(getattr(args, a)))

    mode = cgroup_mode()
    unshare = shutil.which("unshare")
    wrap_crun = (args.crun_wrapper == "always"
                 or (args.crun_wrapper == "auto" and mode == "hybrid"))
    if wrap_crun and not unshare:
        die("crun needs the unshare(1) wrapper on this host but unshare "
            "is not installed (util-linux)")

    pre = leftover_cgroups()
    if pre:
        print("bench: warning: vessel-bench cgroups from an earlier run exist "
              "(not touched): " + ", ".join(pre), file=sys.stderr)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="vessel-bench-")
    bundle = make_bundle(args, tmp)
    subreaper = set_subreaper()

    runtimes = []
    for name, path in (("vessel", args.vessel), ("runc", args.runc), ("crun", args.crun)):
        rt = Runtime(name, path, os.path.join(tmp, "state-" + name),
                     wrapped=(name == "crun" and wrap_crun), unshare=unshare)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            rt.status, rt.reason = "skipped", f"no executable at {path}"
        else:
            rt.version = first_line(path)
            os.makedirs(rt.root)
        runtimes.append(rt)

    b = Bench(args, tmp, bundle)
    b.subreaper = subreaper
    wrapper = None
    leftovers = []
    try:
        for rt in runtimes:
            if rt.status != "ok":
                print(f"bench: {rt.name}: skipped ({rt.reason})", file=sys.stderr)
                continue
            print(f"bench: {rt.name}: {rt.version} ...", file=sys.stderr, flush=True)
            try:
                if rt.wrapped and wrapper is None:
                    wrapper = b.bench_wrapper(unshare)
                b.bench_runtime(rt)
            except BenchError as e:
                rt.status, rt.reason = "failed", str(e)
                print(f"bench: {rt.name}: FAILED: {e}", file=sys.stderr)
            finally:
                left = b.cleanup(rt)
                if left:
                    leftovers += [f"{rt.name} container {x}" for x in left]
    except KeyboardInterrupt:
        print("bench: interrupted; cleaning up", file=sys.stderr)
        for rt in runtimes:
            if rt.status == "ok":
                leftovers += [f"{rt.name} container {x}" for x in b.cleanup(rt)]
        raise
    finally:
        ours = leftover_cgroups(b.token)
        if ours:
            still = remove_empty_cgroups(ours)
            print("bench: warning: runtimes left cgroups behind: "
                  + ", ".join(ours) + ("; removed (they were empty)" if not still
                                       else "; could not remove: " + ", ".join(still)),
                  file=sys.stderr)
            leftovers += [f"cgroup {x}" for x in still]
        b.sp.close()
        if leftovers:
            print(f"bench: leftovers; keeping {tmp} for inspection: "
                  + "; ".join(leftovers), file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # crun wrapper correction.
    wrap_med = statistics.median(wrapper[0]) if wrapper else 0
    CALLS = {"run": 1, "csd": 3}
    adjusted = {}
    for rt in runtimes:
        k = 1 if rt.wrapped else 0
        adjusted[rt.name] = {s: [v - k * CALLS[s] * wrap_med for v in rt.samples[s]]
                             for s in ("run", "csd")}
    stats = {rt.name: {s: summarize(adjusted[rt.name][s]) for s in ("run", "csd")}
             for rt in runtimes}
    peak = {rt.name: (max(rt.rss) if rt.rss else None) for rt in runtimes}
    crun = next(rt for rt in runtimes if rt.name == "crun")
    crun_ok = crun.status == "ok"

    def ratio(val, ref):
        if val is None or ref is None or not crun_ok or ref <= 0:
            return "n/a"
        return f"{val / ref:.2f}x"

    header = ["runtime", "run median (min-max) ms", "ratio to crun",
              "create+start+wait+delete median (min-max) ms", "ratio to crun",
              "peak RSS KiB", "ratio to crun"]
    rows = []
    for rt in runtimes:
        if rt.status != "ok":
            rows.append([rt.name, f"{rt.status}: {rt.reason}"[:70], "", "", "", "", ""])
            continue
        cells = [rt.name]
        for s in ("run", "csd"):
            st, ref = stats[rt.name][s], stats["crun"][s]
            cells.append(f"{ms(st['median']):.2f} ({ms(st['min']):.2f}-{ms(st['max']):.2f})")
            cells.append(ratio(st["median"], ref and ref["median"]))
        cells.append(str(peak[rt.name]) if peak[rt.name] else "n/a")
        cells.append(ratio(peak[rt.name], peak["crun"]))
        rows.append(cells)

    print()
    print(f"vessel bench: {args.runs} runs per runtime and scenario after "
          f"{WARMUP} warm-ups; kernel {platform.release()}, "
          f"{os.cpu_count()} CPUs, cgroups {mode}")
    for rt in runtimes:
        if rt.version:
            print(f"  {rt.name}: {rt.binary} ({rt.version})")
    print()
    print(render_table(rows, header))
    print()
    if wrapper:
        print(f"crun ran inside `unshare -m --propagation private` with "
              f"{UNIFIED} unmounted in that namespace only (hybrid cgroups). "
              f"Wrapper alone (unshare+sh+umount, exec /bin/true): median "
              f"{ms(wrap_med):.2f} ms (min {ms(min(wrapper[0])):.2f}, max "
              f"{ms(max(wrapper[0])):.2f}), peak RSS {wrapper[1] or 'n/a'} KiB; "
              f"subtracted from crun: {ms(wrap_med):.2f} ms per run, "
              f"{ms(3 * wrap_med):.2f} ms per create+start+wait+delete "
              f"(3 calls). create, start, state and delete each ran in "
              f"their own namespace; the warm-ups checked that state goes "
              f"created -> stopped -> gone. crun's RSS is the max over unshare, sh, umount "
              f"and crun (not corrected).")
    print("Times are wall-clock per iteration (perf_counter_ns). create+start+"
          "wait+delete excludes the untimed `state` check. Peak RSS: largest "
          "wait4() ru_maxrss of a `run` invocation, measured in separate "
          "untimed runs (started via /bin/sh so that Python's own RSS does "
          "not count; floor about 1 MiB).")
    if b.strays:
        print(f"(reaped {b.strays} orphaned processes of the runtimes)")
    print(f"total bench time {time.monotonic() - t_start:.1f} s")

    if args.json:
        data = {
            "runs": args.runs, "warmup": WARMUP, "kernel": platform.release(),
            "cpus": os.cpu_count(), "cgroups": mode,
            "crun_wrapper": None if not wrapper else {
                "samples_ns": wrapper[0], "median_ns": wrap_med,
                "maxrss_kib": wrapper[1],
                "subtracted_ns": {s: CALLS[s] * wrap_med for s in CALLS}},
            "runtimes": {
                rt.name: {
                    "binary": rt.binary, "version": rt.version,
                    "status": rt.status, "reason": rt.reason,
                    "wrapped": rt.wrapped,
                    "raw_ns": rt.samples, "adjusted_ns": adjusted[rt.name],
                    "stats_ns": stats[rt.name],
                    "maxrss_kib": rt.rss, "peak_rss_kib": peak[rt.name],
                } for rt in runtimes},
            "leftovers": leftovers,
        }
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
        print(f"raw numbers written to {args.json}")

    failed = [rt for rt in runtimes if rt.status == "failed"]
    return 1 if failed or leftovers else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
