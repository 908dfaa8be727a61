//! NVIDIA's real user-space driver, as Debian 12 packages it (535 from
//! bookworm non-free, `make-debian-driver.sh`: libraries behind the
//! `nvidia` alternative, a stand-in for the kernel side), given to a Python
//! image without any NVIDIA file (`make-python-image.sh`: PyPI's CUDA
//! runtime and NVML bindings). No kernel module answers, so the libraries
//! load and then say the driver is not there: which is what proves vessel
//! put NVIDIA's own files in the container, found through Debian's links.
//! The packages and wheels are fetched under VESSEL_TEST_SYSTEM=1 into a
//! persistent cache; without them the tests skip with the reason.

use super::{can_run, gpu_dir, vessel_gpu, NO_CONFIG};
use crate::harness::{self, unique, Bundle, Skip, TestResult, Why};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `make-*.sh`'s exit status for "the packages or wheels are not cached
/// and downloading was not asked for", and for "the download failed".
const NOT_CACHED: i32 = 77;
const DOWNLOAD_FAILED: i32 = 78;

/// Runs a builder script of `gpu/` on DIR; its stdout, or a skip naming
/// why it could not get what it needs (its stderr's last line).
fn build(script: &str, dir: &Path) -> Result<String, Skip> {
    let out = Command::new("sh")
        .arg(gpu_dir().join(script))
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Some(NOT_CACHED | DOWNLOAD_FAILED) => Err(Skip {
            why: Why::MissingTool,
            reason: err.lines().last().unwrap_or(script).to_string(),
        }),
        _ => panic!("{script} {} failed: {:?}\n{err}", dir.display(), out.status),
    }
}

/// This test process's directory PREFIX-PID under cargo's scratch dir.
/// Those of earlier runs whose process is gone are removed first (the
/// driver's root and the image are 200 MB together).
fn scratch(prefix: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    tmp.join(format!("{prefix}-{}", std::process::id()))
}

/// The Debian driver's root and its version, built once per test process.
fn debian_root() -> Result<(&'static Path, &'static str), Skip> {
    static ROOT: OnceLock<Result<(PathBuf, String), Skip>> = OnceLock::new();
    let built = ROOT.get_or_init(|| {
        let dir = scratch("debian-gpu");
        let version = build("make-debian-driver.sh", &dir)?;
        Ok((dir, version))
    });
    match built {
        Ok((dir, version)) => Ok((dir.as_path(), version.as_str())),
        Err(skip) => Err(skip.clone()),
    }
}

/// The Python image (on a busybox rootfs), built once per test process
/// and copied into each bundle (vessel rewrites a bundle's ld.so.cache).
fn python_image() -> Result<&'static Path, Skip> {
    static IMAGE: OnceLock<Result<PathBuf, Skip>> = OnceLock::new();
    let built = IMAGE.get_or_init(|| {
        let dir = scratch("python-image");
        let busybox = Command::new("sh")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/busybox/build-rootfs.sh"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(busybox.success(), "build-rootfs.sh failed");
        build("make-python-image.sh", &dir)?;
        Ok(dir)
    });
    built.as_deref().map_err(Clone::clone)
}

/// A bundle of the Python image running `sh -c SCRIPT` with ENV, run by
/// vessel against the Debian driver's root.
fn python_bundle(script: &str, env: &[&str]) -> Result<Bundle, Skip> {
    let (root, _) = debian_root()?;
    let image = python_image()?;
    let mut b = Bundle::new(&["sh", "-c", script]);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", image.display()))
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(ok.success(), "copy the Python image");
    let vars = b.config["process"]["env"].as_array_mut().unwrap();
    vars.push(json!("PYTHONPATH=/opt/python"));
    vars.extend(env.iter().map(|e| json!(e)));
    b.runtime_env = vec![
        ("VESSEL_GPU_ROOT".into(), root.display().to_string()),
        ("VESSEL_CONFIG".into(), NO_CONFIG.into()),
    ];
    Ok(b)
}

const CHECK: &str = "python3 /usr/local/bin/debian-check.py";
const GPUS: [&str; 2] = [
    "NVIDIA_VISIBLE_DEVICES=all",
    "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
];

/// The line of OUT that starts with PREFIX.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
}

/// The CUDA error number of a `cudaX: N cudaErrorY ...` line.
fn cuda_rc(line: &str) -> i32 {
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no error number in `{line}`"))
}

fn without_a_request_nvidia_libraries_are_not_found() -> TestResult {
    can_run()?;
    let b = python_bundle(
        &format!("{CHECK}; ls /dev | grep -c nvidia; command -v nvidia-smi || echo no nvidia-smi"),
        &[],
    )?;
    let out = b.run_ok(&unique("gpu"));
    eprintln!("in the container, no GPU asked for:\n{out}");
    assert_eq!(
        line(&out, "nvml:"),
        "nvml: NVMLError_LibraryNotFound: NVML Shared Library Not Found"
    );
    let count = line(&out, "cudaGetDeviceCount:");
    assert_eq!(cuda_rc(count), 35, "{out}");
    assert!(
        count.contains("CUDA driver version is insufficient for CUDA runtime version"),
        "{out}"
    );
    assert!(
        out.contains("\n0\n") && out.contains("no nvidia-smi"),
        "{out}"
    );
    Ok(())
}

fn the_debian_driver_loads_in_a_driverless_image() -> TestResult {
    can_run()?;
    let b = python_bundle(CHECK, &GPUS)?;
    let out = b.run_ok(&unique("gpu"));
    eprintln!("in the container, NVIDIA_VISIBLE_DEVICES=all:\n{out}");
    // libnvidia-ml loaded (it is NVML answering, not the loader failing);
    // with no kernel module behind /dev/nvidiactl it cannot initialise.
    let nvml = line(&out, "nvml:");
    assert!(
        nvml.starts_with("nvml: NVMLError_") && !nvml.contains("LibraryNotFound"),
        "{out}"
    );
    // The real libcuda answers: 535 is CUDA 12.2.
    assert_eq!(
        line(&out, "cudaDriverGetVersion:"),
        "cudaDriverGetVersion: 0 cudaSuccess, version 12020"
    );
    // A driver, but no device answers.
    let rc = cuda_rc(line(&out, "cudaGetDeviceCount:"));
    assert!(rc != 0 && rc != 35, "{out}");
    Ok(())
}

fn the_real_nvidia_smi_runs_and_cannot_reach_the_driver() -> TestResult {
    can_run()?;
    let b = python_bundle("nvidia-smi; echo exit $?", &GPUS)?;
    let out = b.run_ok(&unique("gpu"));
    eprintln!("in the container, nvidia-smi:\n{out}");
    assert!(
        out.contains(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"
        ),
        "{out}"
    );
    assert!(!out.contains("exit 0"), "{out}");
    Ok(())
}

fn gpu_info_and_cdi_find_the_debian_driver() -> TestResult {
    can_run()?;
    let (root, version) = debian_root()?;
    assert!(version.starts_with("535."), "{version}");
    let (rc, info) = vessel_gpu(root, &["gpu", "info"]);
    eprintln!("vessel gpu info:\n{info}");
    assert_eq!(rc, 0, "{info}");
    assert!(
        line(&info, "driver:").contains(&format!("{version} (CUDA 12.2")),
        "{info}"
    );
    // Found through /etc/alternatives, the real files in nvidia/current.
    let current = root.join("usr/lib/x86_64-linux-gnu/nvidia/current");
    // libnvidia-cfg is in no ld.so.cache (only an alternatives link in
    // nvidia/ names it): the listing of nvidia/current finds it.
    for lib in ["libcuda", "libnvidia-ml", "libnvidia-cfg"] {
        let want = format!("{lib}.so.1  {}/{lib}.so.{version}", current.display());
        assert!(info.contains(&want), "no `{want}` in:\n{info}");
    }
    let smi = format!(
        "{}/usr/lib/nvidia/current/nvidia-smi -> /usr/bin/nvidia-smi",
        root.display()
    );
    assert!(info.contains(&smi), "{info}");

    // stdout only: stderr may warn that MIG UUIDs were left out (no NVML
    // helper beside the test binary).
    let out = std::process::Command::new(crate::harness::runtime_bin())
        .env("VESSEL_CONFIG", super::NO_CONFIG)
        .arg("--gpu-root")
        .arg(root)
        .args(["gpu", "cdi"])
        .output()
        .expect("vessel gpu cdi runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let spec: Value = serde_json::from_slice(&out.stdout).expect("gpu cdi writes JSON");
    let mounts = spec["containerEdits"]["mounts"]
        .as_array()
        .expect("the spec has mounts");
    let hosts: Vec<&str> = mounts
        .iter()
        .map(|m| m["hostPath"].as_str().expect("a hostPath"))
        .collect();
    for host in &hosts {
        assert!(Path::new(host).exists(), "hostPath {host} does not exist");
    }
    let libcuda = format!("{}/libcuda.so.{version}", current.display());
    assert!(hosts.contains(&libcuda.as_str()), "{hosts:?}");
    eprintln!(
        "vessel gpu cdi: {} mounts, every hostPath exists",
        hosts.len()
    );
    Ok(())
}

harness::tests![
    without_a_request_nvidia_libraries_are_not_found,
    the_debian_driver_loads_in_a_driverless_image,
    the_real_nvidia_smi_runs_and_cannot_reach_the_driver,
    gpu_info_and_cdi_find_the_debian_driver,
];
