//! The parent/child protocol over one SOCK_SEQPACKET socketpair.
//!
//! | step | from   | message      | meaning                                            |
//! |------|--------|--------------|----------------------------------------------------|
//! | 1    | parent | `Go`         | child is in its cgroup; start setting up           |
//! | 2    | child  | `MountsDone` | rootfs mounted, not pivoted: run createRuntime     |
//! | 3    | parent | `HooksDone`  | prestart and createRuntime hooks ran               |
//! | 3a   | child  | `SeccompFd`  | (notify filters) the listener fd, via SCM_RIGHTS   |
//! | 3b   | parent | `SeccompDone`| the fd reached linux.seccomp.listenerPath          |
//! | 4    | child  | `Ready`      | about to block on exec.fifo until `start`          |
//! | any  | either | `Error`      | payload: the message; the receiver gives up        |
//! | any  | child  | `Log`        | a warning or debug line for the parent's `--log`   |
//!
//! `exec` uses the same socket: the parent sends `Go` once the child is in
//! the container's cgroups; the child may send `SeccompFd` (answered by
//! `SeccompDone`) and `Log`s, then `Error`, or nothing: the socket closes on
//! execve, and that end of file means the process runs.
//!
//! The child's log lines travel here because its filesystem is the
//! container's: the `--log` path is the parent's to write (crun does the
//! same). `recv` hands each `Log` to `crate::log` and goes on waiting, so
//! every wait below sees only the protocol's steps.
//!
//! Each receive names what it expects, so a protocol error says what came instead.

use crate::error::{Error, Result};
use nix::sys::socket::{
    recvmsg, send, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Go,
    MountsDone,
    HooksDone,
    Ready,
    /// The seccomp listener fd received with the message (owned by the receiver).
    SeccompFd(i32),
    SeccompDone,
    Error(String),
    /// (level, text) of a line the child logs.
    Log(String, String),
}

impl Msg {
    fn tag(&self) -> u8 {
        match self {
            Msg::Go => 1,
            Msg::MountsDone => 2,
            Msg::HooksDone => 3,
            Msg::Ready => 4,
            Msg::Error(_) => 5,
            Msg::SeccompFd(_) => 6,
            Msg::SeccompDone => 7,
            Msg::Log(..) => 8,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Msg::Go => "go",
            Msg::MountsDone => "mounts-done",
            Msg::HooksDone => "hooks-done",
            Msg::Ready => "ready",
            Msg::Error(_) => "error",
            Msg::SeccompFd(_) => "seccomp-fd",
            Msg::SeccompDone => "seccomp-done",
            Msg::Log(..) => "log",
        }
    }
}

pub struct Channel {
    fd: OwnedFd,
}

/// Creates the (parent, child) ends; both close on exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("creating the sync socketpair", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

/// The longest text a message carries; longer ones are cut there.
const MAX_TEXT: usize = 32 * 1024;
/// The largest message: a tag, a log level and its separator, the text.
const MAX: usize = 1 + 16 + MAX_TEXT;

fn cut(s: &str) -> &[u8] {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        send_on(self.fd.as_raw_fd(), msg)
    }

    /// Sends `SeccompFd` with the fd attached.
    pub fn send_fd(&self, fd: &OwnedFd) -> Result<()> {
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [std::io::IoSlice::new(&[6u8])];
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| Error::sys("sync socket: sending the seccomp fd", e))?;
        Ok(())
    }

    /// The next protocol message; `Log` lines on the way are written to
    /// this process's log.
    pub fn recv(&self) -> Result<Option<Msg>> {
        loop {
            match self.recv_one()? {
                Some(Msg::Log(level, text)) => crate::log::relayed(&level, &text),
                other => return Ok(other),
            }
        }
    }

    fn recv_one(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; MAX];
        let mut cmsg_buf = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let (n, passed) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_buf),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("sync socket: receiving", e)),
                Ok(m) => {
                    let mut fd = None;
                    for c in m.cmsgs().into_iter().flatten() {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            fd = fds.first().copied();
                        }
                    }
                    break (m.bytes, fd);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let payload = buf[1..n].to_vec();
        Ok(Some(match buf[0] {
            1 => Msg::Go,
            2 => Msg::MountsDone,
            3 => Msg::HooksDone,
            4 => Msg::Ready,
            5 => Msg::Error(String::from_utf8_lossy(&payload).into_owned()),
            6 => Msg::SeccompFd(
                passed
                    .ok_or_else(|| Error::Init("sync socket: seccomp-fd without an fd".into()))?,
            ),
            7 => Msg::SeccompDone,
            8 => {
                let text = String::from_utf8_lossy(&payload).into_owned();
                let (level, text) = text.split_once('\0').unwrap_or(("warning", &text));
                Msg::Log(level.to_string(), text.to_string())
            }
            t => return Err(Error::Init(format!("sync socket: unknown message tag {t}"))),
        }))
    }

    /// `expect` for either of two messages.
    pub fn expect_either(&self, a: &Msg, b: &Msg, peer: &str) -> Result<Msg> {
        match self.recv()? {
            Some(Msg::Error(e)) => Err(Error::Init(e)),
            Some(m) if m.tag() == a.tag() || m.tag() == b.tag() => Ok(m),
            Some(m) => Err(Error::Init(format!(
                "sync: expected {} from {peer}, got {}",
                a.name(),
                m.name()
            ))),
            None => Err(Error::Init(format!(
                "{peer} exited before sending {}",
                a.name()
            ))),
        }
    }

    /// Receives and checks the next message: an `Error` from the other side
    /// becomes this side's error; anything else unexpected is named.
    pub fn expect(&self, want: &Msg, peer: &str) -> Result<Msg> {
        self.expect_either(want, want, peer)
    }
}

/// The child's end of the sync socket, for `relay_logs`.
static CHILD_END: AtomicI32 = AtomicI32::new(-1);

/// In the cloned child: its log lines go to the parent over `chan`.
pub fn relay_logs(chan: &Channel) {
    CHILD_END.store(chan.fd.as_raw_fd(), Ordering::Relaxed);
    crate::log::relay_through(Some(send_log));
}

/// Once the parent no longer reads: log lines go to stderr again.
pub fn stop_relaying_logs() {
    crate::log::relay_through(None);
}

fn send_log(level: &str, msg: &str) -> bool {
    let fd = CHILD_END.load(Ordering::Relaxed);
    fd >= 0 && send_on(fd, &Msg::Log(level.to_string(), msg.to_string())).is_ok()
}

/// Sends `msg` on the socket `fd`.
fn send_on(fd: std::os::fd::RawFd, msg: &Msg) -> Result<()> {
    let mut buf = vec![msg.tag()];
    match msg {
        Msg::Error(s) => buf.extend_from_slice(cut(s)),
        Msg::Log(level, text) => {
            buf.extend_from_slice(&level.as_bytes()[..level.len().min(15)]);
            buf.push(0);
            buf.extend_from_slice(cut(text));
        }
        _ => {}
    }
    send(fd, &buf, MsgFlags::MSG_NOSIGNAL).map_err(|e| Error::sys("sync socket: sending", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_errors_surface() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::HooksDone).unwrap();
        assert_eq!(b.expect(&Msg::HooksDone, "parent").unwrap(), Msg::HooksDone);
        a.send(&Msg::Ready).unwrap();
        let e = b.expect(&Msg::Go, "parent").unwrap_err().to_string();
        assert!(e.contains("expected go") && e.contains("got ready"), "{e}");
        a.send(&Msg::Error("boom".into())).unwrap();
        assert_eq!(
            b.expect(&Msg::Ready, "child").unwrap_err().to_string(),
            "boom"
        );
        // Log lines are consumed on the way to the next step.
        a.send(&Msg::Log("debug".into(), "a line".into())).unwrap();
        a.send(&Msg::Ready).unwrap();
        assert_eq!(b.expect(&Msg::Ready, "child").unwrap(), Msg::Ready);
        let long = "é".repeat(MAX_TEXT);
        a.send(&Msg::Error(long)).unwrap();
        let e = b.expect(&Msg::Ready, "child").unwrap_err().to_string();
        assert!(e.len() <= MAX_TEXT && e.starts_with('é'), "{}", e.len());
        drop(a);
        assert!(b
            .expect(&Msg::Ready, "child")
            .unwrap_err()
            .to_string()
            .contains("exited"));
    }
}
