//! Mounts made between fds with the kernel's mount API (open_tree,
//! move_mount, fsopen/fsmount, mount_setattr), never through a path.
//!
//! After pivot_root a `/proc/self/fd/N` path is looked up in the
//! container's own /proc, which a bundle's mounts can cover (a bind over
//! `/proc/1/fd` turns "fd N" into any file the bundle likes: the family of
//! runc's CVE-2025-31133, -52565 and -52881). With these calls the file
//! that was opened and checked is exactly the one that is mounted, and the
//! mount lands exactly on the fd that was resolved inside the rootfs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// From <linux/mount.h>; not all are exported by the libc crate.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
pub const MOUNT_ATTR_RDONLY: u64 = 0x01;

fn fd_or_error(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

fn ok_or_error(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A detached copy of the mount (and with `recursive` the mounts below it)
/// at whatever `src` names: what `mount --bind` would attach.
pub fn clone_tree(src: RawFd, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: an fd, an empty C string with AT_EMPTY_PATH, and flags.
    fd_or_error(unsafe { libc::syscall(libc::SYS_open_tree, src, c"".as_ptr(), flags) })
}

/// Attaches the detached mount `tree` on top of what `target` names.
pub fn attach(tree: &OwnedFd, target: RawFd) -> io::Result<()> {
    // SAFETY: two fds and empty paths with the matching EMPTY_PATH flags.
    ok_or_error(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
}

/// `mount --bind SRC TARGET` between two fds.
pub fn bind(src: RawFd, target: RawFd, recursive: bool) -> io::Result<()> {
    attach(&clone_tree(src, recursive)?, target)
}

/// mount_setattr(2) on the mount `fd` names (a detached one too): sets
/// and clears MOUNT_ATTR_* flags and leaves the others, locked ones
/// included, as they are.
pub fn set_attrs(fd: RawFd, set: u64, clear: u64, recursive: bool) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: a valid fd, an empty path with AT_EMPTY_PATH, and an attr struct of the size passed.
    ok_or_error(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

/// A new, detached instance of filesystem `fstype` with string options
/// (`source` names it in mountinfo) and MOUNT_ATTR_* flags.
pub fn new_fs(
    fstype: &std::ffi::CStr,
    options: &[(&str, &str)],
    attrs: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: a valid C string and flags.
    let fs =
        fd_or_error(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    for (key, value) in options {
        let (key, value) = (cstring(key)?, cstring(value)?);
        // SAFETY: the fs context fd and two valid C strings.
        ok_or_error(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: the fs context fd and no key or value.
    ok_or_error(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: the created fs context fd, flags and attributes.
    fd_or_error(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

fn cstring(s: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// fstat of what an fd (O_PATH too) names.
pub fn stat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: fstat into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// The filesystem magic of what an fd names.
pub fn fs_type(fd: RawFd) -> io::Result<libc::c_long> {
    // SAFETY: fstatfs into a zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as libc::c_long)
}

/// Whether `st` is the character device `major:minor`.
pub fn is_char_device(st: &libc::stat, major: u64, minor: u64) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && st.st_rdev == nix::sys::stat::makedev(major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_null_device_is_recognised_and_a_file_is_not() {
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(is_char_device(&stat(null.as_raw_fd()).unwrap(), 1, 3));
        let tmp = tempfile::NamedTempFile::new().unwrap();
        assert!(!is_char_device(
            &stat(tmp.as_file().as_raw_fd()).unwrap(),
            1,
            3
        ));
    }
}
