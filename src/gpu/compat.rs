//! CUDA forward compatibility. NVIDIA's cuda-compat package puts a newer
//! user-mode driver into an image's `/usr/local/cuda/compat`
//! (`libcuda.so.575.51.03` and the other libraries of that version, with
//! their soname links), so that a CUDA newer than the host's driver runs on
//! it. vessel lists those libraries in the image's linker cache ahead of
//! the host's when their driver branch is newer than the host's, and never
//! otherwise, as NVIDIA's toolkit decides it (its `enable-cuda-compat`
//! hook): from the version in the file name
//! `libcuda.so.<major>.<minor>[.<patch>]`, its major against the host
//! driver's major.
//!
//! The directory is looked up inside the rootfs (RESOLVE_IN_ROOT: a link
//! that points out of the image resolves under it, and finds nothing
//! there), then listed and read through that fd: nothing outside the image
//! is read, and nothing of the image runs.

use super::elf;
use super::hostfs::{HostDir, HostRoot, Kind};
use super::ldcache::{Entry, FLAG_X86_64};
use super::libraries::{library_name, soname_link};
use std::ffi::OsStr;
use std::path::Path;

/// Where cuda-compat installs its libraries (the path the toolkit checks).
pub const COMPAT_DIR: &str = "/usr/local/cuda/compat";

/// The image's compat libraries, when they are newer than the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compat {
    /// The compat libcuda's driver version (`575.51.03`).
    pub version: String,
    /// For each library of that version, 64-bit: its soname and its
    /// development name, naming its file in `COMPAT_DIR`.
    pub entries: Vec<Entry>,
}

/// `575.51.03` of `libcuda.so.575.51.03`: two or three numeric fields.
pub fn libcuda_version(file_name: &str) -> Option<&str> {
    let version = file_name.strip_prefix("libcuda.so.")?;
    let fields: Vec<&str> = version.split('.').collect();
    let numeric = fields
        .iter()
        .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    ((2..=3).contains(&fields.len()) && numeric).then_some(version)
}

/// The major number of a driver version (`580` of `580.159.04`).
fn major(version: &str) -> Option<u64> {
    version.split('.').next()?.parse().ok()
}

/// True when the compat libraries' driver branch is newer than the host's.
/// An older or equal branch would replace a driver that already runs what
/// the image needs with one that does not match the kernel module better;
/// minor versions do not count (the toolkit's rule).
pub fn is_newer_branch(compat: &str, host: &str) -> bool {
    matches!((major(compat), major(host)), (Some(c), Some(h)) if c > h)
}

/// The image's compat libraries when they are of a newer driver branch
/// than `host_version`; None when the image has none, or they are not
/// newer. An image without the directory costs one failed lookup. Err says
/// why a directory that is there was not used (for the log).
pub fn find(rootfs: &Path, host_version: &str) -> Result<Option<Compat>, String> {
    let Ok(root) = HostRoot::open(rootfs) else {
        return Ok(None);
    };
    let not_used = |why: String| Err(format!("{why}: CUDA forward compatibility not used"));
    let dir = match root.read_dir(Path::new(COMPAT_DIR)) {
        Ok(dir) => dir,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(None)
        }
        Err(e) => return not_used(format!("{COMPAT_DIR} in the image: {e}")),
    };
    let versions: Vec<&str> = dir
        .entries()
        .iter()
        .filter(|e| e.kind == Kind::File)
        .filter_map(|e| libcuda_version(e.name.to_str()?))
        .collect();
    let version = match versions[..] {
        [] => return Ok(None),
        [one] => one.to_string(),
        _ => {
            return not_used(format!(
                "{COMPAT_DIR} in the image has libcuda of several versions ({})",
                versions.join(", ")
            ))
        }
    };
    if !is_newer_branch(&version, host_version) {
        return Ok(None);
    }
    let entries = entries_of(&dir, &version);
    if !entries.iter().any(|e| e.key == "libcuda.so.1") {
        return not_used(format!(
            "{COMPAT_DIR}/libcuda.so.{version} in the image is not a 64-bit library named libcuda.so.1"
        ));
    }
    Ok(Some(Compat { version, entries }))
}

/// Cache entries for the 64-bit libraries of `version` in the directory:
/// each under its soname (the ELF one, else the link beside it, else
/// NVIDIA's usual one) and its development name, naming the file itself,
/// as `ldconfig` would list the directory.
fn entries_of(dir: &HostDir, version: &str) -> Vec<Entry> {
    let suffix = format!(".so.{version}");
    let mut files: Vec<&str> = dir
        .entries()
        .iter()
        .filter(|e| e.kind == Kind::File)
        .filter_map(|e| e.name.to_str())
        .filter(|n| n.starts_with("lib") && n.ends_with(&suffix))
        .collect();
    files.sort_unstable();
    let mut out: Vec<Entry> = Vec::new();
    for file in files {
        let Ok(f) = dir.open_file(OsStr::new(file)) else {
            continue;
        };
        if elf::is_32bit(&f) != Some(false) {
            continue;
        }
        let soname = elf::soname(&f).or_else(|| soname_link(dir, file));
        let path = format!("{COMPAT_DIR}/{file}");
        for key in soname
            .into_iter()
            .chain([format!("{}.so", library_name(file))])
        {
            if key != file && !out.iter().any(|e| e.key == key) {
                out.push(Entry::new(FLAG_X86_64, &key, &path));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::elf::tests::elf_with_soname;
    use std::os::unix::fs::symlink;

    #[test]
    fn versions_come_from_the_file_name() {
        assert_eq!(libcuda_version("libcuda.so.575.51.03"), Some("575.51.03"));
        assert_eq!(libcuda_version("libcuda.so.590.44"), Some("590.44"));
        for not in [
            "libcuda.so.1",
            "libcuda.so",
            "libcuda.so.575.51.03.1",
            "libcuda.so.575..03",
            "libcuda.so.575.x",
            "libcudadebugger.so.575.51.03",
        ] {
            assert_eq!(libcuda_version(not), None, "{not}");
        }
    }

    #[test]
    fn only_a_newer_major_counts() {
        assert!(is_newer_branch("575.51.03", "570.172.08"));
        assert!(is_newer_branch("1000.1", "999.99.99"), "numbers, not text");
        assert!(!is_newer_branch("570.195.03", "570.86.10"), "same branch");
        assert!(!is_newer_branch("580.65.06", "580.159.04"));
        assert!(!is_newer_branch("550.54.15", "580.159.04"));
        assert!(!is_newer_branch("575.51.03", "unknown"));
        assert!(!is_newer_branch("", "570.1"));
    }

    fn compat_image(version: &str) -> tempfile::TempDir {
        let img = tempfile::tempdir().unwrap();
        let dir = img.path().join("usr/local/cuda-12.9/compat");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("libcuda.so.{version}")),
            elf_with_soname("libcuda.so.1"),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("libnvidia-ptxjitcompiler.so.{version}")),
            elf_with_soname("libnvidia-ptxjitcompiler.so.1"),
        )
        .unwrap();
        symlink(format!("libcuda.so.{version}"), dir.join("libcuda.so.1")).unwrap();
        // As the CUDA images have it: /usr/local/cuda is a link.
        symlink("/usr/local/cuda-12.9", img.path().join("usr/local/cuda")).unwrap();
        img
    }

    #[test]
    fn a_newer_compat_dir_gives_entries_for_each_library() {
        let img = compat_image("590.44.01");
        let found = find(img.path(), "580.159.04").unwrap().unwrap();
        assert_eq!(found.version, "590.44.01");
        let got: Vec<(&str, &str)> = found
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        let cuda = "/usr/local/cuda/compat/libcuda.so.590.44.01";
        let ptx = "/usr/local/cuda/compat/libnvidia-ptxjitcompiler.so.590.44.01";
        assert_eq!(
            got,
            [
                ("libcuda.so.1", cuda),
                ("libcuda.so", cuda),
                ("libnvidia-ptxjitcompiler.so.1", ptx),
                ("libnvidia-ptxjitcompiler.so", ptx),
            ]
        );
        assert!(found.entries.iter().all(|e| e.is_x86_64()));
        assert_eq!(find(img.path(), "590.1.2").unwrap(), None);
        assert_eq!(find(img.path(), "600.10").unwrap(), None);
    }

    #[test]
    fn no_dir_or_an_ambiguous_one_is_not_used() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(find(empty.path(), "580.1.1").unwrap(), None);
        let img = compat_image("590.44.01");
        let dir = img.path().join("usr/local/cuda-12.9/compat");
        std::fs::write(
            dir.join("libcuda.so.595.1.1"),
            elf_with_soname("libcuda.so.1"),
        )
        .unwrap();
        let err = find(img.path(), "580.1.1").unwrap_err();
        assert!(
            err.contains("several versions") && err.contains("595.1.1"),
            "{err}"
        );
        // A file that is not a library is no libcuda.
        let junk = compat_image("590.44.01");
        let dir = junk.path().join("usr/local/cuda-12.9/compat");
        std::fs::write(dir.join("libcuda.so.590.44.01"), "not ELF").unwrap();
        assert!(find(junk.path(), "580.1.1")
            .unwrap_err()
            .contains("not a 64-bit library"));
    }

    /// A compat dir that is a link out of the image resolves under the
    /// rootfs: the outside libraries are never listed.
    #[test]
    fn a_compat_dir_linked_out_of_the_image_is_not_followed() {
        let outside = compat_image("590.44.01");
        let img = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(img.path().join("usr/local/cuda")).unwrap();
        let target = outside.path().join("usr/local/cuda-12.9/compat");
        symlink(&target, img.path().join("usr/local/cuda/compat")).unwrap();
        assert_eq!(find(img.path(), "580.1.1").unwrap(), None);
        let dots = format!("../../../../../../../../..{}", target.display());
        std::fs::remove_file(img.path().join("usr/local/cuda/compat")).unwrap();
        symlink(dots, img.path().join("usr/local/cuda/compat")).unwrap();
        assert_eq!(find(img.path(), "580.1.1").unwrap(), None);
    }
}
