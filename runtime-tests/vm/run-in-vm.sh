#!/usr/bin/env bash
# From the project's shared tool (shared/tools/cgroupv2-vm/run-in-v2-vm.sh,
# whose README explains the choices: TCG because this machine's /dev/kvm is
# PVM, packages unpacked rather than installed); kept here so CI, which has
# only this repository, can boot the cgroup layouts. cgroup-layouts.sh is
# the caller.
# run-in-vm.sh - run a command inside a throw-away Linux VM whose cgroups are
# pure v2 (cgroup_no_v1=all, cgroup2 mounted at /sys/fs/cgroup, all controllers
# enabled at the root), with the host's root filesystem visible (read-only, with
# a writable tmpfs overlay on top) and the current directory shared read-write
# at the same path.  stdout/stderr of the command are streamed back; the script
# exits with the command's exit code (125 = harness failure, 124 = timeout).
#
#   usage: run-in-v2-vm.sh [--] CMD [ARGS...]
#          run-in-v2-vm.sh --setup        # only install/prepare (idempotent)
#
# Environment knobs (all optional):
#   V2VM_CACHE     cache dir for qemu/kernel/initramfs   (/tmp/kvm/cgroupv2-vm)
#   V2VM_MEM       guest RAM                              (1024M)
#   V2VM_CPUS      guest vCPUs                            (min(2, nproc))
#   V2VM_TIMEOUT   seconds before the VM is killed        (1800)
#   V2VM_ACCEL     kvm | tcg | auto                       (auto: kvm only if the
#                  host has real VT-x/AMD-V; PVM-based /dev/kvm can't boot a
#                  stock kernel, so TCG is used there)
#   V2VM_SHARE     host dir shared read-write, or none     ($PWD)
#   V2VM_CGROUP    v2 | hybrid | v1                        (v2)
#                  v2: cgroup_no_v1=all, cgroup2 on /sys/fs/cgroup
#                  v1: tmpfs /sys/fs/cgroup + one v1 hierarchy per controller
#                  hybrid: v1 hierarchies + cgroup2 at /sys/fs/cgroup/unified
#   V2VM_ROOT      overlay | ro                            (overlay)
#   V2VM_INIT      bash | systemd                          (bash)
#                  systemd: boots the host's /lib/systemd/systemd as PID 1 into a
#                  minimal v2vm.target (dbus socket + journald); the command runs
#                  in v2vm.service (Delegate=yes), like a service on a systemd host
#   V2VM_APPEND    extra kernel command line
#   V2VM_KERNEL_PKG  Debian kernel package (default: what linux-image-amd64 pulls)
#   V2VM_DEBUG=1   show kernel console + harness messages on stderr
#   V2VM_KEEP=1    keep the per-run directory (console log etc.)
set -euo pipefail

SELF_VERSION=12   # bump when the guest init changes (forces initramfs rebuild)
CACHE=${V2VM_CACHE:-/tmp/kvm/cgroupv2-vm}
MEM=${V2VM_MEM:-1024M}
NPROC=$(nproc 2>/dev/null || echo 1)
CPUS=${V2VM_CPUS:-$(( NPROC < 2 ? NPROC : 2 ))}
TIMEOUT=${V2VM_TIMEOUT:-1800}
ACCEL=${V2VM_ACCEL:-auto}
SHARE=${V2VM_SHARE:-$PWD}
CGMODE=${V2VM_CGROUP:-v2}
ROOTMODE=${V2VM_ROOT:-overlay}
INITMODE=${V2VM_INIT:-bash}
DEBUG=${V2VM_DEBUG:-0}

log()  { if [[ $DEBUG == 1 ]]; then echo "run-in-v2-vm: $*" >&2; fi; }
info() { echo "run-in-v2-vm: $*" >&2; }
die()  { echo "run-in-v2-vm: error: $*" >&2; exit 125; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"

# ---------------------------------------------------------------- setup ----
apt_ready=0
apt_prepare() {
  [[ $apt_ready == 1 ]] && return 0
  command -v apt-get >/dev/null || die "apt-get not found (Debian/Ubuntu host needed for auto-install)"
  # make sure package lists exist (fresh machines may have none)
  if ! apt-cache show linux-image-amd64 >/dev/null 2>&1 || ! apt-cache show qemu-system-x86 >/dev/null 2>&1; then
    info "running apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
  fi
  apt_ready=1
}

# Packages (closure) that "$@" needs and that are not installed.  Our own
# resolver: apt's would refuse when an installed package Breaks the candidate.
resolve_missing() {
  local -A inst=() seen=(); local level=("$@") next todo p st line name grp sat g
  while read -r p st; do [[ $st == *"ok installed" ]] && inst[${p%%:*}]=1; done \
    < <(dpkg-query -W -f='${Package} ${Status}\n' 2>/dev/null)
  while ((${#level[@]})); do
    next=(); todo=()
    for p in "${level[@]}"; do
      [[ -n ${seen[$p]:-} || -n ${inst[$p]:-} ]] && continue
      seen[$p]=1; todo+=("$p"); echo "$p"
    done
    ((${#todo[@]})) || break
    grp=()
    while IFS= read -r line; do
      [[ $line =~ ^\ (\ |\|)(Pre)?Depends:\ (.*)$ ]] || { grp=(); continue; }
      name=${BASH_REMATCH[3]}; name=${name%%:*}; grp+=("$name")
      [[ ${BASH_REMATCH[1]} == '|' ]] && continue      # alternative group goes on
      sat=""
      for g in "${grp[@]}"; do [[ $g != \<* && -n ${inst[$g]:-} ]] && { sat=1; break; }; done
      if [[ -z $sat ]]; then
        for g in "${grp[@]}"; do [[ $g == \<* ]] && continue; next+=("$g"); break; done
      fi
      grp=()
    done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
               --no-replaces --no-enhances "${todo[@]}" 2>/dev/null)
    level=("${next[@]}")
  done
}

# Extract debs without installing them: nothing on the host system changes
# (installing Debian 12's qemu-system-x86 would e.g. remove a newer qemu-utils).
QEMU=""; QEMU_LIBPATH=""; QEMU_DATADIRS=()
setup_qemu() {
  if [[ -n ${V2VM_QEMU:-} ]]; then QEMU=$V2VM_QEMU; return; fi
  if command -v qemu-system-x86_64 >/dev/null; then QEMU=$(command -v qemu-system-x86_64); return; fi
  local q=$CACHE/qemu
  if [[ ! -e $q/.done ]]; then
    apt_prepare
    info "fetching qemu-system-x86 (+ missing libraries) into $q"
    rm -rf "$q" "$CACHE/debs-qemu"; mkdir -p "$q" "$CACHE/debs-qemu"
    local pkgs; pkgs=$(resolve_missing qemu-system-x86)
    log "downloading: $pkgs"
    # shellcheck disable=SC2086
    (cd "$CACHE/debs-qemu" && apt-get download -qq -o APT::Sandbox::User=root $pkgs >&2) || die "could not download: $pkgs"
    local d
    for d in "$CACHE"/debs-qemu/*.deb; do dpkg-deb -x "$d" "$q"; done
    rm -rf "$CACHE/debs-qemu"
    touch "$q/.done"
  fi
  QEMU=$q/usr/bin/qemu-system-x86_64
  QEMU_LIBPATH=$q/usr/lib/x86_64-linux-gnu
  QEMU_DATADIRS=(-L "$q/usr/share/qemu" -L "$q/usr/share/seabios")
}

BUSYBOX=""
setup_busybox() {
  local b
  for b in /bin/busybox /usr/bin/busybox "$CACHE/busybox/bin/busybox"; do
    if [[ -x $b ]] && file_is_static "$b"; then BUSYBOX=$b; return; fi
  done
  apt_prepare
  info "fetching busybox-static"
  rm -rf "$CACHE/busybox"; mkdir -p "$CACHE/busybox"
  (cd "$CACHE/busybox" && apt-get download -qq -o APT::Sandbox::User=root busybox-static >&2 && dpkg-deb -x busybox-static_*.deb . && rm -f ./*.deb) \
    || die "could not fetch busybox-static"
  BUSYBOX=$CACHE/busybox/bin/busybox
}
file_is_static() {  # no PT_INTERP program header -> static
  ! LC_ALL=C grep -qa '/lib64/ld-linux-x86-64.so.2' "$1"
}

KDIR=""; KIMAGE=""
MODS_WANTED="virtio_pci virtio_mmio virtio_console 9pnet_virtio 9p overlay"
setup_kernel() {
  local pkg=${V2VM_KERNEL_PKG:-}
  if [[ -z $pkg ]]; then
    # cheap path: reuse the newest kernel already prepared (no apt call)
    if [[ -e $CACHE/kernel.current ]] && [[ -e $(cat "$CACHE/kernel.current")/.done ]]; then
      KDIR=$(cat "$CACHE/kernel.current")
    else
      apt_prepare
      pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
      [[ -n $pkg ]] || die "cannot resolve linux-image-amd64 to a kernel package"
    fi
  fi
  if [[ -z $KDIR ]]; then
    KDIR=$CACHE/kernel/$pkg
    if [[ ! -e $KDIR/.done ]]; then
      apt_prepare
      info "fetching kernel $pkg"
      rm -rf "$KDIR"; mkdir -p "$KDIR/x"
      (cd "$KDIR" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >&2) || die "could not download $pkg"
      # only the image and the few modules we need
      dpkg-deb --fsys-tarfile "$KDIR"/*.deb | tar -x -C "$KDIR/x" --wildcards \
        './boot/vmlinuz-*' './boot/config-*' './lib/modules/*/modules.builtin' \
        './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/drivers/char/virtio_console.ko*' \
        './lib/modules/*/kernel/net/9p/*' './lib/modules/*/kernel/fs/9p/*' './lib/modules/*/kernel/fs/netfs/*' \
        './lib/modules/*/kernel/fs/fscache/*' './lib/modules/*/kernel/fs/overlayfs/*' 2>/dev/null || true
      rm -f "$KDIR"/*.deb
      local vmlinuz; vmlinuz=$(ls "$KDIR"/x/boot/vmlinuz-* 2>/dev/null | head -1)
      [[ -n $vmlinuz ]] || die "no vmlinuz in $pkg"
      # An uncompressed ELF vmlinux boots via PVH with no firmware and no
      # decompression: several seconds faster under TCG.  Fall back to bzImage.
      extract_vmlinux "$vmlinuz" "$KDIR/vmlinux" || { log "vmlinux extraction failed; using bzImage"; cp "$vmlinuz" "$KDIR/vmlinux"; }
      touch "$KDIR/.done"
    fi
    echo "$KDIR" > "$CACHE/kernel.current"
  fi
  KIMAGE=$KDIR/vmlinux
}
extract_vmlinux() {  # $1 bzImage, $2 output ELF
  local img=$1 out=$2 magic tool off
  for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08' 'lz4:\x02\x21\x4c\x18'; do
    tool=${magic%%:*}
    command -v "$tool" >/dev/null || continue
    for off in $(LC_ALL=C grep -obUaP "${magic#*:}" "$img" 2>/dev/null | cut -d: -f1 | head -5); do
      tail -c +$((off + 1)) "$img" | "$tool" -dc > "$out.tmp" 2>/dev/null || true
      if [[ -s $out.tmp ]] && [[ $(head -c 4 "$out.tmp" | od -An -c | tr -d ' ') == '177ELF' ]]; then
        mv "$out.tmp" "$out"; return 0
      fi
    done
  done
  rm -f "$out.tmp"; return 1
}

INITRD=""
setup_initrd() {
  INITRD=$KDIR/initrd-v$SELF_VERSION.cpio
  [[ -e $INITRD ]] && return
  log "building initramfs"
  local t=$KDIR/initrd.tmp; rm -rf "$t"; mkdir -p "$t"/{bin,dev,proc,sys,mods,newroot,lower,upper,ctl}
  cp "$BUSYBOX" "$t/bin/busybox"
  # resolve module dependencies (depends= in .modinfo); skip built-ins
  local mdir; mdir=$(ls -d "$KDIR"/x/lib/modules/* | head -1)
  declare -A path=() seen=(); local order=() f n
  while IFS= read -r f; do n=$(basename "$f"); n=${n%%.ko*}; path[${n//-/_}]=$f; done \
    < <(find "$mdir/kernel" -name '*.ko*')
  add_mod() {
    local m=${1//-/_} d
    [[ -n ${seen[$m]:-} ]] && return; seen[$m]=1
    if [[ -z ${path[$m]:-} ]]; then
      grep -qE "/${m//_/[-_]}\.ko" "$mdir/modules.builtin" 2>/dev/null && return
      die "kernel module $m not found"
    fi
    for d in $(modinfo_field "${path[$m]}" depends | tr ',' ' '); do add_mod "$d"; done
    order+=("$m")
  }
  for n in $MODS_WANTED; do add_mod "$n"; done
  for n in "${order[@]}"; do
    case ${path[$n]} in
      *.ko.xz)  xz -dc "${path[$n]}" > "$t/mods/$n.ko" ;;
      *.ko.zst) zstd -qdc "${path[$n]}" > "$t/mods/$n.ko" ;;
      *.ko.gz)  gzip -dc "${path[$n]}" > "$t/mods/$n.ko" ;;
      *)        cp "${path[$n]}" "$t/mods/$n.ko" ;;
    esac
  done
  for n in "${order[@]}"; do strip_modsig "$t/mods/$n.ko"; done   # skip RSA checks at insmod
  printf '%s\n' "${order[@]}" > "$t/mods/order"
  write_guest_init > "$t/init"; chmod 755 "$t/init"
  (cd "$t" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"; rm -rf "$t"
  find "$KDIR" -maxdepth 1 -name 'initrd-v*.cpio' ! -name "${INITRD##*/}" -delete
}
strip_modsig() {  # drop an appended module signature (kernel has no MODULE_SIG_FORCE)
  local f=$1 size siglen
  [[ $(tail -c 28 "$f") == "~Module signature appended~" ]] || return 0
  size=$(stat -c %s "$f")
  siglen=$(tail -c 32 "$f" | head -c 4 | od -An -tu1 | awk '{print $1*16777216+$2*65536+$3*256+$4}')
  truncate -s $(( size - 28 - 12 - siglen )) "$f"
}
modinfo_field() { tr '\0' '\n' < "$1" | LC_ALL=C grep -a "^$2=" | head -1 | cut -d= -f2-; }

write_guest_init() {
cat <<'INIT'
#!/bin/busybox sh
# stage 1 (initramfs): mount the host root + shares, set up cgroups, switch_root
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
t_init=$(cut -d' ' -f1 /proc/uptime)
fail() { echo "v2vm-init: $*" > /dev/ttyS0; [ -d /ctl/. ] && echo "init-failed: $*" > /ctl/error; poweroff -f; sleep 5; }
mmio=""
for p in $(cat /proc/cmdline); do case $p in virtio_mmio.device=*) mmio="$mmio device=${p#virtio_mmio.device=}";; esac; done
for m in $(cat /mods/order); do
  if [ "$m" = virtio_mmio ]; then insmod /mods/$m.ko $mmio; else insmod /mods/$m.ko; fi || fail "insmod $m"
done
t_mods=$(cut -d' ' -f1 /proc/uptime)
O9="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "$O9,cache=none" v2vm_ctl /ctl || fail "mount ctl share"
echo "init=$t_init modules=$t_mods ctl=$(cut -d' ' -f1 /proc/uptime)" > /ctl/boot-times
. /ctl/config
mount -t 9p -o "$O9,ro,cache=loose" v2vm_root /lower || fail "mount host root"
if [ "$V2VM_ROOT" = overlay ]; then
  mount -t tmpfs -o mode=755 tmpfs /upper && mkdir -p /upper/u /upper/w
  mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot || fail "overlay root"
else
  mount --bind /lower /newroot
fi
R=/newroot
# the host may itself be a container image: don't let the guest believe it is one
[ "$V2VM_ROOT" = overlay ] && rm -f $R/.dockerenv $R/run/.containerenv 2>/dev/null
for d in dev proc sys; do mount --move /$d $R/$d; done
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/tmp
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs $R/run
mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue $R/run/v2vm $R/run/lock
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts $R/dev/pts
ln -sf pts/ptmx $R/dev/ptmx 2>/dev/null
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/dev/shm
mount -t mqueue mqueue $R/dev/mqueue 2>/dev/null
mount -t securityfs securityfs $R/sys/kernel/security 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null
mount --move /ctl $R/run/v2vm
if [ "$V2VM_INIT" = systemd ]; then
  # systemd mounts the cgroup hierarchy itself (per systemd.unified_cgroup_hierarchy)
  V2VM_CGROUP=systemd
  mkdir -p $R/run/systemd/system
  printf '%s\n' '[Unit]' 'Description=run the v2vm command' 'Requires=v2vm.service' 'AllowIsolate=yes' \
    > $R/run/systemd/system/v2vm.target
  printf '%s\n' '[Unit]' 'Description=v2vm command' 'Wants=dbus.socket systemd-journald.socket' \
    'After=dbus.socket systemd-journald.socket' '[Service]' 'Type=oneshot' 'Delegate=yes' \
    'StandardInput=null' 'StandardOutput=journal' 'ExecStart=/bin/bash /run/v2vm/stage2' \
    > $R/run/systemd/system/v2vm.service
  # boot speed under TCG + 9p: skip generators and units a test VM doesn't need
  mkdir -p $R/run/systemd/system-generators
  for g in $R/lib/systemd/system-generators/*; do ln -sf /dev/null $R/run/systemd/system-generators/${g##*/}; done
  for u in systemd-timesyncd.service systemd-udevd.service systemd-udev-trigger.service systemd-udevd-control.socket \
      systemd-udevd-kernel.socket systemd-journal-flush.service systemd-random-seed.service systemd-update-utmp.service \
      systemd-pstore.service systemd-modules-load.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
      systemd-firstboot.service systemd-machine-id-commit.service systemd-hwdb-update.service ldconfig.service \
      systemd-journal-catalog-update.service systemd-update-done.service e2scrub_reap.service apt-daily.timer \
      apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer; do
    ln -sf /dev/null $R/run/systemd/system/$u
  done
fi
case "$V2VM_CGROUP" in
  systemd) ;;
  v2)
    mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "mount cgroup2" ;;
  v1|hybrid)
    mount -t tmpfs -o mode=755 tmpfs $R/sys/fs/cgroup
    # same layout as systemd: cpu+cpuacct and net_cls+net_prio co-mounted
    for c in $(awk 'NR>1 && $4==1 {print $1}' $R/proc/cgroups); do
      case $c in cpu|cpuacct) h=cpu,cpuacct;; net_cls|net_prio) h=net_cls,net_prio;; *) h=$c;; esac
      [ -d $R/sys/fs/cgroup/$h ] && continue
      mkdir -p $R/sys/fs/cgroup/$h; mount -t cgroup -o $h cgroup $R/sys/fs/cgroup/$h
      case $h in *,*) for l in $(echo $h | tr , ' '); do ln -s $h $R/sys/fs/cgroup/$l; done;; esac
    done
    mkdir -p $R/sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup $R/sys/fs/cgroup/systemd
    if [ "$V2VM_CGROUP" = hybrid ]; then
      mkdir -p $R/sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 $R/sys/fs/cgroup/unified
    fi ;;
esac
if [ -n "$V2VM_SHARE" ]; then
  mkdir -p "$R$V2VM_SHARE" 2>/dev/null
  mount -t 9p -o "$O9,cache=mmap" v2vm_share "$R$V2VM_SHARE" || fail "mount share $V2VM_SHARE"
fi
hostname v2vm
echo " pre_switch=$(cut -d' ' -f1 $R/proc/uptime)" >> $R/run/v2vm/boot-times
if [ "$V2VM_INIT" = systemd ]; then
  exec switch_root $R /lib/systemd/systemd --unit=v2vm.target --show-status=0 --log-level=warning
fi
exec switch_root $R /bin/bash /run/v2vm/stage2
fail "switch_root"
INIT
}

write_stage2() {
cat <<'STAGE2'
#!/bin/bash
# stage 2 (PID 1 in the host-root overlay): run the command, record its status
ctl=/run/v2vm
echo " stage2_start=$(cut -d' ' -f1 /proc/uptime)" >> $ctl/boot-times
while IFS= read -r -d '' kv; do
  case ${kv%%=*} in
    BASH*|SHELLOPTS|SHLVL|PWD|OLDPWD|_|UID|EUID|PPID|GROUPS|HOSTNAME|TERM|TMPDIR|LD_LIBRARY_PATH|LD_PRELOAD) ;;
    *) export "$kv" 2>/dev/null ;;
  esac
done < $ctl/env
export TERM=dumb HOSTNAME=v2vm
mapfile -d '' -t argv < $ctl/argv
if [[ $V2VM_CGROUP == v2 && $$ == 1 ]]; then   # like systemd: every controller enabled at the root
  for c in $(< /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; done
fi
out=/dev/null err=/dev/null
for p in /sys/class/virtio-ports/*; do
  case $(< "$p/name") in v2vm.stdout) out=/dev/${p##*/};; v2vm.stderr) err=/dev/${p##*/};; esac
done
echo "$(< /proc/uptime)" > $ctl/uptime-at-cmd
echo " stage2=$(cut -d' ' -f1 /proc/uptime)" >> $ctl/boot-times
cd "$V2VM_CWD" 2>/dev/null || cd /
"${argv[@]}" < /dev/null > "$out" 2> "$err"
rc=$?
echo "$rc" > $ctl/rc.tmp && mv $ctl/rc.tmp $ctl/rc
sync
sleep 0.2          # let virtio-serial drain
echo o > /proc/sysrq-trigger
sleep 10
STAGE2
}

pick_accel() {
  case $ACCEL in
    kvm|tcg) echo "$ACCEL"; return ;;
  esac
  # /dev/kvm provided by kvm_pvm (PVM, as inside Firecracker sandboxes) only
  # runs PVM-aware guest kernels: a stock kernel hangs in firmware there.
  if [[ -r /dev/kvm && -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo && [[ ! -d /sys/module/kvm_pvm ]]; then
    echo kvm
  else
    echo tcg
  fi
}

setup_all() {
  flock 9
  setup_qemu
  setup_busybox
  setup_kernel
  setup_initrd
  flock -u 9
}

# ----------------------------------------------------------------- main ----
if [[ ${1:-} == --setup ]]; then
  setup_all; info "ready: qemu=$QEMU kernel=$KIMAGE initrd=$INITRD"; exit 0
fi
[[ ${1:-} == -- ]] && shift
[[ $# -ge 1 ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 125; }
[[ $CGMODE == v2 || $CGMODE == v1 || $CGMODE == hybrid ]] || die "V2VM_CGROUP must be v2, v1 or hybrid"
[[ $INITMODE == bash || $INITMODE == systemd ]] || die "V2VM_INIT must be bash or systemd"
[[ $INITMODE == systemd && $ROOTMODE != overlay ]] && die "V2VM_INIT=systemd needs V2VM_ROOT=overlay"

setup_all
exec 9>&-
A=$(pick_accel)
log "accel=$A cpus=$CPUS mem=$MEM kernel=$KIMAGE"

RUN=$(mktemp -d "$CACHE/run.XXXXXX")
QPID=""
cleanup() {
  [[ -n $QPID ]] && kill "$QPID" 2>/dev/null || true
  if [[ ${V2VM_KEEP:-0} != 1 ]]; then rm -rf "$RUN"; else info "kept $RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $SHARE == none ]]; then SHARE=""; else
  SHARE=$(cd "$SHARE" && pwd -P) || die "cannot share $SHARE"
  [[ $SHARE == / ]] && die "refusing to share / read-write (cd somewhere else or set V2VM_SHARE)"
fi
CWD=$(pwd -P)
{
  printf 'V2VM_ROOT=%q\n' "$ROOTMODE"
  printf 'V2VM_CGROUP=%q\n' "$CGMODE"
  printf 'V2VM_SHARE=%q\n' "$SHARE"
  printf 'V2VM_INIT=%q\n' "$INITMODE"
} > "$RUN/config"
printf '%s\0' "$@" > "$RUN/argv"
env -0 > "$RUN/env"
printf '%s\0' "V2VM_CWD=$CWD" "V2VM_CGROUP=$CGMODE" >> "$RUN/env"
write_stage2 > "$RUN/stage2"; chmod 755 "$RUN/stage2"
mkfifo "$RUN/stdout" "$RUN/stderr"
cat "$RUN/stdout" & CAT1=$!
cat "$RUN/stderr" >&2 & CAT2=$!

case $CGMODE in
  v2) cg_append="cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" ;;
  *)  cg_append="systemd.unified_cgroup_hierarchy=0" ;;
esac
append="console=ttyS0 panic=-1 reboot=t $cg_append mitigations=off tsc=reliable no_timer_check 8250.nr_uarts=1 cryptomgr.notests"
[[ $INITMODE == systemd ]] && append="$append systemd.unit=v2vm.target systemd.show_status=0 systemd.log_level=warning"
[[ $DEBUG == 1 ]] || append="$append quiet loglevel=1"
append="$append ${V2VM_APPEND:-}"
if [[ $A == kvm ]]; then cpu=host; else cpu=max; fi
MACHINE=${V2VM_MACHINE:-q35}
case $MACHINE in
  microvm) machine="microvm,x-option-roms=off,pit=on,pic=off,rtc=on,isa-serial=on,accel=$A"; bus=device ;;
  *)       machine="$MACHINE,accel=$A"; bus=pci ;;
esac
if [[ $DEBUG == 1 ]]; then serial=(-serial file:/dev/stderr); else serial=(-serial "file:$RUN/console.log"); fi

qemu_cmd=("$QEMU" "${QEMU_DATADIRS[@]}" -M "$machine" -cpu "$cpu" -smp "$CPUS" -m "$MEM"
  -nodefaults -no-user-config -display none -nic none -no-reboot "${serial[@]}"
  -kernel "$KIMAGE" -initrd "$INITRD" -append "$append"
  -fsdev "local,id=fs0,path=/,security_model=passthrough,readonly=on,multidevs=remap"
  -device virtio-9p-$bus,fsdev=fs0,mount_tag=v2vm_root
  -fsdev "local,id=fs1,path=$RUN,security_model=passthrough"
  -device virtio-9p-$bus,fsdev=fs1,mount_tag=v2vm_ctl
  -device virtio-serial-$bus,id=vser
  -chardev "file,id=cout,path=$RUN/stdout" -device virtserialport,bus=vser.0,chardev=cout,name=v2vm.stdout
  -chardev "file,id=cerr,path=$RUN/stderr" -device virtserialport,bus=vser.0,chardev=cerr,name=v2vm.stderr)

[[ -n $SHARE ]] && qemu_cmd+=(-fsdev "local,id=fs2,path=$SHARE,security_model=passthrough,multidevs=remap"
  -device "virtio-9p-$bus,fsdev=fs2,mount_tag=v2vm_share")

t0=$(date +%s.%N)
if [[ -n $QEMU_LIBPATH ]]; then
  LD_LIBRARY_PATH=$QEMU_LIBPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} timeout -k 5 "$TIMEOUT" "${qemu_cmd[@]}" </dev/null &
else
  timeout -k 5 "$TIMEOUT" "${qemu_cmd[@]}" </dev/null &
fi
QPID=$!
qrc=0; wait "$QPID" || qrc=$?
QPID=""
# qemu may exit before it ever opened the fifos: unblock the readers
# (opening a fifo read-write never blocks)
exec 3<>"$RUN/stdout" 4<>"$RUN/stderr"; exec 3>&- 4>&-
wait "$CAT1" "$CAT2" 2>/dev/null || true
t1=$(date +%s.%N)
if [[ -e $RUN/uptime-at-cmd && ( $DEBUG == 1 || ${V2VM_TIMING:-0} == 1 ) ]]; then
  info "timing: guest uptime at command start $(cut -d' ' -f1 "$RUN/uptime-at-cmd")s [$(tr -d '\n' < "$RUN/boot-times")]; qemu wall $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}")s ($A, $MACHINE)"
fi

if [[ -e $RUN/rc ]]; then
  exit "$(cat "$RUN/rc")"
fi
if [[ $qrc == 124 ]]; then info "timed out after ${TIMEOUT}s"; code=124; else code=125; fi
[[ -e $RUN/error ]] && info "$(cat "$RUN/error")"
info "VM ended without an exit status (qemu rc=$qrc); console log tail:"
tail -n 40 "$RUN/console.log" >&2 2>/dev/null || true
exit "$code"
