//! Device nodes in the container's /dev: runc's defaults and links, and
//! `linux.devices`, made with mknod or, in a user namespace, bound from the
//! host.

use crate::error::{Error, Result, SysContext};
use crate::util::fs::{ensure_in_root, Leaf};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

pub(super) fn default_devices(root: i32, terminal: bool) -> Result<()> {
    for (name, major, minor) in DEFAULT_DEVICES {
        make_node(
            root,
            &Path::new("/dev").join(name),
            SFlag::S_IFCHR,
            0o666,
            major,
            minor,
        )?;
    }
    let dev = ensure_in_root(root, Path::new("/dev"), Leaf::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        if let Err(e) = nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
            if e != nix::errno::Errno::EEXIST {
                return Err(Error::invalid(format!("/dev/{name}: {e}")));
            }
        }
    }
    if terminal {
        // The console is bind-mounted from the pty later; make its mount point.
        ensure_in_root(root, Path::new("/dev/console"), Leaf::File)?;
    }
    Ok(())
}

/// mknod inside the rootfs; an existing entry is replaced. In a user
/// namespace (EPERM) the host's node is bind-mounted instead.
pub(super) fn make_node(
    root: i32,
    path: &Path,
    kind: SFlag,
    mode: u32,
    major: u64,
    minor: u64,
) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{}: no file name", path.display())))?;
    let dir = ensure_in_root(root, parent, Leaf::Dir)?;
    let _ = nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    match mknodat(
        Some(dir.as_raw_fd()),
        name,
        kind,
        perm,
        makedev(major, minor),
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if kind != SFlag::S_IFIFO => {
            return bind_host_node(&dir, name, path, kind, major, minor)
        }
        Err(e) => return Err(Error::sys(format!("mknod {}", path.display()), e)),
    }
    // mknod honours the umask; the spec's mode is what the node must have.
    nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        perm,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .sys(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// In a user namespace (no mknod): binds the host's node (same path, or
/// the /dev/char|block/M:m link), which keeps the host's mode and owner.
/// The host node is opened once and checked, and that fd is what is bound,
/// onto a file created here without following a symlink.
fn bind_host_node(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
) -> Result<()> {
    let want = makedev(major, minor);
    let by_number = PathBuf::from(if kind == SFlag::S_IFCHR {
        "/dev/char"
    } else {
        "/dev/block"
    })
    .join(format!("{major}:{minor}"));
    let host = [path.to_path_buf(), by_number]
        .into_iter()
        .filter_map(|p| open_dir_path_or_file(&p).ok())
        .find(|fd| {
            crate::util::mount::stat(fd.as_raw_fd())
                .is_ok_and(|st| st.st_rdev == want && st.st_mode & libc::S_IFMT == kind.bits())
        })
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: cannot mknod in a user namespace and the host has no such device to bind",
                path.display()
            ))
        })?;
    let cname = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| Error::invalid(format!("{}: NUL in path", path.display())))?;
    // SAFETY: a directory fd and a valid C string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::os(format!("creating {}", path.display()), e));
    }
    // SAFETY: a fresh fd.
    let target = unsafe { OwnedFd::from_raw_fd(fd) };
    crate::util::mount::bind(host.as_raw_fd(), target.as_raw_fd(), false)
        .map_err(|e| Error::os(format!("binding the host's {}", path.display()), e))
}

/// An O_PATH fd of a host path (a device node here), following symlinks
/// as the host's own /dev links intend.
fn open_dir_path_or_file(p: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(p)
        .map(OwnedFd::from)
}
