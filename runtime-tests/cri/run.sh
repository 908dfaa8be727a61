#!/bin/bash
# run.sh [RUNTIME_PATH] — vessel as a Kubernetes node runs it: containerd's
# CRI plugin, driven by a CRI client making the kubelet's calls
# (runtime-tests/cri/src), with the runtime handler `vessel` and, as the
# oracle, `runc` (the same checks; GPU checks are vessel's alone).
#
# containerd (Debian's 1.6, CRI plugin built in) runs with all its state,
# sockets and configuration in a temporary directory, in a private mount
# namespace; pods get a network namespace with only `lo` (a CNI config with
# the `loopback` plugin alone). The pause image is built here from pause.c
# (static), the app image from bundles/busybox/rootfs; both are imported,
# nothing is pulled. Pod cgroups are laid out as the kubelet's cgroupfs
# driver does (/kubepods/burstable/pod<uid>/<id>), made and removed by the
# client as the kubelet would.
#
# Needs root. Installs containerd, containernetworking-plugins and
# protobuf-compiler (the client's build needs protoc) only with
# VESSEL_TEST_SYSTEM=1; without them prints SKIPPED and exits 0.
# Knobs:
#   CRI_CYCLES (200), CRI_GPU_CYCLES (50): pod create/remove cycles of
#     vessel's leak check; CRI_ORACLE_CYCLES (20) for runc's.
#   CRI_GROUPS (lifecycle,pods,resources,oom,gpu,cycles): the checks to run.
#   CRI_CGROUP_DRIVER=systemd: containerd's SystemdCgroup and the kubelet's
#     slices (on a host whose PID 1 is systemd).
#   HANDLERS ("vessel runc"): a subset. KEEP_LOGS=DIR keeps the logs.
#   CRI_CLIENT: a client built already (the VMs run the host's).
#   CRI_BENCH=N: instead of the checks, make bench's pod round trip
#     (median of N per handler, vessel vs runc).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PACKAGES="containerd containernetworking-plugins protobuf-compiler busybox-static python3 gcc libc6-dev"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if [ -z "${VESSEL_CRI_INNER:-}" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED: CRI tests need root"; exit 0
  fi
  need=""
  for p in $PACKAGES; do installed "$p" || need="$need $p"; done
  if [ -n "$need" ]; then
    if [ "${VESSEL_TEST_SYSTEM:-0}" != 1 ]; then
      echo "SKIPPED: CRI tests need$need (set VESSEL_TEST_SYSTEM=1 to install them)"; exit 0
    fi
    echo "# installing:$need"
    made_policy=0
    # Maintainer scripts must not start a system containerd.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
    fi
    # shellcheck disable=SC2086
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null; }
    rc=$?
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || { echo "run.sh: installing$need failed" >&2; exit 1; }
  fi
  RUNTIME=${1:-}
  if [ -z "$RUNTIME" ]; then
    RUNTIME=$REPO/target/x86_64-unknown-linux-gnu/release/vessel
    [ -x "$RUNTIME" ] || RUNTIME=$REPO/target/debug/vessel
    [ -x "$RUNTIME" ] || (cd "$REPO" && cargo build -q) || exit 1
  fi
  RUNTIME=$(readlink -f "$RUNTIME")
  # CRI_CLIENT: a client built already (the VMs run the one built here).
  if [ -z "${CRI_CLIENT:-}" ]; then
    T=$(now_ms)
    CLIENT_TARGET=$REPO/target/cri
    (cd "$HERE" && CARGO_TARGET_DIR=$CLIENT_TARGET cargo build -q --locked) || { echo "run.sh: building the CRI client failed" >&2; exit 1; }
    echo "# CRI client built in $(secs_since "$T")s"
    CRI_CLIENT=$CLIENT_TARGET/debug/vessel-cri-tests
  fi
  export VESSEL_CRI_INNER=1 CRI_CLIENT
  exec unshare -m --propagation private bash "$0" "$RUNTIME"
fi
RUNTIME=$1

BASE=$(mktemp -d /tmp/vessel-cri.XXXXXX)
chmod 755 "$BASE"
export BASE
mkdir -p "$BASE"/{containerd,cni/conf,log,pods,images,runtime-root}
# Paths and cgroups outside $BASE that this run may create and must remove.
: > "$BASE/created"
# The hierarchy roots: v2's one, or each v1 controller's (on v2 the
# directories below /sys/fs/cgroup are ordinary cgroups, not roots).
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  ROOTS=/sys/fs/cgroup
else
  ROOTS=$(for h in /sys/fs/cgroup/*/; do [ ! -L "${h%/}" ] && [ -e "$h/cgroup.procs" ] && echo "${h%/}"; done)
fi
for h in $ROOTS; do
  [ -e "$h/kubepods" ] || echo "$h/kubepods" >> "$BASE/created"
done
# The kubelet's slices under systemd (stopped by teardown.sh if new).
if [ "${CRI_CGROUP_DRIVER:-cgroupfs}" = systemd ] && [ ! -e /sys/fs/cgroup/kubepods.slice ]; then
  echo kubepods.slice > "$BASE/created-slices"
fi

cleanup() {
  local rc=$? T
  trap - EXIT INT TERM
  T=$(now_ms)
  bash "$HERE/teardown.sh"
  echo "# teardown in $(secs_since "$T")s"
  exit $rc
}
trap cleanup EXIT
trap 'echo "# interrupted"; exit 130' INT TERM

echo "# runtime: $RUNTIME ($("$RUNTIME" --version 2>/dev/null | head -1))"
T=$(now_ms)
# ------------------------------------------------------------------ images
gcc -static -Os -o "$BASE/images/pause" "$HERE/pause.c" || exit 1
mkdir -p "$BASE/images/pause-root"
cp "$BASE/images/pause" "$BASE/images/pause-root/pause"
tar --numeric-owner --owner=0 --group=0 -C "$BASE/images/pause-root" -cf "$BASE/images/pause.tar" .
python3 "$REPO/runtime-tests/clients/make-image-archive.py" "$BASE/images/pause.tar" "$BASE/images/pause-image.tar" localhost/vessel-pause:test /pause >/dev/null || exit 1
R=$REPO/bundles/busybox/rootfs
[ -x "$R/bin/busybox" ] || { R=$BASE/images/busybox-root; sh "$REPO/bundles/busybox/build-rootfs.sh" "$R" >/dev/null || exit 1; }
tar --numeric-owner --owner=0 --group=0 -C "$R" -cf "$BASE/images/busybox.tar" .
python3 "$REPO/runtime-tests/clients/make-image-archive.py" "$BASE/images/busybox.tar" "$BASE/images/busybox-image.tar" localhost/busybox:cri /bin/sh >/dev/null || exit 1
rm -f "$BASE/images/pause.tar" "$BASE/images/busybox.tar"

# A fake NVIDIA driver for the GPU checks, found through vessel's config
# file (containerd's runc options cannot pass the runtime flags).
GPU_ROOT=$BASE/fake-gpu
# Two configurations: `vessel` accepts the plugin's env var and volume
# mounts; `vessel-strict` (a wrapper naming another file) refuses the env
# var from unprivileged containers, as a shared cluster should.
STRICT="" GPU_SETUP=""
if sh "$REPO/runtime-tests/gpu/make-fake-driver.sh" "$GPU_ROOT" >"$BASE/log/fake-gpu.log" 2>&1; then
  mkdir -p "$BASE/cdi" "$BASE/bin"
  gpu_config() { # accept-envvar-when-unprivileged
    printf '[gpu]\ndriver-root = "%s"\ncdi-spec-dirs = ["%s/cdi"]\naccept-nvidia-visible-devices-envvar-when-unprivileged = %s\naccept-nvidia-visible-devices-as-volume-mounts = true\n' \
      "$GPU_ROOT" "$BASE" "$1"
  }
  gpu_config true > "$BASE/vessel-config.toml"
  gpu_config false > "$BASE/vessel-strict.toml"
  printf '#!/bin/sh\nVESSEL_CONFIG="%s" exec "%s" "$@"\n' "$BASE/vessel-strict.toml" "$RUNTIME" > "$BASE/bin/vessel-strict"
  chmod 755 "$BASE/bin/vessel-strict"
  STRICT=vessel-strict
  # The node's CDI spec, and the same devices under the device plugin's
  # own kind, which only a spec on disk defines (vessel answers
  # nvidia.com/gpu=X itself when no spec has that kind).
  if VESSEL_CONFIG=/nonexistent "$RUNTIME" --gpu-root "$GPU_ROOT" gpu cdi > "$BASE/cdi/vessel-nvidia.json" 2>>"$BASE/log/fake-gpu.log" &&
     python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); s["kind"]="k8s.device-plugin.nvidia.com/gpu"; json.dump(s,open(sys.argv[2],"w"))' \
       "$BASE/cdi/vessel-nvidia.json" "$BASE/cdi/device-plugin.json"; then :
  else
    GPU_SETUP="vessel gpu cdi failed: $(tail -3 "$BASE/log/fake-gpu.log" | tr '\n' ' ')"
  fi
else
  GPU_SETUP="make-fake-driver.sh failed: $(tail -3 "$BASE/log/fake-gpu.log" | tr '\n' ' ')"
fi

# ------------------------------------------------------------------ CNI: lo only
# containerd 1.6 insists on an IP on the pod's eth0 in the result of the
# first network; the loopback plugin reports `lo`, and passes a
# prevResult through unchanged: this one says eth0 is 127.0.0.1, so the
# pod's IP is its loopback address and its namespace has nothing but lo.
cat > "$BASE/cni/conf/10-loopback.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "lo-only", "plugins": [{"type": "loopback",
  "prevResult": {"cniVersion": "0.4.0",
    "interfaces": [{"name": "eth0", "sandbox": "pod"}],
    "ips": [{"version": "4", "address": "127.0.0.1/8", "interface": 0}]}}]}
EOF

# ------------------------------------------------------------------ containerd
CSOCK=$BASE/containerd/containerd.sock
runtime_block() { # name binary
  cat <<EOF
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$1]
      runtime_type = "io.containerd.runc.v2"
      # The kubelet's device plugins pass CDI devices as annotations; only
      # the listed ones reach the runtime's config.json.
      container_annotations = ["cdi.k8s.io/*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$1.options]
        BinaryName = "$2"
        Root = "$BASE/runtime-root/$1"
        SystemdCgroup = $([ "${CRI_CGROUP_DRIVER:-cgroupfs}" = systemd ] && echo true || echo false)
EOF
}
{
  cat <<EOF
version = 2
root = "$BASE/containerd/root"
state = "$BASE/containerd/state"
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/vessel-pause:test"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$BASE/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
EOF
  runtime_block vessel "$RUNTIME"
  runtime_block runc /usr/sbin/runc
  [ -n "$STRICT" ] && runtime_block vessel-strict "$BASE/bin/vessel-strict"
} > "$BASE/containerd/config.toml"

(
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}; [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
  done
  exec setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root VESSEL_CONFIG="$BASE/vessel-config.toml" \
    containerd --config "$BASE/containerd/config.toml" </dev/null >>"$BASE/log/containerd.log" 2>&1
) &
echo $! > "$BASE/containerd.pid"
for _ in $(seq 1 300); do
  ctr -a "$CSOCK" version >/dev/null 2>&1 && break
  sleep 0.1
done
ctr -a "$CSOCK" version >/dev/null 2>&1 || { tail -20 "$BASE/log/containerd.log"; echo "run.sh: containerd did not start" >&2; exit 1; }
for img in pause-image busybox-image; do
  ctr -a "$CSOCK" -n k8s.io images import "$BASE/images/$img.tar" >/dev/null || { echo "run.sh: importing $img failed" >&2; exit 1; }
done
echo "# containerd with CRI ready, images imported in $(secs_since "$T")s"

if [ -n "${CRI_BENCH:-}" ]; then
  # Rounds of CRI_BENCH/3 per handler, alternating, so that drift of the
  # machine hits both alike.
  per=$(( (CRI_BENCH + 2) / 3 ))
  for _ in 1 2 3; do
    for h in vessel runc; do
      "$CRI_CLIENT" --socket "$CSOCK" --handler "$h" --image localhost/busybox:cri \
        --log-root "$BASE/pods" --runtime-root "$BASE/runtime-root/$h/k8s.io" --bench "$per" \
        >> "$BASE/log/bench.out" || { echo "run.sh: the pod bench failed for $h" >&2; exit 1; }
    done
  done
  python3 - "$BASE/log/bench.out" <<'EOF'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    w = line.split()
    if len(w) == 3 and w[0] == "sample":
        t.setdefault(w[1], []).append(float(w[2]))
v, r = statistics.median(t["vessel"]), statistics.median(t["runc"])
print(f"pod round trip (RunPodSandbox+CreateContainer+StartContainer+StopPodSandbox+RemovePodSandbox), median of {len(t['vessel'])}:")
print(f"  vessel {v:7.1f} ms   runc {r:7.1f} ms   vessel/runc {v / r:.2f}")
EOF
  exit 0
fi

PASS=0 FAIL=0 SKIP=0
for h in ${HANDLERS:-vessel runc}; do
  T=$(now_ms)
  "$CRI_CLIENT" --socket "$CSOCK" --handler "$h" --image localhost/busybox:cri \
    --log-root "$BASE/pods" --runtime-root "$BASE/runtime-root/$h/k8s.io" \
    --cgroup-driver "${CRI_CGROUP_DRIVER:-cgroupfs}" --groups "${CRI_GROUPS:-lifecycle,pods,resources,oom,gpu,cycles}" --cycles "$([ "$h" = vessel ] && echo "${CRI_CYCLES:-200}" || echo "${CRI_ORACLE_CYCLES:-20}")" --gpu-cycles "${CRI_GPU_CYCLES:-50}" \
    $([ -n "$STRICT" ] && [ "$h" = vessel ] && echo --gpu "$GPU_ROOT" --strict-handler "$STRICT") \
    2>&1 | tee "$BASE/log/client-$h.out"
  rc=${PIPESTATUS[0]}
  read -r p f s <<< "$(awk '/^ok /{p++} /^not ok /{f++} /^skip /{s++} END{print p+0, f+0, s+0}' "$BASE/log/client-$h.out")"
  # A client that died part-way has no closing line: the checks it did
  # not run must not go unnoticed.
  if ! grep -q "^# \[$h\] done" "$BASE/log/client-$h.out" || { [ "$rc" != 0 ] && [ "$f" = 0 ]; }; then
    echo "not ok - [$h] the CRI client ended early (exit status $rc)"; f=$((f + 1))
  fi
  if [ "$h" = vessel ] && [ -n "$GPU_SETUP" ]; then
    echo "not ok - [$h] the fake GPU driver for the GPU checks ($GPU_SETUP)"; f=$((f + 1))
  fi
  PASS=$((PASS + p)) FAIL=$((FAIL + f)) SKIP=$((SKIP + s))
  echo "# [$h] $p passed, $f failed, $s skipped in $(secs_since "$T")s"
done
if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp -r "$BASE/log/." "$KEEP_LOGS/"; fi
[ "$FAIL" = 0 ] || { echo "# containerd log tail:"; tail -15 "$BASE/log/containerd.log" | sed 's/^/#   /'; }
echo "cri: $PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" = 0 ]
