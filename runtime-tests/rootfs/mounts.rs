//! The other mounts: the default ones and their options, tmpfs, proc,
//! mqueue and cgroup mounts, destinations created (in config order, inside
//! the rootfs even through the image's symlinks).

use super::{add_mount, host_dir, mountinfo_after};
use crate::harness::{self, sh, Bundle, MountInfo, TestResult};
use serde_json::json;
use std::path::{Path, PathBuf};

fn tmpfs_mount_size_and_mode() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    add_mount(
        &mut b,
        json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=710", "nosuid"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-tmpfs",
        "stat -c %a /t; df -k /t | tail -1; echo ==MI; cat /proc/self/mountinfo",
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("710"), "{out}");
    let df: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(df[1], "1024", "tmpfs size in KiB: {out}");
    let m = harness::mount_at(&mountinfo_after(&out, "==MI"), "/t");
    assert_eq!(m.fstype, "tmpfs");
    assert!(
        m.has_super_opt("size=1024k") && m.has_super_opt("mode=710") && m.has_opt("nosuid"),
        "{m:?}"
    );
    Ok(())
}

/// proc, the /dev tmpfs, devpts, shm, mqueue and sysfs of the default
/// config, with the per-mount and superblock options runc gives them.
fn default_mounts_have_types_and_options() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["cat", "/proc/self/mountinfo"]);
    let out = b.run_ok(&harness::unique("rootfs-defaults"));
    let mounts = harness::parse_mountinfo(&out);
    let check = |mp: &str, fstype: &str, opts: &[&str], sup: &[&str]| {
        let m = harness::mount_at(&mounts, mp);
        assert_eq!(m.fstype, fstype, "{m:?}");
        let mut got: Vec<&str> = m.opts.iter().map(String::as_str).collect();
        got.sort();
        let mut want = opts.to_vec();
        want.sort();
        assert_eq!(got, want, "mount options of {mp}: {m:?}");
        for s in sup {
            assert!(m.has_super_opt(s), "superblock option {s} of {mp}: {m:?}");
        }
    };
    check("/proc", "proc", &["rw", "relatime"], &[]);
    // strictatime: no relatime; no noexec/nodev since the config has none.
    check(
        "/dev",
        "tmpfs",
        &["rw", "nosuid"],
        &["size=65536k", "mode=755"],
    );
    check(
        "/dev/pts",
        "devpts",
        &["rw", "nosuid", "noexec", "relatime"],
        &["gid=5", "mode=620", "ptmxmode=666"],
    );
    check(
        "/dev/shm",
        "tmpfs",
        &["rw", "nosuid", "nodev", "noexec", "relatime"],
        &["size=65536k"],
    );
    check(
        "/dev/mqueue",
        "mqueue",
        &["rw", "nosuid", "nodev", "noexec", "relatime"],
        &[],
    );
    check(
        "/sys",
        "sysfs",
        &["ro", "nosuid", "nodev", "noexec", "relatime"],
        &[],
    );
    assert_eq!(harness::mount_at(&mounts, "/dev/shm").source, "shm");
    Ok(())
}

fn extra_proc_and_mqueue_mounts() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    add_mount(
        &mut b,
        json!({"destination": "/proc2", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
    );
    add_mount(
        &mut b,
        json!({"destination": "/mq2", "type": "mqueue", "source": "mqueue"}),
    );
    let out = sh(
        &mut b,
        "rootfs-proc2",
        "cat /proc2/1/comm; cat /proc/self/mountinfo",
    );
    assert!(
        out.starts_with("sh\n"),
        "pid 1 of the second proc is not the container's sh:\n{out}"
    );
    let mounts = harness::parse_mountinfo(&out);
    let p = harness::mount_at(&mounts, "/proc2");
    assert_eq!(p.fstype, "proc");
    assert!(
        p.has_opt("nosuid") && p.has_opt("noexec") && p.has_opt("nodev"),
        "{p:?}"
    );
    assert_eq!(harness::mount_at(&mounts, "/mq2").fstype, "mqueue");
    Ok(())
}

/// Host cgroup v1 controller mount names under /sys/fs/cgroup (e.g. "cpu",
/// "memory", "systemd"), or None on a cgroup2-only host.
fn host_v1_controllers() -> Option<Vec<String>> {
    let mi = harness::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    if mi
        .iter()
        .any(|m| m.mount_point == "/sys/fs/cgroup" && m.fstype == "cgroup2")
    {
        return None;
    }
    let mut v: Vec<String> = mi
        .iter()
        .filter(|m| m.fstype == "cgroup")
        .filter_map(|m| {
            m.mount_point
                .strip_prefix("/sys/fs/cgroup/")
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v.dedup();
    Some(v)
}

fn cgroup_mount_shows_the_container_cgroups() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["cat", "/proc/self/mountinfo"]);
    add_mount(
        &mut b,
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    );
    let id = harness::unique("rootfs-cg");
    let out = b.run_ok(&id);
    let mounts = harness::parse_mountinfo(&out);
    match host_v1_controllers() {
        None => {
            let m = harness::mount_at(&mounts, "/sys/fs/cgroup");
            assert_eq!(m.fstype, "cgroup2", "{m:?}");
            assert!(m.has_opt("ro"), "{m:?}");
        }
        Some(want) => {
            // v1/hybrid: a tmpfs with one ro cgroup mount per host v1
            // hierarchy, each rooted at the container's own cgroup.
            assert_eq!(harness::mount_at(&mounts, "/sys/fs/cgroup").fstype, "tmpfs");
            let cg: Vec<&MountInfo> = mounts.iter().filter(|m| m.fstype == "cgroup").collect();
            let mut got: Vec<String> = cg
                .iter()
                .filter_map(|m| {
                    m.mount_point
                        .strip_prefix("/sys/fs/cgroup/")
                        .map(str::to_string)
                })
                .collect();
            got.sort();
            assert_eq!(got, want, "cgroup mounts inside:\n{out}");
            for m in cg {
                assert!(
                    m.has_opt("ro")
                        && m.has_opt("nosuid")
                        && m.has_opt("nodev")
                        && m.has_opt("noexec"),
                    "{m:?}"
                );
                assert!(
                    m.root
                        .ends_with(b.config["linux"]["cgroupsPath"].as_str().unwrap()),
                    "cgroup mount not rooted at the container cgroup: {m:?}"
                );
            }
        }
    }
    Ok(())
}

fn missing_mount_destination_is_created() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    assert!(!b.rootfs().join("newdir").exists());
    add_mount(
        &mut b,
        json!({"destination": "/newdir", "type": "tmpfs", "source": "tmpfs"}),
    );
    let out = sh(
        &mut b,
        "rootfs-mkdir",
        "stat -c %F /newdir; grep -c ' /newdir ' /proc/self/mountinfo",
    );
    assert_eq!(out, "directory\n1\n");
    assert!(
        b.rootfs().join("newdir").is_dir(),
        "destination not created in the rootfs"
    );
    Ok(())
}

fn nested_mount_destination_is_created() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    add_mount(
        &mut b,
        json!({"destination": "/a/b/c", "type": "tmpfs", "source": "tmpfs"}),
    );
    let out = sh(&mut b, "rootfs-nested", "stat -c '%n %F %a' /a /a/b; touch /a/b/c/f && echo OK; echo ==MI; cat /proc/self/mountinfo");
    assert!(
        out.starts_with("/a directory 755\n/a/b directory 755\nOK\n"),
        "{out}"
    );
    assert_eq!(
        harness::mount_at(&mountinfo_after(&out, "==MI"), "/a/b/c").fstype,
        "tmpfs"
    );
    assert!(b.rootfs().join("a/b/c").is_dir());
    Ok(())
}

fn mounts_are_applied_in_config_order() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let src = host_dir(&b, "ordersrc");
    std::fs::write(src.join("f"), "bound\n").unwrap();
    // A tmpfs, a bind inside it (needs the tmpfs first), then a second
    // tmpfs over the first mount point that hides both.
    add_mount(
        &mut b,
        json!({"destination": "/o", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    add_mount(
        &mut b,
        json!({"destination": "/o/in", "type": "bind", "source": src, "options": ["bind"]}),
    );
    add_mount(
        &mut b,
        json!({"destination": "/p", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    add_mount(
        &mut b,
        json!({"destination": "/p", "type": "tmpfs", "source": "tmpfs", "options": ["size=2m"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-order",
        "cat /o/in/f; df -k /p | tail -1; cat /proc/self/mountinfo",
    );
    assert!(out.starts_with("bound\n"), "{out}");
    let df: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(df[1], "2048", "the later mount on /p is not on top:\n{out}");
    let mounts = harness::parse_mountinfo(&out);
    let order: Vec<&str> = mounts
        .iter()
        .map(|m| m.mount_point.as_str())
        .filter(|p| ["/o", "/o/in", "/p"].contains(p))
        .collect();
    assert_eq!(order, ["/o", "/o/in", "/p", "/p"]);
    assert!(
        !b.rootfs().join("o/in").exists(),
        "/o/in created in the image, not in the tmpfs"
    );
    Ok(())
}

/// runc resolves a mount destination inside the rootfs (securejoin): a
/// symlink in the image pointing at an absolute or `../..` host path lands
/// the mount at that path *under the rootfs*, creating it, and never on
/// the host.
fn symlink_destination_stays_inside_rootfs() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let name = harness::unique("vessel-evil");
    let host = PathBuf::from("/tmp").join(&name);
    std::fs::create_dir(&host).unwrap();
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(host.clone());
    std::os::unix::fs::symlink(&host, b.rootfs().join("evil")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../tmp/{name}-rel"),
        b.rootfs().join("evil2"),
    )
    .unwrap();
    let src = host_dir(&b, "evilsrc");
    std::fs::write(src.join("f"), "bound\n").unwrap();
    add_mount(
        &mut b,
        json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}),
    );
    add_mount(
        &mut b,
        json!({"destination": "/evil2", "type": "bind", "source": src, "options": ["bind"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-evil",
        "touch /evil/inside; cat /evil2/f; cat /proc/self/mountinfo",
    );
    assert!(out.starts_with("bound\n"), "{out}");
    let mounts = harness::parse_mountinfo(&out);
    assert_eq!(
        harness::mount_at(&mounts, &format!("/tmp/{name}")).fstype,
        "tmpfs"
    );
    assert!(harness::mount_at(&mounts, &format!("/tmp/{name}-rel"))
        .root
        .ends_with("/evilsrc"));
    // The host paths are untouched...
    assert_eq!(
        std::fs::read_dir(&host).unwrap().count(),
        0,
        "mount landed on the host directory"
    );
    assert!(
        !Path::new(&format!("/tmp/{name}-rel")).exists(),
        "relative symlink escaped to the host"
    );
    // ...and the mount points were created inside the rootfs.
    assert!(b.rootfs().join("tmp").join(&name).is_dir());
    assert!(b.rootfs().join("tmp").join(format!("{name}-rel")).is_dir());
    Ok(())
}

harness::tests![
    tmpfs_mount_size_and_mode,
    default_mounts_have_types_and_options,
    extra_proc_and_mqueue_mounts,
    cgroup_mount_shows_the_container_cgroups,
    missing_mount_destination_is_created,
    nested_mount_destination_is_created,
    mounts_are_applied_in_config_order,
    symlink_destination_stays_inside_rootfs,
];
