//! GPU passthrough against a fake NVIDIA driver (`gpu/make-fake-driver.sh`:
//! procfs files, real device nodes, libraries with the driver's sonames in
//! an ld.so.cache). The fake libcuda counts the `/dev/nvidiaN` nodes it can
//! see, so `gpu-probe` inside the container reports exactly the GPUs the
//! container was given. vessel only (runc has no GPU support): needs root,
//! cc and ldconfig. `debian.rs` runs NVIDIA's real user-space files
//! (Debian's 535 packages) with the same stand-in for the kernel side.

mod cdi;
mod cdi_hooks;
mod compat;
mod cves;
mod debian;
mod drivers;
mod engines;
mod fabric;
mod pitfalls;
mod plugin;
mod requests;
mod rerun;
mod tools;

use crate::harness::{self, Bundle, Skip, TestResult, Why};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

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

/// `gpu_bundle` whose image also has `cuda-which` (fake/cuda-which.c):
/// `cuda-which NAME...` prints the file the loader picks for each name
/// and the CUDA version that library reports.
fn which_bundle(script: &str, layout: &str, env: &[&str]) -> Bundle {
    let b = gpu_bundle(script, layout, env);
    let probe = built("cuda-which", &[&src("cuda-which.c"), "-O2"]);
    std::fs::copy(probe, b.rootfs().join("usr/local/bin/cuda-which")).unwrap();
    b
}

/// The path of a fake/ source file, as a cc argument.
fn src(name: &str) -> String {
    gpu_dir().join("fake").join(name).display().to_string()
}

/// `cc ARGS -o NAME`, once per test process (a probe, a fake library):
/// the built file, under cargo's scratch dir.
fn built(name: &str, args: &[&str]) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut done = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = done.get(name) {
        return path.clone();
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("gpu-built-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&cc)
        .args(args)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(ok.success(), "{cc} {args:?} -o {name} failed");
    done.insert(name.to_string(), out.clone());
    out
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

/// `tools/vessel-nvml` (the NVML helper of `vessel gpu cdi`), built once
/// per test process into `target/vessel-nvml` (`VESSEL_NVML` names a
/// built one instead). Offline unless `VESSEL_TEST_SYSTEM=1`: a cache
/// without its crates is a skip then, while under VESSEL_TEST_SYSTEM a
/// failed build fails the test.
fn nvml_helper() -> Result<PathBuf, Skip> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        if let Some(p) = std::env::var_os("VESSEL_NVML").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = repo.join("target/vessel-nvml");
        let online = std::env::var("VESSEL_TEST_SYSTEM").as_deref() == Ok("1");
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
        cargo
            .args(["build", "-q", "--locked", "--manifest-path"])
            .arg(repo.join("tools/vessel-nvml/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS");
        if !online {
            cargo.arg("--offline");
        }
        let out = cargo.output().map_err(|e| format!("running cargo: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() || !online,
            "building tools/vessel-nvml failed: {err}"
        );
        if out.status.success() {
            Ok(target.join("debug/vessel-nvml"))
        } else {
            Err(format!(
                "tools/vessel-nvml does not build offline (VESSEL_TEST_SYSTEM=1 fetches its crates): {}",
                err.lines().last().unwrap_or_default()
            ))
        }
    });
    built.clone().map_err(|why| Skip {
        why: Why::MissingTool,
        reason: why,
    })
}
