//! Reads of the driver's host files, every one inside the GPU root: a path
//! is resolved once with openat2(RESOLVE_IN_ROOT) and the file is then read
//! through the fd that walk returned. Nothing is reopened by its path: a
//! symlink swapped in between the check and the use would send that second
//! open outside the root (the shape of NVIDIA's CVE-2024-0132).
//!
//! A path is still needed where the spec records one: a bind-mount source
//! (`real_path`), which the container's init resolves again when it mounts
//! it. That is the name the kernel gives the fd (`/proc/self/fd/N`), so it
//! is the file the walk found, with every symlink already resolved.

use crate::util::fs::{open_dir_path, open_in_root};
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The GPU root (`/`, or a fake driver's root), opened once.
#[derive(Debug)]
pub struct HostRoot {
    path: PathBuf,
    fd: OwnedFd,
}

fn relative(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

fn not_regular(what: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{}: not a regular file", what.display()),
    )
}

/// Opened for reading without blocking on a FIFO or taking a terminal; a
/// file that is not regular is refused before anything is read.
/// The most of one driver file `read` takes in (the host's ld.so.cache is
/// the largest such file).
const MAX_READ: usize = 64 << 20;

const READ_FLAGS: i32 = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;

impl HostRoot {
    pub fn open(path: &Path) -> std::io::Result<HostRoot> {
        Ok(HostRoot {
            path: path.to_path_buf(),
            fd: open_dir_path(path)?,
        })
    }

    /// The root as given (for messages and the paths the spec records).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` (a leading `/` is ignored) resolved inside the root.
    fn resolve(&self, rel: &Path, flags: i32) -> std::io::Result<OwnedFd> {
        open_in_root(self.fd.as_raw_fd(), relative(rel), flags)
    }

    /// An O_PATH fd of `rel`: it exists inside the root.
    pub fn open_path(&self, rel: &Path) -> std::io::Result<OwnedFd> {
        self.resolve(rel, libc::O_PATH)
    }

    /// The regular file `rel`, open for reading.
    pub fn open_file(&self, rel: &Path) -> std::io::Result<File> {
        Ok(self.open_sized(rel)?.0)
    }

    /// The regular file `rel`, open for reading, and its size.
    fn open_sized(&self, rel: &Path) -> std::io::Result<(File, u64)> {
        let f = File::from(self.resolve(rel, READ_FLAGS)?);
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(not_regular(rel));
        }
        Ok((f, meta.len()))
    }

    /// The regular file `rel`, whole (/proc's files report size 0: read
    /// until the end all the same).
    pub fn read(&self, rel: &Path) -> std::io::Result<Vec<u8>> {
        let (f, size) = self.open_sized(rel)?;
        let hint = usize::try_from(size).unwrap_or(0).max(4095) + 1;
        crate::util::fs::read_fd(&OwnedFd::from(f), hint, MAX_READ)
    }

    pub fn read_to_string(&self, rel: &Path) -> std::io::Result<String> {
        String::from_utf8(self.read(rel)?)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
    }

    /// What `rel` is (symlinks followed inside the root).
    pub fn metadata(&self, rel: &Path) -> std::io::Result<Metadata> {
        File::from(self.open_path(rel)?).metadata()
    }

    /// The directory `rel`, listed through its fd.
    pub fn read_dir(&self, rel: &Path) -> std::io::Result<HostDir> {
        let fd = self.resolve(rel, libc::O_RDONLY | libc::O_DIRECTORY)?;
        let entries = list(&fd)?;
        Ok(HostDir { fd, entries })
    }

    /// The real host path of `rel`, symlinks resolved inside the root: for
    /// a bind-mount source the spec records. None when it does not exist.
    pub fn real_path(&self, rel: &Path) -> Option<PathBuf> {
        fd_path(&self.open_path(rel).ok()?)
    }

    /// The regular file at `real` (a path `real_path` gave), opened again
    /// inside the root: a path outside the root is refused.
    pub fn open_real(&self, real: &Path) -> std::io::Result<File> {
        let root = fd_path(&self.fd).unwrap_or_else(|| self.path.clone());
        let rel = real.strip_prefix(&root).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not under {}", real.display(), root.display()),
            )
        })?;
        self.open_file(rel)
    }
}

/// The path the kernel names for an open file (its `/proc/self/fd` link).
pub fn fd_path(fd: &impl AsRawFd) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    /// The entry itself (a symlink is not followed).
    pub kind: Kind,
}

/// An open directory and its entries (without `.` and `..`).
#[derive(Debug)]
pub struct HostDir {
    fd: OwnedFd,
    entries: Vec<Entry>,
}

impl HostDir {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// (device, inode) of the directory: the same directory reached by
    /// two paths has one identity.
    pub fn identity(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = fstat(&self.fd)?;
        Some((m.dev(), m.ino()))
    }

    /// The target of the symlink `name` in this directory.
    pub fn read_link(&self, name: &OsStr) -> Option<PathBuf> {
        nix::fcntl::readlinkat(Some(self.fd.as_raw_fd()), name)
            .ok()
            .map(PathBuf::from)
    }

    /// The regular file `name` of this directory (a symlink is refused),
    /// read through the directory's fd.
    pub fn read(&self, name: &OsStr) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_file(name)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// The regular file `name` of this directory (a symlink is refused),
    /// opened for reading through the directory's fd.
    pub fn open_file(&self, name: &OsStr) -> std::io::Result<File> {
        let c = std::ffi::CString::new(name.as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: a directory fd we own and a NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                READ_FLAGS | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: openat returned a new fd.
        let f = unsafe { File::from_raw_fd(fd) };
        if !f.metadata()?.is_file() {
            return Err(not_regular(Path::new(name)));
        }
        Ok(f)
    }
}

fn fstat(fd: &OwnedFd) -> Option<Metadata> {
    File::from(fd.try_clone().ok()?).metadata().ok()
}

/// The entries of an open directory, read with getdents64.
fn list(fd: &OwnedFd) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: a directory fd we own and a buffer of the length passed.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(out);
        }
        // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
        let mut at = 0;
        while at + 19 <= n as usize {
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            if reclen < 19 || at + reclen > n as usize {
                break;
            }
            let typ = buf[at + 18];
            let raw = &buf[at + 19..at + reclen];
            let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
            at += reclen;
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsString::from_vec(name.to_vec());
            let kind = match typ {
                libc::DT_REG => Kind::File,
                libc::DT_DIR => Kind::Dir,
                libc::DT_LNK => Kind::Symlink,
                libc::DT_UNKNOWN => kind_at(fd, &name),
                _ => Kind::Other,
            };
            out.push(Entry { name, kind });
        }
    }
}

/// For file systems that leave the type out of the listing.
fn kind_at(dir: &OwnedFd, name: &OsStr) -> Kind {
    let st = nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    match st.map(|s| s.st_mode & libc::S_IFMT) {
        Ok(libc::S_IFREG) => Kind::File,
        Ok(libc::S_IFDIR) => Kind::Dir,
        Ok(libc::S_IFLNK) => Kind::Symlink,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A file checked and opened inside the root is read through that fd:
    /// swapping a directory on its path for a symlink to the outside
    /// afterwards changes nothing (reopening the checked path would read
    /// the outside file: the CVE-2024-0132 shape), and a new lookup of the
    /// same name stays inside the root.
    #[test]
    fn a_swap_after_the_open_does_not_reach_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("lib/libx.so"), "inside").unwrap();
        std::fs::write(outside.join("libx.so"), "outside").unwrap();
        let host = HostRoot::open(&root).unwrap();
        let checked = host.real_path(Path::new("/lib/libx.so")).unwrap();
        let mut f = host.open_file(Path::new("/lib/libx.so")).unwrap();
        std::fs::rename(root.join("lib"), root.join("lib.old")).unwrap();
        symlink(&outside, root.join("lib")).unwrap();
        assert_eq!(std::fs::read(&checked).unwrap(), b"outside");
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "inside");
        let again = host.read_to_string(Path::new("lib/libx.so"));
        assert_eq!(
            again.unwrap_err().kind(),
            std::io::ErrorKind::NotFound,
            "the absolute link resolves under the root, where there is no such file"
        );
        // `..` stops at the root too.
        symlink("../../../../outside/libx.so", root.join("dots")).unwrap();
        assert!(host.read(Path::new("dots")).is_err());
        assert_eq!(host.real_path(Path::new("dots")), None);
    }

    #[test]
    fn directories_are_listed_and_read_through_their_fd() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("d/sub")).unwrap();
        std::fs::write(root.join("d/f"), "file").unwrap();
        symlink("/etc/passwd", root.join("d/link")).unwrap();
        let host = HostRoot::open(root).unwrap();
        let d = host.read_dir(Path::new("d")).unwrap();
        let mut got: Vec<(String, Kind)> = d
            .entries()
            .iter()
            .map(|e| (e.name.to_string_lossy().into_owned(), e.kind))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                ("f".to_string(), Kind::File),
                ("link".to_string(), Kind::Symlink),
                ("sub".to_string(), Kind::Dir)
            ]
        );
        assert_eq!(d.read(OsStr::new("f")).unwrap(), b"file");
        // A symlink in the listing is not followed (to the host's /etc).
        assert!(d.read(OsStr::new("link")).is_err());
        assert!(d.read(OsStr::new("sub")).is_err());
        assert_eq!(
            d.read_link(OsStr::new("link")),
            Some(PathBuf::from("/etc/passwd"))
        );
        assert_eq!(
            host.real_path(Path::new("/d/f")),
            Some(std::fs::canonicalize(root.join("d/f")).unwrap())
        );
        let again = host.read_dir(Path::new("/d/sub/..")).unwrap();
        assert_eq!(again.identity(), d.identity());
        assert!(host.read_dir(Path::new("d/f")).is_err());
        assert!(host.open_file(Path::new("d")).is_err());
        // A real path opens again inside the root; one outside does not.
        let real = host.real_path(Path::new("/d/f")).unwrap();
        let mut text = String::new();
        let mut f = host.open_real(&real).unwrap();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "file");
        assert!(host.open_real(Path::new("/etc/passwd")).is_err());
    }
}
