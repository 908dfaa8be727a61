//! Tests that cannot run here say so: a test returns `Err(Skip)` (through
//! `?` on one of the checks below), the runner reports it as
//! `ignored, SKIPPED: why` and counts it as ignored, never as passed.
//!
//! Under `VESSEL_TEST_NO_SKIP=1` (CI's `make test`, as root) a skip is a
//! failure unless its [`Why`] is one a CI machine may legitimately lack:
//!
//! | `Why` | allowed in CI | because |
//! |---|---|---|
//! | `NotRoot` | no | CI runs as root |
//! | `MissingTool` | no | `.ci/run` installs busybox-static, and its `VESSEL_TEST_SYSTEM=1` fetches Debian's NVIDIA packages and the wheels `gpu::debian` needs |
//! | `SharedMountNs` | no | `make test-runtime` runs the suite in `unshare -m` |
//! | `NotVessel` | yes | vessel-only behaviour, or a check Debian's runc 1.1.5 fails, under `RUNTIME=` another runtime (`make test-oracle`) |
//! | `CgroupLayout` | yes | the host's cgroup layout is not the test's (this machine is hybrid; the cgroup VMs run pure v2 and v1) |
//! | `NoSystemd` | yes | systemd is not PID 1 (the v2+systemd VM runs those) |
//! | `HostFeature` | yes | the kernel or host lacks a feature the test is about (time namespaces, swap accounting, unprivileged user namespaces) |
//!
//! Measured on this project's machine (Debian 12, hybrid cgroups, no
//! systemd), as root in `make test-runtime`: 3 of the 239 tests skip,
//! `resources::update_replaces_the_v2_device_filter` and
//! `rootless::rootless_uses_a_delegated_cgroup` (`CgroupLayout`: pure v2
//! only) and `systemd::the_container_runs_in_a_transient_scope_with_its_properties`
//! (`NoSystemd`); no `HostFeature` skip occurs here. No test needs a real
//! GPU (the GPU tests use a fake driver; `gpu/real-gpu.sh` is run by hand).

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

/// Why a test could not run here (see the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    NotRoot,
    MissingTool,
    SharedMountNs,
    NotVessel,
    CgroupLayout,
    NoSystemd,
    HostFeature,
}

impl Why {
    /// True when `VESSEL_TEST_NO_SKIP=1` still lets a test skip for this.
    pub fn allowed_in_ci(self) -> bool {
        match self {
            Why::NotRoot | Why::MissingTool | Why::SharedMountNs => false,
            Why::NotVessel | Why::CgroupLayout | Why::NoSystemd | Why::HostFeature => true,
        }
    }
}

/// A test that did not run: why, and what exactly is missing.
#[derive(Debug, Clone)]
pub struct Skip {
    pub why: Why,
    pub reason: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SKIPPED: {}", self.reason)
    }
}

/// What every test returns: `Ok(())` when it ran (its assertions panic on
/// failure), `Err(Skip)` when it could not run here.
pub type TestResult = Result<(), Skip>;

/// A skip for WHY with REASON (`return harness::skip(..)`).
pub fn skip(why: Why, reason: impl Into<String>) -> TestResult {
    Err(Skip {
        why,
        reason: reason.into(),
    })
}

/// The one check all others are made of: `Ok` when COND holds, else a skip
/// for WHY with REASON.
pub fn skip_unless(cond: bool, why: Why, reason: impl Into<String>) -> TestResult {
    if cond {
        Ok(())
    } else {
        skip(why, reason)
    }
}

/// Root and busybox-static (/bin/busybox, for the rootfs): every runtime
/// test starts with `harness::can_run()?`.
pub fn can_run() -> TestResult {
    static OK: OnceLock<TestResult> = OnceLock::new();
    OK.get_or_init(|| {
        skip_unless(unsafe { libc::geteuid() } == 0, Why::NotRoot, "not root")?;
        skip_unless(
            Path::new("/bin/busybox").exists(),
            Why::MissingTool,
            "no busybox-static (/bin/busybox) for the rootfs",
        )
    })
    .clone()
}

/// The binary under test is vessel. WHAT says why the test is vessel's
/// alone (e.g. "GPU passthrough is vessel's own", "runc 1.1.5 runs a 2.0.0
/// config").
pub fn vessel_only(what: &str) -> TestResult {
    skip_unless(
        super::is_vessel(),
        Why::NotVessel,
        format!("vessel only (RUNTIME is not vessel): {what}"),
    )
}

/// The host has cgroup v1 controllers (hybrid or legacy), with the devices
/// controller.
pub fn needs_cgroup_v1() -> TestResult {
    skip_unless(
        super::cgroup_v1(),
        Why::CgroupLayout,
        "needs cgroup v1 controllers (hybrid or legacy hierarchy)",
    )
}

/// This test process is in a mount namespace of its own (not pid 1's), so
/// a test may mount things under its temporary directories without
/// touching the host's mount table.
pub fn needs_private_mount_ns() -> TestResult {
    let mine = std::fs::read_link("/proc/self/ns/mnt").ok();
    let init = std::fs::read_link("/proc/1/ns/mnt").ok();
    skip_unless(
        mine.is_some() && mine != init,
        Why::SharedMountNs,
        "this test mounts and needs a private mount namespace (unshare -m --propagation private)",
    )
}
