//! Running OCI hooks: the container state on stdin, the hook's own args and
//! env (never the container's or vessel's environment), and its timeout.

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::{Read, Write};
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
/// Hooks run with the bundle as working directory, as runc runs them.
pub fn run_all(kind: Kind, hooks: &[Hook], state_json: &[u8], bundle: &Path) -> Result<()> {
    for (index, hook) in hooks.iter().enumerate() {
        run_one(hook, state_json, bundle).map_err(|why| Error::Hook {
            kind: kind.name(),
            index,
            path: hook.path().display().to_string(),
            why,
        })?;
    }
    Ok(())
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
    // A hook that exits without reading its stdin must not fail us (EPIPE).
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state_json);
    }
    let timeout = hook
        .timeout()
        .filter(|&t| t > 0)
        .map(|t| Duration::from_secs(t as u64));
    if let Some(timeout) = timeout {
        if !wait_exit(child.id() as i32, timeout) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", timeout.as_secs()));
        }
    }
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let status = child.wait().map_err(|e| format!("waiting: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let output = format!("{}{}", out.trim(), err.trim());
    Err(if output.is_empty() {
        format!("failed: {status}")
    } else {
        format!("failed: {status}: {output}")
    })
}

/// Waits for a child to exit (without reaping it) up to `timeout`.
fn wait_exit(pid: i32, timeout: Duration) -> bool {
    // SAFETY: pidfd_open returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if raw < 0 {
        return true; // cannot watch it: fall back to an unbounded wait
    }
    // SAFETY: raw is a fresh fd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return true;
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return true;
        }
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
