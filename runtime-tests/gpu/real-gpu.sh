#!/bin/bash
# real-gpu.sh [VESSEL] — vessel on a real NVIDIA GPU. Needs root, a loaded
# NVIDIA driver (nvidia-smi works on the host) and cc; uses nvcc when it is
# there. Not part of `make test` (CI has no GPU).
#
# Builds an image with no NVIDIA file in it: a CUDA check (cuda-check.cu
# built with `nvcc -cudart static`, else cuda-check.c: the driver API by
# dlopen and a PTX kernel) and the glibc it needs, nothing else. Then:
#   1. NVIDIA_VISIBLE_DEVICES=all: `nvidia-smi -L` lists the host's GPUs;
#   2. the CUDA check names every GPU and a kernel computes 2+3=5;
#   3. NVIDIA_VISIBLE_DEVICES=0: one GPU;
#   4. NVIDIA_VISIBLE_DEVICES unset: no libcuda, no /dev/nvidia*;
#   5. timing: N runs (N=20) of `cuda-check --noop` with and without
#      NVIDIA_VISIBLE_DEVICES=all, alternated: the GPU path's added start time.
# Prints "ok"/"not ok" per check; exit 1 if any failed, 0 with SKIPPED when
# there is no GPU. The container runs in a private mount namespace with
# cgroupsPath /vessel-real-gpu-PID; everything is removed at the end.
#
# GPU_ROOT=DIR runs the same checks against a fake driver under DIR
# (make-fake-driver.sh; its libcuda runs the "kernel" on the CPU and its
# nvidia-smi is a shell script, so /bin/busybox becomes the image's /bin/sh):
# this is how the script itself is tested on machines without a GPU.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VESSEL=${1:-$REPO/target/x86_64-unknown-linux-gnu/release/vessel}
N=${N:-20}
GPU_ROOT=${GPU_ROOT:-/}

if [ ! -r "$GPU_ROOT/proc/driver/nvidia/version" ] || [ ! -x "$GPU_ROOT/usr/bin/nvidia-smi" ]; then
  echo "SKIPPED: no NVIDIA driver under $GPU_ROOT (proc/driver/nvidia/version, usr/bin/nvidia-smi)"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "real-gpu.sh: must run as root" >&2; exit 2; }
[ -x "$VESSEL" ] || { echo "real-gpu.sh: no vessel binary at $VESSEL (make build)" >&2; exit 2; }
if [ -z "${REAL_GPU_INNER:-}" ]; then
  REAL_GPU_INNER=1 exec unshare -m --propagation private bash "$0" "$VESSEL"
fi

T=$(mktemp -d /tmp/vessel-real-gpu.XXXXXX)
STATE=$T/state
trap '"$VESSEL" --root "$STATE" delete --force real-gpu >/dev/null 2>&1; rmdir /sys/fs/cgroup/*/vessel-real-gpu-$$ /sys/fs/cgroup/vessel-real-gpu-$$ 2>/dev/null; rm -rf "$T"' EXIT
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $1: $2"; }

echo "# host: $(head -1 "$GPU_ROOT/proc/driver/nvidia/version")"
echo "# vessel: $VESSEL ($("$VESSEL" --version | head -1))"
ROOTFS=$T/bundle/rootfs
mkdir -p "$ROOTFS"/{bin,etc,proc,sys,dev,tmp,lib64,usr/lib/x86_64-linux-gnu} "$STATE"
if [ "$GPU_ROOT" != / ]; then
  cp /bin/busybox "$ROOTFS/bin/sh"   # the fake nvidia-smi is a script
fi
if command -v nvcc >/dev/null && [ "$GPU_ROOT" = / ]; then
  nvcc -O2 -cudart static -o "$ROOTFS/bin/cuda-check" "$HERE/cuda-check.cu" || exit 2
  echo "# cuda-check: nvcc -cudart static ($(nvcc --version | tail -1))"
else
  cc -O2 -o "$ROOTFS/bin/cuda-check" "$HERE/cuda-check.c" -ldl || exit 2
  echo "# cuda-check: cc, driver API + PTX (no nvcc here)"
fi
# glibc as any glibc image has it: what the check and the driver's own
# programs and libraries link (libm, libdl, libpthread, librt), no more.
libc=$(ldd "$ROOTFS/bin/cuda-check" | awk '$1 == "libc.so.6" {print $3}')
for lib in $(ldd "$ROOTFS/bin/cuda-check" | awk '$2 == "=>" && $3 ~ /^\// {print $3}') \
           "${libc%/*}"/{libm.so.6,libdl.so.2,libpthread.so.0,librt.so.1}; do
  [ -e "$lib" ] && cp -L "$lib" "$ROOTFS/usr/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$ROOTFS/lib64/"
printf '/usr/lib/x86_64-linux-gnu\n' > "$ROOTFS/etc/ld.so.conf"
ldconfig -r "$ROOTFS"
found=$(find "$ROOTFS" \( -name '*nvidia*' -o -name 'libcuda*' \) | head -3)
[ -z "$found" ] && ok "the image has no NVIDIA file" || notok "the image has no NVIDIA file" "$found"

config() { # ENV_JSON ARG...
  local env=$1; shift
  local args
  args=$(printf '"%s",' "$@"); args=${args%,}
  cat > "$T/bundle/config.json" <<EOF
{"ociVersion":"1.0.2","root":{"path":"rootfs"},
 "process":{"args":[$args],"cwd":"/","user":{"uid":0,"gid":0},"env":["PATH=/bin:/usr/bin"$env]},
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
  {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}],
 "linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"}],
  "cgroupsPath":"/vessel-real-gpu-$$",
  "resources":{"devices":[{"allow":false,"access":"rwm"}]}}}
EOF
}
run() { OUT=$("$VESSEL" --root "$STATE" --gpu-root "$GPU_ROOT" run --bundle "$T/bundle" real-gpu 2>&1); RC=$?; }

want=$(ls "$GPU_ROOT/proc/driver/nvidia/gpus" | wc -l)
config ',"NVIDIA_VISIBLE_DEVICES=all"' /usr/bin/nvidia-smi -L
run
got=$(printf '%s\n' "$OUT" | grep -c '^GPU')
[ "$RC" = 0 ] && [ "$got" = "$want" ] && ok "nvidia-smi -L in the container lists the host's $want GPU(s)" \
  || notok "nvidia-smi -L lists $want GPU(s)" "rc=$RC: $OUT"
echo "$OUT" | sed 's/^/#   /'

config ',"NVIDIA_VISIBLE_DEVICES=all"' /bin/cuda-check
run
echo "$OUT" | sed 's/^/#   /'
[ "$RC" = 0 ] && grep -q "devices: $want" <<<"$OUT" && grep -q 'kernel: 2+3=5' <<<"$OUT" \
  && ok "CUDA sees $want device(s) and runs a kernel" || notok "CUDA check" "rc=$RC: $OUT"

config ',"NVIDIA_VISIBLE_DEVICES=0"' /bin/cuda-check
run
[ "$RC" = 0 ] && grep -q 'devices: 1' <<<"$OUT" && ok "NVIDIA_VISIBLE_DEVICES=0 gives one GPU" \
  || notok "NVIDIA_VISIBLE_DEVICES=0 gives one GPU" "rc=$RC: $OUT"

config '' /bin/cuda-check
run
[ "$RC" = 3 ] && grep -q 'no libcuda' <<<"$OUT" && ok "without NVIDIA_VISIBLE_DEVICES there is no GPU and no libcuda" \
  || notok "no request, no GPU" "rc=$RC: $OUT"

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
: > "$T/with"; : > "$T/without"; : > "$T/diff"
for i in $(seq 1 $((N + 2))); do
  config ',"NVIDIA_VISIBLE_DEVICES=all"' /bin/cuda-check --noop
  t0=$(date +%s%N); run; t1=$(date +%s%N)
  config '' /bin/cuda-check --noop
  t2=$(date +%s%N); run; t3=$(date +%s%N)
  [ "$i" -le 2 ] && continue   # warm-up
  echo $(( (t1 - t0) / 1000 )) >> "$T/with"
  echo $(( (t3 - t2) / 1000 )) >> "$T/without"
  echo $(( (t1 - t0) - (t3 - t2) )) >> "$T/diff"
done
w=$(awk '{print $1/1000}' "$T/with" | median)
wo=$(awk '{print $1/1000}' "$T/without" | median)
d=$(awk '{print $1/1000000}' "$T/diff" | median)
echo "# start time, median of $N: NVIDIA_VISIBLE_DEVICES=all ${w} ms, without ${wo} ms, added ${d} ms"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
