//! Signal names as runc accepts them (`KILL`, `SIGKILL`, `9`, `RTMIN+3`),
//! and forwarding signals to a foreground container.

use crate::error::{Error, Result};

pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // 0 checks that the process exists, as kill(1) and runc allow.
        if n >= 0 && n <= libc::SIGRTMAX() {
            return Ok(n);
        }
        return Err(Error::invalid(format!("invalid signal {s:?}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('+')
                .parse()
                .map_err(|_| Error::invalid(format!("invalid signal {s:?}")))?
        };
        let n = libc::SIGRTMIN() + off;
        if n <= libc::SIGRTMAX() {
            return Ok(n);
        }
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('-')
                .parse()
                .map_err(|_| Error::invalid(format!("invalid signal {s:?}")))?
        };
        let n = libc::SIGRTMAX() - off;
        if n >= libc::SIGRTMIN() {
            return Ok(n);
        }
    }
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::invalid(format!("unknown signal {s:?}")))
}

/// Blocks every signal so the foreground `run` can take them with
/// sigwaitinfo and pass them on.
pub fn block_all() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Forwards signals to `pid` until it exits; returns its exit code
/// (128+N when killed by signal N).
pub fn forward_until_exit(pid: i32, set: &libc::sigset_t) -> i32 {
    loop {
        if let Some(code) = reap(pid) {
            return code;
        }
        // SAFETY: a zeroed siginfo for the kernel to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid set and siginfo pointer.
        let sig = unsafe { libc::sigwaitinfo(set, &mut info) };
        if sig <= 0 || sig == libc::SIGCHLD {
            continue;
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

fn reap(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == pid {
        if libc::WIFEXITED(status) {
            return Some(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            return Some(128 + libc::WTERMSIG(status));
        }
    }
    if r < 0 {
        return Some(255);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse("NOPE").is_err());
        assert_eq!(parse("0").unwrap(), 0);
        assert!(parse("-1").is_err());
        assert!(parse("999").is_err());
    }
}
