//! Terminals: a pty made inside the container's devpts, its master sent to
//! the caller's `--console-socket` (one SCM_RIGHTS message, the shape
//! containerd's shim and conmon expect), its slave made the process's
//! controlling terminal and stdio.

use crate::error::{Error, Result};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Connects to the console socket (in the runtime's mount namespace, before
/// clone), so the child can send the master over it later.
pub fn connect(path: &std::path::Path) -> Result<OwnedFd> {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Error::invalid(format!("--console-socket {}: {e}", path.display())))?;
    Ok(stream.into())
}

/// Opens a new pty in the container's /dev/ptmx; returns (master, slave).
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let ptmx = c"/dev/ptmx";
    // SAFETY: open with a valid path.
    let master = unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(Error::invalid(format!(
            "terminal: opening /dev/ptmx: {} (is devpts mounted at /dev/pts?)",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a fresh fd.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(Error::invalid(format!(
            "terminal: unlocking the pty: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: TIOCGPTPEER returns a new fd for the slave without a path lookup.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(Error::invalid(format!(
            "terminal: opening the pty slave: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a fresh fd.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

/// The slave's path inside the container (`/dev/pts/N`).
pub fn slave_name(master: &OwnedFd) -> Result<String> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } != 0 {
        return Err(Error::invalid(format!(
            "terminal: TIOCGPTN: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(format!("/dev/pts/{n}"))
}

pub fn set_size(fd: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Sends the master over the console socket.
pub fn send_master(socket: &OwnedFd, master: &OwnedFd, name: &str) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::sys("terminal: sending the pty master over --console-socket", e))?;
    Ok(())
}

/// The whole terminal setup of a process: a new pty, sized as the process
/// asks, its master sent over `socket`, its slave bound to /dev/console
/// (for the init process) and made the controlling terminal and stdio.
pub fn setup(socket: &OwnedFd, process: &oci_spec::runtime::Process, console: bool) -> Result<()> {
    let (master, slave) = open_pty()?;
    if let Some(size) = process.console_size() {
        set_size(&master, size.height() as u16, size.width() as u16);
    }
    let name = slave_name(&master)?;
    if console && std::path::Path::new("/dev/console").exists() {
        nix::mount::mount(
            Some(name.as_str()),
            "/dev/console",
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| Error::sys(format!("binding {name} to /dev/console"), e))?;
    }
    send_master(socket, &master, &name)?;
    drop(master);
    become_terminal(&slave)
}

/// Makes the slave the controlling terminal and stdin/stdout/stderr.
pub fn become_terminal(slave: &OwnedFd) -> Result<()> {
    // SAFETY: TIOCSCTTY on the slave of a session leader; dup2 onto 0-2.
    unsafe {
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) != 0 {
            return Err(Error::invalid(format!(
                "terminal: TIOCSCTTY: {}",
                std::io::Error::last_os_error()
            )));
        }
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(Error::invalid(format!(
                    "terminal: dup2: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
    }
    Ok(())
}
