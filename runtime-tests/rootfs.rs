//! The root filesystem and mounts (config.md "Root", "Mounts";
//! config-linux.md "rootfsPropagation"), observed in the container's
//! /proc/self/mountinfo, `stat`, and what writes do.

use crate::harness::{self, sh, Bundle, MountInfo, Skip, TestMounts, TestResult};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn add_mount(b: &mut Bundle, m: Value) {
    b.config["mounts"].as_array_mut().unwrap().push(m);
}

/// A host directory for bind sources, inside the bundle's temporary
/// directory (outside the rootfs).
fn host_dir(b: &Bundle, name: &str) -> PathBuf {
    let d = b.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mountinfo_after(out: &str, marker: &str) -> Vec<MountInfo> {
    let text = out
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker} in output:\n{out}"));
    harness::parse_mountinfo(text)
}

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

fn bind_mount_shares_files_with_host() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let src = host_dir(&b, "hostsrc");
    std::fs::write(src.join("from-host"), "host-data\n").unwrap();
    add_mount(
        &mut b,
        json!({"destination": "/data", "type": "bind", "source": src, "options": ["bind"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-bind",
        "cat /data/from-host; echo ctr-data > /data/from-ctr; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(out.starts_with("host-data\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(src.join("from-ctr")).unwrap(),
        "ctr-data\n"
    );
    let m = harness::mount_at(&mountinfo_after(&out, "==MI"), "/data");
    assert!(m.root.ends_with("/hostsrc") && m.has_opt("rw"), "{m:?}");
    Ok(())
}

/// A host directory with a tmpfs submount at `sub` (holding file `f`).
fn dir_with_submount(b: &Bundle, m: &mut TestMounts) -> PathBuf {
    let src = host_dir(b, "tree");
    std::fs::write(src.join("top"), "top\n").unwrap();
    std::fs::create_dir(src.join("sub")).unwrap();
    m.tmpfs(&src.join("sub"));
    std::fs::write(src.join("sub/f"), "sub\n").unwrap();
    src
}

fn rbind_mount_includes_submounts() -> TestResult {
    harness::can_run()?;
    harness::needs_private_mount_ns()?;
    let mut b = Bundle::new(&[]);
    let mut m = TestMounts::default();
    let src = dir_with_submount(&b, &mut m);
    add_mount(
        &mut b,
        json!({"destination": "/r", "type": "bind", "source": src, "options": ["rbind"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-rbind",
        "cat /r/top /r/sub/f; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(out.starts_with("top\nsub\n"), "{out}");
    assert_eq!(
        harness::mount_at(&mountinfo_after(&out, "==MI"), "/r/sub").fstype,
        "tmpfs"
    );
    Ok(())
}

fn bind_mount_excludes_submounts() -> TestResult {
    harness::can_run()?;
    harness::needs_private_mount_ns()?;
    let mut b = Bundle::new(&[]);
    let mut m = TestMounts::default();
    let src = dir_with_submount(&b, &mut m);
    add_mount(
        &mut b,
        json!({"destination": "/nb", "type": "bind", "source": src, "options": ["bind"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-nbind",
        "cat /nb/top; ls -A /nb/sub; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(
        out.starts_with("top\n==MI"),
        "submount content visible through a plain bind:\n{out}"
    );
    assert!(
        !mountinfo_after(&out, "==MI")
            .iter()
            .any(|m| m.mount_point == "/nb/sub"),
        "{out}"
    );
    Ok(())
}

fn ro_bind_mount_rejects_writes() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let src = host_dir(&b, "rosrc");
    std::fs::write(src.join("f"), "ro-data\n").unwrap();
    add_mount(
        &mut b,
        json!({"destination": "/ro", "type": "bind", "source": src, "options": ["bind", "ro"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-robind",
        "cat /ro/f; touch /ro/new 2>&1; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(
        out.starts_with("ro-data\n") && out.contains("Read-only file system"),
        "{out}"
    );
    assert!(!src.join("new").exists());
    let m = harness::mount_at(&mountinfo_after(&out, "==MI"), "/ro");
    assert!(m.has_opt("ro"), "{m:?}");
    Ok(())
}

/// runc 1.1.5 remounts only the top mount of an "rbind" read-only: the
/// submounts stay writable.
fn rbind_ro_makes_only_the_top_mount_readonly() -> TestResult {
    harness::can_run()?;
    harness::needs_private_mount_ns()?;
    let mut b = Bundle::new(&[]);
    let mut m = TestMounts::default();
    let src = dir_with_submount(&b, &mut m);
    add_mount(
        &mut b,
        json!({"destination": "/rro", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-rbindro",
        "touch /rro/x 2>&1; touch /rro/sub/y && echo SUBRW; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(
        out.contains("Read-only file system") && out.contains("SUBRW"),
        "{out}"
    );
    let mounts = mountinfo_after(&out, "==MI");
    assert!(harness::mount_at(&mounts, "/rro").has_opt("ro"));
    assert!(harness::mount_at(&mounts, "/rro/sub").has_opt("rw"));
    Ok(())
}

fn rro_makes_submounts_readonly() -> TestResult {
    harness::can_run()?;
    harness::needs_private_mount_ns()?;
    let mut b = Bundle::new(&[]);
    let mut m = TestMounts::default();
    let src = dir_with_submount(&b, &mut m);
    add_mount(
        &mut b,
        json!({"destination": "/rro", "type": "bind", "source": src, "options": ["rbind", "rro"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-rro",
        "touch /rro/sub/y 2>&1; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(out.contains("Read-only file system"), "{out}");
    let mounts = mountinfo_after(&out, "==MI");
    assert!(harness::mount_at(&mounts, "/rro").has_opt("ro"));
    assert!(harness::mount_at(&mounts, "/rro/sub").has_opt("ro"));
    Ok(())
}

fn bind_mount_flags_nosuid_nodev_noexec() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let bin = b.rootfs().join("bin");
    add_mount(
        &mut b,
        json!({"destination": "/nx", "type": "bind", "source": bin, "options": ["bind", "nosuid", "nodev", "noexec"]}),
    );
    let out = sh(
        &mut b,
        "rootfs-flags",
        "/nx/busybox true 2>&1; echo rc=$?; echo ==MI; cat /proc/self/mountinfo",
    );
    assert!(
        out.contains("Permission denied") && out.contains("rc=126"),
        "exec on a noexec mount:\n{out}"
    );
    let m = harness::mount_at(&mountinfo_after(&out, "==MI"), "/nx");
    for o in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(m.has_opt(o), "{o} missing: {m:?}");
    }
    Ok(())
}

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

fn bind_mount_of_a_single_file() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let src = b.path().join("hostfile");
    std::fs::write(&src, "single-file\n").unwrap();
    // Over an existing file of the image, and onto a path that doesn't exist.
    add_mount(
        &mut b,
        json!({"destination": "/etc/hostname", "type": "bind", "source": src, "options": ["bind", "ro"]}),
    );
    add_mount(
        &mut b,
        json!({"destination": "/etc/newfile", "type": "bind", "source": src, "options": ["bind"]}),
    );
    let out = sh(&mut b, "rootfs-file", "cat /etc/hostname /etc/newfile; stat -c %F /etc/newfile; (echo x >> /etc/hostname) 2>&1; echo ==MI; cat /proc/self/mountinfo");
    assert!(
        out.starts_with("single-file\nsingle-file\nregular file\n"),
        "{out}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert_eq!(std::fs::read_to_string(&src).unwrap(), "single-file\n");
    let mounts = mountinfo_after(&out, "==MI");
    assert!(harness::mount_at(&mounts, "/etc/hostname")
        .root
        .ends_with("/hostfile"));
    // The destination is created in the rootfs as an (empty) regular file.
    let created = std::fs::metadata(b.rootfs().join("etc/newfile")).unwrap();
    assert!(created.is_file() && created.len() == 0);
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

/// The propagation fields of bind mounts (of a source that is a shared
/// mount in this test's namespace) with each propagation option.
fn bind_mount_propagation_options() -> TestResult {
    harness::can_run()?;
    harness::needs_private_mount_ns()?;
    let mut b = Bundle::new(&[]);
    let src = host_dir(&b, "shsrc");
    let mut m = TestMounts::default();
    m.bind(&src, &src);
    m.make_shared(&src);
    let mi = harness::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let peer = harness::mount_at(&mi, src.to_str().unwrap())
        .tag("shared")
        .unwrap();
    for (dst, opt) in [
        ("/p/none", None),
        ("/p/private", Some("private")),
        ("/p/rprivate", Some("rprivate")),
        ("/p/slave", Some("slave")),
        ("/p/rslave", Some("rslave")),
        ("/p/shared", Some("shared")),
        ("/p/unbindable", Some("unbindable")),
    ] {
        let mut opts = vec!["rbind"];
        opts.extend(opt);
        add_mount(
            &mut b,
            json!({"destination": dst, "type": "bind", "source": src, "options": opts}),
        );
    }
    let out = sh(&mut b, "rootfs-bprop", "cat /proc/self/mountinfo");
    let mounts = harness::parse_mountinfo(&out);
    let opt = |mp: &str| harness::mount_at(&mounts, mp).optional.clone();
    let master = format!("master:{peer}");
    // The container's copy of the source is a slave (rootfs default rslave),
    // so a plain bind of it is a slave of the host peer group too.
    assert_eq!(opt("/p/none"), std::slice::from_ref(&master));
    assert_eq!(opt("/p/slave"), std::slice::from_ref(&master));
    assert_eq!(opt("/p/rslave"), std::slice::from_ref(&master));
    assert!(opt("/p/private").is_empty(), "{out}");
    assert!(opt("/p/rprivate").is_empty(), "{out}");
    assert_eq!(opt("/p/unbindable"), ["unbindable"]);
    let shared = opt("/p/shared");
    assert_eq!(shared.len(), 2, "{shared:?}");
    assert!(
        shared[0].starts_with("shared:") && shared[0] != format!("shared:{peer}"),
        "{shared:?}"
    );
    assert_eq!(shared[1], master);
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
    readonly_root_rejects_writes_and_is_ro_in_mountinfo,
    writable_root_accepts_writes,
    rootfs_propagation_default_is_slave_of_host,
    rootfs_propagation_rslave_is_slave_of_host,
    rootfs_propagation_rprivate_is_private,
    rootfs_propagation_private_is_private,
    rootfs_propagation_slave_leaves_root_private_like_runc,
    rootfs_propagation_shared_leaves_root_private_like_runc,
    rootfs_propagation_default_receives_host_mounts,
    rootfs_propagation_rprivate_isolates_from_host_mounts,
    pivot_root_leaves_no_host_mounts_visible,
    no_pivot_run_works_and_isolates,
    bind_mount_shares_files_with_host,
    rbind_mount_includes_submounts,
    bind_mount_excludes_submounts,
    ro_bind_mount_rejects_writes,
    rbind_ro_makes_only_the_top_mount_readonly,
    rro_makes_submounts_readonly,
    bind_mount_flags_nosuid_nodev_noexec,
    tmpfs_mount_size_and_mode,
    default_mounts_have_types_and_options,
    extra_proc_and_mqueue_mounts,
    cgroup_mount_shows_the_container_cgroups,
    bind_mount_of_a_single_file,
    missing_mount_destination_is_created,
    nested_mount_destination_is_created,
    mounts_are_applied_in_config_order,
    bind_mount_propagation_options,
    symlink_destination_stays_inside_rootfs,
];
