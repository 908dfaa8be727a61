//! The container image's side of GPU injection: where its libraries live
//! (Debian's `/usr/lib/x86_64-linux-gnu` or RHEL's `/usr/lib64`), which libc
//! it has, and its linker cache, which gets the driver libraries added.
//!
//! The cache is written from Rust (no `ldconfig` run, so nothing of the
//! image ever executes on the host's behalf) and replaced atomically inside
//! the rootfs, every path resolved with RESOLVE_IN_ROOT so an image's
//! symlinks cannot redirect the write (CVE-2025-23267's class of bug).

use super::ldcache::{self, Entry};
use super::ldcache_index;
use super::ldcache_memo::{self, Memo};
use crate::error::{Error, Result};
use crate::util::fs::{ensure_in_root, open_in_root, Leaf};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Libc {
    Glibc,
    Musl,
    /// No dynamic loader at all (static binaries only).
    Missing,
}

#[derive(Debug, Clone)]
pub struct Image {
    /// Where 64-bit driver libraries go.
    pub lib64: String,
    /// Where 32-bit (compat32) driver libraries go.
    pub lib32: String,
    /// The image's own cache (None: it has no usable cache).
    pub cache: Option<Cache>,
    pub libc: Libc,
    /// The digest of the entries the cache holds, from its memo
    /// (`ldcache_memo`); the cache itself is then not read (`cache` None)
    /// unless something has to be merged into it.
    pub held: Option<u64>,
}

impl Image {
    /// What the memo on the cache records of this inspection.
    pub fn memo(&self, digest: u64) -> Memo {
        Memo {
            digest,
            libc: self.libc,
            lib64: self.lib64.clone(),
            lib32: self.lib32.clone(),
        }
    }
}

/// An image's `/etc/ld.so.cache` as read: its bytes, known to be a cache
/// `ldcache_index` can use in place or, failing that, `ldcache` parses.
#[derive(Debug, Clone)]
pub struct Cache {
    pub bytes: Vec<u8>,
    /// Its layout, when it can be merged into in place.
    layout: Option<ldcache_index::Layout>,
    /// The file's size and modification time when it was read.
    stamp: (i64, i64, i64),
}

fn stamp_of(st: &libc::stat) -> (i64, i64, i64) {
    (st.st_size, st.st_mtime, st.st_mtime_nsec)
}

impl Cache {
    fn read(bytes: Vec<u8>, stamp: (i64, i64, i64)) -> Option<Cache> {
        let layout = ldcache_index::layout(&bytes);
        let usable = layout.is_some() || ldcache::parse(&bytes).is_ok();
        usable.then_some(Cache {
            bytes,
            layout,
            stamp,
        })
    }

    /// Its entries, parsed.
    pub fn entries(&self) -> Vec<Entry> {
        ldcache::parse(&self.bytes).unwrap_or_default()
    }

    /// The file of the plain `libc.so.6` entry, 64- or 32-bit.
    fn libc_file(&self, want64: bool) -> Option<String> {
        if let Some(layout) = &self.layout {
            let idx = layout.over(&self.bytes);
            return idx.lookup("libc.so.6", want64).map(String::from);
        }
        self.entries()
            .into_iter()
            .find(|e| {
                e.key == "libc.so.6"
                    && e.hwcap == 0
                    && e.is_x86_64() == want64
                    && (want64 || e.is_i386())
            })
            .map(|e| e.value)
    }
}

/// The most of an image's ld.so.cache that is read.
const MAX_CACHE: u64 = 64 << 20;

const LIB64_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/lib64",
];

fn open_root(rootfs: &Path) -> Result<OwnedFd> {
    crate::util::fs::open_dir_path(rootfs)
        .map_err(|e| Error::invalid(format!("rootfs {}: {e}", rootfs.display())))
}

fn exists(root: &OwnedFd, p: &str) -> bool {
    open_in_root(
        root.as_raw_fd(),
        Path::new(p.trim_start_matches('/')),
        libc::O_PATH,
    )
    .is_ok()
}

fn parent(p: &str) -> Option<String> {
    Path::new(p)
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
}

/// The cache open at `fd`, read whole (one read of the size fstat gives).
fn read_cache(fd: &OwnedFd, st: &libc::stat) -> Option<Cache> {
    let size = u64::try_from(st.st_size).ok()?.min(MAX_CACHE);
    let bytes = crate::util::fs::read_fd(fd, size as usize + 1, MAX_CACHE as usize).ok()?;
    Cache::read(bytes, stamp_of(st))
}

/// Puts `memo` on the image's cache, when the file is still the one
/// `image` read (the same size and modification time).
pub fn remember(rootfs: &Path, image: &Image, memo: &Memo) {
    let Some(read) = &image.cache else {
        return;
    };
    let Ok(root) = open_root(rootfs) else {
        return;
    };
    let cache = Path::new("etc/ld.so.cache");
    let Ok(fd) = open_in_root(root.as_raw_fd(), cache, libc::O_RDONLY | libc::O_NOFOLLOW) else {
        return;
    };
    let same = crate::util::mount::stat(fd.as_raw_fd()).is_ok_and(|st| stamp_of(&st) == read.stamp);
    if same {
        ldcache_memo::write(fd.as_raw_fd(), memo);
    }
}

/// Reads what injection needs to know about the image at `rootfs`. With
/// `use_memo`, a valid memo on the image's cache stands for reading it.
pub fn inspect(rootfs: &Path, use_memo: bool) -> Result<Image> {
    let root = open_root(rootfs)?;
    let mut cache = None;
    if let Ok(fd) = open_in_root(
        root.as_raw_fd(),
        Path::new("etc/ld.so.cache"),
        libc::O_RDONLY,
    ) {
        let st = crate::util::mount::stat(fd.as_raw_fd()).ok();
        let memo = st
            .as_ref()
            .filter(|_| use_memo)
            .and_then(|st| ldcache_memo::read(fd.as_raw_fd(), st));
        if let Some(m) = memo {
            return Ok(Image {
                lib64: m.lib64,
                lib32: m.lib32,
                cache: None,
                libc: m.libc,
                held: Some(m.digest),
            });
        }
        cache = st.and_then(|st| read_cache(&fd, &st));
    }
    let from_cache = |want64: bool| {
        cache
            .as_ref()
            .and_then(|c| c.libc_file(want64))
            .and_then(|f| parent(&f))
    };
    let libc_dir = from_cache(true).or_else(|| {
        LIB64_DIRS
            .iter()
            .find(|d| exists(&root, &format!("{d}/libc.so.6")))
            .map(|d| d.to_string())
    });
    let libc = if libc_dir.is_some() || exists(&root, "lib64/ld-linux-x86-64.so.2") {
        Libc::Glibc
    } else if exists(&root, "lib/ld-musl-x86_64.so.1") {
        Libc::Musl
    } else {
        Libc::Missing
    };
    let lib64 = libc_dir.unwrap_or_else(|| {
        LIB64_DIRS
            .iter()
            .find(|d| exists(&root, d))
            .unwrap_or(&"/usr/lib64")
            .to_string()
    });
    let lib32 = from_cache(false).unwrap_or_else(|| {
        if lib64.contains("x86_64-linux-gnu") {
            lib64.replace("x86_64-linux-gnu", "i386-linux-gnu")
        } else {
            "/usr/lib".to_string()
        }
    });
    Ok(Image {
        lib64,
        lib32,
        cache,
        libc,
        held: None,
    })
}

/// The image's cache with `ours` added; an image entry for the same soname
/// and word size is replaced (the driver's library must win over, say, a
/// stub or an old compat copy). Merged in place when the cache allows it
/// (`ldcache_index`), else parsed and written anew.
pub fn merged_cache(image: &Image, ours: &[Entry]) -> Vec<u8> {
    if let Some(merged) = image
        .cache
        .as_ref()
        .and_then(|c| c.layout.as_ref().map(|l| l.over(&c.bytes)))
        .and_then(|idx| idx.merge(ours))
    {
        return merged;
    }
    let mut all: Vec<Entry> = ours.to_vec();
    let theirs = image.cache.as_ref().map(Cache::entries).unwrap_or_default();
    for e in theirs {
        let shadowed = ours
            .iter()
            .any(|o| o.key == e.key && o.is_x86_64() == e.is_x86_64());
        if !shadowed {
            all.push(e);
        }
    }
    ldcache::write(&all)
}

/// Replaces the rootfs's `/etc/ld.so.cache` with `bytes` (write to a
/// temporary file, then rename), the new file with `memo`. The caller
/// knows the cache differs (`Image::cache` was read and compared).
pub fn write_cache(rootfs: &Path, bytes: &[u8], memo: &Memo) -> Result<()> {
    let root = open_root(rootfs)?;
    let etc_path = ensure_in_root(root.as_raw_fd(), Path::new("/etc"), Leaf::Dir)?;
    let etc = open_in_root(
        etc_path.as_raw_fd(),
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
    )
    .map_err(|e| Error::invalid(format!("rootfs /etc: {e}")))?;
    let tmp = c".ld.so.cache.vessel~";
    let fail = |what: &str| {
        Error::invalid(format!(
            "writing the container's /etc/ld.so.cache ({what}): {}",
            std::io::Error::last_os_error()
        ))
    };
    // SAFETY: plain syscalls on fds we own and NUL-terminated names.
    unsafe {
        libc::unlinkat(etc.as_raw_fd(), tmp.as_ptr(), 0);
        let fd = libc::openat(
            etc.as_raw_fd(),
            tmp.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return Err(fail("create"));
        }
        let file = std::fs::File::from_raw_fd(fd);
        if let Err(e) = std::io::Write::write_all(&mut &file, bytes) {
            libc::unlinkat(etc.as_raw_fd(), tmp.as_ptr(), 0);
            return Err(Error::invalid(format!(
                "writing the container's /etc/ld.so.cache: {e}"
            )));
        }
        ldcache_memo::write(fd, memo);
        drop(file);
        if libc::renameat(
            etc.as_raw_fd(),
            tmp.as_ptr(),
            etc.as_raw_fd(),
            c"ld.so.cache".as_ptr(),
        ) != 0
        {
            let e = fail("rename");
            libc::unlinkat(etc.as_raw_fd(), tmp.as_ptr(), 0);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_debian_and_rhel_layouts_and_writes_the_cache_inside_the_root() {
        let deb = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(deb.path().join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::write(deb.path().join("usr/lib/x86_64-linux-gnu/libc.so.6"), "").unwrap();
        let img = inspect(deb.path(), true).unwrap();
        assert_eq!(img.lib64, "/usr/lib/x86_64-linux-gnu");
        assert_eq!(img.lib32, "/usr/lib/i386-linux-gnu");
        assert_eq!(img.libc, Libc::Glibc);
        assert!(img.cache.is_none());

        let rhel = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(rhel.path().join("usr/lib64")).unwrap();
        std::fs::write(rhel.path().join("usr/lib64/libc.so.6"), "").unwrap();
        // An image whose /etc/ld.so.cache points at the host must not
        // make vessel write there.
        std::fs::create_dir_all(rhel.path().join("etc")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("cache"),
            rhel.path().join("etc/ld.so.cache"),
        )
        .unwrap();
        let img = inspect(rhel.path(), true).unwrap();
        assert_eq!(
            (img.lib64.as_str(), img.lib32.as_str()),
            ("/usr/lib64", "/usr/lib")
        );
        let bytes = merged_cache(
            &img,
            &[Entry::new(
                ldcache::FLAG_X86_64,
                "libcuda.so.1",
                "/usr/lib64/libcuda.so.1",
            )],
        );
        write_cache(rhel.path(), &bytes, &img.memo(7)).unwrap();
        assert!(!outside.path().join("cache").exists());
        let back =
            ldcache::parse(&std::fs::read(rhel.path().join("etc/ld.so.cache")).unwrap()).unwrap();
        assert_eq!(back[0].key, "libcuda.so.1");
        assert_eq!(
            inspect(rhel.path(), false)
                .unwrap()
                .cache
                .unwrap()
                .entries()
                .len(),
            1
        );
        // Where the filesystem keeps user attributes, the memo stands for
        // the cache next time; rewritten by anyone else, it no longer does.
        let again = inspect(rhel.path(), true).unwrap();
        if again.held.is_some() {
            assert_eq!((again.held, again.cache.is_none()), (Some(7), true));
            assert_eq!(again.lib64, "/usr/lib64");
            std::fs::write(rhel.path().join("etc/ld.so.cache"), ldcache::write(&[])).unwrap();
            assert_eq!(inspect(rhel.path(), true).unwrap().held, None);
        }
    }
}
