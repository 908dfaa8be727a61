//! The parent/child protocol over one SOCK_SEQPACKET socketpair.
//!
//! | step | from   | message      | meaning                                            |
//! |------|--------|--------------|----------------------------------------------------|
//! | 1    | parent | `Go`         | child is in its cgroup; start setting up           |
//! | 2    | child  | `MountsDone` | rootfs mounted, not pivoted: run createRuntime     |
//! | 3    | parent | `HooksDone`  | prestart and createRuntime hooks ran               |
//! | 4    | child  | `Ready`      | about to block on exec.fifo until `start`          |
//! | any  | either | `Error`      | payload: the message; the receiver gives up        |
//!
//! Each receive names what it expects, so a protocol error says what came instead.

use crate::error::{Error, Result};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Go,
    MountsDone,
    HooksDone,
    Ready,
    Error(String),
}

impl Msg {
    fn tag(&self) -> u8 {
        match self {
            Msg::Go => 1,
            Msg::MountsDone => 2,
            Msg::HooksDone => 3,
            Msg::Ready => 4,
            Msg::Error(_) => 5,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Msg::Go => "go",
            Msg::MountsDone => "mounts-done",
            Msg::HooksDone => "hooks-done",
            Msg::Ready => "ready",
            Msg::Error(_) => "error",
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

const MAX: usize = 1 << 20;

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let mut buf = vec![msg.tag()];
        // Far below the socket's message size limit.
        if let Msg::Error(s) = msg {
            buf.extend_from_slice(&s.as_bytes()[..s.len().min(32 * 1024)]);
        }
        send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL)
            .map_err(|e| Error::sys("sync socket: sending", e))?;
        Ok(())
    }

    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; MAX];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.map_err(|e| Error::sys("sync socket: receiving", e))?,
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
            t => return Err(Error::Init(format!("sync socket: unknown message tag {t}"))),
        }))
    }

    /// Receives and checks the next message: an `Error` from the other side
    /// becomes this side's error; anything else unexpected is named.
    pub fn expect(&self, want: &Msg, peer: &str) -> Result<Msg> {
        match self.recv()? {
            Some(Msg::Error(e)) => Err(Error::Init(e)),
            Some(m) if m.tag() == want.tag() => Ok(m),
            Some(m) => Err(Error::Init(format!(
                "sync: expected {} from {peer}, got {}",
                want.name(),
                m.name()
            ))),
            None => Err(Error::Init(format!(
                "{peer} exited before sending {}",
                want.name()
            ))),
        }
    }
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
        drop(a);
        assert!(b
            .expect(&Msg::Ready, "child")
            .unwrap_err()
            .to_string()
            .contains("exited"));
    }
}
