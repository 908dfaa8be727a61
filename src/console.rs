//! A foreground `run`/`exec` with a terminal and no `--console-socket`:
//! vessel receives the pty master itself and relays between the caller's
//! terminal and the container (raw mode, window size changes, signals),
//! restoring the caller's terminal at the end.

use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// A console socket of vessel's own, listening until the master arrives.
pub struct OwnConsole {
    listener: UnixListener,
    pub path: PathBuf,
}

impl OwnConsole {
    pub fn listen(dir: &Path, id: &str) -> Result<OwnConsole> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let path = dir.join(format!(".console-{id}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| Error::io("binding", &path, e))?;
        Ok(OwnConsole { listener, path })
    }

    /// A foreground terminal without a console socket: vessel listens on
    /// its own and points `socket` at it, to relay itself.
    pub fn when_needed(
        dir: &Path,
        id: &str,
        foreground_terminal: bool,
        socket: &mut Option<PathBuf>,
    ) -> Result<Option<OwnConsole>> {
        if !foreground_terminal || socket.is_some() {
            return Ok(None);
        }
        let c = OwnConsole::listen(dir, id)?;
        *socket = Some(c.path.clone());
        Ok(Some(c))
    }

    /// Accepts the child's connection and takes the master it sends.
    pub fn receive(self) -> Result<OwnedFd> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
        let _ = std::fs::remove_file(&self.path);
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| Error::io("accepting on", &self.path, e))?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| Error::sys("receiving the pty master", e))?;
        for c in msg
            .cmsgs()
            .map_err(|e| Error::sys("reading the pty message", e))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just gave us this fd.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(Error::Init("the container sent no pty master".into()))
    }
}

impl Drop for OwnConsole {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Restores the caller's terminal settings when dropped.
struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        // SAFETY: termios calls on fd 0 with local structs.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawMode { saved: None };
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode { saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawMode { saved: Some(saved) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: restoring the settings read in `enter`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a local winsize.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        data = &data[n as usize..];
    }
}

/// Relays until `pid` exits; returns its exit code. All signals must be
/// blocked by the caller (`signals::block_all`).
pub fn relay_until_exit(master: OwnedFd, pid: i32, set: &libc::sigset_t) -> i32 {
    let _raw = RawMode::enter();
    copy_winsize(0, master.as_raw_fd());
    // SAFETY: signalfd over the blocked set.
    let sfd = unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC) };
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: three valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) };
        if n < 0 {
            continue;
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: reading into our buffer.
            let r = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                write_all(1, &buf[..r as usize]);
            } else {
                // EIO: every slave fd is closed, the process is gone or going.
                break;
            }
        }
        if fds[2].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            // SAFETY: reading into our buffer.
            let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                write_all(master.as_raw_fd(), &buf[..r as usize]);
            } else {
                stdin_open = false;
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            // SAFETY: signalfd_siginfo is plain data.
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: reading one siginfo.
            unsafe {
                libc::read(
                    sfd,
                    (&mut si as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of_val(&si),
                )
            };
            match si.ssi_signo as i32 {
                libc::SIGCHLD => {}
                libc::SIGWINCH => copy_winsize(0, master.as_raw_fd()),
                // SAFETY: forwarding to our own child.
                sig => unsafe {
                    libc::kill(pid, sig);
                },
            }
        }
    }
    // SAFETY: closing our signalfd.
    unsafe { libc::close(sfd) };
    drop(master);
    crate::signals::forward_until_exit(pid, set)
}
