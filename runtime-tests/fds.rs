//! File descriptors: fds above 2 that the runtime inherits are closed in
//! the container unless `--preserve-fds N` keeps 3..3+N-1, and (without a
//! terminal) the runtime's stdio is the container's stdio.

use crate::harness::{self, Bundle, TestResult};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A file in the bundle directory holding `content`, opened read-only
/// (close-on-exec, as std opens it) and duplicated to an fd >= 100 so it
/// can't collide with the target numbers below.
fn marker(b: &Bundle, name: &str, content: &str) -> (PathBuf, OwnedFd) {
    let path = b.path().join(name);
    std::fs::write(&path, content).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let high = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
    assert!(
        high >= 100,
        "F_DUPFD_CLOEXEC: {}",
        std::io::Error::last_os_error()
    );
    (path, unsafe { std::os::fd::FromRawFd::from_raw_fd(high) })
}

/// Makes the runtime process inherit each (source, target) as fd `target`
/// (dup2 in the child clears close-on-exec there only, so the fds leak into
/// this one command and no other test's).
fn pass_fds(cmd: &mut Command, fds: &[(&OwnedFd, RawFd)]) {
    let pairs: Vec<(RawFd, RawFd)> = fds.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect();
    unsafe {
        cmd.pre_exec(move || {
            for &(src, dst) in &pairs {
                if libc::dup2(src, dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

fn run_with_fds(
    b: &mut Bundle,
    prefix: &str,
    extra: &[&str],
    script: &str,
    fds: &[(&OwnedFd, RawFd)],
) -> String {
    b.config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    let mut cmd = b.run_cmd(&harness::unique(prefix), extra);
    pass_fds(&mut cmd, fds);
    harness::stdout_ok(&cmd.output().unwrap())
}

fn inherited_fds_above_2_are_closed() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let (path, fd) = marker(&b, "leak", "LEAKED-DATA\n");
    let script = "ls /proc/self/fd | tr '\\n' ' '; echo; for n in 3 4 7 42; do readlink /proc/self/fd/$n; cat /proc/self/fd/$n; done 2>/dev/null; true";
    let out = run_with_fds(
        &mut b,
        "fds-leak",
        &[],
        script,
        &[(&fd, 3), (&fd, 4), (&fd, 7), (&fd, 42)],
    );
    // `ls` sees 0-2 and its own directory fd 3.
    assert_eq!(out.lines().next().unwrap().trim(), "0 1 2 3", "{out}");
    assert!(
        !out.contains("LEAKED-DATA") && !out.contains(path.to_str().unwrap()),
        "inherited fd visible inside:\n{out}"
    );
    Ok(())
}

fn preserve_fds_1_keeps_fd_3_only() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let (path, fd3) = marker(&b, "m3", "MARKER-3\n");
    let (_, fd4) = marker(&b, "m4", "MARKER-4\n");
    let script = "cat <&3; readlink /proc/self/fd/3; cat <&4 2>/dev/null || echo no-fd-4; true";
    let out = run_with_fds(
        &mut b,
        "fds-pres1",
        &["--preserve-fds", "1"],
        script,
        &[(&fd3, 3), (&fd4, 4)],
    );
    // The preserved fd is the very file the runtime got (host path).
    assert_eq!(out, format!("MARKER-3\n{}\nno-fd-4\n", path.display()));
    Ok(())
}

fn preserve_fds_2_keeps_fds_3_and_4() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let (_, fd3) = marker(&b, "m3", "MARKER-3\n");
    let (_, fd4) = marker(&b, "m4", "MARKER-4\n");
    let (_, fd5) = marker(&b, "m5", "MARKER-5\n");
    let script = "cat <&3; cat <&4; cat <&5 2>/dev/null || echo no-fd-5; true";
    let out = run_with_fds(
        &mut b,
        "fds-pres2",
        &["--preserve-fds", "2"],
        script,
        &[(&fd3, 3), (&fd4, 4), (&fd5, 5)],
    );
    assert_eq!(out, "MARKER-3\nMARKER-4\nno-fd-5\n");
    Ok(())
}

fn preserved_fd_keeps_its_offset_and_is_shared() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let (_, fd) = marker(&b, "m3", "0123456789");
    // Move the shared offset before the runtime starts: the container
    // continues from it (same open file description, not a reopen).
    assert_eq!(unsafe { libc::lseek(fd.as_raw_fd(), 4, libc::SEEK_SET) }, 4);
    let out = run_with_fds(
        &mut b,
        "fds-offset",
        &["--preserve-fds", "1"],
        "cat <&3",
        &[(&fd, 3)],
    );
    assert_eq!(out, "456789");
    Ok(())
}

fn stdin_pipe_is_the_container_stdin() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["cat"]);
    let mut child = b
        .run_cmd(&harness::unique("fds-stdin"), &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Enough data to need several pipe buffers, written while reading.
    let data: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut stdin = child.stdin.take().unwrap();
    let to_write = data.clone();
    let writer = std::thread::spawn(move || {
        stdin.write_all(b"hello\n").unwrap();
        stdin.write_all(&to_write).unwrap();
    });
    let mut got = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", harness::stderr_of(&out));
    assert_eq!(got.len(), 6 + data.len());
    assert!(got.starts_with(b"hello\n") && got[6..] == data[..]);
    Ok(())
}

fn stdout_and_stderr_are_separate() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["sh", "-c", "echo to-out; echo to-err >&2"]);
    let out = b.run(&harness::unique("fds-outerr"));
    assert!(out.status.success(), "{}", harness::stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-err\n"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("to-out"));
    Ok(())
}

/// runc's foreground `run` (no terminal) does not hand its stdio to the
/// container: it gives the process fresh pipes and copies between them and
/// its own stdio. The container's fds 0-2 are pipes, not the test's.
/// With `run --detach` (as with create/start) the container process
/// inherits the runtime's stdio itself.
fn detached_run_passes_stdio_through() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&[
        "sh",
        "-c",
        "for n in 0 1 2; do readlink /proc/self/fd/$n; done",
    ]);
    let out_path = b.path().join("detached.out");
    let id = harness::unique("fds-detach");
    let status = b
        .run_cmd(&id, &["--detach"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&out_path).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        b.wait_status(&id, "stopped", 10),
        "container did not finish"
    );
    let out = std::fs::read_to_string(&out_path).unwrap();
    let p = out_path.display().to_string();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["/dev/null", p.as_str(), p.as_str()],
        "{out}"
    );
    Ok(())
}

harness::tests![
    inherited_fds_above_2_are_closed,
    preserve_fds_1_keeps_fd_3_only,
    preserve_fds_2_keeps_fds_3_and_4,
    preserved_fd_keeps_its_offset_and_is_shared,
    stdin_pipe_is_the_container_stdin,
    stdout_and_stderr_are_separate,
    detached_run_passes_stdio_through,
];
