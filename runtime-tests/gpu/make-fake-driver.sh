#!/bin/sh
# Builds a fake NVIDIA driver under ROOT, shaped like a real host's: the
# kernel's side (make-kernel-side.sh: the procfs files the driver writes,
# /proc/devices, real character nodes, two IMEX channels, one MIG device),
# shared libraries with the driver's sonames listed in ROOT/etc/ld.so.cache
# (made by `ldconfig -r`), a nvidia-smi script and firmware. Needs root
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
mkdir -p usr/lib/x86_64-linux-gnu usr/bin etc "lib/firmware/nvidia/$VER"
sh "$HERE/make-kernel-side.sh" "$PWD" "$VER"
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
