//! CVE shapes the runtime must refuse or survive.

use crate::harness::{self, Bundle};

fn file_hash(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// CVE-2019-5736: a container entrypoint that is a `#!/proc/self/exe`
/// script makes the kernel run the runtime's own binary inside the
/// container. The runtime binary on the host must stay unchanged, and
/// vessel refuses to run itself there.
#[test]
fn proc_self_exe_entrypoint_cannot_reach_the_runtime_binary() {
    if !harness::can_run() {
        return;
    }
    let b = Bundle::new(&["/bin/evil"]);
    std::fs::write(b.rootfs().join("bin/evil"), "#!/proc/self/exe\n").unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(b.rootfs().join("bin/evil"))
        .status()
        .unwrap();
    let bin = harness::runtime_bin();
    let before = file_hash(&bin);
    let out = b.run(&harness::unique("cve-5736"));
    assert_eq!(file_hash(&bin), before, "the runtime binary changed");
    if harness::is_vessel() {
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("CVE-2019-5736"), "{err}");
    }
}

/// The same through an interpreter chain: a script whose interpreter is a
/// script pointing at /proc/self/exe.
#[test]
fn proc_self_exe_behind_two_interpreters_is_refused() {
    if !harness::can_run() || !harness::is_vessel() {
        return;
    }
    let b = Bundle::new(&["/bin/evil"]);
    std::fs::write(b.rootfs().join("bin/evil"), "#!/bin/inner arg\n").unwrap();
    std::fs::write(b.rootfs().join("bin/inner"), "#!/proc/self/exe\n").unwrap();
    for f in ["bin/evil", "bin/inner"] {
        std::process::Command::new("chmod")
            .arg("755")
            .arg(b.rootfs().join(f))
            .status()
            .unwrap();
    }
    let out = b.run(&harness::unique("cve-5736b"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CVE-2019-5736"));
}

/// An AppArmor profile or SELinux label the host cannot apply is an error
/// (as in runc), never silently dropped.
#[test]
fn lsm_label_the_host_cannot_apply_fails_create() {
    if !harness::can_run() {
        return;
    }
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    for (field, value, host_has_it) in [
        ("apparmorProfile", "vessel-test-no-such-profile", apparmor),
        ("selinuxLabel", "system_u:system_r:container_t:s0", selinux),
    ] {
        if host_has_it {
            eprintln!("SKIPPED: {field} case: the host has that LSM");
            continue;
        }
        let mut b = Bundle::new(&["true"]);
        b.config["process"][field] = serde_json::json!(value);
        let id = harness::unique("lsm");
        let out = b.run(&id);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{field}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(b.state(&id).is_none());
    }
}
