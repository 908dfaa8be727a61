//! rootfsPropagation: the propagation of the container's "/" on a shared
//! rootfs mount, and whether host mounts made later reach the container.

use crate::harness::{self, sh, Bundle, Skip, TestMounts, TestResult};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

/// Makes the bundle's rootfs a shared mount point (peer group returned) in
/// this test's private mount namespace, so rootfsPropagation has something
/// to act on: without it (the test process's mounts are private) every
/// value leaves "/" private.
fn shared_rootfs(b: &Bundle, m: &mut TestMounts) -> String {
    let r = b.rootfs();
    m.bind(&r, &r);
    m.make_shared(&r);
    let mi = harness::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let mine = harness::mount_at(&mi, r.to_str().unwrap());
    mine.tag("shared").expect("rootfs bind mount is shared")
}

/// The optional fields of the container's "/" with rootfsPropagation PROP
/// (None: unset) on a shared rootfs mount; also returns the host peer group.
fn root_propagation(prop: Option<&str>) -> Result<(Vec<String>, String), Skip> {
    harness::can_run()?;
    harness::needs_private_mount_ns()?;
    let mut b = Bundle::new(&[]);
    let mut m = TestMounts::default();
    let peer = shared_rootfs(&b, &mut m);
    if let Some(p) = prop {
        b.config["linux"]["rootfsPropagation"] = json!(p);
    }
    let out = sh(&mut b, "rootfs-prop", "cat /proc/self/mountinfo");
    let mounts = harness::parse_mountinfo(&out);
    let opt = harness::mount_at(&mounts, "/").optional.clone();
    drop(m);
    Ok((opt, peer))
}

fn rootfs_propagation_default_is_slave_of_host() -> TestResult {
    // runc's default (no rootfsPropagation) is rslave.
    let (opt, peer) = root_propagation(None)?;
    assert_eq!(opt, [format!("master:{peer}")]);
    Ok(())
}

fn rootfs_propagation_rslave_is_slave_of_host() -> TestResult {
    let (opt, peer) = root_propagation(Some("rslave"))?;
    assert_eq!(opt, [format!("master:{peer}")]);
    Ok(())
}

fn rootfs_propagation_rprivate_is_private() -> TestResult {
    let (opt, _) = root_propagation(Some("rprivate"))?;
    assert!(opt.is_empty(), "/ has propagation {opt:?}");
    Ok(())
}

fn rootfs_propagation_private_is_private() -> TestResult {
    let (opt, _) = root_propagation(Some("private"))?;
    assert!(opt.is_empty(), "/ has propagation {opt:?}");
    Ok(())
}

/// runc 1.1.5 applies non-recursive "slave" to the old "/" only, then makes
/// the (shared) rootfs mount private before bind-mounting it: "/" ends up
/// private.
fn rootfs_propagation_slave_leaves_root_private_like_runc() -> TestResult {
    let (opt, _) = root_propagation(Some("slave"))?;
    assert!(opt.is_empty(), "/ has propagation {opt:?}");
    Ok(())
}

/// runc 1.1.5 makes the rootfs's (shared) parent mount private before its
/// bind mount and pivot_root, and never re-applies the flag: with "shared"
/// (and "rshared") the container's "/" is private.
fn rootfs_propagation_shared_leaves_root_private_like_runc() -> TestResult {
    let (opt, _) = root_propagation(Some("shared"))?;
    assert!(opt.is_empty(), "/ has propagation {opt:?}");
    Ok(())
}

/// With the default (rslave) propagation, a mount made on the host under
/// the rootfs after the container started appears inside; with rprivate
/// it does not.
fn host_mount_seen_inside(prop: Option<&str>) -> Result<bool, Skip> {
    harness::can_run()?;
    harness::needs_private_mount_ns()?;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo ready; read x; grep -c ' /mnt/late ' /proc/self/mountinfo; true",
    ]);
    let mut m = TestMounts::default();
    shared_rootfs(&b, &mut m);
    std::fs::create_dir_all(b.rootfs().join("mnt/late")).unwrap();
    if let Some(p) = prop {
        b.config["linux"]["rootfsPropagation"] = json!(p);
    }
    let mut child = b
        .run_cmd(&harness::unique("rootfs-late"), &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "container did not start");
    m.tmpfs(&b.rootfs().join("mnt/late"));
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", harness::stderr_of(&out));
    Ok(rest.trim() != "0")
}

fn rootfs_propagation_default_receives_host_mounts() -> TestResult {
    let seen = host_mount_seen_inside(None)?;
    assert!(
        seen,
        "host mount under the rootfs did not propagate into the container"
    );
    Ok(())
}

fn rootfs_propagation_rprivate_isolates_from_host_mounts() -> TestResult {
    let seen = host_mount_seen_inside(Some("rprivate"))?;
    assert!(
        !seen,
        "host mount under the rootfs propagated into a private container"
    );
    Ok(())
}

harness::tests![
    rootfs_propagation_default_is_slave_of_host,
    rootfs_propagation_rslave_is_slave_of_host,
    rootfs_propagation_rprivate_is_private,
    rootfs_propagation_private_is_private,
    rootfs_propagation_slave_leaves_root_private_like_runc,
    rootfs_propagation_shared_leaves_root_private_like_runc,
    rootfs_propagation_default_receives_host_mounts,
    rootfs_propagation_rprivate_isolates_from_host_mounts,
];
