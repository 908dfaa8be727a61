#!/bin/bash
# cgroup-layouts.sh — the cgroup tests in a throw-away VM per cgroup layout:
# pure v2, pure v2 with systemd as PID 1 (the layout of most Docker and
# Kubernetes hosts), and v1 only. This machine is hybrid and cannot switch;
# on a real v2 host the same tests run natively under `make test`.
#
# The tests are built here (cargo test --no-run) and run inside the VM
# (run-in-vm.sh: Debian's kernel under qemu, the host's / read-only with a
# tmpfs overlay, this repository shared read-write). Process creation is
# about 100x slower in the emulated VM, so only the cgroup-related tests run
# there, one test at a time, with a rootfs template built beforehand on the
# host: resources:: everywhere; ops:: (pause/resume, update, ps, events) and
# rootless:: (delegation) on v2; systemd:: under systemd; ops:: and cgroups::
# (placement, the devices controller) on v1.
#
# Runs only as root and when asked (VESSEL_TEST_SYSTEM=1, which downloads
# qemu and a kernel into /tmp/kvm, about 130 MB, nothing installed) or when
# that cache exists; otherwise prints SKIPPED and exits 0.
# LAYOUTS="v1 v2" picks a subset; FILTER="resources:: ops::" sets
# the tests for every layout.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAYOUTS=${LAYOUTS:-v1 v2 systemd cri-systemd cri-v2}
export V2VM_CPUS=${V2VM_CPUS:-1}
FILTER=${FILTER:-}
CACHE=${V2VM_CACHE:-/tmp/kvm/cgroupv2-vm}

if [ "$(id -u)" != 0 ]; then
  echo "SKIPPED: cgroup layout VMs need root"; exit 0
fi
if [ "${VESSEL_TEST_SYSTEM:-0}" != 1 ] && [ ! -e "$CACHE/kernel.current" ]; then
  echo "SKIPPED: cgroup layout VMs (set VESSEL_TEST_SYSTEM=1 to download qemu and a kernel into $CACHE)"
  exit 0
fi
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(now_ms)
bash "$HERE/run-in-vm.sh" --setup >/dev/null || { echo "cgroup-layouts: VM setup failed" >&2; exit 1; }
cd "$REPO"
BIN=$(cargo test --test runtime --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "runtime" and m.get("executable"):
        print(m["executable"])' | tail -1)
[ -x "$BIN" ] || { echo "cgroup-layouts: could not build the runtime tests" >&2; exit 1; }
cargo build -q || exit 1
ROOTFS=$REPO/target/tmp/vm-rootfs
sh "$REPO/bundles/busybox/build-rootfs.sh" "$ROOTFS" || exit 1
echo "# setup and build: $(( $(now_ms) - T0 )) ms"

# The tests run one at a time, so a guest with one vCPU runs them as fast as
# one with two, and keeps one of this machine's cores busy: two VMs run side
# by side (VM_JOBS, default 2), the longest layout first. Measured on this
# 2-core machine: 509 s for all three instead of 762 s in turn. Three VMs,
# or two-vCPU guests side by side, were slower than in turn (960 s):
# emulated vCPUs then fight for the cores.
# cri-*: the CRI suite (runtime-tests/cri/run.sh) with vessel alone, the
# host's client and only the checks whose cgroups differ by layout:
# systemd's SystemdCgroup slices and scopes (lifecycle and resources but
# the OOM kill), and the limits, update, OOM and pids of the cgroupfs
# driver on pure v2
# (runc is the oracle on the host run already). Measured: 268 s and 296 s
# (lifecycle too) in the VMs; all five layouts side by side in 951 s.
CRI_CLIENT=$REPO/target/cri/debug/vessel-cri-tests
# The guest without systemd leaves lo down; the streaming server is on it.
cri_in_vm() { # driver groups
  echo "ip link set lo up; exec env CRI_CLIENT=$CRI_CLIENT CRI_CGROUP_DRIVER=$1 CRI_GROUPS=$2 HANDLERS=vessel CRI_CYCLES=2" \
    "bash $REPO/runtime-tests/cri/run.sh $REPO/target/debug/vessel"
}
run_layout() {
  local layout=$1 env tests T rc cmd
  case $layout in
    cri-systemd|cri-v2)
      if [ ! -x "$CRI_CLIENT" ] || ! command -v containerd >/dev/null; then
        echo "SKIPPED: $layout: no CRI client or containerd (make test-cri builds and installs them)" > "$REPO/target/tmp/vm-$layout.log"
        echo "0 0" > "$REPO/target/tmp/vm-$layout.rc"; return
      fi
      if [ $layout = cri-systemd ]; then
        # No oom group: in the emulated VM the OOMKilled reason was missed
        # in 2 of 5 runs under the systemd driver (exit 137, reason Error;
        # not yet explained); the OOM check runs on the host and in cri-v2.
        env=(V2VM_CGROUP=v2 V2VM_INIT=systemd); cmd=$(cri_in_vm systemd lifecycle,resources)
      else
        env=(V2VM_CGROUP=v2); cmd=$(cri_in_vm cgroupfs resources,oom)
      fi
      T=$(now_ms)
      env "${env[@]}" V2VM_SHARE="$REPO" V2VM_TIMEOUT=1200 V2VM_MEM=1536M \
        bash "$HERE/run-in-vm.sh" bash -c "$cmd" > "$REPO/target/tmp/vm-$layout.log" 2>&1
      echo "$? $(( ($(now_ms) - T) / 1000 ))" > "$REPO/target/tmp/vm-$layout.rc"
      return ;;
    v2) env=(V2VM_CGROUP=v2); tests="resources:: ops:: rootless::" ;;
    systemd) env=(V2VM_CGROUP=v2 V2VM_INIT=systemd); tests="resources:: systemd::" ;;
    v1) env=(V2VM_CGROUP=v1); tests="resources:: ops:: cgroups::" ;;
    hybrid) env=(V2VM_CGROUP=hybrid); tests="resources:: ops:: cgroups::" ;;
    *) echo "cgroup-layouts: unknown layout $layout" >&2; return 2 ;;
  esac
  T=$(now_ms)
  # shellcheck disable=SC2086
  env "${env[@]}" V2VM_SHARE="$REPO" VESSEL_TEST_ROOTFS="$ROOTFS" V2VM_TIMEOUT=1200 \
    bash "$HERE/run-in-vm.sh" "$BIN" --test-threads=1 ${FILTER:-$tests} > "$REPO/target/tmp/vm-$layout.log" 2>&1
  rc=$?
  echo "$rc $(( ($(now_ms) - T) / 1000 ))" > "$REPO/target/tmp/vm-$layout.rc"
}
JOBS=${VM_JOBS:-2}
for layout in $LAYOUTS; do
  rm -f "$REPO/target/tmp/vm-$layout.rc"
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  run_layout "$layout" &
done
wait
FAILED=""
for layout in $LAYOUTS; do
  read -r rc secs < "$REPO/target/tmp/vm-$layout.rc" 2>/dev/null || { rc=2; secs=?; }
  grep -E "^test result|FAILED|panicked|SKIPPED|^not ok|^cri:" "$REPO/target/tmp/vm-$layout.log" | sed "s/^/# [$layout] /" | head -40
  echo "# $layout: rc=$rc in $secs s"
  [ "$rc" = 0 ] || { FAILED="$FAILED $layout"; tail -30 "$REPO/target/tmp/vm-$layout.log" | sed "s/^/#   /"; }
done
echo "# cgroup layouts done in $(( ($(now_ms) - T0) / 1000 )) s"
if [ -n "$FAILED" ]; then
  echo "cgroup layouts failed:$FAILED"; exit 1
fi
echo "cgroup layouts passed: $LAYOUTS"
