//! GPUs asked for the engines' ways: Docker's and ctr's NVIDIA hooks
//! (translated, never run) and CDI specs on disk.

use super::{can_run, fake_root, gpu_bundle, NODES};
use crate::harness::{self, unique, TestResult};
use serde_json::json;
use std::process::Command;

fn engine_gpu_hooks_are_translated_and_never_run() -> TestResult {
    can_run()?;
    // Docker --gpus: env + a hook whose binary does not even exist here.
    let mut docker = gpu_bundle(
        &format!("{NODES}; gpu-probe"),
        "debian",
        &["NVIDIA_VISIBLE_DEVICES=1"],
    );
    docker.config["hooks"] = json!({"prestart": [{
        "path": "/nonexistent/nvidia-container-runtime-hook",
        "args": ["nvidia-container-runtime-hook", "prestart"]}]});
    let out = docker.run_ok(&unique("gpu"));
    assert!(out.contains("gpus=1") && out.contains("nvidia0 "), "{out}");
    // ctr --gpus 0: only the hook says which GPU.
    let mut ctr = gpu_bundle(&format!("{NODES}; gpu-probe"), "debian", &[]);
    ctr.config["hooks"] = json!({"prestart": [{
        "path": "/nonexistent/containerd",
        "args": ["containerd", "oci-hook", "--", "/nonexistent/nvidia-container-cli", "--load-kmods",
                 "configure", "--device=0", "--compute", "--utility", "--pid={{pid}}", "{{rootfs}}"]}]});
    let out = ctr.run_ok(&unique("gpu"));
    assert!(out.contains("gpus=1") && out.contains("nvidia1 "), "{out}");
    Ok(())
}

fn cdi_specs_on_disk_are_applied() -> TestResult {
    can_run()?;
    let cdi = tempfile::tempdir().unwrap();
    let node = fake_root().join("dev/nvidia0");
    std::fs::write(
        cdi.path().join("vendor.yaml"),
        format!(
            "cdiVersion: \"0.6.0\"\nkind: example.com/gpu\ncontainerEdits:\n  env: [FROM_CDI=common]\ndevices:\n  - name: first\n    containerEdits:\n      env: [CDI_DEVICE=first]\n      deviceNodes:\n        - path: /dev/cdi-gpu\n          hostPath: {}\n",
            node.display()
        ),
    )
    .unwrap();
    let mut b = gpu_bundle(
        "echo $FROM_CDI $CDI_DEVICE; ls -l /dev/cdi-gpu",
        "debian",
        &[],
    );
    b.config["annotations"] = json!({"cdi.k8s.io/test": "example.com/gpu=first"});
    b.runtime_env.push((
        "VESSEL_CDI_SPEC_DIRS".into(),
        cdi.path().display().to_string(),
    ));
    let out = b.run_ok(&unique("gpu"));
    assert!(out.contains("common first"), "{out}");
    assert!(out.contains("195,   0"), "{out}");

    // `vessel gpu cdi` writes a spec that resolves the same way.
    let spec = Command::new(harness::runtime_bin())
        .args(["--gpu-root"])
        .arg(fake_root())
        .args(["gpu", "cdi"])
        .output()
        .unwrap();
    assert!(
        spec.status.success(),
        "{}",
        String::from_utf8_lossy(&spec.stderr)
    );
    std::fs::write(cdi.path().join("nvidia.json"), &spec.stdout).unwrap();
    let mut b = gpu_bundle(
        &format!("{NODES}; gpu-probe; echo V=$NVIDIA_VISIBLE_DEVICES"),
        "debian",
        &[],
    );
    b.config["annotations"] =
        json!({"cdi.k8s.io/gpu": "nvidia.com/gpu=GPU-11111111-2222-3333-4444-555555555555"});
    b.runtime_env.push((
        "VESSEL_CDI_SPEC_DIRS".into(),
        cdi.path().display().to_string(),
    ));
    let out = b.run_ok(&unique("gpu"));
    assert!(
        out.contains("nvidia1 ") && !out.contains("nvidia0 "),
        "{out}"
    );
    assert!(out.contains("V=void"), "{out}");
    Ok(())
}

harness::tests![
    engine_gpu_hooks_are_translated_and_never_run,
    cdi_specs_on_disk_are_applied,
];
