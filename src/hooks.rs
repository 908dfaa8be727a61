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
    let mut pipes = HookPipes::new(child);
    let mut written = 0;
    loop {
        if pipes.stdin.is_some() && written >= input.len() {
            pipes.stdin = None; // EOF for the hook
        }
        if pipes.exited || (pipes.pidfd.is_none() && !pipes.open[0] && !pipes.open[1]) {
            break;
        }
        let wait_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let [out, err] = pipes.bufs;
                    return (out, err, false);
                }
                left.as_millis().min(i32::MAX as u128) as i32
            }
            None => -1,
        };
        pipes.step(wait_ms, input, &mut written);
    }
    // The hook is gone: take what its pipes hold, without waiting for
    // background children that may keep them open.
    for i in 0..2 {
        if pipes.open[i] {
            drain(pipes.fds[i], &mut pipes.bufs[i]);
        }
    }
    let [out, err] = pipes.bufs;
    (out, err, true)
}

/// A running hook's pipes (non-blocking) and a pidfd that becomes readable
/// when it exits.
struct HookPipes {
    stdin: Option<std::process::ChildStdin>,
    // Kept so the fds stay open while polled.
    _stdout: Option<std::process::ChildStdout>,
    _stderr: Option<std::process::ChildStderr>,
    fds: [i32; 2],
    open: [bool; 2],
    bufs: [Vec<u8>; 2],
    pidfd: Option<OwnedFd>,
    exited: bool,
}

impl HookPipes {
    fn new(child: &mut std::process::Child) -> HookPipes {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
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
        HookPipes {
            open: [stdout.is_some(), stderr.is_some()],
            stdin,
            _stdout: stdout,
            _stderr: stderr,
            fds,
            bufs: [Vec::new(), Vec::new()],
            pidfd,
            exited: false,
        }
    }

    /// One poll: reads what stdout and stderr hold, writes what stdin takes
    /// of `input[written..]`, notes whether the hook exited.
    fn step(&mut self, wait_ms: i32, input: &[u8], written: &mut usize) {
        let watch = |fd: i32, on: bool, events| libc::pollfd {
            fd: if on { fd } else { -1 },
            events,
            revents: 0,
        };
        let mut pfds = [
            watch(self.fds[0], self.open[0], libc::POLLIN),
            watch(self.fds[1], self.open[1], libc::POLLIN),
            watch(
                self.pidfd.as_ref().map_or(-1, |p| p.as_raw_fd()),
                true,
                libc::POLLIN,
            ),
            watch(
                self.stdin.as_ref().map_or(-1, |s| s.as_raw_fd()),
                true,
                libc::POLLOUT,
            ),
        ];
        // SAFETY: four valid pollfds (negative fds are ignored).
        if unsafe { libc::poll(pfds.as_mut_ptr(), 4, wait_ms) } < 0 {
            return;
        }
        for (i, p) in pfds.iter().take(2).enumerate() {
            if p.revents != 0 {
                self.open[i] = drain(self.fds[i], &mut self.bufs[i]);
            }
        }
        if pfds[3].revents & libc::POLLOUT != 0 {
            if let Some(s) = self.stdin.as_mut() {
                match s.write(&input[*written..]) {
                    Ok(n) => *written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => self.stdin = None, // the hook does not read its stdin
                }
            }
        } else if pfds[3].revents != 0 {
            self.stdin = None;
        }
        if pfds[2].revents != 0 {
            self.exited = true;
        }
    }
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
