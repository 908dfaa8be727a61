"""A realistically large image for bench/gpu.py's Debian row, generated at
bench time (nothing is downloaded): on top of the glibc image of the GPU
tests, LIBS shared libraries with distinct sonames in
/usr/lib/x86_64-linux-gnu (one stub compiled once, its soname patched in
each copy, named libX.so.1.0.0 as packages ship them; `ldconfig -r` makes
the soname links and the image's /etc/ld.so.cache, as a distribution
image has thousands of entries), and MB megabytes of filler files
(usr/share/bench-filler: what an image's Python, CUDA or data would be).
"""

import os
import subprocess

STUB_C = "int vessel_bench_stub(void) { return 42; }\n"
# The soname placeholder: each copy gets its own, of the same length.
PLACEHOLDER = b"libvbench-XXXXX.so.1"
FILLER_FILE_MB = 8


def stub_library(tmp):
    """The stub .so with the placeholder soname, compiled once."""
    src = os.path.join(tmp, "stub.c")
    out = os.path.join(tmp, "stub.so")
    with open(src, "w") as f:
        f.write(STUB_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", out, src,
                    f"-Wl,-soname,{PLACEHOLDER.decode()}"], check=True)
    with open(out, "rb") as f:
        data = f.read()
    if data.count(PLACEHOLDER) != 1:
        raise RuntimeError(f"the stub's soname occurs {data.count(PLACEHOLDER)} times, not once")
    return data


def add_libraries(rootfs, count, stub):
    libdir = os.path.join(rootfs, "usr", "lib", "x86_64-linux-gnu")
    for i in range(count):
        soname = f"libvbench-{i:05d}.so.1".encode()
        path = os.path.join(libdir, f"libvbench-{i:05d}.so.1.0.0")
        with open(path, "wb") as f:
            f.write(stub.replace(PLACEHOLDER, soname))


def add_filler(rootfs, mb):
    """MB megabytes in files of FILLER_FILE_MB, real blocks (not sparse)."""
    d = os.path.join(rootfs, "usr", "share", "bench-filler")
    os.makedirs(d, exist_ok=True)
    block = os.urandom(1 << 20)
    left, n = mb, 0
    while left > 0:
        size = min(FILLER_FILE_MB, left)
        with open(os.path.join(d, f"blob-{n:04d}.bin"), "wb") as f:
            for _ in range(size):
                f.write(block)
        left -= size
        n += 1


def enlarge(rootfs, tmp, libs, mb):
    """Adds the libraries and filler to ROOTFS (a glibc image whose
    /etc/ld.so.conf names /usr/lib/x86_64-linux-gnu) and rebuilds its
    ld.so.cache; returns the number of entries in it."""
    add_libraries(rootfs, libs, stub_library(tmp))
    add_filler(rootfs, mb)
    subprocess.run(["ldconfig", "-r", rootfs], check=True)
    listing = subprocess.run(["ldconfig", "-p", "-C", os.path.join(rootfs, "etc", "ld.so.cache")],
                             capture_output=True, text=True, check=True).stdout
    return sum(1 for line in listing.splitlines() if "=>" in line)


def size_mb(path):
    total = 0
    for top, _, files in os.walk(path):
        for name in files:
            p = os.path.join(top, name)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total / (1 << 20)
