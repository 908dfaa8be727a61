//! A CDI spec in the shape `nvidia-ctk cdi generate` writes: the driver's
//! libraries mounted where the host keeps them (a directory the image's
//! ld.so does not search), NVIDIA's `update-ldcache` and `create-symlinks`
//! hooks. vessel lists the libraries in the image's cache and makes the
//! links itself; the hook program named does not exist, so a run that
//! works proves it never ran.

use super::{can_run, fake_root_copy, run_fail, which_bundle, NO_CONFIG};
use crate::harness::{unique, Bundle, TestResult};
use serde_json::{json, Value};
use std::path::Path;

const VERSION: &str = "580.159.04";
/// Where Debian's driver packages put the libraries.
const DIR: &str = "/usr/lib/x86_64-linux-gnu/nvidia/current";

/// A hook program that is not there (the toolkit's path when it is absent).
fn hook_path() -> &'static str {
    let usual = "/usr/bin/nvidia-cdi-hook";
    if Path::new(usual).exists() {
        "/nonexistent/vessel-tests/bin/nvidia-cdi-hook"
    } else {
        usual
    }
}

fn hook(args: &[&str]) -> Value {
    let mut all = vec!["nvidia-cdi-hook"];
    all.extend(args);
    json!({"hookName": "createContainer", "path": hook_path(), "args": all})
}

/// The spec of device `0` for the driver at `root`, with `extra_hooks`.
fn nvidia_ctk_spec(root: &Path, extra_hooks: &[Value]) -> Value {
    let lib = |name: &str| {
        let file = format!("{name}.so.{VERSION}");
        json!({
            "hostPath": root.join("usr/lib/x86_64-linux-gnu").join(&file),
            "containerPath": format!("{DIR}/{file}"),
            "options": ["ro", "nosuid", "nodev", "bind"],
        })
    };
    let mut hooks = vec![
        hook(&["update-ldcache", "--folder", DIR]),
        hook(&[
            "create-symlinks",
            "--link",
            &format!("libcuda.so.1::{DIR}/libcuda.so"),
        ]),
        // Done natively too (a copy of /proc/driver/nvidia/params where the
        // host has one); never run.
        hook(&["disable-device-node-modification"]),
    ];
    hooks.extend(extra_hooks.iter().cloned());
    let node = |n: &str| json!({"path": format!("/dev/{n}"), "hostPath": root.join("dev").join(n)});
    json!({
        "cdiVersion": "0.5.0",
        "kind": "nvidia.com/gpu",
        "devices": [{"name": "0", "containerEdits": {"deviceNodes": [node("nvidia0")]}}],
        "containerEdits": {
            "deviceNodes": [node("nvidiactl")],
            "mounts": [lib("libcuda"), lib("libnvidia-ml")],
            "hooks": hooks,
        },
    })
}

/// A cuda-which image asking for `nvidia.com/gpu=0` by annotation, the
/// spec in its own CDI directory (kept alive by the returned guard).
fn cdi_hooks_bundle(script: &str, extra_hooks: &[Value]) -> (Bundle, [tempfile::TempDir; 2]) {
    let root = fake_root_copy();
    let cdi = tempfile::tempdir().unwrap();
    let spec = nvidia_ctk_spec(root.path(), extra_hooks);
    std::fs::write(cdi.path().join("nvidia.json"), spec.to_string()).unwrap();
    let mut b = which_bundle(script, "debian", &[]);
    b.config["annotations"] = json!({"cdi.k8s.io/x": "nvidia.com/gpu=0"});
    b.runtime_env = vec![
        ("VESSEL_GPU_ROOT".into(), root.path().display().to_string()),
        ("VESSEL_CONFIG".into(), NO_CONFIG.into()),
        (
            "VESSEL_CDI_SPEC_DIRS".into(),
            cdi.path().display().to_string(),
        ),
    ];
    (b, [root, cdi])
}

const SCRIPT: &str = "cuda-which libcuda.so.1 libcuda.so libnvidia-ml.so.1; \
    for l in libcuda.so libcuda.so.1; do echo \"$l -> $(readlink /usr/lib/x86_64-linux-gnu/nvidia/current/$l)\"; done; \
    ls /dev | grep nvidia | tr '\\n' ' '; echo";

fn nvidia_ctk_library_mounts_and_hooks_are_done_natively() -> TestResult {
    can_run()?;
    let (b, _keep) = cdi_hooks_bundle(SCRIPT, &[]);
    let out = b.run_ok(&unique("gpu"));
    let file = format!("{DIR}/libcuda.so.{VERSION}");
    for want in [
        format!("libcuda.so.1 => {file} (cuda 12020)"),
        format!("libcuda.so => {file} (cuda 12020)"),
        format!("libnvidia-ml.so.1 => {DIR}/libnvidia-ml.so.{VERSION}"),
        "libcuda.so -> libcuda.so.1".into(),
        format!("libcuda.so.1 -> libcuda.so.{VERSION}"),
        "nvidia0 nvidiactl \n".into(),
    ] {
        assert!(out.contains(&want), "no {want:?}: {out}");
    }
    // The premise: a hook vessel leaves alone does run, and fails.
    let chmod = hook(&["chmod", "--mode", "755", "--path", "/dev/nvidia0"]);
    let (b, _keep) = cdi_hooks_bundle("true", &[chmod]);
    let err = run_fail(&b);
    assert!(err.contains("nvidia-cdi-hook"), "{err}");
    Ok(())
}

fn a_link_in_the_image_pointing_out_of_the_rootfs_is_not_followed() -> TestResult {
    can_run()?;
    let outside = tempfile::tempdir().unwrap();
    let (b, _keep) = cdi_hooks_bundle(SCRIPT, &[]);
    // The image's /usr/lib/x86_64-linux-gnu/nvidia names a host directory.
    std::os::unix::fs::symlink(
        outside.path(),
        b.rootfs().join("usr/lib/x86_64-linux-gnu/nvidia"),
    )
    .unwrap();
    let out = b.run_ok(&unique("gpu"));
    assert!(
        out.contains(&format!("libcuda.so.1 => {DIR}/libcuda.so.{VERSION}"))
            && out.contains("libcuda.so -> libcuda.so.1"),
        "{out}"
    );
    let left: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "written outside the rootfs: {left:?}");
    let inside = b
        .rootfs()
        .join(outside.path().strip_prefix("/").unwrap())
        .join("current/libcuda.so");
    assert_eq!(
        std::fs::read_link(&inside).unwrap(),
        Path::new("libcuda.so.1")
    );
    Ok(())
}

/// The fake driver laid out as Debian's packages do: the libraries in
/// `DIR`, named in ld.so.conf.d, their soname links made by ldconfig.
fn debian_laid_out_root() -> tempfile::TempDir {
    let root = fake_root_copy();
    let lib = root.path().join("usr/lib/x86_64-linux-gnu");
    let current = root.path().join(DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&current).unwrap();
    for e in std::fs::read_dir(&lib).unwrap().flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with(&format!(".so.{VERSION}")) {
            std::fs::rename(e.path(), current.join(&name)).unwrap();
        } else if e.file_type().unwrap().is_symlink() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let etc = root.path().join("etc");
    std::fs::create_dir_all(etc.join("ld.so.conf.d")).unwrap();
    std::fs::write(etc.join("ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n").unwrap();
    std::fs::write(etc.join("ld.so.conf.d/nvidia.conf"), format!("{DIR}\n")).unwrap();
    let ok = std::process::Command::new("ldconfig")
        .arg("-r")
        .arg(root.path())
        .status()
        .unwrap();
    assert!(ok.success(), "ldconfig -r failed");
    root
}

fn vessel_gpu_cdi_of_a_debian_driver_keeps_its_directory_and_loads() -> TestResult {
    can_run()?;
    let root = debian_laid_out_root();
    let out = std::process::Command::new(crate::harness::runtime_bin())
        .env("VESSEL_CONFIG", NO_CONFIG)
        .env("VESSEL_NVML", "/nonexistent/vessel-nvml")
        .arg("--gpu-root")
        .arg(root.path())
        .args(["gpu", "cdi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::harness::stderr_of(&out));
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    let libcuda = format!("{DIR}/libcuda.so.{VERSION}");
    assert!(
        spec["containerEdits"]["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["containerPath"] == libcuda.as_str()),
        "{spec}"
    );
    let cdi = tempfile::tempdir().unwrap();
    std::fs::write(cdi.path().join("nvidia.json"), spec.to_string()).unwrap();
    let mut b = which_bundle("cuda-which libcuda.so.1 libcuda.so", "debian", &[]);
    b.config["annotations"] = json!({"cdi.k8s.io/x": "nvidia.com/gpu=0"});
    b.runtime_env = vec![
        ("VESSEL_GPU_ROOT".into(), root.path().display().to_string()),
        ("VESSEL_CONFIG".into(), NO_CONFIG.into()),
        (
            "VESSEL_CDI_SPEC_DIRS".into(),
            cdi.path().display().to_string(),
        ),
    ];
    let out = b.run_ok(&unique("gpu"));
    for name in ["libcuda.so.1", "libcuda.so"] {
        let want = format!("{name} => {libcuda} (cuda 12020)");
        assert!(out.contains(&want), "no {want:?}: {out}");
    }
    Ok(())
}

crate::harness::tests![
    nvidia_ctk_library_mounts_and_hooks_are_done_natively,
    a_link_in_the_image_pointing_out_of_the_rootfs_is_not_followed,
    vessel_gpu_cdi_of_a_debian_driver_keeps_its_directory_and_loads,
];
