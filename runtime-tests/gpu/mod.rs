//! GPU passthrough against a fake NVIDIA driver (`gpu/make-fake-driver.sh`:
//! procfs files, real device nodes, libraries with the driver's sonames in
//! an ld.so.cache). The fake libcuda counts the `/dev/nvidiaN` nodes it can
//! see, so `gpu-probe` inside the container reports exactly the GPUs the
//! container was given. vessel only (runc has no GPU support): needs root,
//! cc and ldconfig. `debian.rs` runs NVIDIA's real user-space files
//! (Debian's 535 packages) with the same stand-in for the kernel side.

mod debian;
mod drivers;
mod engines;
mod plugin;
mod requests;
mod tools;

use crate::harness::{self, Bundle, TestResult};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn gpu_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("runtime-tests/gpu")
}

/// The fake driver's root, built once per test process.
pub(crate) fn fake_root() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fake-gpu-{}", std::process::id()));
        let ok = Command::new("sh")
            .arg(gpu_dir().join("make-fake-driver.sh"))
            .arg(&dir)
            .status()
            .expect("run make-fake-driver.sh");
        assert!(ok.success(), "make-fake-driver.sh failed");
        dir
    })
}

/// Root, busybox and vessel: GPU passthrough is vessel's own.
fn can_run() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("GPU passthrough is vessel's own")
}

/// A bundle whose image has glibc and gpu-probe (`layout`: debian, rhel or
/// nocache), run against the fake driver with this `env`.
fn gpu_bundle(script: &str, layout: &str, env: &[&str]) -> Bundle {
    let mut b = Bundle::new(&["sh", "-c", script]);
    let ok = Command::new("sh")
        .arg(gpu_dir().join("make-gpu-image.sh"))
        .arg(b.rootfs())
        .arg(layout)
        .status()
        .unwrap();
    assert!(ok.success(), "make-gpu-image.sh failed");
    let vars = b.config["process"]["env"].as_array_mut().unwrap();
    for e in env {
        vars.push(json!(e));
    }
    b.runtime_env
        .push(("VESSEL_GPU_ROOT".into(), fake_root().display().to_string()));
    // Never the host's /etc/vessel/config.toml (a node's dev root there
    // would send the fake driver's lookups to the real /dev).
    b.runtime_env
        .push(("VESSEL_CONFIG".into(), NO_CONFIG.into()));
    b
}

/// A config file path that does not exist: the defaults.
const NO_CONFIG: &str = "/nonexistent/vessel-tests/config.toml";

/// The runtime's stderr of a run expected to fail.
fn run_fail(b: &Bundle) -> String {
    let out = b.run(&harness::unique("gpu"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "run unexpectedly succeeded: {err}");
    err
}

const NODES: &str = "ls /dev | grep nvidia | tr '\\n' ' '; echo";

/// A copy of the fake driver's root, to break on purpose.
fn fake_root_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fake_root().display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(ok.success());
    dir
}

fn vessel_gpu(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(harness::runtime_bin())
        .env("VESSEL_CONFIG", NO_CONFIG)
        .arg("--gpu-root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}
