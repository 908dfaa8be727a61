//! A driver library's other names in the image (`libcuda.so.1`,
//! `libcuda.so` beside `libcuda.so.535.309.01`) as symlinks to its one
//! bound file, as ldconfig and NVIDIA's `create-symlinks` hook make them,
//! rather than a bind mount of the same file under each name: a link is
//! two syscalls where a bind in the container's init is about ten (`make
//! bench`'s GPU row on the Debian driver: 21 library binds became 7).
//!
//! A name the image already has is never changed: a link of ours (the
//! same target, a bundle run again) is kept, an empty file (the mount
//! point an older vessel's bind left) replaced, anything else (the
//! image's own file or link) gets the bind it always had, over it. So does every
//! name where no link can be made (a read-only rootfs).

use super::edits::CdiMount;
use super::inject::Alias;
use crate::util::fs::{ensure_in_root, open_dir_path, Leaf};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Makes the aliases' links in `rootfs` (each directory opened once,
/// inside the rootfs); returns the bind mounts for the names that could
/// not be links.
pub fn place(rootfs: &Path, aliases: &[Alias]) -> Vec<CdiMount> {
    if aliases.is_empty() {
        return Vec::new();
    }
    let Ok(root) = open_dir_path(rootfs) else {
        return aliases.iter().map(Alias::as_mount).collect();
    };
    let mut binds = Vec::new();
    let mut open: Option<(&str, Option<OwnedFd>)> = None;
    for a in aliases {
        if open.as_ref().map(|(d, _)| *d) != Some(a.dir.as_str()) {
            let fd = ensure_in_root(root.as_raw_fd(), Path::new(&a.dir), Leaf::Dir).ok();
            open = Some((a.dir.as_str(), fd));
        }
        let linked = match open.as_ref().and_then(|(_, fd)| fd.as_ref()) {
            Some(dir) => link(dir, &a.name, &a.file_name),
            None => false,
        };
        if !linked {
            binds.push(a.as_mount());
        }
    }
    binds
}

/// True when `dir/name` is (now) a link to `target`: made where nothing
/// is there, kept where it already is that link.
fn link(dir: &OwnedFd, name: &str, target: &str) -> bool {
    let (Ok(name), Ok(target_c)) = (CString::new(name), CString::new(target)) else {
        return false;
    };
    // SAFETY: NUL-terminated strings and a directory fd we own.
    if unsafe { libc::symlinkat(target_c.as_ptr(), dir.as_raw_fd(), name.as_ptr()) } == 0 {
        return true;
    }
    if std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
        return false;
    }
    // readlinkat fails (EINVAL) on anything that is not a link.
    match nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_c_str()) {
        Ok(current) => current.as_encoded_bytes() == target.as_bytes(),
        Err(nix::errno::Errno::EINVAL) if is_empty_file(dir, &name) => {
            // The empty mount point an earlier bind left (no library is
            // empty): the link takes its place.
            // SAFETY: as above.
            unsafe {
                libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) == 0
                    && libc::symlinkat(target_c.as_ptr(), dir.as_raw_fd(), name.as_ptr()) == 0
            }
        }
        Err(_) => false,
    }
}

/// `dir/name` is an empty regular file (never followed).
fn is_empty_file(dir: &OwnedFd, name: &CStr) -> bool {
    // SAFETY: a zeroed stat the kernel fills; a NUL-terminated name.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_size == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn alias(dir: &str, name: &str) -> Alias {
        Alias {
            dir: dir.into(),
            name: name.into(),
            file_name: "libcuda.so.535.309.01".into(),
            host_path: "/host/libcuda.so.535.309.01".into(),
        }
    }

    #[test]
    fn free_names_become_links_and_taken_ones_binds() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("usr/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libcuda.so"), "the image's own").unwrap();
        // An earlier bind's mount point.
        std::fs::write(lib.join("libcuda.so.3"), "").unwrap();
        symlink("libcuda.so.450", lib.join("libcuda.so.2")).unwrap();
        let aliases = [
            alias("/usr/lib", "libcuda.so.1"),
            alias("/usr/lib", "libcuda.so"),
            alias("/usr/lib", "libcuda.so.2"),
            alias("/usr/lib", "libcuda.so.3"),
            alias("/usr/lib64", "libcuda.so.1"),
        ];
        let binds = place(tmp.path(), &aliases);
        let bound: Vec<&str> = binds.iter().map(|m| m.container_path.as_str()).collect();
        assert_eq!(bound, ["/usr/lib/libcuda.so", "/usr/lib/libcuda.so.2"]);
        assert_eq!(
            std::fs::read_link(lib.join("libcuda.so.1")).unwrap(),
            Path::new("libcuda.so.535.309.01")
        );
        assert_eq!(
            std::fs::read(lib.join("libcuda.so")).unwrap(),
            b"the image's own"
        );
        assert_eq!(
            std::fs::read_link(lib.join("libcuda.so.2")).unwrap(),
            Path::new("libcuda.so.450")
        );
        assert!(std::fs::read_link(tmp.path().join("usr/lib64/libcuda.so.1")).is_ok());
        assert!(std::fs::read_link(lib.join("libcuda.so.3")).is_ok());
        // Run again: our links are kept, nothing more is bound.
        assert_eq!(place(tmp.path(), &aliases), binds);
    }

    #[test]
    fn a_directory_link_out_of_the_root_is_resolved_inside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("usr")).unwrap();
        symlink(outside.path(), root.join("usr/lib")).unwrap();
        let binds = place(&root, &[alias("/usr/lib", "libcuda.so.1")]);
        assert!(binds.is_empty());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        let inside = root.join(outside.path().strip_prefix("/").unwrap());
        assert!(std::fs::read_link(inside.join("libcuda.so.1")).is_ok());
    }

    #[test]
    fn no_rootfs_means_binds() {
        let binds = place(
            Path::new("/nonexistent/rootfs"),
            &[alias("/usr/lib", "libcuda.so.1")],
        );
        assert_eq!(binds.len(), 1);
        assert_eq!(binds[0].container_path, "/usr/lib/libcuda.so.1");
    }
}
