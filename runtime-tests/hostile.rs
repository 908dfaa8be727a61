//! Bundles and arguments that try to reach the host, and the failure
//! paths they exercise: each is refused (as runc refuses it) or contained.

use crate::harness::{self, Bundle, TestResult};
use serde_json::json;
use std::process::Stdio;

fn refused(b: &Bundle, what: &str) {
    let id = harness::unique("hostile");
    let out = b.run(&id);
    assert!(
        !out.status.success(),
        "{what} was accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(b.state(&id).is_none(), "{what}: state left behind");
}

fn cgroups_path_with_dotdot_stays_in_the_cgroup_filesystem() -> TestResult {
    harness::can_run()?;
    let name = harness::unique("vessel-test-esc");
    // Cleaned against "/", this is /NAME-escaped inside each hierarchy; taken
    // literally it would be a directory NAME-escaped at the host's root.
    let escaped = format!("{name}-escaped");
    let (_guard, mut b, _) = harness::isolated_bundle(&["cat", "/proc/self/cgroup"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{name}/../../../../../../{escaped}"));
    let _guard2 = harness::CgroupGuard::new(&format!("/{escaped}"));
    let out = b.run_ok(&harness::unique("esc"));
    assert!(
        !std::path::Path::new("/").join(&escaped).exists(),
        "the runtime wrote outside the cgroup filesystem"
    );
    assert!(
        out.lines().any(|l| l.ends_with(&format!(":/{escaped}"))),
        "{out}"
    );
    Ok(())
}

fn sysctl_outside_a_namespace_is_refused() -> TestResult {
    harness::can_run()?;
    let before = std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["sysctl"] = json!({"vm.swappiness": before.trim()});
    refused(&b, "vm.swappiness");
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "0"});
    refused(&b, "net.* without a network namespace");
    Ok(())
}

fn uid_minus_one_does_not_stay_root() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["id", "-u"]);
    b.config["process"]["user"] = json!({"uid": 4294967295u32, "gid": 4294967295u32});
    refused(&b, "uid 4294967295");
    Ok(())
}

fn namespace_path_of_the_wrong_type_is_refused() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["true"]);
    // The host's uts namespace given as a network namespace.
    b.config["linux"]["namespaces"] =
        json!([{"type": "mount"}, {"type": "pid"}, {"type": "network", "path": "/proc/1/ns/uts"}]);
    refused(&b, "a uts namespace as network");
    Ok(())
}

fn preserve_fds_must_name_open_fds() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["true"]);
    b.write_config();
    // Vessel-only: runc 1.1.5 takes both (its own fds fill 3..6 and are
    // passed on to the container).
    harness::vessel_only("runc 1.1.5 takes fds it does not have")?;
    for n in ["-5", "4"] {
        let id = harness::unique("pfds");
        let out = b
            .cmd()
            .args(["run", "--preserve-fds", n, "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "--preserve-fds {n} with no such fds was accepted"
        );
        let _ = b.rt(&["delete", "--force", &id]);
    }
    Ok(())
}

fn devices_are_denied_without_an_explicit_deny_rule() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "head -c1 /dev/mydev >/dev/null 2>&1 && echo opened || echo denied",
    ]);
    b.config["linux"]["resources"] = json!({});
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 4, "fileMode": 438}]);
    assert_eq!(b.run_ok(&harness::unique("nodeny")), "denied\n");
    Ok(())
}

fn hook_with_lots_of_output_does_not_hang() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["true"]);
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"], "timeout": 20}]});
    b.run_ok(&harness::unique("chatty"));
    Ok(())
}

fn big_annotations_are_fine() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["true"]);
    b.config["annotations"] = json!({"big": "x".repeat(300_000)});
    b.config["hooks"] = json!({"createContainer": [{"path": "/bin/true"}]});
    b.run_ok(&harness::unique("bigann"));
    Ok(())
}

/// A create killed half-way leaves nothing `delete --force` cannot clean.
fn killed_create_is_cleaned_by_delete_force() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("the cleanup of a killed create is vessel's")?;
    let (_guard, mut b, cg) = harness::isolated_bundle(&["true"]);
    let started = b.path().join("hook-started");
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}; sleep 30", started.display())]}]});
    b.write_config();
    let id = harness::unique("killed");
    b.track(&id);
    let mut create = b
        .cmd()
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(harness::wait_for(10.0, || started.exists()));
    create.kill().unwrap();
    create.wait().unwrap();
    assert_eq!(
        b.status(&id).as_deref(),
        Some("stopped"),
        "a dead create is stopped, not creating"
    );
    harness::stdout_ok(&b.rt(&["delete", "--force", &id]));
    assert!(
        harness::wait_for(5.0, || harness::cgroup_gone(&cg)),
        "cgroups left behind"
    );
    assert!(b.state(&id).is_none());
    Ok(())
}

/// CVE-2019-16884 shape: an image whose /proc (or /sys) is a symlink, so
/// that procfs would land where the image controls what is under it.
fn proc_or_sys_that_is_a_symlink_in_the_image_is_refused() -> TestResult {
    harness::can_run()?;
    for dir in ["proc", "sys"] {
        let b = Bundle::new(&["true"]);
        let path = b.rootfs().join(dir);
        std::fs::remove_dir(&path).unwrap();
        std::fs::create_dir(b.rootfs().join("evil")).unwrap();
        std::os::unix::fs::symlink("/evil", &path).unwrap();
        refused(&b, &format!("/{dir} as a symlink"));
    }
    Ok(())
}

/// Something mounted over /proc must not receive a sysctl (or an LSM label)
/// meant for the kernel: the sysctl goes to the kernel's file (through the
/// host's procfs, opened before any container mount), never to the bind.
fn sysctl_is_not_written_to_a_fake_proc() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("writing sysctls through the host's procfs is vessel's")?;
    let mut b = Bundle::new(&["true"]);
    let fake = b.path().join("fake-sys");
    std::fs::create_dir_all(fake.join("net/ipv4")).unwrap();
    std::fs::write(fake.join("net/ipv4/ip_forward"), "0").unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/proc/sys", "type": "bind", "source": fake, "options": ["rbind"]}),
    );
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["linux"]["readonlyPaths"] = json!([]);
    let out = b.run(&harness::unique("fakeproc"));
    assert!(out.status.success(), "{}", harness::stderr_of(&out));
    assert_eq!(
        std::fs::read_to_string(fake.join("net/ipv4/ip_forward")).unwrap(),
        "0"
    );
    Ok(())
}

/// CVE-2024-21626's shape: a cwd through /proc/self/fd/N (a leaked fd of
/// the runtime would put the process outside the rootfs). Refused: the cwd
/// is resolved inside the rootfs without following magic links.
fn cwd_through_proc_self_fd_is_refused() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("the refusal of a cwd through /proc/self/fd is vessel's")?;
    for n in 3..9 {
        let mut b = Bundle::new(&["sh", "-c", "echo RAN; readlink /proc/self/cwd"]);
        b.config["process"]["cwd"] = serde_json::json!(format!("/proc/self/fd/{n}"));
        let out = b.run(&harness::unique("cwdfd"));
        assert!(!out.status.success(), "cwd /proc/self/fd/{n} accepted");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("RAN"));
        assert!(String::from_utf8_lossy(&out.stderr).contains("process.cwd"));
    }
    Ok(())
}

/// A linux.devices path through an image symlink that points at the host
/// makes its node inside the rootfs, never on the host.
fn device_path_through_a_symlink_stays_in_the_rootfs() -> TestResult {
    harness::can_run()?;
    let host = tempfile::tempdir().unwrap();
    let b = {
        let mut b = Bundle::new(&["true"]);
        std::os::unix::fs::symlink(host.path(), b.rootfs().join("escape")).unwrap();
        b.config["linux"]["devices"] = serde_json::json!([
            {"path": "/escape/null42", "type": "c", "major": 1, "minor": 3, "fileMode": 438}
        ]);
        b
    };
    let _ = b.run(&harness::unique("devlink"));
    assert!(
        !host.path().join("null42").exists(),
        "a device node was made on the host through the image's symlink"
    );
    Ok(())
}

/// A rootfs directory swapped, over and over while containers are set up,
/// with a symlink to a host directory (an image racing the runtime, or a
/// second container sharing the rootfs): every mkdir and mount lands in
/// the rootfs or create fails cleanly; nothing reaches the host.
/// vessel only: Debian's runc 1.1.5 makes directories on the host here
/// (CVE-2024-45310, fixed in runc 1.1.14).
fn directory_swapped_for_a_symlink_during_setup_stays_in_the_rootfs() -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    harness::can_run()?;
    harness::vessel_only("Debian's runc 1.1.5 fails it (CVE-2024-45310)")?;
    let host = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    let mut b = Bundle::new(&["true"]);
    let race = b.rootfs().join("mnt/race");
    let swap = b.rootfs().join("mnt/swap");
    std::fs::create_dir_all(&race).unwrap();
    std::os::unix::fs::symlink(host.path(), &swap).unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/mnt/race/tmp/deep", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({"destination": "/mnt/race/bind", "type": "bind",
        "source": source.path(), "options": ["rbind"]}));
    b.write_config();

    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let swaps = std::sync::Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let c =
            |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let (a, z) = (c(&race), c(&swap));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two valid C paths; RENAME_EXCHANGE swaps them atomically.
                let rc = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        z.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let runs = 150;
    let mut started = 0;
    for _ in 0..runs {
        let id = harness::unique("swap");
        let out = b.run(&id);
        started += out.status.success() as usize;
        assert!(b.state(&id).is_none(), "state of {id} left behind");
        let on_host: Vec<_> = std::fs::read_dir(host.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(on_host.is_empty(), "made on the host: {on_host:?}");
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(
        std::fs::read_dir(source.path()).unwrap().next().is_none(),
        "written into the bind source"
    );
    eprintln!(
        "swap race: {runs} runs ({started} started, the rest refused) against {} swaps, nothing on the host",
        swaps.load(Ordering::Relaxed)
    );
    Ok(())
}

harness::tests![
    cgroups_path_with_dotdot_stays_in_the_cgroup_filesystem,
    sysctl_outside_a_namespace_is_refused,
    uid_minus_one_does_not_stay_root,
    namespace_path_of_the_wrong_type_is_refused,
    preserve_fds_must_name_open_fds,
    devices_are_denied_without_an_explicit_deny_rule,
    hook_with_lots_of_output_does_not_hang,
    big_annotations_are_fine,
    killed_create_is_cleaned_by_delete_force,
    proc_or_sys_that_is_a_symlink_in_the_image_is_refused,
    sysctl_is_not_written_to_a_fake_proc,
    cwd_through_proc_self_fd_is_refused,
    device_path_through_a_symlink_stays_in_the_rootfs,
    directory_swapped_for_a_symlink_during_setup_stays_in_the_rootfs,
];
