#!/usr/bin/env python3
"""GPU row of `make bench`: what GPU passthrough adds to a container start.

Usage (as root, from the repository root):

    python3 bench/gpu.py [--runs N] [--vessel PATH]

Builds the fake NVIDIA driver of the tests (runtime-tests/gpu/
make-fake-driver.sh: two GPUs, seven driver libraries in an ld.so.cache,
nvidia-smi, firmware) and a glibc image (busybox + the host's libc, as
runtime-tests/gpu/make-gpu-image.sh makes it), then times, alternating,
N foreground `vessel --gpu-root FAKE run` of /bin/true with
NVIDIA_VISIBLE_DEVICES=all and N without it (3 warm-up runs each). Each
side has its own copy of the image. The added time is the median of the
paired differences (with minus without, run i against run i).

Timed the same way as bench.py (posix_spawn + wait4, perf_counter_ns).
Containers get ids vessel-bench-gpu-<pid>-<i> and cgroupsPath
/vessel-bench-gpu-<pid>; the script checks nothing of them is left.
Exit status: 0 when every run succeeded, 1 otherwise, 2 on setup errors.
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procs import Spawner  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU = os.path.join(REPO, "runtime-tests", "gpu")
WARMUP = 3


def sh(*argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"gpu bench: {' '.join(argv)} failed: {r.stderr.strip()[-400:]}")


def bundle(tmp, name, vessel, gpu):
    b = os.path.join(tmp, name)
    os.mkdir(b)
    rootfs = os.path.join(b, "rootfs")
    sh("sh", os.path.join(REPO, "bundles", "busybox", "build-rootfs.sh"), rootfs)
    sh("sh", os.path.join(GPU, "make-gpu-image.sh"), rootfs, "debian")
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    built = sorted(glob.glob(os.path.join(REPO, "target", "*", "release", "vessel")))
    ap.add_argument("--vessel", default=built[0] if built else os.path.join(REPO, "target", "release", "vessel"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("gpu bench: must run as root")
    if not shutil.which("cc") or not shutil.which("ldconfig"):
        print("gpu bench: skipped (needs cc and ldconfig to build the fake driver)")
        return 0
    vessel = os.path.abspath(args.vessel)
    tmp = tempfile.mkdtemp(prefix="vessel-bench-gpu-")
    ok = True
    try:
        fake = os.path.join(tmp, "fake-driver")
        sh("sh", os.path.join(GPU, "make-fake-driver.sh"), fake)
        sides = {"with": bundle(tmp, "with", vessel, True), "without": bundle(tmp, "without", vessel, False)}
        root = os.path.join(tmp, "state")
        os.mkdir(root)
        sp = Spawner(tmp)
        samples = {"with": [], "without": []}
        for i in range(WARMUP + args.runs):
            for side, b in sides.items():
                cid = f"vessel-bench-gpu-{os.getpid()}-{side}-{i}"
                res = sp.call([vessel, "--root", root, "--gpu-root", fake, "run", "--bundle", b, cid])
                if res.rc != 0:
                    print(f"gpu bench: run {cid} failed: {res.err.strip()[-400:]}", file=sys.stderr)
                    ok = False
                    break
                if i >= WARMUP:
                    samples[side].append(res.ns)
            if not ok:
                break
        left = [e for e in os.listdir(root)]
        if left:
            print(f"gpu bench: containers left behind: {left}", file=sys.stderr)
            ok = False
        if ok:
            w, wo = samples["with"], samples["without"]
            added = statistics.median(a - b for a, b in zip(w, wo))
            print(f"gpu: vessel run of /bin/true, fake driver (2 GPUs, 7 libraries), median of {args.runs}:")
            print(f"  NVIDIA_VISIBLE_DEVICES=all {statistics.median(w) / 1e6:.2f} ms, "
                  f"without {statistics.median(wo) / 1e6:.2f} ms, "
                  f"added {added / 1e6:.2f} ms (median of paired differences)")
    finally:
        for d in glob.glob(f"/sys/fs/cgroup/*/vessel-bench-gpu-{os.getpid()}") + \
                glob.glob(f"/sys/fs/cgroup/vessel-bench-gpu-{os.getpid()}"):
            try:
                os.rmdir(d)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
