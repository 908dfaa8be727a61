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
    // Whatever the container's /dev/ptmx names, only the kernel's pty
    // multiplexer (5:2, also as devpts's own ptmx) hands out a pty.
    let is_ptmx = crate::util::mount::stat(master.as_raw_fd())
        .is_ok_and(|st| crate::util::mount::is_char_device(&st, 5, 2));
    if !is_ptmx {
        return Err(Error::invalid(
            "terminal: the container's /dev/ptmx is not the pty multiplexer (character device 5:2)",
        ));
    }
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
pub fn setup(socket: &OwnedFd, process: &crate::plan::ProcessPlan, console: bool) -> Result<()> {
    let (master, slave) = open_pty()?;
    if let Some((rows, cols)) = process.console_size {
        set_size(&master, rows, cols);
    }
    let name = slave_name(&master)?;
    if console {
        bind_console(&slave, &name)?;
    }
    send_master(socket, &master, &name)?;
    drop(master);
    become_terminal(&slave)
}

/// Binds the pty's slave, by its fd (never by its `/dev/pts/N` name, which
/// a bundle's devpts could make a symlink: runc's CVE-2025-52565), over the
/// container's `/dev/console`, which must be the file vessel made there or
/// a device node: not a symlink, so the bind cannot land elsewhere.
fn bind_console(slave: &OwnedFd, name: &str) -> Result<()> {
    let root = crate::util::fs::open_dir_path(std::path::Path::new("/"))
        .map_err(|e| Error::io("opening", "/", e))?;
    let console = match crate::util::fs::open_no_symlinks(
        root.as_raw_fd(),
        std::path::Path::new("dev/console"),
        libc::O_PATH,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::invalid(format!(
                "terminal: the container's /dev/console: {e} (a symlink is refused)"
            )))
        }
    };
    let kind = crate::util::mount::stat(console.as_raw_fd())
        .map(|st| st.st_mode & libc::S_IFMT)
        .map_err(|e| Error::os("terminal: the container's /dev/console", e))?;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        return Err(Error::invalid(
            "terminal: the container's /dev/console is neither a file nor a device",
        ));
    }
    crate::util::mount::bind(slave.as_raw_fd(), console.as_raw_fd(), false)
        .map_err(|e| Error::os(format!("terminal: binding {name} to /dev/console"), e))
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
