//! Path handling inside a root (the rootfs, a GPU driver root): every
//! lookup is confined to the root with openat2(RESOLVE_IN_ROOT), so a
//! symlink in the image can never point a mount, mkdir, mknod or read at
//! the host.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes())
        .unwrap_or_else(|_| CString::new("/invalid-path-with-nul").unwrap())
}

/// openat2 with RESOLVE_IN_ROOT relative to `root`.
pub fn open_in_root(root: RawFd, rel: &Path, flags: i32) -> std::io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(
        root,
        rel,
        flags,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// openat2 relative to `root` that follows no symlink at all (and stays
/// below `root`): for files that must be exactly where they are named,
/// such as the container's `/dev/null` and `/dev/console`.
pub fn open_no_symlinks(root: RawFd, rel: &Path, flags: i32) -> std::io::Result<OwnedFd> {
    openat2(
        root,
        rel,
        flags,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
    )
}

fn openat2(root: RawFd, rel: &Path, flags: i32, resolve: u64) -> std::io::Result<OwnedFd> {
    let c = cstr(rel);
    // SAFETY: zeroed open_how, then its fields set.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: valid path pointer and open_how struct of the size we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// An O_PATH fd of the directory `dir`, for `open_in_root` lookups under it.
pub fn open_dir_path(dir: &Path) -> std::io::Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map(OwnedFd::from)
}

/// Reads the file open at `fd` to its end, at most `max` bytes, into a
/// buffer of `hint` bytes to start with: no size query first (std's
/// `read_to_end` asks fstat and lseek, two of the six syscalls a small
/// /proc file costs it), no regrowing when the hint is the size.
pub fn read_fd(fd: &OwnedFd, hint: usize, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(hint.clamp(64, max.max(64)));
    while buf.len() < max {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(max - buf.len()));
        }
        let spare = buf.capacity().min(max) - buf.len();
        // SAFETY: reads into the vector's spare capacity, then counts only
        // the bytes the kernel wrote.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf.as_mut_ptr().add(buf.len()).cast(),
                spare,
            )
        };
        match n {
            0 => break,
            n if n > 0 => unsafe { buf.set_len(buf.len() + n as usize) },
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(buf)
}

/// `/proc/self/fd/N`: a path that names exactly what `fd` names, for mount(2).
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The path relative to the rootfs (drops the leading `/`).
pub fn relative(dest: &Path) -> PathBuf {
    dest.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Dir,
    File,
}

/// Opens `dest` inside the rootfs as an O_PATH fd, creating missing
/// directories (and the leaf as `leaf`) without leaving the rootfs.
pub fn ensure_in_root(root: RawFd, dest: &Path, leaf: Leaf) -> std::io::Result<OwnedFd> {
    // Most destinations exist: one lookup (resolved inside the rootfs, as
    // the walk below resolves each component) instead of one per component.
    if let Ok(fd) = open_in_root(root, &relative(dest), libc::O_PATH) {
        return Ok(fd);
    }
    ensure_depth(root, dest, leaf, 0)
}

fn ensure_depth(root: RawFd, dest: &Path, leaf: Leaf, depth: u32) -> std::io::Result<OwnedFd> {
    if depth > 40 {
        return Err(std::io::Error::other(format!(
            "{}: too many levels of symbolic links",
            dest.display()
        )));
    }
    let rel = relative(dest);
    let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
    let mut cur = PathBuf::new();
    for (i, comp) in comps.iter().enumerate() {
        let parent = cur.clone();
        cur.push(comp);
        let last = i + 1 == comps.len();
        match open_in_root(root, &cur, libc::O_PATH) {
            Ok(fd) => {
                if last {
                    return Ok(fd);
                }
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(std::io::Error::other(format!("{}: {e}", dest.display()))),
        }
        let dir = open_in_root(root, &parent, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| {
            std::io::Error::other(format!(
                "{}: parent {}: {e}",
                dest.display(),
                parent.display()
            ))
        })?;
        let name = CString::new(comp.as_bytes())
            .map_err(|_| std::io::Error::other(format!("{}: NUL in path", dest.display())))?;
        match make_entry(&dir, &name, last && leaf == Leaf::File) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // A dangling symlink: create its target, resolved inside the rootfs.
                if let Ok(target) = nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_c_str()) {
                    let target = Path::new("/").join(&parent).join(PathBuf::from(target));
                    let kind = if last { leaf } else { Leaf::Dir };
                    ensure_depth(root, &target, kind, depth + 1)?;
                }
            }
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "creating {} in the rootfs: {e}",
                    dest.display()
                )))
            }
        }
        if last {
            return open_in_root(root, &cur, libc::O_PATH).map_err(|e| {
                std::io::Error::other(format!(
                    "{}: {e} (a dangling symlink in the image?)",
                    dest.display()
                ))
            });
        }
    }
    open_in_root(root, Path::new("."), libc::O_PATH)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", dest.display())))
}

/// A new directory, or with `file` an empty file (never through a
/// symlink), named `name` in `dir`.
fn make_entry(dir: &OwnedFd, name: &std::ffi::CStr, file: bool) -> std::io::Result<()> {
    // SAFETY: dir is a directory fd, name a valid C string.
    let rc = unsafe {
        if file {
            let fd = libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd.min(0)
        } else {
            libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755)
        }
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_cannot_leave_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        let rootfd = std::fs::File::open(&root).unwrap();
        let fd = ensure_in_root(rootfd.as_raw_fd(), Path::new("/evil/sub"), Leaf::Dir).unwrap();
        drop(fd);
        // The absolute symlink was followed inside the root: root/<outside path>/sub.
        assert!(!outside.join("sub").exists());
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("sub")
            .is_dir());
    }

    #[test]
    fn files_and_nested_dirs_are_created() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfd = std::fs::File::open(tmp.path()).unwrap();
        ensure_in_root(rootfd.as_raw_fd(), Path::new("/a/b/c"), Leaf::Dir).unwrap();
        ensure_in_root(rootfd.as_raw_fd(), Path::new("/a/f"), Leaf::File).unwrap();
        assert!(tmp.path().join("a/b/c").is_dir());
        assert!(tmp.path().join("a/f").is_file());
        ensure_in_root(
            rootfd.as_raw_fd(),
            Path::new("/../../a/b/c/../d"),
            Leaf::Dir,
        )
        .unwrap();
        assert!(tmp.path().join("a/b/d").is_dir());
    }
}
