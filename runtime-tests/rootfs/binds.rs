//! Bind mounts: bind and rbind (submounts or not), read-only (ro, rro),
//! nosuid/nodev/noexec, single files, and the propagation options.

use super::{add_mount, host_dir, mountinfo_after};
use crate::harness::{self, sh, Bundle, TestMounts, TestResult};
use serde_json::json;
use std::path::PathBuf;

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

harness::tests![
    bind_mount_shares_files_with_host,
    rbind_mount_includes_submounts,
    bind_mount_excludes_submounts,
    ro_bind_mount_rejects_writes,
    rbind_ro_makes_only_the_top_mount_readonly,
    rro_makes_submounts_readonly,
    bind_mount_flags_nosuid_nodev_noexec,
    bind_mount_of_a_single_file,
    bind_mount_propagation_options,
];
