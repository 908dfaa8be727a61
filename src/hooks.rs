//! Running OCI hooks: the container state on stdin, the hook's own args and
//! env (never the container's or vessel's environment), and its timeout.

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which hook list a hook came from (for error messages).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }
}

/// Runs every hook of one kind in order; stops at the first failure.
/// The state a hook reads on stdin, with runc's fields: ociVersion, id,
/// status, pid (absent once stopped), bundle, annotations (when any).
pub fn state_json<A: serde::Serialize>(
    version: &str,
    id: &str,
    status: &str,
    pid: Option<i32>,
    bundle: &Path,
    annotations: &A,
) -> Vec<u8> {
    let mut v =
        serde_json::json!({"ociVersion": version, "id": id, "status": status, "bundle": bundle});
    if let Some(pid) = pid {
        v["pid"] = pid.into();
    }
    let a = serde_json::to_value(annotations).unwrap_or_default();
    if a.as_object().is_some_and(|o| !o.is_empty()) {
        v["annotations"] = a;
    }
    v.to_string().into_bytes()
}

/// Hooks run with the bundle as working directory, as runc runs them.
pub fn run_all(kind: Kind, hooks: &[Hook], state_json: &[u8], bundle: &Path) -> Result<()> {
    for (index, hook) in hooks.iter().enumerate() {
        run_nth(kind, index, hook, state_json, bundle)?;
    }
    Ok(())
}

/// Runs every hook, logging a warning for each that fails: the spec's rule
/// for poststart and poststop ("the remaining hooks and lifecycle continue
/// as if the hook had succeeded").
pub fn run_all_warn(kind: Kind, hooks: &[Hook], state_json: &[u8], bundle: &Path) {
    for (index, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_nth(kind, index, hook, state_json, bundle) {
            crate::log::warn(&e.to_string());
        }
    }
}

/// Hook `index` of `kind`, its failure named as such.
fn run_nth(kind: Kind, index: usize, hook: &Hook, state_json: &[u8], bundle: &Path) -> Result<()> {
    run_one(hook, state_json, bundle).map_err(|why| Error::Hook {
        kind: kind.name(),
        index,
        path: hook.path().display().to_string(),
        why,
    })
}

fn run_one(hook: &Hook, state_json: &[u8], bundle: &Path) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    if bundle.is_dir() {
        cmd.current_dir(bundle);
    }
    let args = hook.args().as_deref().unwrap_or(&[]);
    if let Some(argv0) = args.first() {
        cmd.arg0(argv0);
        cmd.args(&args[1..]);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let timeout = hook
        .timeout()
        .filter(|&t| t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let (out, err, finished) = pump(&mut child, state_json, timeout);
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "timed out after {}s",
            timeout.map_or(0, |t| t.as_secs())
        ));
    }
    let status = child.wait().map_err(|e| format!("waiting: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out).trim(),
        String::from_utf8_lossy(&err).trim()
    );
    Err(if output.is_empty() {
        format!("failed: {status}")
    } else {
        format!("failed: {status}: {output}")
    })
}

/// Feeds the hook its stdin and collects stdout and stderr, all at once
/// (so no pipe can fill up and stall either side), until the hook exits
/// or the timeout passes. Returns (stdout, stderr, exited in time).
fn pump(
    child: &mut std::process::Child,
    input: &[u8],
    timeout: Option<Duration>,
) -> (Vec<u8>, Vec<u8>, bool) {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut written = 0;
    let mut bufs = [Vec::new(), Vec::new()];
    let mut open = [stdout.is_some(), stderr.is_some()];
    let fds = [
        stdout.as_ref().map_or(-1, |s| s.as_raw_fd()),
        stderr.as_ref().map_or(-1, |s| s.as_raw_fd()),
    ];
    // SAFETY: pidfd_open returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as i32, 0) } as i32;
    // SAFETY: a fresh fd (or none).
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) });
    for fd in fds
        .iter()
        .chain(stdin.as_ref().map(|s| s.as_raw_fd()).iter())
    {
        // SAFETY: setting O_NONBLOCK on pipes we own.
        unsafe {
            libc::fcntl(
                *fd,
                libc::F_SETFL,
                libc::fcntl(*fd, libc::F_GETFL) | libc::O_NONBLOCK,
            )
        };
    }
    let mut exited = false;
    loop {
        if stdin.is_some() && written >= input.len() {
            stdin = None; // EOF for the hook
        }
        if exited || (pidfd.is_none() && !open[0] && !open[1]) {
            break;
        }
        let wait_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (bufs[0].clone(), bufs[1].clone(), false);
                }
                left.as_millis().min(i32::MAX as u128) as i32
            }
            None => -1,
        };
        let mut pfds = [
            libc::pollfd {
                fd: if open[0] { fds[0] } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if open[1] { fds[1] } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_ref().map_or(-1, |p| p.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stdin.as_ref().map_or(-1, |s| s.as_raw_fd()),
                events: libc::POLLOUT,
                revents: 0,
            },
        ];
        // SAFETY: four valid pollfds (negative fds are ignored).
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), 4, wait_ms) };
        if n < 0 {
            continue;
        }
        for i in 0..2 {
            if pfds[i].revents != 0 {
                open[i] = drain(fds[i], &mut bufs[i]);
            }
        }
        if pfds[3].revents & libc::POLLOUT != 0 {
            if let Some(s) = stdin.as_mut() {
                match s.write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => stdin = None, // the hook does not read its stdin
                }
            }
        } else if pfds[3].revents != 0 {
            stdin = None;
        }
        if pfds[2].revents != 0 {
            exited = true;
        }
    }
    // The hook is gone: take what its pipes hold, without waiting for
    // background children that may keep them open.
    for i in 0..2 {
        if open[i] {
            drain(fds[i], &mut bufs[i]);
        }
    }
    let [out, err] = bufs;
    (out, err, true)
}

/// Reads what a non-blocking pipe holds; false once it reached EOF.
fn drain(fd: i32, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n > 0 {
            // Keep a bounded tail for the error message.
            buf.extend_from_slice(&chunk[..n as usize]);
            if buf.len() > 64 * 1024 {
                buf.drain(..buf.len() - 64 * 1024);
            }
            continue;
        }
        return n < 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_and_its_own_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {} ; echo $FOO >> {}"],"env":["FOO=bar"]}}"#,
            out.display(),
            out.display()
        ));
        run_all(Kind::Prestart, &[h], br#"{"id":"x"}"#, Path::new("/")).unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "{\"id\":\"x\"}bar\n");
    }

    #[test]
    fn chatty_hook_with_big_state_does_not_stall() {
        let h = hook(
            r#"{"path":"/bin/sh","args":["sh","-c","head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"],"timeout":5}"#,
        );
        let big = vec![b' '; 500_000];
        run_all(Kind::Prestart, &[h], &big, Path::new("/")).unwrap();
    }

    #[test]
    fn failing_and_slow_hooks_are_errors_naming_the_hook() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}"#);
        let e = run_all(Kind::CreateRuntime, &[h], b"{}", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("createRuntime[0]") && e.contains("nope"), "{e}");
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#);
        let start = Instant::now();
        let e = run_all(Kind::Prestart, &[h], b"{}", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(4));
    }
}
