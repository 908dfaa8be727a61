//! The procfs that vessel writes sysctls, LSM labels and oom_score_adj
//! through: the host's /proc, opened before the container's mounts exist
//! (before any setns into a mount namespace and before pivot_root), so no
//! mount of the bundle can stand in for it.
//!
//! Every file is opened from that fd with `RESOLVE_BENEATH |
//! RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS`: a mount over any part of the
//! path (a bind of another procfs file over a sysctl, CVE-2025-52881's
//! shape) fails the lookup instead of receiving the write. Sysctls under
//! `/proc/sys` act on the writer's namespaces (net, ipc, uts), whichever
//! procfs instance they are opened through.

use crate::util::mount;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// procfs's root directory inode number (PROC_ROOT_INO).
const PROC_ROOT_INO: libc::ino_t = 1;

pub struct ProcFs(OwnedFd);

impl ProcFs {
    /// The root of the procfs mounted at /proc in this process's current
    /// mount namespace; refused unless it really is procfs's root.
    pub fn open() -> io::Result<ProcFs> {
        Self::open_at(Path::new("/proc"))
    }

    fn open_at(path: &Path) -> io::Result<ProcFs> {
        let c = crate::util::fs::cstr(path);
        // SAFETY: a valid C string and flags.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = mount::stat(fd.as_raw_fd())?;
        if mount::fs_type(fd.as_raw_fd())? != libc::PROC_SUPER_MAGIC || st.st_ino != PROC_ROOT_INO {
            return Err(io::Error::other(format!(
                "{} is not the root of a procfs",
                path.display()
            )));
        }
        Ok(ProcFs(fd))
    }

    /// Opens `rel` (e.g. `sys/net/ipv4/ip_forward`, `self/attr/exec`) below
    /// the procfs root, through no mount point and no magic link.
    fn open_file(&self, rel: &str, flags: i32) -> io::Result<OwnedFd> {
        let c = std::ffi::CString::new(rel)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: zeroed open_how, then its fields set.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_XDEV | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: valid path pointer and open_how struct of the size we pass.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.0.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EXDEV) {
                return Err(io::Error::other(format!(
                    "/proc/{rel}: something is mounted over it (refused)"
                )));
            }
            return Err(e);
        }
        // SAFETY: the kernel returned a new fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        if mount::fs_type(fd.as_raw_fd())? != libc::PROC_SUPER_MAGIC {
            return Err(io::Error::other(format!("/proc/{rel} is not on procfs")));
        }
        Ok(fd)
    }

    /// Writes `value` to `/proc/<rel>` in one write, as the kernel expects.
    pub fn write(&self, rel: &str, value: &str) -> io::Result<()> {
        let fd = self.open_file(rel, libc::O_WRONLY)?;
        std::fs::File::from(fd).write_all(value.as_bytes())
    }

    /// The plan's sysctls (paths below /proc/sys), in order.
    pub fn write_sysctls(&self, sysctls: &[(String, String)]) -> crate::error::Result<()> {
        for (path, value) in sysctls {
            self.write(&format!("sys/{path}"), value).map_err(|e| {
                crate::error::Error::invalid(format!(
                    "linux.sysctl {}={value}: {e}",
                    path.replace('/', ".")
                ))
            })?;
        }
        Ok(())
    }

    /// Whether `/proc/<rel>` exists (through no mount point).
    pub fn exists(&self, rel: &str) -> bool {
        self.open_file(rel, libc::O_PATH).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_opens_and_a_plain_directory_is_refused() {
        let proc = ProcFs::open().unwrap();
        assert!(proc.exists("self/status"));
        assert!(!proc.exists("self/no-such-file"));
        // A procfs file's parent directory that is not procfs's root.
        assert!(ProcFs::open_at(Path::new("/proc/self")).is_err());
        let tmp = tempfile::tempdir().unwrap();
        assert!(ProcFs::open_at(tmp.path()).is_err());
    }

    #[test]
    fn paths_that_leave_proc_are_refused() {
        let proc = ProcFs::open().unwrap();
        assert!(!proc.exists("../etc/passwd"));
        assert!(!proc.exists("/etc/passwd"));
        // A magic link out of procfs.
        assert!(!proc.exists("self/cwd/Cargo.toml"));
    }
}
