//! The shapes of images and driver installs found: RHEL and cacheless
//! images, a driver without ld.so.cache, one laid out differently.

use super::{can_run, fake_root_copy, gpu_bundle, vessel_gpu};
use crate::harness::{self, unique, TestResult};

fn rhel_and_cacheless_images_resolve_libcuda_by_soname() -> TestResult {
    can_run()?;
    for layout in ["rhel", "nocache"] {
        let b = gpu_bundle(
            "gpu-probe; ldconfig -p 2>/dev/null | grep -c libcuda || true",
            layout,
            &["NVIDIA_VISIBLE_DEVICES=1"],
        );
        let out = b.run_ok(&unique("gpu"));
        assert!(out.contains("gpus=1"), "{layout}: {out}");
    }
    let rhel = gpu_bundle(
        "ls /usr/lib64 | grep cuda",
        "rhel",
        &["NVIDIA_VISIBLE_DEVICES=0"],
    );
    let out = rhel.run_ok(&unique("gpu"));
    assert!(out.contains("libcuda.so.1"), "{out}");
    Ok(())
}

fn a_driver_without_ld_so_cache_is_found_by_a_directory_scan() -> TestResult {
    can_run()?;
    let root = fake_root_copy();
    std::fs::remove_file(root.path().join("etc/ld.so.cache")).unwrap();
    let (rc, info) = vessel_gpu(root.path(), &["gpu", "info"]);
    assert_eq!(rc, 0, "{info}");
    assert!(
        info.contains("a scan of the library directories") && info.contains("libcuda.so.1 "),
        "{info}"
    );
    let mut b = gpu_bundle("gpu-probe", "debian", &["NVIDIA_VISIBLE_DEVICES=all"]);
    b.runtime_env = vec![
        ("VESSEL_GPU_ROOT".into(), root.path().display().to_string()),
        ("VESSEL_CONFIG".into(), super::NO_CONFIG.into()),
    ];
    assert!(b.run_ok(&unique("gpu")).contains("gpus=2"));
    Ok(())
}

/// Another shape of driver install: libraries under /opt/nvidia/lib
/// (named in ld.so.conf.d, not in the stale cache), one patch release newer
/// than the kernel module, without their soname links; no nvidia-uvm line
/// in /proc/devices though the node exists. CUDA still gets its GPUs.
fn a_driver_laid_out_differently_is_still_found() -> TestResult {
    can_run()?;
    let root = fake_root_copy();
    let old = root.path().join("usr/lib/x86_64-linux-gnu");
    let new = root.path().join("opt/nvidia/lib");
    std::fs::create_dir_all(&new).unwrap();
    for e in std::fs::read_dir(&old).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".so.580.159.04") {
            std::fs::rename(e.path(), new.join(format!("{base}.so.580.159.05"))).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    std::fs::create_dir_all(root.path().join("etc/ld.so.conf.d")).unwrap();
    std::fs::write(
        root.path().join("etc/ld.so.conf"),
        "include /etc/ld.so.conf.d/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("etc/ld.so.conf.d/nvidia.conf"),
        "/opt/nvidia/lib\n",
    )
    .unwrap();
    let devices = root.path().join("proc/devices");
    let text = std::fs::read_to_string(&devices).unwrap();
    std::fs::write(&devices, text.replace("510 nvidia-uvm\n", "")).unwrap();

    let (rc, info) = vessel_gpu(root.path(), &["gpu", "info"]);
    assert_eq!(rc, 0, "{info}");
    assert!(
        info.contains("libraries of version 580.159.05") && info.contains("libcuda.so.1 "),
        "{info}"
    );
    let mut b = gpu_bundle("gpu-probe", "debian", &["NVIDIA_VISIBLE_DEVICES=all"]);
    b.runtime_env = vec![
        ("VESSEL_GPU_ROOT".into(), root.path().display().to_string()),
        ("VESSEL_CONFIG".into(), super::NO_CONFIG.into()),
    ];
    let out = b.run_ok(&unique("gpu"));
    assert!(out.contains("gpus=2"), "{out}");
    let mut b = gpu_bundle(
        "ls /dev/nvidia-uvm",
        "debian",
        &["NVIDIA_VISIBLE_DEVICES=0"],
    );
    b.runtime_env = vec![
        ("VESSEL_GPU_ROOT".into(), root.path().display().to_string()),
        ("VESSEL_CONFIG".into(), super::NO_CONFIG.into()),
    ];
    assert!(b.run_ok(&unique("gpu")).contains("/dev/nvidia-uvm"));
    Ok(())
}

harness::tests![
    rhel_and_cacheless_images_resolve_libcuda_by_soname,
    a_driver_without_ld_so_cache_is_found_by_a_directory_scan,
    a_driver_laid_out_differently_is_still_found,
];
