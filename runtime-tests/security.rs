//! CVE shapes the runtime must refuse or survive.

use crate::harness::{self, Bundle, TestResult};

fn file_hash(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// CVE-2019-5736: a container entrypoint that is a `#!/proc/self/exe`
/// script makes the kernel run the runtime's own binary inside the
/// container. The runtime binary on the host must stay unchanged, and
/// vessel refuses to run itself there.
fn proc_self_exe_entrypoint_cannot_reach_the_runtime_binary() -> TestResult {
    harness::can_run()?;
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
    Ok(())
}

/// The same through an interpreter chain: a script whose interpreter is a
/// script pointing at /proc/self/exe.
fn proc_self_exe_behind_two_interpreters_is_refused() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("the refusal of /proc/self/exe behind interpreters is vessel's")?;
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
    Ok(())
}

/// An AppArmor profile or SELinux label the host cannot apply is an error
/// (as in runc), never silently dropped.
fn lsm_label_the_host_cannot_apply_fails_create() -> TestResult {
    harness::can_run()?;
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
    Ok(())
}

/// An agent at `listenerPath`: receives the state JSON and the listener fd
/// (SCM_RIGHTS), notes what the fd is, and closes it, after which the
/// notified syscalls fail with ENOSYS.
fn seccomp_agent(path: &std::path::Path) -> std::thread::JoinHandle<(String, String)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let n = msg.bytes;
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(f) => f.first().copied(),
                _ => None,
            })
            .expect("an fd with the message");
        // SAFETY: received with SCM_RIGHTS: ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let what = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        drop(fd);
        (String::from_utf8_lossy(&buf[..n]).into_owned(), what)
    })
}

fn seccomp_notify_sends_the_listener_fd_to_the_agent() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("the seccomp agent handshake checked is vessel's")?;
    for exec in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let agent = seccomp_agent(&sock);
        let script = "mkdir /tmp/notified 2>&1; echo done";
        let mut b = harness::Bundle::new(&if exec {
            vec!["sleep", "30"]
        } else {
            vec!["sh", "-c", script]
        });
        b.config["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "meta-1",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
        let id = harness::unique("notify");
        let out = if exec {
            // The init process's listener first, then exec's own.
            b.start_detached(&id);
            let (state, _) = agent.join().unwrap();
            assert!(state.contains("\"seccompFd\""), "{state}");
            let second = seccomp_agent(&sock.with_extension("2"));
            std::fs::rename(sock.with_extension("2"), &sock).unwrap();
            let out = b.rt(&["exec", &id, "sh", "-c", script]);
            let (state, what) = second.join().unwrap();
            assert!(
                state.contains(&id) && what.contains("seccomp"),
                "{state} {what}"
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            let out = b.run_ok(&id);
            let (state, what) = agent.join().unwrap();
            let v: serde_json::Value = serde_json::from_str(&state).expect("agent gets JSON");
            assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
            assert_eq!(v["metadata"], "meta-1");
            assert_eq!(v["state"]["id"], id.as_str());
            assert!(v["pid"].as_i64().unwrap() > 0);
            assert!(what.contains("seccomp"), "the fd is {what}");
            out
        };
        assert!(
            out.contains("Function not implemented") && out.contains("done"),
            "{out}"
        );
    }
    Ok(())
}

harness::tests![
    proc_self_exe_entrypoint_cannot_reach_the_runtime_binary,
    proc_self_exe_behind_two_interpreters_is_refused,
    lsm_label_the_host_cannot_apply_fails_create,
    seccomp_notify_sends_the_listener_fd_to_the_agent,
];
