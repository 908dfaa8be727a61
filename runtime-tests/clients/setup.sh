#!/bin/bash
# setup.sh install
#     Installs the Debian packages the client tests need (docker.io, containerd,
#     podman, busybox-static, python3) if any is missing. Needs root and apt.
#     Maintainer scripts are kept from starting services (policy-rc.d): a
#     default dockerd would create docker0 and iptables rules.
#
# setup.sh start RUNTIME_PATH [RUNTIME_NAME]
#     With BASE set to an empty directory (run.sh makes one with mktemp):
#     starts containerd and dockerd with all their state under $BASE (dockerd
#     on that containerd, bridge=none, iptables/ip6tables/ip-forward/ip-masq
#     off), writes a podman configuration under $BASE (netns=none, no CNI
#     networks, cgroupfs, default_ulimits within this machine's hard limits),
#     registers RUNTIME_PATH as RUNTIME_NAME (default "vessel") in docker and
#     podman, imports a busybox image built from the repository's busybox
#     rootfs into all three engines (no registry is contacted), and writes
#     $BASE/env.sh (DOCKER_HOST, CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
#     CONTAINERD_ADDRESS, TEST_RUNTIME, TEST_RUNTIME_NAME, TEST_IMAGE, ...).
#     Before starting anything it records which paths outside $BASE and which
#     cgroups do not exist yet; teardown.sh removes exactly those (if empty).
#     Undo with teardown.sh (same BASE), also after a failure here.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DAEMON_PATH=/usr/sbin:/usr/bin:/sbin:/bin
PACKAGES="docker.io containerd podman uidmap fuse-overlayfs busybox-static python3"

log() { printf '[setup %s] %s\n' "$(date +%T)" "$*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }

[ "$(id -u)" = 0 ] || { echo "setup.sh: must run as root" >&2; exit 1; }

cmd_install() {
  local need="" p made_policy=0
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need="$need $p"
  done
  [ -z "$need" ] && return 0
  log "installing:$need"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need >/dev/null; } || rc=$?
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

# Starts a daemon detached (own session), with a minimal environment, stdin
# from /dev/null, output to a log file and no inherited fds above 2. Prints its
# pid, found by its full command line (unique: it names a file under $BASE).
start_daemon() {
  local logf=$1; shift
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid env -i PATH="$DAEMON_PATH" HOME=/root VESSEL_GPU_ROOT="$BASE/fake-gpu" "$@" </dev/null >>"$logf" 2>&1
  ) &
  local want p
  want=$(printf '%s\n' "$@")
  for _ in $(seq 1 100); do
    for p in /proc/[0-9]*; do
      if [ "$( { tr '\0' '\n' < "$p/cmdline"; } 2>/dev/null)" = "$want" ]; then
        echo "${p#/proc/}"; return 0
      fi
    done
    sleep 0.1
  done
  echo "could not find started daemon: $*" >&2
  return 1
}

wait_for() { # timeout_s cmd...
  local t=$1; shift
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

cmd_start() {
  local RUNTIME=${1:?usage: setup.sh start RUNTIME_PATH [RUNTIME_NAME]}
  local RTNAME=${2:-vessel}
  : "${BASE:?BASE must name the (empty) state directory}"
  local IMAGE_REF=${IMAGE_REF:-localhost/busybox:test}
  [ -x "$RUNTIME" ] || { echo "setup.sh: runtime $RUNTIME is not an executable file" >&2; exit 1; }
  RUNTIME=$(readlink -f "$RUNTIME")
  case $BASE in /*) ;; *) echo "setup.sh: BASE must be absolute" >&2; exit 1 ;; esac
  if [ -e "$BASE/containerd.pid" ] || [ -e "$BASE/dockerd.pid" ]; then
    echo "setup.sh: $BASE already has daemons; run teardown.sh first" >&2; exit 1
  fi
  local T0 T
  T0=$(now_ms)

  # ------------------------------------------------ what exists before we start
  # (/run/runc, /run/vessel and the like are left alone: other users of the
  # runtimes may rely on them.)
  mkdir -p "$BASE"/{docker,containerd,podman,log,tmp,bin}
  # GPUs: a fake NVIDIA driver, found by the runtime through
  # VESSEL_GPU_ROOT in the daemons' environment; dockerd accepts --gpus only
  # with nvidia-container-runtime-hook on its PATH (vessel under that name
  # does nothing), and ctr --gpus looks up nvidia-container-cli (a stand-in
  # that fails loudly: vessel must never run it).
  ln -sf "$RUNTIME" "$BASE/bin/nvidia-container-runtime-hook"
  printf '#!/bin/sh\necho "nvidia-container-cli: must never run under vessel" >&2\nexit 1\n' > "$BASE/bin/nvidia-container-cli"
  chmod 755 "$BASE/bin/nvidia-container-cli"
  if ! sh "$REPO/runtime-tests/gpu/make-fake-driver.sh" "$BASE/fake-gpu" >&2; then
    log "no fake GPU driver (make-fake-driver.sh failed): the GPU checks will be skipped"
  fi
  DAEMON_PATH=$BASE/bin:$DAEMON_PATH
  : > "$BASE/created-paths"
  local d h g
  for d in /run/containerd /run/containerd/s /run/containerd/fifo /run/containerd/runc \
           /run/containerd/runc/default /run/docker /run/docker/plugins /var/lib/containers \
           /etc/docker /etc/docker/key.json /etc/containerd; do
    [ -e "$d" ] || echo "$d" >> "$BASE/created-paths"
  done
  : > "$BASE/created-cgroups"
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$h" ] || continue
    [ -e "$h/cgroup.procs" ] || continue   # a hierarchy root (v1 controller, v2 or unified)
    for g in docker default moby libpod_parent; do
      [ -e "$h/$g" ] || echo "$h/$g" >> "$BASE/created-cgroups"
    done
  done

  # ------------------------------------------------ image archive
  T=$(now_ms)
  local R="$REPO/bundles/busybox/rootfs"
  if [ ! -x "$R/bin/busybox" ]; then
    R="$BASE/tmp/rootfs"
    sh "$REPO/bundles/busybox/build-rootfs.sh" "$R"
  fi
  tar --numeric-owner --owner=0 --group=0 -C "$R" -cf "$BASE/tmp/rootfs.tar" .
  /usr/bin/python3 "$HERE/make-image-archive.py" "$BASE/tmp/rootfs.tar" "$BASE/busybox-image.tar" \
    "$IMAGE_REF" /bin/sh >&2
  rm -rf "$BASE/tmp/rootfs" "$BASE/tmp/rootfs.tar"
  log "image archive from $R in $(secs_since "$T")s"

  # ------------------------------------------------ containerd
  local CSOCK="$BASE/containerd/containerd.sock"
  cat > "$BASE/containerd/config.toml" <<EOF
version = 2
root = "$BASE/containerd/root"
state = "$BASE/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
  T=$(now_ms)
  local CPID
  CPID=$(start_daemon "$BASE/log/containerd.log" "$(command -v containerd)" --config "$BASE/containerd/config.toml")
  echo "$CPID" > "$BASE/containerd.pid"
  wait_for 30 ctr -a "$CSOCK" version || { tail -20 "$BASE/log/containerd.log" >&2; exit 1; }
  log "containerd pid $CPID ready in $(secs_since "$T")s"

  # ------------------------------------------------ dockerd (on our containerd)
  local DSOCK="$BASE/docker/docker.sock"
  /usr/bin/python3 - "$BASE" "$DSOCK" "$CSOCK" "$RTNAME" "$RUNTIME" > "$BASE/docker/daemon.json" <<'EOF'
import json, sys
base, dsock, csock, name, rt = sys.argv[1:]
print(json.dumps({
    "data-root": f"{base}/docker/root",
    "exec-root": f"{base}/docker/exec",
    "pidfile": f"{base}/docker/dockerd.pid",
    "hosts": [f"unix://{dsock}"],
    "containerd": csock,
    "storage-driver": "overlay2",
    "exec-opts": ["native.cgroupdriver=cgroupfs"],
    "bridge": "none", "iptables": False, "ip6tables": False,
    "ip-forward": False, "ip-masq": False,
    "default-runtime": "runc",
    "runtimes": {name: {"path": rt}},
}, indent=2))
EOF
  T=$(now_ms)
  local DPID
  DPID=$(start_daemon "$BASE/log/dockerd.log" "$(command -v dockerd)" --config-file "$BASE/docker/daemon.json")
  echo "$DPID" > "$BASE/dockerd.pid"
  wait_for 60 /usr/bin/docker -H "unix://$DSOCK" version || { tail -30 "$BASE/log/dockerd.log" >&2; exit 1; }
  log "dockerd pid $DPID ready in $(secs_since "$T")s"

  # ------------------------------------------------ podman (daemonless)
  local NOFILE NPROC
  NOFILE=$(ulimit -Hn); NPROC=$(ulimit -Hu)
  # podman's default rlimits (nofile/nproc 1048576) can exceed the hard limits
  # (no CAP_SYS_RESOURCE to raise them): pin them to values that can be set.
  [ "$NOFILE" = unlimited ] && NOFILE=1048576
  [ "$NOFILE" -gt 1048576 ] && NOFILE=1048576
  if [ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ]; then NPROC=32768; fi
  mkdir -p "$BASE/podman/cni-empty" "$BASE/podman/tmp"
  cat > "$BASE/podman/containers.conf" <<EOF
[containers]
netns = "none"
cgroupns = "host"
log_driver = "k8s-file"
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]

[network]
network_backend = "cni"
network_config_dir = "$BASE/podman/cni-empty"

[engine]
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "VESSEL_GPU_ROOT=$BASE/fake-gpu"]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$BASE/podman/events.log"
runtime = "runc"
tmp_dir = "$BASE/podman/tmp"
volume_path = "$BASE/podman/volumes"
static_dir = "$BASE/podman/storage/libpod"
num_locks = 256

[engine.runtimes]
$RTNAME = ["$RUNTIME"]
EOF
  cat > "$BASE/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$BASE/podman/run"
graphroot = "$BASE/podman/storage"
EOF

  cat > "$BASE/env.sh" <<EOF
export DOCKER_HOST=unix://$DSOCK
export CONTAINERS_CONF=$BASE/podman/containers.conf
export CONTAINERS_STORAGE_CONF=$BASE/podman/storage.conf
export CONTAINERD_ADDRESS=$CSOCK
export CONTAINERD_NAMESPACE=default
export TEST_RUNTIME=$RUNTIME
export TEST_RUNTIME_NAME=$RTNAME
export TEST_IMAGE=$IMAGE_REF
export CTR_RUNTIME_ROOT=/run/containerd/runc/default
EOF
  # shellcheck disable=SC1091
  . "$BASE/env.sh"

  # ------------------------------------------------ images
  T=$(now_ms)
  /usr/bin/docker load -q -i "$BASE/busybox-image.tar" >&2
  podman load -q -i "$BASE/busybox-image.tar" >&2
  ctr image import "$BASE/busybox-image.tar" >&2
  log "image $IMAGE_REF imported into docker, podman and containerd in $(secs_since "$T")s"
  log "setup done in $(secs_since "$T0")s"
}

case ${1:-} in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  *) echo "usage: setup.sh install | setup.sh start RUNTIME_PATH [RUNTIME_NAME]  (BASE=dir)" >&2; exit 2 ;;
esac
