//! The container's root: read-only or writable, entered by pivot_root (or
//! chroot with --no-pivot), with no host mount visible inside.

use super::mountinfo_after;
use crate::harness::{self, sh, Bundle, TestResult};
use serde_json::json;

fn readonly_root_rejects_writes_and_is_ro_in_mountinfo() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["root"]["readonly"] = json!(true);
    let out = sh(
        &mut b,
        "rootfs-ro",
        "touch /x 2>&1 && echo WROTE; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(
        !out.contains("WROTE"),
        "write to a read-only root succeeded:\n{out}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!b.rootfs().join("x").exists());
    let mounts = mountinfo_after(&out, "==MI");
    let root = harness::mount_at(&mounts, "/");
    assert!(root.has_opt("ro"), "/ not ro: {root:?}");
    // The mounts on top of it stay as configured: /dev is a writable tmpfs.
    assert!(harness::mount_at(&mounts, "/dev").has_opt("rw"));
    Ok(())
}

fn writable_root_accepts_writes() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let out = sh(
        &mut b,
        "rootfs-rw",
        "echo inside > /x && cat /x; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(out.starts_with("inside\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("x")).unwrap(),
        "inside\n"
    );
    assert!(harness::mount_at(&mountinfo_after(&out, "==MI"), "/").has_opt("rw"));
    Ok(())
}

/// Mount points of the container, which must all be the container's own:
/// "/", the configured mounts and the masked/read-only paths under them.
fn assert_only_container_mounts(out: &str) {
    let mounts = harness::parse_mountinfo(out);
    assert!(!mounts.is_empty(), "{out}");
    for m in &mounts {
        let mp = m.mount_point.as_str();
        let ok = mp == "/"
            || ["/proc", "/dev", "/sys"]
                .iter()
                .any(|p| mp == *p || mp.starts_with(&format!("{p}/")));
        assert!(ok, "foreign mount {mp} visible inside:\n{out}");
    }
    let root = harness::mount_at(&mounts, "/");
    assert!(
        root.root.ends_with("/rootfs"),
        "/ is not the rootfs: {root:?}"
    );
    assert_eq!(
        mounts.iter().filter(|m| m.mount_point == "/").count(),
        1,
        "several mounts on /:\n{out}"
    );
}

fn pivot_root_leaves_no_host_mounts_visible() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    // The bundle's own host path must not be reachable from inside.
    let host_path = b.path().display().to_string();
    let out = sh(
        &mut b,
        "rootfs-pivot",
        &format!("cat /proc/self/mountinfo; ls -d {host_path} 2>/dev/null || echo NOHOST"),
    );
    assert_only_container_mounts(&out);
    assert!(out.ends_with("NOHOST\n"), "{out}");
    Ok(())
}

fn no_pivot_run_works_and_isolates() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let host_path = b.path().display().to_string();
    b.config["process"]["args"] = json!(["sh", "-c", format!("echo pid=$$; hostname; cat /proc/self/mountinfo; ls -d {host_path} 2>/dev/null || echo NOHOST")]);
    let out = b
        .run_cmd(&harness::unique("rootfs-nopivot"), &["--no-pivot"])
        .output()
        .unwrap();
    let out = harness::stdout_ok(&out);
    assert!(out.starts_with("pid=1\nvessel-test\n"), "{out}");
    assert_only_container_mounts(&out);
    assert!(out.ends_with("NOHOST\n"), "{out}");
    Ok(())
}

harness::tests![
    readonly_root_rejects_writes_and_is_ro_in_mountinfo,
    writable_root_accepts_writes,
    pivot_root_leaves_no_host_mounts_visible,
    no_pivot_run_works_and_isolates,
];
