//! `vessel gpu doctor`, vessel invoked as nvidia-container-runtime-hook,
//! and real-gpu.sh (run by hand on GPU machines) kept honest here.

use super::{can_run, fake_root, fake_root_copy, gpu_bundle, gpu_dir, vessel_gpu};
use crate::harness::{self, unique, TestResult};
use std::process::Command;

fn gpu_doctor_explains_what_is_wrong() -> TestResult {
    can_run()?;
    let (rc, out) = vessel_gpu(fake_root(), &["gpu", "doctor"]);
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("ok    NVIDIA driver 580.159.04 is loaded"),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");

    let broken = fake_root_copy();
    let lib = broken.path().join("usr/lib/x86_64-linux-gnu");
    for f in std::fs::read_dir(&lib).unwrap().flatten() {
        if f.file_name().to_string_lossy().starts_with("libcuda") {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    std::fs::remove_file(broken.path().join("dev/nvidia0")).unwrap();
    let ok = Command::new("mknod")
        .arg(broken.path().join("dev/nvidia0"))
        .args(["c", "195", "7"])
        .status()
        .unwrap();
    assert!(ok.success());
    let (rc, out) = vessel_gpu(broken.path(), &["gpu", "doctor"]);
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("FAIL  libcuda.so.580.159.04 not found"),
        "{out}"
    );
    assert!(
        out.contains("is 195:7 but the driver uses 195:0") && out.contains("mknod"),
        "{out}"
    );

    let empty = tempfile::tempdir().unwrap();
    let (rc, out) = vessel_gpu(empty.path(), &["gpu", "doctor"]);
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("FAIL  no NVIDIA driver") && out.contains("modprobe nvidia"),
        "{out}"
    );
    Ok(())
}

fn gpu_doctor_checks_a_container() -> TestResult {
    can_run()?;
    for (env, want, rc_want) in [
        (
            vec!["NVIDIA_VISIBLE_DEVICES=0"],
            "ok    /dev/nvidia1 195:1: in the container",
            0,
        ),
        (vec![], "asked for no GPU", 1),
    ] {
        let b = gpu_bundle("sleep 30", "debian", &env);
        let id = unique("gpu");
        b.create_ok(&id);
        let mut cmd = b.cmd();
        cmd.args(["gpu", "doctor", &id]);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(rc_want), "{env:?}: {text}");
        assert!(text.contains(want), "{env:?}: {text}");
    }
    Ok(())
}

fn invoked_as_the_nvidia_hook_it_does_nothing() -> TestResult {
    can_run()?;
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("nvidia-container-runtime-hook");
    std::os::unix::fs::symlink(harness::runtime_bin(), &hook).unwrap();
    let out = Command::new(&hook).arg("prestart").output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    Ok(())
}

fn the_real_gpu_script_passes_on_the_fake_driver() -> TestResult {
    can_run()?;
    // real-gpu.sh is run by hand on GPU machines; here it is kept honest.
    let out = Command::new("bash")
        .arg(gpu_dir().join("real-gpu.sh"))
        .arg(harness::runtime_bin())
        .env("GPU_ROOT", fake_root())
        .env("N", "2")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("5 passed, 0 failed") && text.contains("kernel: 2+3=5"),
        "{text}"
    );
    Ok(())
}

harness::tests![
    gpu_doctor_explains_what_is_wrong,
    gpu_doctor_checks_a_container,
    invoked_as_the_nvidia_hook_it_does_nothing,
    the_real_gpu_script_passes_on_the_fake_driver,
];
