#!/usr/bin/env python3
"""GPU rows of `make bench`: what GPU passthrough adds to a container start.

Usage (as root, from the repository root):

    python3 bench/gpu.py [--runs N] [--vessel PATH] [--driver fake|debian]
                         [--libs N] [--image-mb MB] [--trace]

--driver fake (the default) builds the fake NVIDIA driver of the tests
(runtime-tests/gpu/make-fake-driver.sh: two GPUs, seven driver libraries
in an ld.so.cache, nvidia-smi, firmware) and a glibc image (busybox + the
host's libc, as runtime-tests/gpu/make-gpu-image.sh makes it).

--driver debian uses NVIDIA's real user-space files as Debian 12 packages
them (runtime-tests/gpu/make-debian-driver.sh: the 535 libraries behind
/etc/alternatives, nvidia-smi, the tests' stand-in for the kernel side;
naming this driver asks for the packages, so they are downloaded into the
cache when missing, about 35 MB) and a realistically large image: the
same glibc image plus --libs shared libraries with distinct sonames (3000)
in its ld.so.cache and --image-mb megabytes of files (300), generated at
bench time (bench/bigimage.py).

Then it times, alternating, N foreground `vessel --gpu-root ROOT run` of
/bin/true with NVIDIA_VISIBLE_DEVICES=all and N without it (3 warm-up runs
each). Each side has its own copy of the image. The added time is the
median of the paired differences (with minus without, run i against run
i). --trace then runs N more of each side with VESSEL_TRACE=1 and prints
the median time of each phase of vessel's create (where the added time
goes).

Timed the same way as bench.py (posix_spawn + wait4, perf_counter_ns).
Containers get ids vessel-bench-gpu-<pid>-<i> and cgroupsPath
/vessel-bench-gpu-<pid>; the script checks nothing of them is left.
Exit status: 0 when every run succeeded (or the Debian packages are not
available: skipped, with the reason), 1 otherwise, 2 on setup errors.
"""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# No bench/__pycache__ files left in the source tree by a bench run.
sys.dont_write_bytecode = True
import bigimage  # noqa: E402
from procs import Spawner  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU = os.path.join(REPO, "runtime-tests", "gpu")
WARMUP = 3
# make-debian-driver.sh: not cached and no download asked for; download failed.
NOT_AVAILABLE = (77, 78)


# Never the host's /etc/vessel/config.toml (a node's dev root there would
# send the bench driver's lookups to the real /dev).
NO_CONFIG = "/nonexistent/vessel-bench/config.toml"


def sh(*argv):
    r = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, VESSEL_CONFIG=NO_CONFIG))
    if r.returncode != 0:
        sys.exit(f"gpu bench: {' '.join(argv)} failed: {r.stderr.strip()[-400:]}")
    return r.stdout


def driver_root(tmp, kind):
    """The driver's root, or (None, why) when Debian's packages are not
    available."""
    root = os.path.join(tmp, f"{kind}-driver")
    if kind == "fake":
        sh("sh", os.path.join(GPU, "make-fake-driver.sh"), root)
        return root, None
    r = subprocess.run(["sh", os.path.join(GPU, "make-debian-driver.sh"), "--download", root],
                       capture_output=True, text=True)
    if r.returncode in NOT_AVAILABLE:
        return None, (r.stderr.strip().splitlines() or ["no reason given"])[-1]
    if r.returncode != 0:
        sys.exit(f"gpu bench: make-debian-driver.sh failed: {r.stderr.strip()[-400:]}")
    return root, None


def image(tmp, args):
    """The image both sides copy; a description of it for the report."""
    rootfs = os.path.join(tmp, "image")
    sh("sh", os.path.join(REPO, "bundles", "busybox", "build-rootfs.sh"), rootfs)
    sh("sh", os.path.join(GPU, "make-gpu-image.sh"), rootfs, "debian")
    if args.driver == "fake":
        return rootfs, "glibc image"
    entries = bigimage.enlarge(rootfs, tmp, args.libs, args.image_mb)
    return rootfs, f"image of {bigimage.size_mb(rootfs):.0f} MiB, {entries} entries in its ld.so.cache"


def bundle(tmp, name, vessel, gpu, rootfs):
    b = os.path.join(tmp, name)
    os.mkdir(b)
    sh("cp", "-a", rootfs, os.path.join(b, "rootfs"))
    sh(vessel, "spec", "--bundle", b)
    with open(os.path.join(b, "config.json")) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    if gpu:
        spec["process"]["env"].append("NVIDIA_VISIBLE_DEVICES=all")
    spec["linux"]["cgroupsPath"] = f"/vessel-bench-gpu-{os.getpid()}"
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(spec, f)
    return b


def gpus_given(sp, vessel, state, root, b):
    """One run of bundle B (the side with NVIDIA_VISIBLE_DEVICES=all) that
    checks the container got the control node and libcuda, so a driver
    vessel did not find cannot pass for a cheap GPU start; B's config is
    put back after."""
    path = os.path.join(b, "config.json")
    with open(path) as f:
        orig = f.read()
    spec = json.loads(orig)
    spec["process"]["args"] = ["/bin/sh", "-c", "test -c /dev/nvidiactl && test -e /usr/lib/x86_64-linux-gnu/libcuda.so.1"]
    with open(path, "w") as f:
        json.dump(spec, f)
    res = sp.call([vessel, "--root", state, "--gpu-root", root, "run", "--bundle", b,
                   f"vessel-bench-gpu-{os.getpid()}-check"])
    with open(path, "w") as f:
        f.write(orig)
    if res.rc != 0:
        print(f"gpu bench: the container got no /dev/nvidiactl or libcuda.so.1 (exit {res.rc}): "
              f"{res.err.strip()[-400:]}", file=sys.stderr)
    return res.rc == 0


def describe_driver(vessel, root, kind):
    """`fake driver (2 GPUs, 7 libraries)`, from what `gpu info` finds."""
    info = sh(vessel, "--gpu-root", root, "gpu", "info")
    gpus = re.search(r"^GPUs:\s+(\d+)", info, re.M)
    libs = re.search(r"^libraries:\s+(\d+)", info, re.M)
    version = re.search(r"^driver:\s+(\S+)", info, re.M)
    name = "fake driver" if kind == "fake" else f"Debian {version.group(1) if version else '?'} driver"
    return f"{name} ({gpus.group(1) if gpus else '?'} GPUs, {libs.group(1) if libs else '?'} libraries)"


def measure(sp, vessel, state, root, sides, runs, env_trace=False, fresh=None):
    """RUNS timed runs of each side, alternating, after WARMUP; returns the
    samples (ns per side), or the traces' phase times with env_trace; None
    when a run failed. FRESH (side: (path, bytes)): that file is put back
    before each run of that side (untimed), as an engine's fresh rootfs has
    the image's own ld.so.cache, which vessel then rewrites."""
    samples = {side: [] for side in sides}
    for i in range(WARMUP + runs):
        for side, b in sides.items():
            if fresh and side in fresh:
                path, data = fresh[side]
                with open(path, "wb") as f:
                    f.write(data)
            cid = f"vessel-bench-gpu-{os.getpid()}-{side}-{i}{'-t' if env_trace else ''}"
            res = sp.call([vessel, "--root", state, "--gpu-root", root, "run", "--bundle", b, cid])
            if res.rc != 0:
                print(f"gpu bench: run {cid} failed: {res.err.strip()[-400:]}", file=sys.stderr)
                return None
            if i >= WARMUP:
                samples[side].append(phases(res.err, res.ns) if env_trace else res.ns)
    return samples


DURATION = re.compile(r"^vessel: trace: (.+): ([0-9.]+)(ns|µs|us|ms|s)$")
UNIT_NS = {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def phases(stderr, total_ns):
    """VESSEL_TRACE's lines: each phase's own time (ns since the one
    before), and what the run took outside create (exec, start, wait,
    delete)."""
    out, last = {}, 0.0
    for line in stderr.splitlines():
        m = DURATION.match(line.strip())
        if m:
            t = float(m.group(2)) * UNIT_NS[m.group(3)]
            out[m.group(1)] = t - last
            last = t
    out["not create"] = total_ns - last
    return out


def print_trace(traces):
    names = list(dict.fromkeys(n for side in traces.values() for t in side for n in t))
    print("  vessel's create, per phase (VESSEL_TRACE, median ms): phase  with  without  added")
    for n in names:
        w = statistics.median(t.get(n, 0.0) for t in traces["with"]) / 1e6
        wo = statistics.median(t.get(n, 0.0) for t in traces["without"]) / 1e6
        print(f"    {n:<12} {w:7.3f} {wo:7.3f} {w - wo:+7.3f}")


def cleanup_cgroups():
    for d in glob.glob(f"/sys/fs/cgroup/*/vessel-bench-gpu-{os.getpid()}") + \
            glob.glob(f"/sys/fs/cgroup/vessel-bench-gpu-{os.getpid()}"):
        try:
            os.rmdir(d)
        except OSError:
            pass


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    built = sorted(glob.glob(os.path.join(REPO, "target", "*", "release", "vessel")))
    ap.add_argument("--vessel", default=built[0] if built else os.path.join(REPO, "target", "release", "vessel"))
    ap.add_argument("--driver", choices=["fake", "debian"], default="fake",
                    help="the tests' fake driver, or NVIDIA's files from Debian's packages with a large image")
    ap.add_argument("--libs", type=int, default=3000, help="debian: libraries added to the image's ld.so.cache")
    ap.add_argument("--image-mb", type=int, default=300, help="debian: megabytes of files added to the image")
    ap.add_argument("--trace", action="store_true", help="also print vessel's create phases (VESSEL_TRACE)")
    return ap.parse_args()


def run_bench(args, vessel, tmp):
    root, why = driver_root(tmp, args.driver)
    if root is None:
        print(f"gpu bench ({args.driver} driver): skipped ({why})")
        return True
    rootfs, what = image(tmp, args)
    sides = {"with": bundle(tmp, "with", vessel, True, rootfs),
             "without": bundle(tmp, "without", vessel, False, rootfs)}
    # The template stays until the end: removing its thousands of files
    # now would leave ext4 skipping their recently freed inodes in every
    # file the timed runs create (seen in perf: recently_deleted).
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    sp = Spawner(tmp)
    sp.env["VESSEL_CONFIG"] = NO_CONFIG
    if not gpus_given(sp, vessel, state, root, sides["with"]):
        return False
    samples = measure(sp, vessel, state, root, sides, args.runs)
    cache = os.path.join(sides["with"], "rootfs", "etc", "ld.so.cache")
    with open(os.path.join(rootfs, "etc", "ld.so.cache"), "rb") as f:
        fresh = measure(sp, vessel, state, root, sides, args.runs, fresh={"with": (cache, f.read())})
    traces = None
    if samples and args.trace:
        sp.env["VESSEL_TRACE"] = "1"
        traces = measure(sp, vessel, state, root, sides, args.runs, env_trace=True)
    left = os.listdir(state)
    if left:
        print(f"gpu bench: containers left behind: {left}", file=sys.stderr)
    if not samples or not fresh or (args.trace and not traces) or left:
        return False
    w, wo = samples["with"], samples["without"]
    added = statistics.median(a - b for a, b in zip(w, wo))
    print(f"gpu: vessel run of /bin/true, {describe_driver(vessel, root, args.driver)}, {what}, "
          f"median of {args.runs}:")
    print(f"  NVIDIA_VISIBLE_DEVICES=all {statistics.median(w) / 1e6:.2f} ms, "
          f"without {statistics.median(wo) / 1e6:.2f} ms, "
          f"added {added / 1e6:.2f} ms (median of paired differences; the bundle run again: its cache already holds the driver's entries)")
    fresh_added = statistics.median(a - b for a, b in zip(fresh["with"], fresh["without"]))
    print(f"  with the image's own ld.so.cache each run (an engine's fresh rootfs: vessel writes the cache): "
          f"added {fresh_added / 1e6:.2f} ms")
    if traces:
        print_trace(traces)
    return True


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("gpu bench: must run as root")
    if not shutil.which("cc") or not shutil.which("ldconfig"):
        print("gpu bench: skipped (needs cc and ldconfig to build the driver and the image)")
        return 0
    vessel = os.path.abspath(args.vessel)
    tmp = tempfile.mkdtemp(prefix="vessel-bench-gpu-")
    try:
        ok = run_bench(args, vessel, tmp)
    finally:
        cleanup_cgroups()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
