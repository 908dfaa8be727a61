#!/bin/bash
# run.sh [RUNTIME_PATH] — vessel under real engines: docker, podman and ctr.
#
# Starts containerd and dockerd with all their state in a temporary directory
# (bridge=none, iptables off), configures podman there, imports a busybox
# image built from bundles/busybox/rootfs, registers RUNTIME_PATH under the
# name "vessel", and for each engine checks: run --rm (output), run -d, exec,
# exec -t, top/ps, pause/unpause, update --memory (in the memory cgroup),
# kill -s USR1 (seen by a trap in the container), stop, rm, run -t under
# script(1), and exit codes of run and exec. Always --network none.
# Prints "ok - ..." / "not ok - ... (details)" per check, the time of each
# engine's stage, and finally "N passed, M failed"; exits 1 if any failed.
# The daemons are stopped (by pid) and everything they created removed when
# it ends, also on failure or interrupt (teardown.sh).
#
# RUNTIME_PATH defaults to the repository's binary:
# target/x86_64-unknown-linux-gnu/release/vessel if present, else
# target/debug/vessel (built with `cargo build` if neither exists).
# RUNTIME_PATH=/usr/sbin/runc runs the same checks against runc: they must
# all pass, which shows the checks encode what the engines expect.
#
# Installing packages and starting daemons happen only as root and when
# VESSEL_TEST_SYSTEM=1 is set or docker.io, containerd and podman are
# installed already; otherwise it prints SKIPPED and exits 0.
#
# Environment: VESSEL_TEST_SYSTEM=1 (install missing packages),
# VESSEL_CLIENTS_TRACE=1 (register a wrapper that logs every runtime command
# line, its exit status and the tail of its --log file; the failing ones are
# printed at the end), KEEP_LOGS=DIR (keep daemon logs and the trace),
# ENGINES="docker podman ctr" (a subset), CMD_TIMEOUT=60 (seconds per command).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ENGINES=${ENGINES:-docker podman ctr gpu}
CMD_TIMEOUT=${CMD_TIMEOUT:-60}
DOCKER=/usr/bin/docker   # not a docker CLI that may come first in PATH

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }

# ------------------------------------------------------------------ gate
engines_installed() {
  [ -x "$DOCKER" ] && command -v dockerd >/dev/null && command -v containerd >/dev/null &&
    command -v ctr >/dev/null && command -v podman >/dev/null && command -v conmon >/dev/null
}
if [ -z "${VESSEL_CLIENTS_INNER:-}" ]; then
  if [ "$(id -u)" != 0 ]; then
    if [ "${VESSEL_TEST_SYSTEM:-0}" = 1 ]; then
      echo "run.sh: VESSEL_TEST_SYSTEM=1 but not root: the client tests start daemons and need root" >&2
      exit 1
    fi
    echo "SKIPPED: client tests (docker, podman, ctr) need root (set VESSEL_TEST_SYSTEM=1 and run as root)"
    exit 0
  fi
  if [ "${VESSEL_TEST_SYSTEM:-0}" != 1 ] && ! engines_installed; then
    echo "SKIPPED: client tests need docker.io, containerd and podman installed (set VESSEL_TEST_SYSTEM=1 to install them)"
    exit 0
  fi

  # -------------------------------------------------------------- runtime
  if [ $# -ge 1 ]; then
    RUNTIME=$1
  else
    RUNTIME=$REPO/target/x86_64-unknown-linux-gnu/release/vessel
    [ -x "$RUNTIME" ] || RUNTIME=$REPO/target/debug/vessel
    if [ ! -x "$RUNTIME" ]; then
      echo "# building vessel (cargo build)"
      (cd "$REPO" && PATH="${HOME:-/root}/.cargo/bin:$PATH" cargo build) || { echo "run.sh: cargo build failed" >&2; exit 1; }
    fi
  fi
  [ -x "$RUNTIME" ] || { echo "run.sh: runtime $RUNTIME is not an executable file" >&2; exit 1; }
  RUNTIME=$(readlink -f "$RUNTIME")

  if [ "${VESSEL_TEST_SYSTEM:-0}" = 1 ]; then
    T=$(now_ms)
    bash "$HERE/setup.sh" install || { echo "run.sh: installing the engines failed" >&2; exit 1; }
    echo "# packages ready in $(secs_since "$T")s"
  fi
  engines_installed || { echo "run.sh: docker.io, containerd or podman missing after install" >&2; exit 1; }

  # Everything below runs in a private mount namespace: whatever the daemons
  # and runtimes mount stays out of the host's mount table and goes away with
  # the last process.
  export VESSEL_CLIENTS_INNER=1
  if command -v unshare >/dev/null && unshare -m --propagation private true 2>/dev/null; then
    exec unshare -m --propagation private bash "$0" "$RUNTIME"
  fi
  exec bash "$0" "$RUNTIME"
fi
RUNTIME=$1

# ------------------------------------------------------------------ stack
BASE=$(mktemp -d /tmp/vessel-clients.XXXXXX)
export BASE
chmod 755 "$BASE"
cleanup() {
  local T rc=$?
  trap - EXIT INT TERM
  T=$(now_ms)
  bash "$HERE/teardown.sh"
  echo "# teardown in $(secs_since "$T")s"
  exit $rc
}
trap cleanup EXIT
trap 'echo "# interrupted"; exit 130' INT TERM

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $1 ($2)"; }
skip() { echo "skip - $1 ($2)"; }
summary() { echo "$PASS passed, $FAIL failed"; }

echo "# runtime: $RUNTIME ($("$RUNTIME" --version 2>/dev/null | head -1))"
REGISTERED=$RUNTIME
if [ "${VESSEL_CLIENTS_TRACE:-0}" = 1 ]; then
  # A wrapper that records every command line. It must work with no PATH and
  # no HOME (podman's cleanup), so it names every program by its path.
  mkdir -p "$BASE/trace" "$BASE/log"
  TRACE=$BASE/log/runtime-trace.log
  cat > "$BASE/trace/vessel" <<EOF
#!/bin/sh
logf=""; res=""; prev=""
for a in "\$@"; do
  case \$prev in --log) logf=\$a ;; --resources|-r) res=\$a ;; esac
  case \$a in --resources=*) res=\${a#--resources=} ;; esac
  prev=\$a
done
parent=\$(/bin/cat /proc/\$PPID/comm 2>/dev/null)
if [ "\$res" = - ]; then
  /bin/cat > "$BASE/trace/stdin.\$\$"
  res="$BASE/trace/stdin.\$\$"
  "$RUNTIME" "\$@" < "\$res"
else
  "$RUNTIME" "\$@"
fi
rc=\$?
echo "[\$parent] \$* => rc=\$rc" >> "$TRACE"
[ -n "\$res" ] && [ -f "\$res" ] && echo "    resources: \$(/bin/cat "\$res")" >> "$TRACE"
if [ \$rc != 0 ] && [ -n "\$logf" ] && [ -f "\$logf" ]; then /usr/bin/tail -n 3 "\$logf" | /bin/sed 's/^/    log: /' >> "$TRACE"; fi
/bin/rm -f "$BASE/trace/stdin.\$\$"
exit \$rc
EOF
  chmod 755 "$BASE/trace/vessel"
  REGISTERED=$BASE/trace/vessel
  echo "# tracing runtime command lines to $TRACE"
fi

T=$(now_ms)
if ! bash "$HERE/setup.sh" start "$REGISTERED" vessel > "$BASE/setup.out" 2>&1; then
  sed 's/^/#   /' "$BASE/setup.out"
  notok "engines start and import the busybox image" "setup.sh failed; output above"
  summary
  exit 1
fi
echo "# stack ready in $(secs_since "$T")s (containerd, dockerd, podman config, image imported)"
# shellcheck disable=SC1091
. "$BASE/env.sh"
IMG=$TEST_IMAGE

# ------------------------------------------------------------------ helpers
# run_cmd CMD...: runs CMD with a timeout and stdin from /dev/null; sets OUT
# (stdout without CRs and trailing newlines), ERR (stderr, one line) and RC.
run_cmd() {
  OUT=$(timeout "$CMD_TIMEOUT" "$@" 2>"$BASE/tmp/stderr" </dev/null)
  RC=$?
  OUT=${OUT//$'\r'/}
  ERR=$(head -c 600 "$BASE/tmp/stderr" | tr '\n' ' ' | tr -d '\r')
}
details() { echo "rc=$RC, stdout='${OUT:0:300}', stderr='${ERR% }'"; }
# under_tty CMD...: runs CMD under script(1), so that it has a terminal.
under_tty() {
  local c
  c=$(printf '%q ' "$@")
  run_cmd script -qec "$c" /dev/null
}
expect_out() { # NAME EXPECTED CMD...
  local name=$1 want=$2; shift 2
  run_cmd "$@"
  if [ "$RC" = 0 ] && [ "$OUT" = "$want" ]; then ok "$name"; else notok "$name" "want '$want'; $(details)"; fi
}
expect_rc() { # NAME RC CMD...
  local name=$1 want=$2; shift 2
  run_cmd "$@"
  if [ "$RC" = "$want" ]; then ok "$name"; else notok "$name" "want rc=$want; $(details)"; fi
}
expect_tty() { # NAME CMD... (CMD prints its tty)
  local name=$1; shift
  under_tty "$@"
  # one line must be the tty: a leading "^@" is the terminal echoing the NUL
  # that script(1) writes as end-of-file when its stdin ends while the client
  # has the terminal in raw mode (ctr); other lines may be client noise (ctr
  # exec -t races a console resize against the process's exit)
  if [ "$RC" = 0 ] && printf '%s\n' "$OUT" | grep -qE '^(\^@)*/dev/pts/[0-9]+[[:space:]]*$'; then ok "$name"; else notok "$name" "want /dev/pts/N; $(details)"; fi
}
# poll SECONDS CMD...: retries CMD every 0.1 s until it succeeds.
poll() {
  local end=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@"; do
    [ "$(now_ms)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# cg_dir PID CONTROLLER: the directory of PID's cgroup for CONTROLLER on the
# host (cgroup v1 hierarchy with that controller, else the v2 hierarchy).
cg_dir() {
  local pid=$1 c=$2 rel mnt
  rel=$(awk -F: -v c="$c" '{n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3}' "/proc/$pid/cgroup" 2>/dev/null)
  if [ -n "$rel" ]; then
    mnt=$(awk -v c="$c" '$3 == "cgroup" {n = split($4, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) {print $2; exit}}' /proc/self/mounts)
  else
    rel=$(awk -F: '$1 == "0" && $2 == "" {print $3}' "/proc/$pid/cgroup" 2>/dev/null)
    mnt=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)
  fi
  [ -n "$rel" ] && [ -n "$mnt" ] && echo "$mnt${rel%/}"
}
memory_limit() { # PID -> the memory limit in bytes of its cgroup
  local d
  d=$(cg_dir "$1" memory) || return 1
  if [ -f "$d/memory.limit_in_bytes" ]; then cat "$d/memory.limit_in_bytes"; else cat "$d/memory.max"; fi
}
freezer_state() { # PID -> FROZEN or THAWED (or FREEZING)
  local d
  d=$(cg_dir "$1" freezer)
  if [ -n "$d" ] && [ -f "$d/freezer.state" ]; then cat "$d/freezer.state"; return; fi
  d=$(cg_dir "$1" "")
  if [ -n "$d" ] && [ -f "$d/cgroup.events" ]; then
    if grep -qx 'frozen 1' "$d/cgroup.events"; then echo FROZEN; else echo THAWED; fi
  fi
}
runtime_state() { # ROOTS ID -> status from the runtime's state under the
  # first of ROOTS (space-separated; "-" is the runtime's default) that knows
  # ID; empty if none does
  local r st
  for r in $1; do
    if [ "$r" = - ]; then
      st=$(timeout 20 "$RUNTIME" state "$2" 2>/dev/null)
    else
      st=$(timeout 20 "$RUNTIME" --root "$r" state "$2" 2>/dev/null)
    fi
    st=$(printf '%s' "$st" | tr -d ' \n' | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
    [ -n "$st" ] && { echo "$st"; return; }
  done
}
# The --root dockerd gives the runtime (exec-root/runtime-NAME/moby; NAME is
# not always the name the runtime is registered under).
docker_roots() { ls -d "$BASE"/docker/exec/runtime-*/moby 2>/dev/null | tr '\n' ' '; }

SCRIPT_USR1='trap "echo got-usr1 > /tmp/usr1" USR1; while :; do sleep 0.1; done'

# ------------------------------------------------------------------ docker / podman
# Docker and podman share a CLI; $E is the engine, $CLI its command, $RUN
# how it runs a container with the runtime registered as vessel; $RTROOT is
# the --root the engine gives the runtime ("-": none, the runtime's default).
engine_ops() {
  local E=$1 CLI=$2 RUN=$3 RTROOT name=vessel-clients-$1-$$
  local id pid status lim st

  # run --rm
  expect_out "$E run --rm prints hi" hi $RUN --rm --network none "$IMG" echo hi
  expect_rc "$E run --rm propagates exit code 3" 3 $RUN --rm --network none "$IMG" sh -c 'exit 3'
  expect_tty "$E run -t --rm (under script) has a tty" $RUN -t --rm --network none "$IMG" sh -c tty

  # run -d
  run_cmd $RUN -d --network none --name "$name" "$IMG" sh -c "$SCRIPT_USR1"
  if [ "$RC" != 0 ]; then
    notok "$E run -d starts the container" "$(details)"
    $CLI rm -f "$name" >/dev/null 2>&1
    return
  fi
  ok "$E run -d starts the container"
  id=$($CLI inspect -f '{{.Id}}' "$name" 2>/dev/null)
  pid=$($CLI inspect -f '{{.State.Pid}}' "$name" 2>/dev/null)
  if [ "$E" = docker ]; then RTROOT=$(docker_roots); else RTROOT=-; fi
  if [ "$E" = docker ]; then
    run_cmd $CLI inspect -f '{{.HostConfig.Runtime}}' "$name"
  else
    run_cmd $CLI inspect -f '{{.OCIRuntime}}' "$name"
  fi
  st=$(runtime_state "$RTROOT" "$id")
  if [ "$OUT" = vessel ] && [ "$st" = running ]; then
    ok "$E runs it with the runtime registered as vessel (its state: running)"
  else
    notok "$E runs it with the runtime registered as vessel (its state: running)" "engine says runtime '$OUT', runtime state of $id under ${RTROOT/#-/the default root}: '$st'"
  fi

  # exec
  expect_out "$E exec prints exec-ok" exec-ok $CLI exec "$name" echo exec-ok
  expect_rc "$E exec propagates exit code 4" 4 $CLI exec "$name" sh -c 'exit 4'
  expect_tty "$E exec -t (under script) has a tty" $CLI exec -t "$name" tty

  # top / ps
  run_cmd $CLI top "$name"
  if [ "$E" = docker ]; then
    # docker top lists host pids (from the runtime's `ps --format json`)
    if [ "$RC" = 0 ] && awk -v p="$pid" 'NR > 1 && $2 == p {f = 1} END {exit !f}' <<<"$OUT"; then
      ok "$E top lists the container's init (host pid $pid)"
    else
      notok "$E top lists the container's init (host pid $pid)" "$(details)"
    fi
  else
    if [ "$RC" = 0 ] && awk 'NR > 1 && $2 == 1 {f = 1} END {exit !f}' <<<"$OUT"; then
      ok "$E top lists the container's init (pid 1)"
    else
      notok "$E top lists the container's init (pid 1)" "$(details)"
    fi
  fi
  run_cmd $CLI ps --filter "name=^$name\$" --format '{{.Status}}'
  if [ "$RC" = 0 ] && [[ $OUT == Up* ]]; then ok "$E ps shows it Up"; else notok "$E ps shows it Up" "$(details)"; fi

  # pause / unpause
  run_cmd $CLI pause "$name"
  if [ "$RC" = 0 ]; then
    status=$($CLI inspect -f '{{.State.Status}}' "$name" 2>/dev/null)
    st=$(freezer_state "$pid")
    if [ "$status" = paused ] && [ "$st" = FROZEN ]; then
      ok "$E pause freezes it"
    else
      notok "$E pause freezes it" "engine status '$status', freezer '$st'"
    fi
  else
    notok "$E pause freezes it" "$(details)"
  fi
  run_cmd $CLI unpause "$name"
  if [ "$RC" = 0 ]; then
    status=$($CLI inspect -f '{{.State.Status}}' "$name" 2>/dev/null)
    st=$(freezer_state "$pid")
    if [ "$status" = running ] && [ "$st" = THAWED ]; then
      ok "$E unpause thaws it"
    else
      notok "$E unpause thaws it" "engine status '$status', freezer '$st'"
    fi
  else
    notok "$E unpause thaws it" "$(details)"
  fi

  # update --memory (docker refuses a memory limit above the swap limit it
  # has recorded unless the swap limit changes too)
  local upd=(update --memory 64m)
  [ "$E" = docker ] && upd+=(--memory-swap 128m)
  run_cmd $CLI "${upd[@]}" "$name"
  lim=$(memory_limit "$pid")
  if [ "$RC" = 0 ] && [ "$lim" = 67108864 ]; then
    ok "$E ${upd[*]} sets the memory cgroup limit"
  else
    notok "$E ${upd[*]} sets the memory cgroup limit" "limit in $(cg_dir "$pid" memory): '$lim'; $(details)"
  fi

  # kill -s USR1
  run_cmd $CLI kill -s USR1 "$name"
  if [ "$RC" = 0 ] && poll 5 bash -c "[ \"\$($CLI exec $name cat /tmp/usr1 2>/dev/null)\" = got-usr1 ]"; then
    ok "$E kill -s USR1 reaches the container's trap"
  else
    local k="$(details)"
    run_cmd $CLI exec "$name" cat /tmp/usr1
    notok "$E kill -s USR1 reaches the container's trap" "kill: $k; cat /tmp/usr1: $(details)"
  fi

  # stop (the shell, pid 1, ignores SIGTERM: stop has to escalate to SIGKILL)
  run_cmd $CLI stop -t 1 "$name"
  status=$($CLI inspect -f '{{.State.Status}}' "$name" 2>/dev/null)
  if [ "$RC" = 0 ] && [ "$status" = exited ]; then
    ok "$E stop stops it"
  else
    notok "$E stop stops it" "status '$status'; $(details)"
  fi

  # rm
  run_cmd $CLI rm "$name"
  if [ "$RC" = 0 ] && ! $CLI inspect "$name" >/dev/null 2>&1; then
    ok "$E rm removes it"
  else
    notok "$E rm removes it" "$(details)"
    $CLI rm -f "$name" >/dev/null 2>&1
  fi
  st=$(runtime_state "$RTROOT" "$id")
  if [ -z "$st" ]; then ok "$E rm leaves no runtime state"; else notok "$E rm leaves no runtime state" "runtime state of $id: $st"; fi
}

stage_docker() { engine_ops docker "$DOCKER" "$DOCKER run --runtime vessel"; }
stage_podman() { engine_ops podman podman "podman --runtime vessel run"; }

# ------------------------------------------------------------------ ctr
ctr_status() { ctr task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
ctr_pid() { ctr task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $2}'; }
stage_ctr() {
  local id=vessel-clients-ctr-$$ pid st lim
  local RUN=(ctr run --runc-binary "$REGISTERED")
  expect_out "ctr run --rm prints hi" hi "${RUN[@]}" --rm "$IMG" "$id-hi" echo hi
  expect_rc "ctr run --rm propagates exit code 3" 3 "${RUN[@]}" --rm "$IMG" "$id-exit" sh -c 'exit 3'
  expect_tty "ctr run -t --rm (under script) has a tty" "${RUN[@]}" --rm -t "$IMG" "$id-tty" sh -c tty

  run_cmd "${RUN[@]}" -d --null-io "$IMG" "$id" sh -c "$SCRIPT_USR1"
  if [ "$RC" != 0 ] || ! poll 10 test "$(ctr_status "$id")" = RUNNING; then
    notok "ctr run -d starts the container" "status '$(ctr_status "$id")'; $(details)"
    ctr task kill -s SIGKILL "$id" >/dev/null 2>&1; sleep 0.5
    ctr task delete -f "$id" >/dev/null 2>&1; ctr container delete "$id" >/dev/null 2>&1
    return
  fi
  ok "ctr run -d starts the container"
  pid=$(ctr_pid "$id")
  st=$(runtime_state "$CTR_RUNTIME_ROOT" "$id")
  if [ "$st" = running ]; then
    ok "ctr runs it with --runc-binary (its state: running)"
  else
    notok "ctr runs it with --runc-binary (its state: running)" "runtime state of $id under $CTR_RUNTIME_ROOT: '$st'"
  fi

  expect_out "ctr task exec prints exec-ok" exec-ok ctr task exec --exec-id e1 "$id" echo exec-ok
  expect_rc "ctr task exec propagates exit code 4" 4 ctr task exec --exec-id e2 "$id" sh -c 'exit 4'
  expect_tty "ctr task exec -t (under script) has a tty" ctr task exec -t --exec-id e3 "$id" tty

  run_cmd ctr task ps "$id"
  if [ "$RC" = 0 ] && awk -v p="$pid" 'NR > 1 && $1 == p {f = 1} END {exit !f}' <<<"$OUT"; then
    ok "ctr task ps lists the container's init (host pid $pid)"
  else
    notok "ctr task ps lists the container's init (host pid $pid)" "$(details)"
  fi

  run_cmd ctr task pause "$id"
  st=$(freezer_state "$pid")
  if [ "$RC" = 0 ] && [ "$(ctr_status "$id")" = PAUSED ] && [ "$st" = FROZEN ]; then
    ok "ctr task pause freezes it"
  else
    notok "ctr task pause freezes it" "status '$(ctr_status "$id")', freezer '$st'; $(details)"
  fi
  run_cmd ctr task resume "$id"
  st=$(freezer_state "$pid")
  if [ "$RC" = 0 ] && [ "$(ctr_status "$id")" = RUNNING ] && [ "$st" = THAWED ]; then
    ok "ctr task resume thaws it"
  else
    notok "ctr task resume thaws it" "status '$(ctr_status "$id")', freezer '$st'; $(details)"
  fi

  skip "ctr update --memory" "ctr has no update command that reaches the runtime"

  run_cmd ctr task kill -s SIGUSR1 "$id"
  if [ "$RC" = 0 ] && poll 5 bash -c "[ \"\$(ctr task exec --exec-id e4-\$RANDOM $id cat /tmp/usr1 2>/dev/null)\" = got-usr1 ]"; then
    ok "ctr task kill -s SIGUSR1 reaches the container's trap"
  else
    local k="$(details)"
    run_cmd ctr task exec --exec-id e5 "$id" cat /tmp/usr1
    notok "ctr task kill -s SIGUSR1 reaches the container's trap" "kill: $k; cat /tmp/usr1: $(details)"
  fi

  # stop: SIGTERM is ignored by the shell (pid 1), so SIGKILL as docker stop does
  run_cmd ctr task kill -s SIGKILL "$id"
  if [ "$RC" = 0 ] && poll 10 test "$(ctr_status "$id")" = STOPPED; then
    ok "ctr task kill -s SIGKILL stops it"
  else
    notok "ctr task kill -s SIGKILL stops it" "status '$(ctr_status "$id")'; $(details)"
  fi
  run_cmd ctr task delete "$id"
  local rc1=$RC d1; d1=$(details)
  run_cmd ctr container delete "$id"
  if [ "$rc1" = 0 ] && [ "$RC" = 0 ] && [ -z "$(ctr_status "$id")" ] && ! ctr container info "$id" >/dev/null 2>&1; then
    ok "ctr task delete + container delete remove it"
  else
    notok "ctr task delete + container delete remove it" "task delete: $d1; container delete: $(details)"
    ctr task delete -f "$id" >/dev/null 2>&1; ctr container delete "$id" >/dev/null 2>&1
  fi
  st=$(runtime_state "$CTR_RUNTIME_ROOT" "$id")
  if [ -z "$st" ]; then ok "ctr delete leaves no runtime state"; else notok "ctr delete leaves no runtime state" "runtime state of $id: $st"; fi
}

# ------------------------------------------------------------------ GPUs
# The fake driver (runtime-tests/gpu/make-fake-driver.sh) has two GPUs:
# index 0 is /dev/nvidia1, index 1 is /dev/nvidia0; its nvidia-smi (a
# shell script, mounted into the busybox image) lists the nodes it sees.
stage_gpu() {
  if ! "$RUNTIME" --version 2>/dev/null | grep -q vessel; then
    skip "GPU checks" "the runtime is not vessel"; return
  fi
  if [ ! -f "$BASE/fake-gpu/proc/driver/nvidia/version" ]; then
    skip "GPU checks" "no fake driver: make-fake-driver.sh failed (see setup output)"; return
  fi
  local count='ls /dev | grep -c "^nvidia[0-9]" || true'
  expect_out "docker run --gpus device=1 gets only GPU 1 (/dev/nvidia0)" "GPU 0: fake (node /dev/nvidia0)" \
    $DOCKER run --rm --network none --runtime vessel --gpus device=1 "$IMG" nvidia-smi
  expect_out "docker run --gpus all gets both GPUs" 2 \
    $DOCKER run --rm --network none --runtime vessel --gpus all "$IMG" sh -c "$count"
  expect_out "docker run without --gpus gets no GPU" 0 \
    $DOCKER run --rm --network none --runtime vessel "$IMG" sh -c "$count"
  expect_out "podman -e NVIDIA_VISIBLE_DEVICES=1 gets only GPU 1" "GPU 0: fake (node /dev/nvidia0)" \
    podman --runtime vessel run --rm --network none -e NVIDIA_VISIBLE_DEVICES=1 "$IMG" nvidia-smi
  # A jit-cdi name in the variable: podman passes it on, vessel answers it.
  expect_out "podman -e NVIDIA_VISIBLE_DEVICES=runtime.nvidia.com/gpu=1 gets only GPU 1" "GPU 0: fake (node /dev/nvidia0)" \
    podman --runtime vessel run --rm --network none -e NVIDIA_VISIBLE_DEVICES=runtime.nvidia.com/gpu=1 "$IMG" nvidia-smi
  # podman resolves CDI itself, from /etc/cdi and /var/run/cdi only.
  local spec=/var/run/cdi/vessel-clients-$$.json
  if grep -qs '"nvidia.com/gpu"\|kind: *nvidia.com/gpu' /etc/cdi/* /var/run/cdi/*; then
    skip "podman --device nvidia.com/gpu=0 (CDI)" "this host has its own nvidia.com/gpu CDI spec"
  else
    mkdir -p /var/run/cdi
    echo "$spec" > "$BASE/cdi-spec-path"
    # 0.5.0: the newest CDI version Debian 12's podman 4.3 reads (vessel
    # writes 0.7.0 unless told).
    if "$RUNTIME" --gpu-root "$BASE/fake-gpu" gpu cdi --cdi-version 0.5.0 --output "$spec"; then
      expect_out "podman --device nvidia.com/gpu=0 (CDI spec from vessel gpu cdi) gets only GPU 0" "GPU 0: fake (node /dev/nvidia1)" \
        podman --runtime vessel run --rm --network none --device nvidia.com/gpu=0 "$IMG" nvidia-smi
    else
      notok "vessel gpu cdi writes a CDI spec" "see stderr above"
    fi
    rm -f "$spec"
  fi
  PATH="$BASE/bin:$PATH" expect_out "ctr run --gpus 0 gets only GPU 0 (nvidia-container-cli never runs)" "GPU 0: fake (node /dev/nvidia1)" \
    ctr run --runc-binary "$REGISTERED" --rm --gpus 0 "$IMG" "vessel-clients-gpu-$$" nvidia-smi
}

# ------------------------------------------------------------------ main
mkdir -p "$BASE/tmp"
TIMES=""
for E in $ENGINES; do
  T=$(now_ms)
  echo "# --- $E"
  "stage_$E"
  t=$(secs_since "$T")
  echo "# $E stage: ${t}s"
  TIMES="$TIMES $E=${t}s"
done
echo "# stage times:$TIMES"

# VESSEL_CLIENTS_BENCH=N (make bench-docker): N `docker run --rm` round trips
# with vessel and with runc (dockerd's default runtime), alternated, medians.
# Timings only: no pass/fail.
if [ -n "${VESSEL_CLIENTS_BENCH:-}" ] && [ -x /usr/sbin/runc ]; then
  median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m}'; }
  : > "$BASE/bench.vessel"; : > "$BASE/bench.runc"
  for i in $(seq 1 "$VESSEL_CLIENTS_BENCH"); do
    for rt in vessel runc; do
      t0=$(date +%s%N)
      docker run --rm --network none --runtime "$rt" "$IMG" true >/dev/null 2>&1
      echo "$(( ($(date +%s%N) - t0) / 1000 ))" >> "$BASE/bench.$rt"
    done
  done
  v=$(awk '{print $1/1000}' "$BASE/bench.vessel" | median)
  r=$(awk '{print $1/1000}' "$BASE/bench.runc" | median)
  echo "# docker run --rm round trip, median of $VESSEL_CLIENTS_BENCH: vessel ${v} ms, runc ${r} ms"
fi
if [ -n "${TRACE:-}" ] && [ -f "$TRACE" ]; then
  if [ "$FAIL" != 0 ]; then
    echo "# runtime commands that failed (from $TRACE):"
    awk '/^\[/ {show = ($0 ~ /rc=[1-9][0-9]*$/)} show' "$TRACE" | sed 's/^/#   /'
  fi
fi
summary
[ "$FAIL" = 0 ]
