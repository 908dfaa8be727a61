//! `exec` into a running container, and terminals over `--console-socket`.

use crate::harness::{self, ns_of, Bundle, TestResult};
use serde_json::json;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::process::{Output, Stdio};

/// A running container (`sleep 100`) and its host pid.
fn running() -> (Bundle, String, i32) {
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique("exec");
    let pid = b.start_detached(&id);
    (b, id, pid)
}

/// `exec FLAGS... ID CMD...` (ARGS is FLAGS, then "--", then CMD).
fn exec(b: &Bundle, id: &str, args: &[&str]) -> Output {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut cmd = b.cmd();
    cmd.arg("exec")
        .args(&args[..split])
        .arg(id)
        .args(args.iter().skip(split + 1));
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn exec_joins_every_namespace_and_cgroup_of_the_container() -> TestResult {
    harness::can_run()?;
    let (b, id, pid) = running();
    let out = exec(&b, &id, &["--", "sh", "-c", "echo $$; for n in mnt pid net ipc uts; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup"]);
    let stdout = harness::stdout_ok(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_ne!(lines[0], "1", "exec is not the init process");
    for (i, n) in ["mnt", "pid", "net", "ipc", "uts"].iter().enumerate() {
        assert_eq!(lines[i + 1], ns_of(pid, n), "{n} namespace");
    }
    let init_cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(
        lines[6..].join("\n"),
        init_cgroups.trim_end(),
        "exec joined the container's cgroups"
    );
    Ok(())
}

fn exec_exit_code_env_user_and_cwd() -> TestResult {
    harness::can_run()?;
    let (b, id, _) = running();
    let out = exec(&b, &id, &["--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = exec(
        &b,
        &id,
        &[
            "-e",
            "FOO=bar",
            "-u",
            "1000:1001",
            "--cwd",
            "/tmp",
            "--",
            "sh",
            "-c",
            "echo $FOO; id -u; id -g; pwd",
        ],
    );
    assert_eq!(harness::stdout_ok(&out), "bar\n1000\n1001\n/tmp\n");
    Ok(())
}

fn exec_process_file_as_engines_send_it() -> TestResult {
    harness::can_run()?;
    let (b, id, _) = running();
    let process = json!({"user": {"uid": 0, "gid": 0, "additionalGids": [0]}, "args": ["sh", "-c", "echo hi-exec; id -G"],
        "env": ["PATH=/bin:/usr/bin", "HOSTNAME=x"], "cwd": "/", "oomScoreAdj": 0,
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}});
    let file = b.path().join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let out = exec(&b, &id, &["--process", file.to_str().unwrap(), "--"]);
    assert_eq!(harness::stdout_ok(&out), "hi-exec\n0\n");
    Ok(())
}

fn exec_detached_writes_the_pid_file() -> TestResult {
    harness::can_run()?;
    let (b, id, pid) = running();
    let pid_file = b.path().join("exec.pid");
    // Detached: the process keeps its stdio, so give it none to hold open.
    let status = b
        .cmd()
        .args([
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let epid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(epid, pid);
    assert_eq!(ns_of(epid, "pid"), ns_of(pid, "pid"));
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{epid}/cmdline")).unwrap(),
        "sleep\x0030\x00"
    );
    Ok(())
}

fn exec_cap_flag_adds_a_capability() -> TestResult {
    harness::can_run()?;
    let (b, id, _) = running();
    // Default bundle: AUDIT_WRITE(29) KILL(5) NET_BIND_SERVICE(10); CHOWN(0) added.
    let out = exec(
        &b,
        &id,
        &[
            "--cap",
            "CAP_CHOWN",
            "--",
            "grep",
            "^CapEff",
            "/proc/self/status",
        ],
    );
    assert_eq!(harness::stdout_ok(&out), "CapEff:\t0000000020000421\n");
    Ok(())
}

fn exec_does_not_leak_the_callers_fds() -> TestResult {
    harness::can_run()?;
    let (b, id, _) = running();
    let mut cmd = b.cmd();
    cmd.args(["exec", &id, "ls", "/proc/self/fd"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    let raw = leaked.as_raw_fd();
    // SAFETY: dup2 in the child before exec, onto fd 3 without CLOEXEC.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            libc::dup2(raw, 3);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let fds: Vec<String> = harness::stdout_ok(&out)
        .lines()
        .map(str::to_string)
        .collect();
    // 0-2 and ls's own directory fd; never the caller's fd 3 as well as that.
    assert!(fds.len() <= 4, "{fds:?}");
    Ok(())
}

fn exec_into_stopped_or_missing_container_fails() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["true"]);
    let id = harness::unique("exec-stopped");
    b.start_detached(&id);
    assert!(b.wait_status(&id, "stopped", 5));
    // runc exits 255 here, vessel 1: both refuse.
    let out = exec(&b, &id, &["--", "true"]);
    assert!(!out.status.success());
    let out = exec(&b, "no-such-container", &["--", "true"]);
    assert!(!out.status.success());
    let (b, id, _) = running();
    let bad = b.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let out = exec(&b, &id, &["--process", bad.to_str().unwrap(), "--"]);
    assert!(!out.status.success());
    assert_eq!(
        b.status(&id).as_deref(),
        Some("running"),
        "a failed exec leaves the container alone"
    );
    Ok(())
}

/// Receives the pty master from a console socket, as containerd's shim does.
fn receive_master(listener: &UnixListener) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let (stream, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd just received.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd in the console socket message");
}

fn read_until_eof(master: OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn terminal_container_sends_its_pty_over_the_console_socket() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["sh", "-c", "tty; stat -c %t:%T /dev/console; stty size"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 99});
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = harness::unique("tty");
    let out = b.launch(
        &["create"],
        &id,
        &["--console-socket", sock.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let master = receive_master(&listener);
    harness::stdout_ok(&b.rt(&["start", &id]));
    let text = read_until_eof(master);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{text}");
    assert_eq!(
        lines[1], "88:0",
        "/dev/console is the pty (major 136 = 0x88): {text}"
    );
    assert_eq!(lines[2], "33 99");
    Ok(())
}

fn exec_tty_sends_its_pty_over_the_console_socket() -> TestResult {
    harness::can_run()?;
    let (b, id, _) = running();
    let sock = b.path().join("exec-console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let out = exec(
        &b,
        &id,
        &[
            "-d",
            "-t",
            "--console-socket",
            sock.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "tty; echo via-pty",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read_until_eof(receive_master(&listener));
    assert!(
        text.starts_with("/dev/pts/") && text.ends_with("via-pty\n"),
        "{text:?}"
    );
    Ok(())
}

fn terminal_without_console_socket_is_refused_when_detached() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["terminal"] = json!(true);
    let id = harness::unique("tty-nosock");
    let out = b.create_detached(&id);
    assert_eq!(out.status.code(), Some(1));
    assert!(b.state(&id).is_none());
    Ok(())
}

fn console_socket_that_does_not_exist_is_refused() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["terminal"] = json!(true);
    let id = harness::unique("tty-nosuch");
    let missing = b.path().join("no-such.sock");
    let out = b.launch(
        &["create"],
        &id,
        &["--console-socket", missing.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(b.state(&id).is_none(), "nothing is left behind");
    Ok(())
}

harness::tests![
    exec_joins_every_namespace_and_cgroup_of_the_container,
    exec_exit_code_env_user_and_cwd,
    exec_process_file_as_engines_send_it,
    exec_detached_writes_the_pid_file,
    exec_cap_flag_adds_a_capability,
    exec_does_not_leak_the_callers_fds,
    exec_into_stopped_or_missing_container_fails,
    terminal_container_sends_its_pty_over_the_console_socket,
    exec_tty_sends_its_pty_over_the_console_socket,
    terminal_without_console_socket_is_refused_when_detached,
    console_socket_that_does_not_exist_is_refused,
];
