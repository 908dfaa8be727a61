#!/bin/sh
# Turns a busybox rootfs into a Python image without any NVIDIA file: the
# host's Debian python3 (interpreter, stdlib, and the shared libraries it
# and its extension modules need, found with ldd, with glibc's other
# libraries and its loader, laid out as on Debian), PyPI's CUDA runtime
# (nvidia-cuda-runtime-cu12: libcudart.so.12) and NVML bindings
# (nvidia-ml-py: pynvml) installed by the host's pip into /opt/python (put
# it on PYTHONPATH), debian-check.py as /usr/local/bin/debian-check.py, and
# an /etc/ld.so.cache of its own (`ldconfig -r`).
#
# The wheels are cached in $VESSEL_DEBIAN_DRIVER_CACHE/wheels (default
# /var/cache/vessel-tests/debian-nvidia), downloaded by pip only with
# --download or VESSEL_TEST_SYSTEM=1.
#   make-python-image.sh [--download] ROOTFS
# Exit status: 0 built; 77 the wheels are not cached and downloading was
# not asked for, or the host has no python3 with pip; 78 the download
# failed; anything else: an error.
set -eu
DOWNLOAD=0
if [ "${1:-}" = --download ]; then DOWNLOAD=1; shift; fi
ROOTFS=${1:?usage: make-python-image.sh [--download] ROOTFS}
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VESSEL_DEBIAN_DRIVER_CACHE:-/var/cache/vessel-tests/debian-nvidia}
WHEELS=$CACHE/wheels
PY=${PYTHON:-/usr/bin/python3}
# The CUDA runtime of the 535 driver's CUDA (12.2) and the NVML bindings
# NVIDIA released for 535: what a CUDA 12.2 image would carry.
REQS="nvidia-cuda-runtime-cu12==12.2.140 nvidia-ml-py==12.535.161"
LIBDIR=usr/lib/x86_64-linux-gnu

say() { echo "make-python-image.sh: $*" >&2; }

fetch_wheels() {
	mkdir -p "$CACHE"
	exec 9>"$CACHE/lock"
	command -v flock >/dev/null && flock 9
	[ -f "$WHEELS/complete" ] && return 0
	if [ "$DOWNLOAD" != 1 ] && [ "${VESSEL_TEST_SYSTEM:-}" != 1 ]; then
		say "the wheels ($REQS) are not in $WHEELS (set VESSEL_TEST_SYSTEM=1 or pass --download to fetch them)"
		exit 77
	fi
	tmp=$CACHE/wheels.tmp
	rm -rf "$tmp"
	# shellcheck disable=SC2086 # one word per requirement
	if ! "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp" $REQS >&2; then
		say "downloading the wheels failed (network?)"
		exit 78
	fi
	ls "$tmp" > "$tmp/complete"
	rm -rf "$WHEELS"
	mv "$tmp" "$WHEELS"
}

# FILE's shared libraries as ldd resolves them on the host, and its loader.
needed() {
	ldd "$1" 2>/dev/null | sed -n -e 's/^.* => \(\/[^ ]*\) .*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*ld-linux[^ ]*\) .*/\1/p'
}

copy_libraries() {
	stdlib=$1
	libs=$(
		needed "$PY"
		for m in "$stdlib"/lib-dynload/*.so; do needed "$m"; done
	)
	libc=$(echo "$libs" | grep '/libc\.so\.6$' | head -n 1)
	[ -n "$libc" ] || { say "ldd found no libc.so.6 for $PY"; exit 1; }
	# glibc's other libraries, as every Debian image has them (the
	# driver's libraries need libdl, libpthread and librt).
	for l in libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libresolv.so.2 libutil.so.1; do
		[ -e "$(dirname "$libc")/$l" ] && libs="$libs
$(dirname "$libc")/$l"
	done
	echo "$libs" | sort -u | while read -r lib; do
		[ -n "$lib" ] && cp -L "$lib" "$ROOTFS/$LIBDIR/$(basename "$lib")"
	done
	ln -sf "/$LIBDIR/ld-linux-x86-64.so.2" "$ROOTFS/lib64/ld-linux-x86-64.so.2"
}

[ -x "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1 || {
	say "no $PY with pip (apt-get install python3 python3-pip)"
	exit 77
}
fetch_wheels
real=$(readlink -f "$PY")
stdlib=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
mkdir -p "$ROOTFS/$LIBDIR" "$ROOTFS/lib64" "$ROOTFS/usr/bin" "$ROOTFS/usr/local/bin" "$ROOTFS/opt/python" "$ROOTFS/$stdlib"
cp -L "$real" "$ROOTFS/usr/bin/$(basename "$real")"
ln -sf "$(basename "$real")" "$ROOTFS/usr/bin/python3"
# The stdlib without its tests, GUI and build files.
(cd "$stdlib" && tar -cf - --exclude=./test --exclude=./idlelib --exclude=./tkinter \
	--exclude=./turtledemo --exclude=./ensurepip --exclude='./config-*' .) |
	(cd "$ROOTFS/$stdlib" && tar -xf -)
copy_libraries "$stdlib"
# shellcheck disable=SC2086 # one word per requirement
"$PY" -m pip install -q --disable-pip-version-check --no-index --find-links "$WHEELS" \
	--no-deps --root-user-action=ignore --target "$ROOTFS/opt/python" $REQS >&2
cp "$HERE/debian-check.py" "$ROOTFS/usr/local/bin/debian-check.py"
printf '/%s\n' "$LIBDIR" > "$ROOTFS/etc/ld.so.conf"
ldconfig -r "$ROOTFS"
