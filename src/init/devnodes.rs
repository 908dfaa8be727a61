//! Device nodes in the container's /dev: runc's defaults and links, and
//! `linux.devices`, made with mknod or, in a user namespace, bound from the
//! host.

use super::fsutil::{ensure_in_root, fd_path, Leaf};
use crate::error::{Error, Result, SysContext};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

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
    let dirpath = fd_path(&dir);
    let full = dirpath.join(name);
    let _ = nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    match mknod(&full, kind, perm, makedev(major, minor)) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if kind != SFlag::S_IFIFO => {
            // In a user namespace: bind the host's node (same path, or the
            // /dev/char|block/M:m link), which keeps the host's mode and owner.
            let want = makedev(major, minor);
            let is_it = |p: &Path| {
                nix::sys::stat::stat(p)
                    .is_ok_and(|st| st.st_rdev == want && st.st_mode & libc::S_IFMT == kind.bits())
            };
            let by_number = PathBuf::from(if kind == SFlag::S_IFCHR {
                "/dev/char"
            } else {
                "/dev/block"
            })
            .join(format!("{major}:{minor}"));
            let host = [path.to_path_buf(), by_number]
                .into_iter()
                .find(|p| is_it(p))
                .ok_or_else(|| Error::invalid(format!("{}: cannot mknod in a user namespace and the host has no such device to bind", path.display())))?;
            std::fs::File::create(&full).map_err(|e| Error::io("creating", &full, e))?;
            mount(Some(&host), &full, NONE, MsFlags::MS_BIND, NONE)
                .sys(|| format!("binding {}", host.display()))?;
            return Ok(());
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
