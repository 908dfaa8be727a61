#!/bin/bash
# teardown.sh — undo run.sh (BASE = its directory): stop containerd by the
# pid run.sh recorded, end leftover shims of this containerd (their
# -address names our socket) and container processes in the kubepods
# cgroups this run made (by pid), unmount what is left under $BASE, remove
# those cgroups and paths (rmdir only: anything non-empty is reported),
# then $BASE itself. Never touches what this run did not make.
set -uo pipefail
: "${BASE:?BASE must name the directory run.sh made}"
log() { printf '[teardown %s] %s\n' "$(date +%T)" "$*" >&2; }
[ -d "$BASE" ] || exit 0
if [ -f "$BASE/containerd.pid" ]; then
  pid=$(cat "$BASE/containerd.pid")
  if kill -0 "$pid" 2>/dev/null && grep -qF "$BASE/" "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
fi
for p in /proc/[0-9]*; do
  cmd=$( { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null) || continue
  case $cmd in
    *containerd-shim*" -address $BASE/"*) log "ending leftover shim (pid ${p#/proc/})"; kill -9 "${p#/proc/}" 2>/dev/null ;;
  esac
done
while read -r g; do
  [ -d "$g" ] || continue
  for f in $(find "$g" -name cgroup.procs 2>/dev/null); do
    for pid in $(cat "$f" 2>/dev/null); do log "ending leftover pid $pid in ${f%/cgroup.procs}"; kill -9 "$pid" 2>/dev/null; done
  done
done < "$BASE/created"
sleep 0.2
if [ -f "$BASE/created-slices" ] && command -v systemctl >/dev/null; then
  while read -r unit; do systemctl stop "$unit" 2>/dev/null; done < "$BASE/created-slices"
fi
# Mount points (field 5 of mountinfo) below $BASE, deepest first.
awk -v b="$BASE/" 'index($5, b) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null || log "could not unmount $m"
done
while read -r g; do
  [ -e "$g" ] || continue
  find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -e "$g" ] && log "left $g (not empty)"
done < "$BASE/created"
if awk -v b="$BASE/" 'index($5, b) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
  log "mounts left under $BASE: not removing it"
else
  rm -rf --one-file-system "$BASE"
fi
