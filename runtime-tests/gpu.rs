//! GPU passthrough against a fake NVIDIA driver (`gpu/make-fake-driver.sh`:
//! procfs files, real device nodes, libraries with the driver's sonames in
//! an ld.so.cache). The fake libcuda counts the `/dev/nvidiaN` nodes it can
//! see, so `gpu-probe` inside the container reports exactly the GPUs the
//! container was given. vessel only (runc has no GPU support): needs root,
//! cc and ldconfig.

use crate::harness::{self, unique, Bundle, TestResult};
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
    b
}

fn run_gpu(script: &str, env: &[&str]) -> String {
    gpu_bundle(script, "debian", env).run_ok(&unique("gpu"))
}

/// (exit ok, stdout + stderr) of a run expected to fail.
fn run_fail(b: &Bundle) -> String {
    let out = b.run(&unique("gpu"));
    assert!(!out.status.success(), "run unexpectedly succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const NODES: &str = "ls /dev | grep nvidia | tr '\\n' ' '; echo";

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
        .arg("--gpu-root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
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
    b.runtime_env = vec![("VESSEL_GPU_ROOT".into(), root.path().display().to_string())];
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
    b.runtime_env = vec![("VESSEL_GPU_ROOT".into(), root.path().display().to_string())];
    let out = b.run_ok(&unique("gpu"));
    assert!(out.contains("gpus=2"), "{out}");
    let mut b = gpu_bundle(
        "ls /dev/nvidia-uvm",
        "debian",
        &["NVIDIA_VISIBLE_DEVICES=0"],
    );
    b.runtime_env = vec![("VESSEL_GPU_ROOT".into(), root.path().display().to_string())];
    assert!(b.run_ok(&unique("gpu")).contains("/dev/nvidia-uvm"));
    Ok(())
}

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
    an_index_gives_exactly_that_gpu,
    every_device_form_selects_the_right_gpus,
    no_request_injects_nothing,
    none_gives_driver_files_and_no_gpu,
    capabilities_select_the_files,
    bad_requests_fail_create_with_a_clear_message,
    the_device_cgroup_denies_gpus_not_requested,
    rhel_and_cacheless_images_resolve_libcuda_by_soname,
    engine_gpu_hooks_are_translated_and_never_run,
    cdi_specs_on_disk_are_applied,
    a_driver_without_ld_so_cache_is_found_by_a_directory_scan,
    a_driver_laid_out_differently_is_still_found,
    gpu_doctor_explains_what_is_wrong,
    gpu_doctor_checks_a_container,
    invoked_as_the_nvidia_hook_it_does_nothing,
    the_real_gpu_script_passes_on_the_fake_driver,
];
