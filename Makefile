# vessel: build, run an example container, test, benchmark, install.
# Every target that starts containers needs root; the runtime tests run in a
# private mount namespace so a runtime bug cannot touch the host's mounts.

PREFIX ?= /usr/local
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

# The release binary is linked statically and non-PIE: no dynamic loader, no
# relocations at start, and fewer resident pages (make bench: about 1 MiB less
# peak RSS than a dynamic PIE build, and a faster start).
HOST := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
STATIC_RUSTFLAGS := -C target-feature=+crt-static -C relocation-model=static
BIN := target/$(HOST)/release/vessel
# vessel-nvml, `vessel gpu cdi`'s NVML helper (tools/vessel-nvml): linked
# dynamically (it dlopens the driver's libnvidia-ml), in its own target dir.
NVML_TARGET := target/vessel-nvml
NVML_BIN := $(NVML_TARGET)/release/vessel-nvml
# Where SYSTEMD=1 installs the CDI refresh units.
SYSTEMD_UNIT_DIR ?= /lib/systemd/system
BUNDLE := bundles/busybox
# What `make run` and the tests need from Debian.
APT_PACKAGES := busybox-static runc crun pkg-config libseccomp-dev
PRIVATE := unshare -m --propagation private

.PHONY: all build deps bundle run test test-unit test-runtime test-oracle test-clients test-cri test-cgroup-vms fuzz bench bench-docker install clean

all: build

build:
	LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$$(pkg-config --variable=libdir libseccomp) RUSTFLAGS="$(STATIC_RUSTFLAGS)" $(CARGO) build --release --target $(HOST)
	env -u RUSTFLAGS CARGO_TARGET_DIR=$(NVML_TARGET) $(CARGO) build --release --locked --manifest-path tools/vessel-nvml/Cargo.toml

# Installs the Debian packages that are missing (needs root and apt).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs), then re-run make" >&2; exit 1; }

bundle: $(BUNDLE)/rootfs/bin/busybox

$(BUNDLE)/rootfs/bin/busybox:
	sh $(BUNDLE)/build-rootfs.sh $(BUNDLE)/rootfs

# Sets up everything on a fresh Debian machine and runs one container.
run: deps build bundle
	$(PRIVATE) $(BIN) --root /run/vessel run --bundle $(BUNDLE) vessel-demo-$$$$

test: test-unit test-runtime test-clients test-cri test-cgroup-vms

test-unit:
	$(CARGO) test --lib --bins

# The integration suite against vessel (RUNTIME= picks another binary). A
# test that cannot run here is reported `ignored, SKIPPED: why` and counted
# as ignored; VESSEL_TEST_NO_SKIP=1 (CI) makes a skip for a reason CI must
# not have (not root, ...: runtime-tests/harness/skip.rs) a failure.
test-runtime: bundle
	$(PRIVATE) $(CARGO) test --test runtime -- --test-threads=2

# The same suite against runc: proves the tests encode OCI/runc behaviour.
test-oracle:
	RUNTIME=$${RUNTIME:-/usr/sbin/runc} $(PRIVATE) $(CARGO) test --test runtime -- --test-threads=2
	RUNTIME=$${RUNTIME:-/usr/sbin/runc} $(MAKE) --no-print-directory test-clients

bench: build bundle
	python3 bench/bench.py --vessel $(BIN)
	python3 bench/gpu.py --vessel $(BIN)
	python3 bench/gpu.py --vessel $(BIN) --driver debian
	CRI_BENCH=$${POD_N:-30} bash runtime-tests/cri/run.sh $(BIN)

# `docker run --rm` round trips, vessel vs runc, through a private dockerd
# (needs the engines: VESSEL_TEST_SYSTEM=1 installs them).
bench-docker: build bundle
	VESSEL_CLIENTS_BENCH=$${N:-30} ENGINES=docker bash runtime-tests/clients/run.sh $(BIN)

# vessel-nvml goes beside vessel, where `vessel gpu cdi` looks for it.
# SYSTEMD=1 also installs vessel-cdi-refresh.service and .path into
# $(SYSTEMD_UNIT_DIR) (docs/gpu.md), with ExecStart naming $(PREFIX)/bin/vessel.
# NVIDIA_HOOK=1 also installs vessel as nvidia-container-runtime-hook:
# dockerd accepts --gpus only when that name is on its PATH, and vessel under
# that name does nothing (docs/gpu.md: it conflicts with NVIDIA's toolkit,
# whose hook runc needs, so an existing file of that name is not replaced).
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/vessel
	install -D -m 0755 $(NVML_BIN) $(DESTDIR)$(PREFIX)/bin/vessel-nvml
	@if [ "$(SYSTEMD)" = 1 ]; then \
		for unit in vessel-cdi-refresh.service vessel-cdi-refresh.path; do \
			mkdir -p $(DESTDIR)$(SYSTEMD_UNIT_DIR); \
			sed 's|/usr/local/bin/vessel|$(PREFIX)/bin/vessel|g' packaging/systemd/$$unit > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$unit; \
			chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$unit; \
		done; \
		echo "installed $(SYSTEMD_UNIT_DIR)/vessel-cdi-refresh.{service,path}: systemctl daemon-reload && systemctl enable --now vessel-cdi-refresh.path vessel-cdi-refresh.service"; \
	fi
	@if [ "$(NVIDIA_HOOK)" = 1 ]; then \
		hook=$(DESTDIR)$(PREFIX)/bin/nvidia-container-runtime-hook; \
		if [ -e "$$hook" ] && [ "$$(readlink "$$hook")" != vessel ]; then \
			echo "$$hook exists and is not vessel (NVIDIA's toolkit?): left alone; see docs/gpu.md" >&2; exit 1; \
		fi; \
		ln -sf vessel "$$hook"; \
		other=$$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v nvidia-container-runtime-hook || true); \
		if [ -n "$$other" ]; then echo "note: $$other (NVIDIA's) is also installed; $$hook comes first only where $(PREFIX)/bin is earlier in PATH" >&2; fi; \
		echo "installed $$hook -> vessel (restart dockerd so it sees it)"; \
	fi

clean:
	$(CARGO) clean
	rm -rf $(BUNDLE)/rootfs

# The cgroup tests inside one throw-away VM per layout: pure v2, v2 with
# systemd, v1 (runtime-tests/vm/cgroup-layouts.sh; about 10 minutes under
# emulation). Skipped (exit 0) unless root and either VESSEL_TEST_SYSTEM=1
# (downloads qemu and a kernel into /tmp/kvm, installs nothing) or that
# cache exists. LAYOUTS="v2" or FILTER="resources::" narrow it.
# Kubernetes' path: containerd's CRI plugin driven by a CRI client making
# the kubelet's calls, with vessel and runc (the oracle) as runtime
# handlers (runtime-tests/cri/README.md). Builds the debug vessel first.
test-cri:
	$(CARGO) build
	bash runtime-tests/cri/run.sh target/debug/vessel

test-cgroup-vms:
	bash runtime-tests/vm/cgroup-layouts.sh

# libFuzzer on config.json loading/planning and on the GPU inputs
# (fuzz/run.sh): FUZZ_SECONDS each (default 60). Needs nightly and
# cargo-fuzz (VESSEL_TEST_SYSTEM=1 installs cargo-fuzz); else SKIPPED.
fuzz:
	bash fuzz/run.sh $${FUZZ_SECONDS:-60}

# docker, podman and ctr running vessel (runtime-tests/clients/run.sh): the
# engines' daemons run with their state in a temporary directory and are
# stopped and removed at the end. Skipped (exit 0) unless root and either
# VESSEL_TEST_SYSTEM=1 (installs docker.io, containerd, podman) or the engines
# are installed. RUNTIME= picks another binary (RUNTIME=/usr/sbin/runc: the
# same checks against runc).
test-clients:
	@if [ -z "$$RUNTIME" ] && [ "$$(id -u)" = 0 ]; then $(CARGO) build -q; fi
	bash runtime-tests/clients/run.sh $${RUNTIME:-target/debug/vessel}
