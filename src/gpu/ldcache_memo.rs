//! What vessel last made of an image's `/etc/ld.so.cache`, kept on the
//! file itself as the extended attribute `user.vessel.ldcache`: which
//! entries it holds (a digest of them) and what the image inspection found
//! (libc, library directories), valid while the file keeps the size and
//! modification time recorded with it.
//!
//! A bundle run again (or any rootfs whose cache vessel wrote before)
//! then costs an fstat and an fgetxattr instead of reading, checking and
//! merging a cache of thousands of entries (`make bench`'s GPU row, 3,000
//! entries: about 0.75 ms of the GPU path).
//!
//! Staleness: any write to the file changes its modification time (and
//! usually its size); ldconfig in the container replaces the file, and a
//! new file has no attribute. A memo that does not match is ignored and
//! the cache is read as before. The attribute is the image's to change: a
//! forged one can only cost that container its own linker entries, never
//! a host file (every path is still resolved inside the rootfs).

use super::image::Libc;
use super::ldcache::Entry;
use std::ffi::CStr;
use std::os::fd::RawFd;

const NAME: &CStr = c"user.vessel.ldcache";
const TAG: &str = "vessel-ldcache-1";

/// What one inspection of the image found, and the entries its cache
/// holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo {
    pub digest: u64,
    pub libc: Libc,
    pub lib64: String,
    pub lib32: String,
}

/// FNV-1a over the entries, as they would be merged (order included):
/// stable across builds, unlike std's hasher.
pub fn digest(entries: &[Entry]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for e in entries {
        eat(&e.flags.to_le_bytes());
        eat(e.key.as_bytes());
        eat(e.value.as_bytes());
        eat(&e.os_version.to_le_bytes());
        eat(&e.hwcap.to_le_bytes());
        eat(e.hwcaps_name.as_deref().unwrap_or("").as_bytes());
    }
    h
}

fn libc_name(l: Libc) -> &'static str {
    match l {
        Libc::Glibc => "glibc",
        Libc::Musl => "musl",
        Libc::Missing => "none",
    }
}

/// The size and modification time a memo is valid for.
fn stamp(st: &libc::stat) -> String {
    format!("{} {}.{}", st.st_size, st.st_mtime, st.st_mtime_nsec)
}

/// A library directory as a memo may name one: absolute, no `..`, no
/// whitespace.
fn plain_dir(d: &str) -> bool {
    d.starts_with('/')
        && d.len() < 256
        && !d.split('/').any(|c| c == "..")
        && !d.contains(char::is_whitespace)
}

/// The memo on the cache open at `fd` (whose fstat is `st`), when it is
/// still valid.
pub fn read(fd: RawFd, st: &libc::stat) -> Option<Memo> {
    let mut buf = [0u8; 640];
    // SAFETY: a buffer of the length given, an fd the caller owns.
    let n = unsafe { libc::fgetxattr(fd, NAME.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let text = std::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
    parse(text, &stamp(st))
}

fn parse(text: &str, stamp: &str) -> Option<Memo> {
    let mut f = text.split(' ');
    if f.next()? != TAG {
        return None;
    }
    let digest = u64::from_str_radix(f.next()?, 16).ok()?;
    let (size, mtime) = (f.next()?, f.next()?);
    if format!("{size} {mtime}") != stamp {
        return None;
    }
    let libc = match f.next()? {
        "glibc" => Libc::Glibc,
        "musl" => Libc::Musl,
        "none" => Libc::Missing,
        _ => return None,
    };
    let (lib64, lib32) = (f.next()?.to_string(), f.next()?.to_string());
    if f.next().is_some() || !plain_dir(&lib64) || !plain_dir(&lib32) {
        return None;
    }
    Some(Memo {
        digest,
        libc,
        lib64,
        lib32,
    })
}

/// Records `memo` on the cache open at `fd`, for the file as it is now.
/// Best effort: a filesystem without user attributes just has no memo.
pub fn write(fd: RawFd, memo: &Memo) {
    if !plain_dir(&memo.lib64) || !plain_dir(&memo.lib32) {
        return;
    }
    let Ok(st) = crate::util::mount::stat(fd) else {
        return;
    };
    let text = format!(
        "{TAG} {:016x} {} {} {} {}",
        memo.digest,
        stamp(&st),
        libc_name(memo.libc),
        memo.lib64,
        memo.lib32
    );
    // SAFETY: a value of the length given, an fd the caller owns.
    unsafe {
        libc::fsetxattr(fd, NAME.as_ptr(), text.as_ptr().cast(), text.len(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::ldcache::FLAG_X86_64;
    use std::os::fd::AsRawFd;

    fn memo() -> Memo {
        Memo {
            digest: digest(&[Entry::new(
                FLAG_X86_64,
                "libcuda.so.1",
                "/usr/lib/libcuda.so.1",
            )]),
            libc: Libc::Glibc,
            lib64: "/usr/lib/x86_64-linux-gnu".into(),
            lib32: "/usr/lib/i386-linux-gnu".into(),
        }
    }

    #[test]
    fn a_memo_holds_until_the_file_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ld.so.cache");
        std::fs::write(&path, b"cache").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        write(f.as_raw_fd(), &memo());
        let st = crate::util::mount::stat(f.as_raw_fd()).unwrap();
        let Some(back) = read(f.as_raw_fd(), &st) else {
            // A filesystem without user xattrs (tmpfs before 6.6): no memo.
            return;
        };
        assert_eq!(back, memo());
        std::fs::write(&path, b"another cache").unwrap();
        let st = crate::util::mount::stat(f.as_raw_fd()).unwrap();
        assert_eq!(read(f.as_raw_fd(), &st), None, "a rewritten file");
    }

    #[test]
    fn only_well_formed_memos_of_this_stamp_parse() {
        let good = "vessel-ldcache-1 00000000000000ff 5 1.2 glibc /usr/lib64 /usr/lib";
        assert_eq!(parse(good, "5 1.2").unwrap().digest, 0xff);
        assert_eq!(parse(good, "5 1.3"), None);
        for bad in [
            "vessel-ldcache-0 00000000000000ff 5 1.2 glibc /usr/lib64 /usr/lib",
            "vessel-ldcache-1 00000000000000ff 5 1.2 glibc usr/lib64 /usr/lib",
            "vessel-ldcache-1 00000000000000ff 5 1.2 glibc /usr/../etc /usr/lib",
            "vessel-ldcache-1 00000000000000ff 5 1.2 bionic /usr/lib64 /usr/lib",
            "vessel-ldcache-1 00000000000000ff 5 1.2 glibc /usr/lib64 /usr/lib extra",
            "vessel-ldcache-1 zz 5 1.2 glibc /usr/lib64 /usr/lib",
        ] {
            assert_eq!(parse(bad, "5 1.2"), None, "{bad}");
        }
    }

    #[test]
    fn the_digest_depends_on_every_field_and_the_order() {
        let a = Entry::new(FLAG_X86_64, "libcuda.so.1", "/a");
        let b = Entry::new(FLAG_X86_64, "libcuda.so", "/a");
        let mut c = a.clone();
        c.value = "/b".into();
        let d = digest(&[a.clone(), b.clone()]);
        assert_ne!(d, digest(&[b.clone(), a.clone()]));
        assert_ne!(d, digest(&[c, b]));
        assert_eq!(
            d,
            digest(&[a.clone(), Entry::new(FLAG_X86_64, "libcuda.so", "/a")])
        );
    }
}
