//! What users of NVIDIA's container toolkit keep running into, on the fake
//! driver: images that dlopen `libcuda.so`, strict `NVIDIA_REQUIRE_CUDA`,
//! images without a linker cache, `ldconfig` or a writable root,
//! privileged containers, and a driver upgraded under running containers.

use super::compat::HOST_LIBCUDA;
use super::{
    can_run, fake_root, fake_root_copy, gpu_bundle, gpu_dir, run_fail, which_bundle, NODES,
};
use crate::harness::{self, unique, TestMounts, TestResult};
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

/// Frameworks that load the driver by its development name (`libcuda.so`,
/// as the toolkit's CDI mode long failed to provide) get the driver's.
fn an_image_that_dlopens_libcuda_so_gets_the_drivers() -> TestResult {
    can_run()?;
    for (layout, dir) in [
        ("debian", "/usr/lib/x86_64-linux-gnu"),
        ("rhel", "/usr/lib64"),
    ] {
        let b = which_bundle(
            "cuda-which libcuda.so",
            layout,
            &["NVIDIA_VISIBLE_DEVICES=0"],
        );
        let out = b.run_ok(&unique("gpu"));
        let want = format!("libcuda.so => {dir}/libcuda.so (cuda 12020)");
        assert!(out.contains(&want), "{layout}: {out}");
    }
    Ok(())
}

/// As NVIDIA's CUDA images set it: the newer CUDA, or an older one on a
/// driver branch that supports it. The fake driver is 580 (CUDA 13.0).
fn a_stricter_cuda_requirement_fails_create_until_disabled() -> TestResult {
    can_run()?;
    let image = [
        "NVIDIA_VISIBLE_DEVICES=all",
        "CUDA_VERSION=13.1.0",
        "NVIDIA_REQUIRE_CUDA=cuda>=13.1 brand=tesla,driver>=570,driver<571",
    ];
    let err = run_fail(&gpu_bundle("true", "debian", &image));
    for want in [
        "GPU requirement not met: \"cuda>=13.1 brand=tesla,driver>=570,driver<571\"",
        "(this host: driver 580.159.04, cuda 13.0)",
        "set NVIDIA_DISABLE_REQUIRE=true",
    ] {
        assert!(err.contains(want), "no {want:?}: {err}");
    }
    let mut disabled = image.to_vec();
    disabled.push("NVIDIA_DISABLE_REQUIRE=true");
    let out = which_bundle("cuda-which libcuda.so.1", "debian", &disabled).run_ok(&unique("gpu"));
    assert!(out.contains(HOST_LIBCUDA), "{out}");
    Ok(())
}

const NO_LDCONFIG: &str =
    "command -v ldconfig || [ -e /sbin/ldconfig ] || echo no-ldconfig; cuda-which libcuda.so.1";

/// vessel writes the cache itself: an image needs no `ldconfig` and no
/// cache of its own, and `root.readonly` changes nothing.
fn libcuda_resolves_without_a_cache_ldconfig_or_a_writable_root() -> TestResult {
    can_run()?;
    for (layout, readonly) in [("nocache", false), ("nocache", true), ("debian", true)] {
        let mut b = which_bundle(NO_LDCONFIG, layout, &["NVIDIA_VISIBLE_DEVICES=0"]);
        b.config["root"]["readonly"] = json!(readonly);
        let out = b.run_ok(&unique("gpu"));
        assert!(out.contains("no-ldconfig"), "{layout}: {out}");
        assert!(
            out.contains(HOST_LIBCUDA),
            "{layout} readonly={readonly}: {out}"
        );
    }
    Ok(())
}

/// A rootfs vessel cannot write at all (read-only on the host too, as an
/// image on a read-only mount is): the cache is bound over the image's.
fn a_rootfs_read_only_on_the_host_gets_a_bound_cache() -> TestResult {
    can_run()?;
    harness::needs_private_mount_ns()?;
    let b = which_bundle(NO_LDCONFIG, "debian", &["NVIDIA_VISIBLE_DEVICES=0"]);
    mount_targets(&b.rootfs());
    let mut mounts = TestMounts::default();
    mounts.bind(&b.rootfs(), &b.rootfs());
    remount_read_only(&b.rootfs());
    // The image's own cache does not list libcuda: only the bound one does.
    let out = b.run_ok(&unique("gpu"));
    assert!(out.contains(HOST_LIBCUDA), "{out}");
    drop(mounts);
    Ok(())
}

/// In an image nothing can write, the driver's files need their mount
/// targets already there (as a tool that prepares such images leaves
/// them): an empty file at each path the fake driver's files go to, and
/// each library's development name.
fn mount_targets(rootfs: &Path) {
    let host = fake_root();
    for dir in [
        "usr/lib/x86_64-linux-gnu",
        "usr/bin",
        "lib/firmware/nvidia/580.159.04",
    ] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
        for e in std::fs::read_dir(host.join(dir)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let mut targets = vec![name.clone()];
            if let Some(end) = name.find(".so.") {
                targets.push(format!("{}.so", &name[..end]));
            }
            for target in targets {
                let at = rootfs.join(dir).join(target);
                if !at.exists() {
                    std::fs::write(at, "").unwrap();
                }
            }
        }
    }
}

fn remount_read_only(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: a remount of a bind mount this test made.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "remount {}: {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
}

/// `linux.devices` as `docker run --privileged` writes it: every character
/// node of the (fake) host's /dev, at its own path.
fn every_host_node(dev: &Path, at: &str, out: &mut Vec<Value>) {
    for e in std::fs::read_dir(dev).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let path = format!("{at}/{}", e.file_name().to_string_lossy());
        if meta.is_dir() {
            every_host_node(&e.path(), &path, out);
        } else if meta.file_type().is_char_device() {
            let rdev = meta.rdev();
            out.push(json!({
                "path": path, "type": "c",
                "major": libc::major(rdev), "minor": libc::minor(rdev),
                "fileMode": 0o666, "uid": 0, "gid": 0
            }));
        }
    }
}

const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Every capability this test process can give (its bounding set), by
/// name: what `--privileged` gives, where the tests themselves run
/// without some.
fn every_capability() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let bounding = u64::from_str_radix(hex, 16).unwrap();
    (0..ALL_CAPS.len())
        .filter(|&bit| bounding & (1 << bit) != 0)
        .map(|bit| ALL_CAPS[bit])
        .collect()
}

/// A privileged container already has every host node, so it sees every
/// GPU whatever `NVIDIA_VISIBLE_DEVICES` says (as under NVIDIA's toolkit,
/// by design of `--privileged`): vessel removes none of the spec's nodes
/// and leaves `CUDA_VISIBLE_DEVICES` as the image has it.
fn a_privileged_container_keeps_its_nodes_and_cuda_visible_devices() -> TestResult {
    can_run()?;
    let script = format!(
        "{NODES}; ls /dev/nvidia-caps | tr '\\n' ' '; echo; echo cvd=${{CUDA_VISIBLE_DEVICES-unset}}; gpu-probe"
    );
    for (extra, cvd) in [
        (None, "cvd=unset"),
        (Some("CUDA_VISIBLE_DEVICES=1"), "cvd=1"),
    ] {
        let mut env = vec!["NVIDIA_VISIBLE_DEVICES=0"];
        env.extend(extra);
        let mut b = gpu_bundle(&script, "debian", &env);
        let caps = json!(every_capability());
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set] = caps.clone();
        }
        b.config["process"]["capabilities"]["ambient"] = json!([]);
        b.config["process"]["noNewPrivileges"] = json!(false);
        let mut nodes = Vec::new();
        every_host_node(&fake_root().join("dev"), "/dev", &mut nodes);
        assert!(nodes.len() >= 8, "{nodes:?}");
        b.config["linux"]["devices"] = json!(nodes);
        b.config["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
        b.config["linux"]["maskedPaths"] = json!([]);
        b.config["linux"]["readonlyPaths"] = json!([]);
        let out = b.run_ok(&unique("gpu"));
        for want in [
            "nvidia0 ",
            "nvidia1 ",
            "nvidiactl",
            "nvidia-cap12",
            "gpus=2",
            cvd,
        ] {
            assert!(out.contains(want), "{extra:?}: no {want}: {out}");
        }
    }
    Ok(())
}

/// `exec ID ARGS...` into a running container; its stdout.
fn exec(b: &crate::harness::Bundle, id: &str, args: &[&str]) -> String {
    let mut cmd = b.cmd();
    cmd.arg("exec").arg(id).args(args);
    harness::stdout_ok(&cmd.output().unwrap())
}

const LIBCUDA_FILES: &str = "ls /usr/lib/x86_64-linux-gnu | grep '^libcuda.so.5'";

/// The driver's files replaced in place while a container runs (an
/// upgrade: make-fake-driver.sh removes the root and writes it anew): a
/// new container gets the new libcuda, the running one keeps the inode it
/// was given and can still load it.
fn a_driver_upgrade_leaves_running_containers_their_libcuda() -> TestResult {
    can_run()?;
    let root = fake_root_copy();
    let mut a = which_bundle("sleep 60", "debian", &["NVIDIA_VISIBLE_DEVICES=0"]);
    a.runtime_env.retain(|(k, _)| k != "VESSEL_GPU_ROOT");
    a.runtime_env
        .push(("VESSEL_GPU_ROOT".into(), root.path().display().to_string()));
    let id = unique("gpu-a");
    a.start_detached(&id);
    let before = exec(&a, &id, &["sh", "-c", LIBCUDA_FILES]);
    assert_eq!(before.trim(), "libcuda.so.580.159.04", "{before}");

    let ok = Command::new("sh")
        .arg(gpu_dir().join("make-fake-driver.sh"))
        .arg(root.path())
        .arg("590.48.01")
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "make-fake-driver.sh {} 590.48.01",
        root.path().display()
    );
    assert!(!root
        .path()
        .join("usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04")
        .exists());

    let mut b = which_bundle(
        &format!("{LIBCUDA_FILES}; cuda-which libcuda.so.1"),
        "debian",
        &["NVIDIA_VISIBLE_DEVICES=0"],
    );
    b.runtime_env = a.runtime_env.clone();
    let out = b.run_ok(&unique("gpu-b"));
    assert!(out.starts_with("libcuda.so.590.48.01\n"), "{out}");
    assert!(out.contains(HOST_LIBCUDA), "{out}");

    assert_eq!(a.status(&id).as_deref(), Some("running"));
    let after = exec(
        &a,
        &id,
        &["sh", "-c", &format!("{LIBCUDA_FILES}; cuda-which libcuda.so.1; wc -c < /usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04")],
    );
    assert!(after.starts_with("libcuda.so.580.159.04\n"), "{after}");
    assert!(after.contains(HOST_LIBCUDA), "{after}");
    let size: u64 = after.lines().last().unwrap().trim().parse().unwrap();
    assert!(size > 1000, "{after}");
    Ok(())
}

harness::tests![
    an_image_that_dlopens_libcuda_so_gets_the_drivers,
    a_stricter_cuda_requirement_fails_create_until_disabled,
    libcuda_resolves_without_a_cache_ldconfig_or_a_writable_root,
    a_rootfs_read_only_on_the_host_gets_a_bound_cache,
    a_privileged_container_keeps_its_nodes_and_cuda_visible_devices,
    a_driver_upgrade_leaves_running_containers_their_libcuda,
];
