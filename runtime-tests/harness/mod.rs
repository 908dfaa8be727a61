//! The shared harness of the integration tests.
//!
//! Every test drives a runtime *binary* (never the vessel library), chosen by
//! `RUNTIME=` (default: the vessel built by this cargo invocation), so the
//! whole suite can be pointed at runc as an oracle (`make test-oracle`).
//!
//! Needs: root, a kernel with namespaces and cgroups, and busybox-static
//! (`bundles/busybox/build-rootfs.sh` builds the rootfs from it). Run from a
//! private mount namespace (`make test` does `unshare -m --propagation private`).
//!
//! A test is a `fn() -> TestResult`, listed in its module's
//! `harness::tests![...]` (`runner.rs` runs them). One that cannot run here
//! returns a [`Skip`] (`harness::can_run()?` and the other checks of
//! `skip.rs`): it is reported `ignored, SKIPPED: why` and counted as
//! ignored, never as passed.

mod bundle;
mod cgroups;
mod mounts;
pub mod runner;
mod skip;

pub use bundle::Bundle;
pub use cgroups::{
    cgroup_dirs, cgroup_gone, cgroup_hierarchies, cgroup_v1, isolated_bundle, CgroupGuard,
    Hierarchy,
};
pub use mounts::{mount_at, parse_mountinfo, MountInfo, TestMounts};
pub(crate) use runner::tests;
pub use skip::{
    can_run, needs_cgroup_v1, needs_private_mount_ns, skip, skip_unless, vessel_only, Skip,
    TestResult, Why,
};

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The runtime binary under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_vessel")),
    }
}

/// True when the binary under test is vessel (asked once per test process).
/// Tests of vessel-only behaviour call `vessel_only(why)?` instead.
pub fn is_vessel() -> bool {
    static VESSEL: OnceLock<bool> = OnceLock::new();
    *VESSEL.get_or_init(|| {
        let out = Command::new(runtime_bin()).arg("--version").output();
        matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("vessel"))
    })
}

/// A unique name for containers, cgroups and files of one test.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Stdout of a finished command as a string, with stderr in the panic message
/// when it failed.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 20 ms until it is true or `secs` seconds passed.
pub fn wait_for(secs: f64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// True while PID exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit(')')
                .next()
                .map(str::trim_start)
                .and_then(|r| r.chars().next()),
            Some('Z') | Some('X')
        ),
        Err(_) => false,
    }
}

/// The namespace link (e.g. `net:[4026531840]`) of this test process, which
/// is the "host" the runtime under test starts from.
pub fn host_ns(ns: &str) -> String {
    ns_of("self", ns)
}

/// The namespace link of kind NS of process PID (a number or "self").
pub fn ns_of(pid: impl std::fmt::Display, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Stderr of a finished command, for assertion messages.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `fixtures/maxrss.c` built once per test process (None without gcc): runs
/// a command and prints its peak RSS in KiB.
pub fn maxrss_helper() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("maxrss-{}", std::process::id()));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime-tests/fixtures/maxrss.c");
        let built = Command::new("gcc")
            .arg("-O2")
            .arg("-o")
            .arg(&bin)
            .arg(src)
            .status()
            .is_ok_and(|s| s.success());
        built.then_some(bin)
    })
    .as_deref()
}

/// Runs the bundle with `sh -c SCRIPT` (container ID from PREFIX), asserting
/// it exited 0; returns stdout.
pub fn sh(b: &mut Bundle, prefix: &str, script: &str) -> String {
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    b.run_ok(&unique(prefix))
}

/// The contents of PATH once it exists and is not empty, polling for up to
/// `secs` seconds.
pub fn read_when_present(path: &Path, secs: f64) -> Option<String> {
    let mut got = None;
    wait_for(secs, || {
        got = std::fs::read_to_string(path).ok().filter(|s| !s.is_empty());
        got.is_some()
    });
    got
}
