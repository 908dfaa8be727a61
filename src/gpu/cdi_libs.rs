//! A CDI spec's libraries in the container, as vessel's own driver path
//! gives them: each library mount gets linker cache entries (its soname
//! and its development name, naming its container path), so a spec that
//! keeps the host's directory (`/usr/lib/x86_64-linux-gnu/nvidia/current`,
//! every spec `nvidia-ctk cdi generate` writes) is found by the image's
//! ld.so without running its ldconfig. And the links NVIDIA's hooks ask
//! for, made inside the rootfs without following the image's links out.

use super::cdi_hooks::Link;
use super::edits::CdiMount;
use super::elf;
use super::ldcache::{Entry, FLAG_LIBC6, FLAG_X86_64};
use crate::util::fs::{ensure_in_root, open_dir_path, Leaf};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// `libfoo` of a shared library's file name `libfoo.so` or
/// `libfoo.so.1.2`; None for any other name.
pub fn library_stem(file_name: &str) -> Option<&str> {
    if !file_name.starts_with("lib") {
        return None;
    }
    let at = file_name.find(".so")?;
    let rest = &file_name[at + 3..];
    (rest.is_empty() || rest.starts_with('.')).then_some(&file_name[..at])
}

/// A library mount as the cache lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedLib {
    pub container_path: String,
    pub soname: String,
    pub bits32: bool,
}

impl MountedLib {
    fn dir(&self) -> &str {
        self.container_path.rsplit_once('/').map_or("", |(d, _)| d)
    }

    fn file_name(&self) -> &str {
        self.container_path.rsplit('/').next().unwrap_or_default()
    }
}

/// The mounts whose container file name is a shared library's, with the
/// soname read from the host file (the admin's spec names it; it is
/// opened once and read through that fd). A file that is not ELF gets
/// nothing; one without DT_SONAME is known by its file name, as ldconfig
/// does.
pub fn mounted_libraries(mounts: &[CdiMount]) -> Vec<MountedLib> {
    let mut out = Vec::new();
    for m in mounts {
        let name = m.container_path.rsplit('/').next().unwrap_or_default();
        if library_stem(name).is_none() || !m.container_path.starts_with('/') {
            continue;
        }
        let Ok(file) = std::fs::File::open(&m.host_path) else {
            continue;
        };
        let Some(bits32) = elf::is_32bit(&file) else {
            continue;
        };
        out.push(MountedLib {
            container_path: m.container_path.clone(),
            soname: elf::soname(&file).unwrap_or_else(|| name.to_string()),
            bits32,
        });
    }
    out
}

/// Each library's cache entries: its soname and its development name
/// (`libcuda.so`), naming its container path; the first library of a
/// name and word size wins.
pub fn cache_entries(libs: &[MountedLib]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for lib in libs {
        let flags = if lib.bits32 { FLAG_LIBC6 } else { FLAG_X86_64 };
        let dev = library_stem(&lib.soname)
            .or_else(|| library_stem(lib.file_name()))
            .map(|stem| format!("{stem}.so"));
        for key in std::iter::once(lib.soname.clone()).chain(dev) {
            if !out.iter().any(|e| e.key == key && e.flags == flags) {
                out.push(Entry::new(flags, &key, &lib.container_path));
            }
        }
    }
    out
}

/// The soname links ldconfig makes in `folders` (`libcuda.so.1 ->
/// libcuda.so.580.159.04`), for the libraries mounted there, unless a
/// mount is at that path already.
pub fn soname_links(libs: &[MountedLib], folders: &[String], mounts: &[CdiMount]) -> Vec<Link> {
    libs.iter()
        .filter(|l| folders.iter().any(|f| f == l.dir()) && l.soname != l.file_name())
        .map(|l| Link {
            target: l.file_name().to_string(),
            link: format!("{}/{}", l.dir(), l.soname),
        })
        .filter(|l| !mounts.iter().any(|m| m.container_path == l.link))
        .collect()
}

/// Makes each link in the rootfs: its directory resolved (and made)
/// inside the rootfs, the link itself never followed. A link that is
/// there with the same target is kept, one with another target replaced;
/// anything else at its path is left alone. Returns a note for each link
/// not made.
pub fn create_links(rootfs: &Path, links: &[Link]) -> Vec<String> {
    if links.is_empty() {
        return Vec::new();
    }
    let root = match open_dir_path(rootfs) {
        Ok(fd) => fd,
        Err(e) => return vec![format!("rootfs {}: {e}: no links made", rootfs.display())],
    };
    links
        .iter()
        .filter_map(|l| {
            create_link(&root, l)
                .err()
                .map(|why| format!("link {} -> {}: {why}", l.link, l.target))
        })
        .collect()
}

fn create_link(root: &OwnedFd, l: &Link) -> Result<(), String> {
    let (dir, name) = l.link.rsplit_once('/').ok_or("not a path")?;
    let dir = ensure_in_root(root.as_raw_fd(), Path::new(&format!("/{dir}")), Leaf::Dir)
        .map_err(|e| e.to_string())?;
    let name = CString::new(name).map_err(|_| "NUL in the name")?;
    let target = CString::new(l.target.as_str()).map_err(|_| "NUL in the target")?;
    let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: a zeroed stat filled by the kernel; the fds are ours.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let found = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } == 0;
    if found {
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Err("a file that is not a link is there; left alone".into());
        }
        let current = nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_c_str())
            .map_err(|e| format!("reading the link there: {e}"))?;
        if current.as_encoded_bytes() == l.target.as_bytes() {
            return Ok(());
        }
        // SAFETY: as above.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } != 0 {
            return Err(os("removing the link there"));
        }
    }
    // SAFETY: NUL-terminated strings and a directory fd we own.
    if unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) } != 0 {
        return Err(os("creating it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::elf::tests::elf_with_soname;
    use std::os::unix::fs::symlink;

    fn mount(host: &Path, container: &str) -> CdiMount {
        CdiMount {
            host_path: host.to_string_lossy().into_owned(),
            container_path: container.into(),
            ..Default::default()
        }
    }

    #[test]
    fn library_mounts_get_soname_and_dev_name_entries() {
        assert_eq!(library_stem("libcuda.so.580.1"), Some("libcuda"));
        assert_eq!(library_stem("libcuda.so"), Some("libcuda"));
        assert_eq!(library_stem("libcuda.sox"), None);
        assert_eq!(library_stem("nvidia-smi"), None);
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("libcuda.so.580.159.04");
        std::fs::write(&lib, elf_with_soname("libcuda.so.1")).unwrap();
        let text = tmp.path().join("libfake.so.1");
        std::fs::write(&text, "not elf").unwrap();
        let dir = "/usr/lib/x86_64-linux-gnu/nvidia/current";
        let file = format!("{dir}/libcuda.so.580.159.04");
        let mounts = [
            mount(&lib, &file),
            mount(&text, "/usr/lib/libfake.so.1"),
            mount(&lib, "/usr/bin/nvidia-smi"),
        ];
        let libs = mounted_libraries(&mounts);
        assert_eq!(libs.len(), 1);
        let entries = cache_entries(&libs);
        let keys: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(keys, [("libcuda.so.1", &*file), ("libcuda.so", &*file)]);
        assert!(entries[0].is_x86_64());
        let links = soname_links(&libs, &[dir.to_string()], &mounts);
        assert_eq!(
            links,
            [Link {
                target: "libcuda.so.580.159.04".into(),
                link: format!("{dir}/libcuda.so.1")
            }]
        );
        assert!(soname_links(&libs, &["/usr/lib".into()], &mounts).is_empty());
    }

    #[test]
    fn links_are_made_inside_the_root_and_files_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // The image's own link out of the rootfs resolves under it.
        symlink(&outside, root.join("evil")).unwrap();
        std::fs::write(root.join("lib/libkept.so"), "data").unwrap();
        symlink("old", root.join("lib/libold.so")).unwrap();
        let link = |t: &str, l: &str| Link {
            target: t.into(),
            link: l.into(),
        };
        let notes = create_links(
            &root,
            &[
                link("libcuda.so.1", "/lib/libcuda.so"),
                link("libcuda.so.1", "/lib/libcuda.so"),
                link("x", "/evil/libx.so"),
                link("y", "/lib/libkept.so"),
                link("new", "/lib/libold.so"),
            ],
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("/lib/libkept.so"), "{notes:?}");
        let read = |p: &str| std::fs::read_link(root.join(p)).unwrap();
        assert_eq!(read("lib/libcuda.so"), Path::new("libcuda.so.1"));
        assert_eq!(read("lib/libold.so"), Path::new("new"));
        assert_eq!(std::fs::read(root.join("lib/libkept.so")).unwrap(), b"data");
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        let inside = root
            .join(outside.strip_prefix("/").unwrap())
            .join("libx.so");
        assert_eq!(std::fs::read_link(inside).unwrap(), Path::new("x"));
    }
}
