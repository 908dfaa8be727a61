//! What a container asks for (NVIDIA_VISIBLE_DEVICES in every form,
//! NVIDIA_DRIVER_CAPABILITIES, bad requests) and exactly what it gets,
//! down to the device cgroup.

use super::{can_run, fake_root, gpu_bundle, run_fail, NODES};
use crate::harness::{self, unique, TestResult};
use serde_json::json;

fn run_gpu(script: &str, env: &[&str]) -> String {
    gpu_bundle(script, "debian", env).run_ok(&unique("gpu"))
}

fn an_index_gives_exactly_that_gpu() -> TestResult {
    can_run()?;
    // Index 0 is the GPU on the lower PCI bus, whose device minor is 1.
    let out = run_gpu(
        &format!("{NODES}; gpu-probe; nvidia-smi"),
        &["NVIDIA_VISIBLE_DEVICES=0"],
    );
    assert!(out.contains("nvidia1 "), "{out}");
    assert!(!out.contains("nvidia0 "), "{out}");
    assert!(
        out.contains("nvidiactl") && out.contains("nvidia-uvm"),
        "{out}"
    );
    assert!(out.contains("gpus=1"), "{out}");
    assert!(out.contains("GPU 0: fake (node /dev/nvidia1)"), "{out}");
    Ok(())
}

fn every_device_form_selects_the_right_gpus() -> TestResult {
    can_run()?;
    let cases = [
        (
            "NVIDIA_VISIBLE_DEVICES=all",
            "gpus=2",
            vec!["nvidia0 ", "nvidia1 "],
        ),
        ("NVIDIA_VISIBLE_DEVICES=1", "gpus=1", vec!["nvidia0 "]),
        (
            "NVIDIA_VISIBLE_DEVICES=GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "gpus=1",
            vec!["nvidia0 "],
        ),
        (
            "NVIDIA_VISIBLE_DEVICES=0000:3B:00.0",
            "gpus=1",
            vec!["nvidia1 "],
        ),
        (
            "NVIDIA_VISIBLE_DEVICES=0,1,0",
            "gpus=2",
            vec!["nvidia0 ", "nvidia1 "],
        ),
        (
            "NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=1",
            "gpus=1",
            vec!["nvidia0 "],
        ),
        (
            "NVIDIA_VISIBLE_DEVICES=0:0",
            "gpus=1",
            vec!["nvidia1 ", "nvidia-cap12", "nvidia-cap13"],
        ),
    ];
    for (env, count, nodes) in cases {
        let out = run_gpu(
            &format!("{NODES}; ls /dev/nvidia-caps 2>/dev/null | tr '\\n' ' '; echo; gpu-probe"),
            &[env],
        );
        assert!(out.contains(count), "{env}: {out}");
        for n in nodes {
            assert!(out.contains(n), "{env}: no {n}: {out}");
        }
    }
    Ok(())
}

fn no_request_injects_nothing() -> TestResult {
    can_run()?;
    for env in [
        vec![],
        vec!["NVIDIA_VISIBLE_DEVICES=void"],
        vec!["NVIDIA_VISIBLE_DEVICES="],
    ] {
        let b = gpu_bundle(
            &format!("{NODES}; echo libs=$(ls /usr/lib/x86_64-linux-gnu | grep -c cuda); gpu-probe; echo probe=$?"),
            "debian",
            &env,
        );
        let cache = std::fs::read(b.rootfs().join("etc/ld.so.cache")).unwrap();
        let out = b.run_ok(&unique("gpu"));
        assert!(out.starts_with("\nlibs=0\n"), "{env:?}: {out}");
        assert!(out.contains("probe=2"), "{env:?}: {out}");
        assert_eq!(
            std::fs::read(b.rootfs().join("etc/ld.so.cache")).unwrap(),
            cache
        );
    }
    Ok(())
}

fn none_gives_driver_files_and_no_gpu() -> TestResult {
    can_run()?;
    let out = run_gpu(
        &format!("{NODES}; gpu-probe"),
        &["NVIDIA_VISIBLE_DEVICES=none"],
    );
    assert!(out.contains("gpus=0"), "{out}");
    assert!(out.contains("nvidiactl"), "{out}");
    assert!(
        !out.contains("nvidia0 ") && !out.contains("nvidia1 "),
        "{out}"
    );
    Ok(())
}

fn capabilities_select_the_files() -> TestResult {
    can_run()?;
    let script = format!("{NODES}; ls /usr/lib/x86_64-linux-gnu /usr/bin | tr '\\n' ' '");
    let has = |caps: &str| run_gpu(&script, &["NVIDIA_VISIBLE_DEVICES=0", caps]);
    let utility = has("NVIDIA_DRIVER_CAPABILITIES=utility");
    assert!(
        utility.contains("libnvidia-ml.so.1 ") && utility.contains("nvidia-smi"),
        "{utility}"
    );
    assert!(
        !utility.contains("libcuda") && !utility.contains("nvidia-uvm"),
        "{utility}"
    );
    let compute = has("NVIDIA_DRIVER_CAPABILITIES=compute");
    assert!(
        compute.contains("libcuda.so.1 ") && compute.contains("nvidia-uvm"),
        "{compute}"
    );
    assert!(
        !compute.contains("nvidia-smi") && !compute.contains("libnvidia-ml"),
        "{compute}"
    );
    let video = has("NVIDIA_DRIVER_CAPABILITIES=video");
    assert!(
        video.contains("libnvidia-encode.so.1 ") && video.contains("libnvcuvid.so.1 "),
        "{video}"
    );
    let graphics = has("NVIDIA_DRIVER_CAPABILITIES=graphics");
    assert!(
        graphics.contains("libGLX_nvidia.so.0 ")
            && graphics.contains("libnvidia-glcore.so.580.159.04 "),
        "{graphics}"
    );
    assert!(!graphics.contains("libcuda"), "{graphics}");
    let all = has("NVIDIA_DRIVER_CAPABILITIES=all");
    for want in [
        "libcuda.so ",
        "libnvidia-ml.so ",
        "libGLX_nvidia.so.0 ",
        "libnvcuvid.so ",
        "nvidia-smi",
    ] {
        assert!(all.contains(want), "all: no {want}: {all}");
    }
    Ok(())
}

fn bad_requests_fail_create_with_a_clear_message() -> TestResult {
    can_run()?;
    let cases = [
        ("NVIDIA_DRIVER_CAPABILITIES=compute,warp", "\"warp\""),
        ("NVIDIA_VISIBLE_DEVICES=7", "GPU device 7: not found"),
        ("NVIDIA_VISIBLE_DEVICES=GPU-nope", "GPU-nope"),
        ("NVIDIA_VISIBLE_DEVICES=1:5", "MIG"),
        ("NVIDIA_REQUIRE_CUDA=cuda>=99.0", "requirement not met"),
        ("CUDA_VERSION=99.1.0", "cuda>=99.1"),
        ("NVIDIA_REQUIRE_ARCH=arch=5.0", "arch=5.0"),
        ("NVIDIA_VISIBLE_DEVICES=example.com/none=x", "CDI device"),
    ];
    for (env, want) in cases {
        let mut vars = vec![env];
        if !env.starts_with("NVIDIA_VISIBLE_DEVICES") {
            vars.push("NVIDIA_VISIBLE_DEVICES=all");
        }
        let b = gpu_bundle("true", "debian", &vars);
        let err = run_fail(&b);
        assert!(err.contains(want), "{env}: {err}");
        let list = b.rt(&["list", "-q"]);
        assert!(
            String::from_utf8_lossy(&list.stdout).trim().is_empty(),
            "{env}: state left behind"
        );
    }
    // The same requirements pass when met or disabled.
    run_gpu(
        "gpu-probe",
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.0 brand=tesla",
        ],
    );
    run_gpu(
        "gpu-probe",
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_REQUIRE_CUDA=cuda>=99.0",
            "NVIDIA_DISABLE_REQUIRE=true",
        ],
    );
    Ok(())
}

fn the_device_cgroup_denies_gpus_not_requested() -> TestResult {
    can_run()?;
    // GPU index 0 is /dev/nvidia1; the host's /dev/nvidia0 is bound in
    // behind the runtime's back and must stay unusable.
    let mut b = gpu_bundle(
        "cat /dev/nvidia1 2>&1; cat /dev/smuggled 2>&1; true",
        "debian",
        &["NVIDIA_VISIBLE_DEVICES=0"],
    );
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev/smuggled", "type": "bind",
        "source": fake_root().join("dev/nvidia0"), "options": ["bind"]
    }));
    let out = b.run_ok(&unique("gpu"));
    assert!(
        out.contains("/dev/nvidia1': No such device or address"),
        "{out}"
    );
    assert!(
        out.contains("/dev/smuggled': Operation not permitted"),
        "{out}"
    );
    Ok(())
}

harness::tests![
    an_index_gives_exactly_that_gpu,
    every_device_form_selects_the_right_gpus,
    no_request_injects_nothing,
    none_gives_driver_files_and_no_gpu,
    capabilities_select_the_files,
    bad_requests_fail_create_with_a_clear_message,
    the_device_cgroup_denies_gpus_not_requested,
];
