#!/bin/sh
# Builds a minimal busybox root filesystem at DEST from the host's
# busybox-static package (apt-get install busybox-static). Nothing is
# downloaded: the rootfs is one static binary plus its applet links.
set -eu
DEST=${1:?usage: build-rootfs.sh DEST}
BUSYBOX=${BUSYBOX:-/bin/busybox}
if ! [ -x "$BUSYBOX" ] || LC_ALL=C readelf -d "$BUSYBOX" 2>/dev/null | grep -q NEEDED; then
	echo "build-rootfs.sh: $BUSYBOX is missing or not static; apt-get install busybox-static" >&2
	exit 1
fi
rm -rf "$DEST"
mkdir -p "$DEST"
cd "$DEST"
mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home var/run run
chmod 1777 tmp
cp "$BUSYBOX" bin/busybox
for applet in $("$BUSYBOX" --list-full); do
	case "$applet" in bin/busybox) continue ;; esac
	ln -sf /bin/busybox "$applet" 2>/dev/null || true
done
# bin/true and friends must exist even if the applet list changes.
for a in sh true false echo cat ls sleep; do [ -e "bin/$a" ] || ln -s busybox "bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > etc/passwd
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > etc/group
echo vessel > etc/hostname
: > etc/hosts
: > etc/resolv.conf
