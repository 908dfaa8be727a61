#!/bin/sh
# The kernel's side of an NVIDIA driver under ROOT, as a loaded module
# shows it: the procfs files the driver writes, /proc/devices, real
# character nodes (major 195 and a uvm major; no kernel driver behind them,
# so opening an allowed one fails with ENXIO), two IMEX channels and one
# MIG device. Index order (PCI bus order) differs from the device minors
# on purpose. Shared by make-fake-driver.sh (fake libraries) and
# make-debian-driver.sh (NVIDIA's real user space as Debian packages it):
# no module can load in the tests. Needs root (mknod).
#   make-kernel-side.sh ROOT VERSION
set -eu
ROOT=${1:?usage: make-kernel-side.sh ROOT VERSION}
VER=${2:?usage: make-kernel-side.sh ROOT VERSION}
cd "$ROOT"
mkdir -p proc/driver/nvidia/gpus dev
printf 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Thu Jan  1 00:00:00 UTC 2026\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n' "$VER" > proc/driver/nvidia/version
printf 'ModifyDeviceFiles: 1\n' > proc/driver/nvidia/params
gpu() { # bus minor uuid model
	mkdir -p "proc/driver/nvidia/gpus/$1"
	printf 'Model: \t\t %s\nIRQ:   \t\t 42\nGPU UUID: \t %s\nVideo BIOS: \t 96.00.00.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t %s\nDevice Minor: \t %s\nGPU Excluded:\t No\n' \
		"$4" "$3" "$1" "$2" > "proc/driver/nvidia/gpus/$1/information"
	mknod "dev/nvidia$2" c 195 "$2"
}
# Index 0 is the lower bus id but has minor 1.
gpu 0000:3b:00.0 1 GPU-11111111-2222-3333-4444-555555555555 "NVIDIA H100 80GB HBM3"
gpu 0000:af:00.0 0 GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee "NVIDIA H100 80GB HBM3"
printf 'Character devices:\n  1 mem\n  5 /dev/tty\n195 nvidia\n509 nvidia-caps-imex-channels\n510 nvidia-uvm\n511 nvidia-caps\n\nBlock devices:\n  8 sd\n' > proc/devices
mknod dev/nvidiactl c 195 255
mknod dev/nvidia-uvm c 510 0
mknod dev/nvidia-uvm-tools c 510 1
chmod 666 dev/nvidia*
# Two IMEX channels, as the host makes them for an IMEX domain.
mkdir dev/nvidia-caps-imex-channels
mknod -m 666 dev/nvidia-caps-imex-channels/channel0 c 509 0
mknod -m 666 dev/nvidia-caps-imex-channels/channel1 c 509 1
# One MIG device (gi 1, ci 0) on GPU index 0 (minor 1).
mig=proc/driver/nvidia/capabilities/gpu1/mig/gi1
mkdir -p "$mig/ci0" dev/nvidia-caps
printf 'DeviceFileMinor: 12\nDeviceFileMode: 292\nDeviceFileModify: 1\n' > "$mig/access"
printf 'DeviceFileMinor: 13\nDeviceFileMode: 292\nDeviceFileModify: 1\n' > "$mig/ci0/access"
mknod dev/nvidia-caps/nvidia-cap12 c 511 12
mknod dev/nvidia-caps/nvidia-cap13 c 511 13
# MIG administration: the config (minor 1) and monitor (minor 2)
# capabilities, and the MIG minors the driver reserves per GPU minor
# (mig-minors; only GPU minor 1 is MIG-capable, and cap14 has no host node).
mkdir -p proc/driver/nvidia/capabilities/mig
printf 'DeviceFileMinor: 1\nDeviceFileMode: 256\nDeviceFileModify: 1\n' > proc/driver/nvidia/capabilities/mig/config
printf 'DeviceFileMinor: 2\nDeviceFileMode: 292\nDeviceFileModify: 1\n' > proc/driver/nvidia/capabilities/mig/monitor
mknod dev/nvidia-caps/nvidia-cap1 c 511 1
mknod dev/nvidia-caps/nvidia-cap2 c 511 2
mkdir -p proc/driver/nvidia-caps
printf 'config 1\nmonitor 2\ngpu0/gi1/access 150\ngpu0/gi1/ci0/access 151\ngpu1/gi1/access 12\ngpu1/gi1/ci0/access 13\ngpu1/gi1/ci1/access 14\n' > proc/driver/nvidia-caps/mig-minors

# GPUDirect and fabric devices (NVIDIA_GDS, _MOFED, _NVSWITCH, _GDRCOPY
# =enabled), on majors no driver has on the test hosts, and cuFile's config.
sed -i 's/^511 nvidia-caps$/&\n504 infiniband_verbs\n505 nvidia-fs\n506 nvidia-nvswitch\n508 gdrdrv/' proc/devices
mkdir -p dev/infiniband etc run/udev/data
mknod -m 666 dev/infiniband/uverbs0 c 504 192
mknod -m 666 dev/infiniband/uverbs1 c 504 193
mknod -m 666 dev/infiniband/rdma_cm c 504 255
mknod -m 666 dev/nvidia-fs0 c 505 0
mknod -m 666 dev/nvidia-fs1 c 505 1
mknod -m 666 dev/nvidia-nvswitchctl c 506 255
mknod -m 666 dev/nvidia-nvswitch0 c 506 0
mknod -m 666 dev/gdrdrv c 508 0
printf '{ "logging": { "level": "ERROR" } }\n' > etc/cufile.json
echo 'E:ID_FAKE=1' > run/udev/data/c505:0
