#!/bin/sh
# Turns a busybox rootfs into a glibc image without any NVIDIA file: the
# host's dynamic loader and libc, and gpu-probe (fake/gpu-probe.c), laid
# out like Debian (/usr/lib/x86_64-linux-gnu) or RHEL (/usr/lib64), with a
# linker cache or without one.
#   make-gpu-image.sh ROOTFS debian|rhel|nocache
set -eu
ROOTFS=${1:?usage: make-gpu-image.sh ROOTFS debian|rhel|nocache}
LAYOUT=${2:-debian}
HERE=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
case "$LAYOUT" in
rhel) LIBDIR=usr/lib64 ;;
debian | nocache) LIBDIR=usr/lib/x86_64-linux-gnu ;;
*) echo "make-gpu-image.sh: unknown layout $LAYOUT" >&2; exit 1 ;;
esac
libc=$("$CC" -print-file-name=libc.so.6)
ld=$("$CC" -print-file-name=ld-linux-x86-64.so.2)
mkdir -p "$ROOTFS/$LIBDIR" "$ROOTFS/lib64" "$ROOTFS/usr/local/bin"
cp -L "$libc" "$ROOTFS/$LIBDIR/libc.so.6"
cp -L "$ld" "$ROOTFS/$LIBDIR/ld-linux-x86-64.so.2"
ln -sf "/$LIBDIR/ld-linux-x86-64.so.2" "$ROOTFS/lib64/ld-linux-x86-64.so.2"
"$CC" -O2 -o "$ROOTFS/usr/local/bin/gpu-probe" "$HERE/fake/gpu-probe.c"
if [ "$LAYOUT" != nocache ]; then
	printf '/%s\n' "$LIBDIR" > "$ROOTFS/etc/ld.so.conf"
	ldconfig -r "$ROOTFS"
fi
