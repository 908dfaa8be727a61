#!/bin/sh
# Builds a fake NVIDIA driver under ROOT, shaped like a real host's: the
# procfs files the driver writes, /proc/devices, real character nodes
# (major 195 and a uvm major; no kernel driver behind them, so opening an
# allowed one fails with ENXIO), shared libraries with the driver's
# sonames listed in ROOT/etc/ld.so.cache (made by `ldconfig -r`), a
# nvidia-smi script, firmware and two IMEX channels. Index order (PCI
# bus order) differs from the device minors on purpose. Needs root
# (mknod), cc and ldconfig.
#   make-fake-driver.sh ROOT [VERSION]
set -eu
ROOT=${1:?usage: make-fake-driver.sh ROOT [VERSION]}
VER=${2:-580.159.04}
HERE=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
rm -rf "$ROOT"
mkdir -p "$ROOT"
cd "$ROOT"
mkdir -p proc/driver/nvidia/gpus dev usr/lib/x86_64-linux-gnu usr/bin etc "lib/firmware/nvidia/$VER"
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
LIB=usr/lib/x86_64-linux-gnu
"$CC" -shared -fPIC -o "$LIB/libcuda.so.$VER" -Wl,-soname,libcuda.so.1 "$HERE/fake/libcuda.c"
# NVML answers for the same GPUs and MIG device, with the MIG UUID.
"$CC" -shared -fPIC -o "$LIB/libnvidia-ml.so.$VER" -Wl,-soname,libnvidia-ml.so.1 "$HERE/fake/libnvml.c"
for spec in libnvidia-ptxjitcompiler:1 libnvidia-encode:1 libnvcuvid:1 libGLX_nvidia:0 libnvidia-glcore:$VER; do
	name=${spec%%:*} so=${spec#*:}
	"$CC" -shared -fPIC -o "$LIB/$name.so.$VER" -Wl,-soname,"$name.so.$so" "$HERE/fake/libstub.c"
done
printf '/usr/lib/x86_64-linux-gnu\n' > etc/ld.so.conf
ldconfig -r "$ROOT"
cat > usr/bin/nvidia-smi <<'SMI'
#!/bin/sh
# fake nvidia-smi: lists the GPU nodes this process can see
i=0
for n in /dev/nvidia[0-9]*; do
	[ -e "$n" ] || continue
	echo "GPU $i: fake (node $n)"
	i=$((i + 1))
done
SMI
chmod 755 usr/bin/nvidia-smi
echo firmware > "lib/firmware/nvidia/$VER/gsp_ga10x.bin"
# One MIG device (gi 1, ci 0) on GPU index 0 (minor 1).
mig=proc/driver/nvidia/capabilities/gpu1/mig/gi1
mkdir -p "$mig/ci0" dev/nvidia-caps
printf 'DeviceFileMinor: 12\nDeviceFileMode: 292\nDeviceFileModify: 1\n' > "$mig/access"
printf 'DeviceFileMinor: 13\nDeviceFileMode: 292\nDeviceFileModify: 1\n' > "$mig/ci0/access"
mknod dev/nvidia-caps/nvidia-cap12 c 511 12
mknod dev/nvidia-caps/nvidia-cap13 c 511 13
