#!/bin/sh
# Builds ROOT as a Debian 12 host with NVIDIA's 535 user-space driver
# installed from Debian's own packages (bookworm non-free, contrib for
# nvidia-support): each .deb unpacked with `dpkg-deb -x`, then what their
# maintainer scripts make, made the same way: nvidia-alternative's postinst
# run against ROOT registers the `nvidia` alternative (update-alternatives
# with DPKG_ROOT=ROOT), so the libraries stay in
# usr/lib/x86_64-linux-gnu/nvidia/current and appear in the multiarch dir
# as absolute links through /etc/alternatives, nvidia-smi in
# usr/lib/nvidia/current behind /usr/bin/nvidia-smi; then the packages'
# ldconfig trigger (`ldconfig -r ROOT`, with Debian's ld.so.conf and
# merged /usr). No module can load here: the kernel's side is
# make-kernel-side.sh's stand-in, with the packages' exact version.
#
# The .debs are cached in $VESSEL_DEBIAN_DRIVER_CACHE (default
# /var/cache/vessel-tests/debian-nvidia), so a rerun downloads nothing.
# They are downloaded only with --download or VESSEL_TEST_SYSTEM=1, with a
# private apt sources list and lists dir (never the machine's sources).
#   make-debian-driver.sh [--download] ROOT
# Exit status: 0 built (prints the driver version); 77 the packages are
# not cached and downloading was not asked for; 78 the download failed;
# anything else: an error building ROOT. Needs root (mknod), dpkg-deb,
# update-alternatives and ldconfig (Debian's).
set -eu
DOWNLOAD=0
if [ "${1:-}" = --download ]; then DOWNLOAD=1; shift; fi
ROOT=${1:?usage: make-debian-driver.sh [--download] ROOT}
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VESSEL_DEBIAN_DRIVER_CACHE:-/var/cache/vessel-tests/debian-nvidia}
DEBS=$CACHE/debs
# The driver's user space for compute, utility and video, and what it
# needs of the driver itself: nvidia-alternative (the alternatives and the
# postinst making them), nvidia-support, libnvidia-pkcs11-openssl3. Left
# out: the kernel module, X and GLX (glx-alternative-nvidia), and
# nvidia-legacy-check (a pre-dependency that only checks for old GPUs).
PKGS="libcuda1 libnvidia-ml1 nvidia-smi libnvidia-ptxjitcompiler1 libnvidia-encode1 libnvcuvid1 libnvidia-nvvm4 libnvidia-cfg1 libnvidia-pkcs11-openssl3 nvidia-alternative"
OTHER_PKGS="nvidia-support"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { echo "make-debian-driver.sh: $*" >&2; }

cached() { [ -f "$DEBS/complete" ]; }

# apt-get/apt-cache on the private sources list, lists and cache under
# $CACHE/apt: the machine's own apt state is neither read nor written.
apt_private() {
	tool=$1
	shift
	"$tool" -q -o Dir::Etc::SourceList="$CACHE/apt/sources.list" \
		-o Dir::Etc::SourceParts=/nonexistent \
		-o Dir::State::Lists="$CACHE/apt/lists" \
		-o Dir::Cache="$CACHE/apt/cache" \
		-o APT::Sandbox::User=root "$@"
}

download() {
	mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial"
	: > "$CACHE/apt/sources.list"
	# 535 updates come through the point releases and bookworm-security.
	for suite in "debian bookworm" "debian bookworm-updates" "debian-security bookworm-security"; do
		printf 'deb [signed-by=%s] http://deb.debian.org/%s main contrib non-free non-free-firmware\n' \
			"$KEYRING" "$suite" >> "$CACHE/apt/sources.list"
	done
	apt_private apt-get update >&2 || return 1
	ver=$(apt_private apt-cache policy libcuda1 | sed -n 's/^ *Candidate: //p')
	case "$ver" in
	535.*) ;;
	*) say "bookworm's libcuda1 is '$ver', not a 535 driver"; return 1 ;;
	esac
	# Every driver package of that one version (they are built together).
	want=$(for p in $PKGS; do printf '%s=%s ' "$p" "$ver"; done)
	tmp=$CACHE/debs.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	# shellcheck disable=SC2086 # one word per package
	(cd "$tmp" && apt_private apt-get download $want $OTHER_PKGS >&2) || return 1
	ls "$tmp" > "$tmp/complete"
	rm -rf "$DEBS"
	mv "$tmp" "$DEBS"
	# The lists are not needed again: a rerun uses the cached .debs.
	rm -rf "$CACHE/apt/lists" "$CACHE/apt/cache"
}

fetch() {
	mkdir -p "$CACHE"
	# One fetch at a time (tests and the bench may run together).
	exec 9>"$CACHE/lock"
	command -v flock >/dev/null && flock 9
	cached && return 0
	if [ "$DOWNLOAD" != 1 ] && [ "${VESSEL_TEST_SYSTEM:-}" != 1 ]; then
		say "Debian's NVIDIA packages are not in $DEBS (set VESSEL_TEST_SYSTEM=1 or pass --download to fetch them)"
		exit 77
	fi
	for tool in apt-get apt-cache; do
		command -v "$tool" >/dev/null || { say "no $tool to download the packages"; exit 77; }
	done
	[ -f "$KEYRING" ] || { say "no $KEYRING (debian-archive-keyring)"; exit 77; }
	download || { say "downloading Debian's NVIDIA packages failed (network?)"; exit 78; }
}

# What a Debian 12 system has before the packages come: merged /usr, the
# directories the postinst checks for, and the dpkg admin dir that
# update-alternatives keeps.
base_system() {
	mkdir -p usr/bin usr/sbin usr/lib/x86_64-linux-gnu usr/lib64 usr/share/man/man1 \
		etc/ld.so.conf.d etc/modprobe.d etc/alternatives var/lib/dpkg/alternatives var/log
	for d in bin lib lib64 sbin; do ln -s "usr/$d" "$d"; done
	# libc-bin's ld.so.conf and libc6's ld.so.conf.d files.
	printf 'include /etc/ld.so.conf.d/*.conf\n\n' > etc/ld.so.conf
	printf '# libc default configuration\n/usr/local/lib\n' > etc/ld.so.conf.d/libc.conf
	printf '# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' \
		> etc/ld.so.conf.d/x86_64-linux-gnu.conf
}

# nvidia-alternative's postinst, run as its trigger runs it once every
# package is unpacked. Its `[ -f ... ]` / `[ -d ... ]` checks name host
# paths, so they are pointed into ROOT; update-alternatives itself honours
# DPKG_ROOT. dpkg-trigger (the GLX alternatives: X is not installed) and
# dpkg-maintscript-helper (a conffile of versions before 352) do nothing.
alternatives() {
	ctl=$(mktemp -d)
	dpkg-deb -e "$DEBS"/nvidia-alternative_*.deb "$ctl/DEBIAN"
	sed -e 's|\[ -f "${source_path}" \]|[ -f "$DPKG_ROOT${source_path}" ]|' \
		-e 's|\[ -d "$(dirname "${target_link}")" \]|[ -d "$DPKG_ROOT$(dirname "${target_link}")" ]|' \
		-e 's|\[ -f /usr/include/nvml.h \]|[ -f "$DPKG_ROOT/usr/include/nvml.h" ]|' \
		"$ctl/DEBIAN/postinst" > "$ctl/postinst"
	# Every path test now looks inside ROOT, or this script is out of date.
	if grep -Eq '\[ -[a-z] "?(/|\$\{source_path\}|\$\(dirname)' "$ctl/postinst" ||
		[ "$(grep -c 'DPKG_ROOT' "$ctl/postinst")" -lt 2 ]; then
		say "nvidia-alternative's postinst has path checks this script does not know"
		exit 1
	fi
	mkdir "$ctl/bin"
	for noop in dpkg-trigger dpkg-maintscript-helper; do
		printf '#!/bin/sh\nexit 0\n' > "$ctl/bin/$noop"
		chmod 755 "$ctl/bin/$noop"
	done
	PATH="$ctl/bin:$PATH" DPKG_ROOT=$PWD sh "$ctl/postinst" triggered register-nvidia-alternative >&2
	rm -rf "$ctl"
}

fetch
rm -rf "$ROOT"
mkdir -p "$ROOT"
cd "$ROOT"
base_system
for deb in "$DEBS"/*.deb; do dpkg-deb -x "$deb" .; done
alternatives
# libcuda1's postinst only warns when the loaded module's version differs,
# nvidia-support's only asks debconf: nothing on disk. Every library
# package has the ldconfig trigger.
ldconfig -r "$PWD"
VER=$(dpkg-deb -f "$DEBS"/libcuda1_*.deb Version)
VER=${VER%%-*}
sh "$HERE/make-kernel-side.sh" "$PWD" "$VER"
echo "$VER"
