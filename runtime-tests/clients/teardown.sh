#!/bin/bash
# teardown.sh — undo setup.sh start (BASE=the same directory).
#
# Removes the containers of the three engines, stops dockerd and containerd
# by the pids setup.sh recorded (SIGTERM, SIGKILL after 20 s), ends leftover
# shims and conmons of this stack and leftover container processes in the
# cgroups this run created (by pid), unmounts what is still mounted under
# $BASE, removes the cgroups and the paths outside $BASE that did not exist
# before setup (rmdir only: anything non-empty is left and reported), then
# deletes $BASE. KEEP_LOGS=DIR copies the daemons' logs there first.
# Never touches processes, cgroups or mounts this stack did not create.
set -uo pipefail
: "${BASE:?BASE must name the directory setup.sh used}"
log() { printf '[teardown %s] %s\n' "$(date +%T)" "$*" >&2; }
[ -d "$BASE" ] || { log "$BASE does not exist; nothing to do"; exit 0; }
# shellcheck disable=SC1091
[ -f "$BASE/env.sh" ] && . "$BASE/env.sh"

alive() { # pid: running and the daemon we started (its command line names BASE)
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && grep -qF "$BASE/" "/proc/$1/cmdline" 2>/dev/null
}

# A CDI spec the GPU checks wrote for podman (podman reads only /etc/cdi
# and /var/run/cdi).
if [ -f "$BASE/cdi-spec-path" ]; then
  rm -f "$(cat "$BASE/cdi-spec-path")"
  rmdir /var/run/cdi 2>/dev/null
fi

# ---------------------------------------------------------------- containers
if [ -f "$BASE/dockerd.pid" ] && alive "$(cat "$BASE/dockerd.pid")" && [ -n "${DOCKER_HOST:-}" ]; then
  ids=$(timeout 30 /usr/bin/docker ps -aq 2>/dev/null)
  # shellcheck disable=SC2086
  [ -n "$ids" ] && timeout 60 /usr/bin/docker rm -f $ids >/dev/null 2>&1
fi
if [ -n "${CONTAINERS_CONF:-}" ] && [ -f "$CONTAINERS_CONF" ]; then
  timeout 60 podman rm -a -f -t 0 >/dev/null 2>&1
  timeout 60 podman system reset -f >/dev/null 2>&1   # images, storage, layer mounts
fi
if [ -f "$BASE/containerd.pid" ] && alive "$(cat "$BASE/containerd.pid")" && [ -n "${CONTAINERD_ADDRESS:-}" ]; then
  for ns in $(timeout 10 ctr namespaces ls -q 2>/dev/null); do
    for t in $(timeout 10 ctr -n "$ns" task ls -q 2>/dev/null); do
      timeout 10 ctr -n "$ns" task kill -a -s SIGKILL "$t" >/dev/null 2>&1
    done
    sleep 0.5
    for t in $(timeout 10 ctr -n "$ns" task ls -q 2>/dev/null); do
      timeout 10 ctr -n "$ns" task delete -f "$t" >/dev/null 2>&1
    done
    [ "$ns" = moby ] && continue   # dockerd's own
    for c in $(timeout 10 ctr -n "$ns" containers ls -q 2>/dev/null); do
      timeout 10 ctr -n "$ns" containers delete "$c" >/dev/null 2>&1
    done
  done
fi

# ---------------------------------------------------------------- daemons
stop_pid() { # name pidfile
  local name=$1 pf=$2 pid
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf")
  if alive "$pid"; then
    kill "$pid"
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored SIGTERM; SIGKILL"; kill -9 "$pid"; sleep 0.5; fi
    log "stopped $name (pid $pid)"
  else
    log "$name pid ${pid:-?} not running (or not ours)"
  fi
  rm -f "$pf"
}
stop_pid dockerd "$BASE/dockerd.pid"
stop_pid containerd "$BASE/containerd.pid"

# leftover shims (their -address names our socket) and conmons (their
# arguments name our podman storage)
for p in /proc/[0-9]*; do
  cmd=$( { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null) || continue
  case $cmd in
    /usr/bin/containerd-shim*" -address $BASE/"*|/usr/bin/conmon*" $BASE/"*)
      log "ending leftover ${cmd%% *} (pid ${p#/proc/})"; kill "${p#/proc/}" 2>/dev/null ;;
  esac
done

# ---------------------------------------------------------------- cgroups this run created
if [ -s "$BASE/created-cgroups" ]; then
  # container processes a runtime left behind: thaw, then SIGKILL them by pid
  pids=""
  while read -r g; do
    [ -d "$g" ] || continue
    for f in $(find "$g" -name freezer.state 2>/dev/null); do echo THAWED > "$f" 2>/dev/null; done
    for f in $(find "$g" -name cgroup.freeze 2>/dev/null); do echo 0 > "$f" 2>/dev/null; done
    pids="$pids $(find "$g" -name cgroup.procs -exec cat {} + 2>/dev/null)"
  done < "$BASE/created-cgroups"
  pids=$(echo "$pids" | tr ' ' '\n' | grep -v '^$' | sort -un | tr '\n' ' ')
  if [ -n "$pids" ]; then
    log "killing leftover container processes: $pids"
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null
    sleep 0.5
  fi
fi

# ---------------------------------------------------------------- mounts under BASE (deepest first)
for m in $(awk -v b="$BASE/" 'index($5, b) == 1 {print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-); do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
done

if [ -s "$BASE/created-cgroups" ]; then
  while read -r g; do
    [ -d "$g" ] || continue
    # children first; rmdir refuses non-empty cgroups, which is what we want
    find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$g" ] && log "cgroup $g still in use; left in place"
  done < "$BASE/created-cgroups"
fi

# ---------------------------------------------------------------- paths outside BASE this run created
if [ -f "$BASE/created-paths" ]; then
  for p in $(sort -r "$BASE/created-paths"); do
    case $p in
      /etc/docker/key.json) rm -f "$p" ;;
      /var/lib/containers) rm -rf /var/lib/containers/cache; rmdir "$p" 2>/dev/null ;;
      *) if [ -d "$p" ]; then
           find "$p" -depth -type d -empty -delete 2>/dev/null
           [ -e "$p" ] && log "$p not empty; left in place"
         fi ;;
    esac
  done
fi

if [ -n "${KEEP_LOGS:-}" ]; then
  mkdir -p "$KEEP_LOGS" && cp -r "$BASE/log/." "$KEEP_LOGS/" 2>/dev/null
  [ -f "$BASE/podman/events.log" ] && cp "$BASE/podman/events.log" "$KEEP_LOGS/podman-events.log"
  log "logs kept in $KEEP_LOGS"
fi
rm -rf "$BASE" 2>/dev/null || log "could not remove all of $BASE"
log "done"
