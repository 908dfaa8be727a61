//! The driver's libraries: which exist (from the host's ld.so.cache, else a
//! directory scan reading each file's ELF soname) and which each
//! capability brings. Every host file is looked up inside the GPU root and
//! read through the fd of that lookup (`hostfs`).

use super::hostfs::{fd_path, HostDir, HostRoot, Kind};
use super::ldcache;
use super::request::Caps;
use std::path::{Path, PathBuf};

/// A driver library: the real file on the host and the names it answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// The real host path (symlinks resolved inside the host root).
    pub host_path: PathBuf,
    /// `libcuda.so.580.159.04`
    pub file_name: String,
    /// `libcuda.so.1` (the ELF SONAME); may equal `file_name`.
    pub soname: String,
    /// `libcuda`
    pub name: String,
    pub bits32: bool,
}

/// The libraries each capability brings (NVIDIA's legacy list).
pub fn capability_libraries(cap: Caps) -> &'static [&'static str] {
    match cap {
        Caps::UTILITY => &["libnvidia-ml", "libnvidia-cfg", "libnvidia-nscq"],
        Caps::COMPUTE => &[
            "libcuda",
            "libcudadebugger",
            "libnvidia-opencl",
            "libnvidia-gpucomp",
            "libnvidia-ptxjitcompiler",
            "libnvidia-fatbinaryloader",
            "libnvidia-allocator",
            "libnvidia-compiler",
            "libnvidia-pkcs11",
            "libnvidia-pkcs11-openssl3",
            "libnvidia-nvvm",
            "libnvidia-tileiras",
        ],
        Caps::VIDEO => &[
            "libvdpau_nvidia",
            "libnvidia-encode",
            "libnvidia-opticalflow",
            "libnvcuvid",
        ],
        Caps::GRAPHICS | Caps::DISPLAY => &[
            "libnvidia-eglcore",
            "libnvidia-glcore",
            "libnvidia-tls",
            "libnvidia-glsi",
            "libnvidia-fbc",
            "libnvidia-ifr",
            "libnvidia-rtcore",
            "libnvoptix",
            "libGLX_nvidia",
            "libEGL_nvidia",
            "libGLESv2_nvidia",
            "libGLESv1_CM_nvidia",
            "libnvidia-glvkspirv",
            "libnvidia-cbl",
            "libnvidia-egl-gbm",
            "libnvidia-egl-wayland",
        ],
        Caps::NGX => &["libnvidia-ngx"],
        _ => &[],
    }
}

/// `libcuda.so.1` → `libcuda`.
pub fn library_name(file: &str) -> &str {
    file.find(".so").map_or(file, |i| &file[..i])
}

/// A file that may be a driver library, before the version filter.
struct Candidate {
    host_path: PathBuf,
    file_name: String,
    /// The name the linker cache lists it under.
    key: Option<String>,
    bits32: bool,
}

/// Library directories scanned when the cache is missing or incomplete
/// (and 32-bit by default): distributions' and NVIDIA's own layouts.
const SCAN_DIRS: &[(&str, bool)] = &[
    ("usr/lib64", false),
    ("usr/lib64/nvidia", false),
    ("usr/lib/x86_64-linux-gnu", false),
    ("usr/lib/x86_64-linux-gnu/nvidia", false),
    ("usr/lib/x86_64-linux-gnu/nvidia/current", false),
    ("usr/local/nvidia/lib64", false),
    ("usr/local/lib", false),
    ("lib64", false),
    ("lib/x86_64-linux-gnu", false),
    ("usr/lib32", true),
    ("usr/lib/i386-linux-gnu", true),
    ("usr/lib/i386-linux-gnu/nvidia/current", true),
    ("usr/local/nvidia/lib", true),
    ("usr/lib", true),
];

/// The libraries every request with COMPUTE or UTILITY needs: when the
/// cache lacks one, the directories are scanned as well.
const CORE: &[&str] = &["libcuda", "libnvidia-ml"];

/// Driver libraries: from the host's ld.so.cache, completed by a scan of
/// the library directories (the usual ones, ld.so.conf's, and those the
/// cache names for driver libraries) when the cache is missing or lacks
/// libcuda or libnvidia-ml. Files named `*.so.<driver version>` count;
/// when none carries the kernel module's version (user space upgraded
/// without a reboot, say), the version of the libcuda/libnvidia-ml files
/// found is used instead, and the source says so.
pub(super) fn find_libraries(host: &HostRoot, version: &str) -> (Vec<Library>, String) {
    let cached = read_host_cache(host);
    let mut source = match &cached {
        Some((_, total)) => format!(
            "{} ({total} entries)",
            host.path().join("etc/ld.so.cache").display(),
        ),
        None => "a scan of the library directories (no usable etc/ld.so.cache)".to_string(),
    };
    let entries = cached.as_ref().map_or(&[][..], |(e, _)| e.as_slice());
    let (mut candidates, mut dirs) = cache_candidates(host, entries);
    let has = |c: &[Candidate], lib: &str| c.iter().any(|c| library_name(&c.file_name) == lib);
    if cached.is_none() || !CORE.iter().all(|l| has(&candidates, l)) {
        if cached.is_some() {
            source.push_str(", and a scan of the library directories");
        }
        dirs.extend(SCAN_DIRS.iter().map(|(d, b)| (PathBuf::from(d), *b)));
        dirs.extend(ld_so_conf_dirs(host).into_iter().map(|d| (d, false)));
        scan_dirs(host, dirs, version, &mut candidates);
    } else {
        let driver_dirs = driver_only_dirs(host, &candidates);
        scan_dirs(host, driver_dirs, version, &mut candidates);
    }
    let suffix = version_suffix(&candidates, version, &mut source);
    (libraries_with_suffix(candidates, &suffix), source)
}

/// Whether a cache key can name a driver library: every one of
/// `capability_libraries` and every other library NVIDIA's driver ships
/// has one of these in its name. A host's cache lists thousands of other
/// libraries, none of which is looked up.
fn may_be_driver_library(key: &[u8]) -> bool {
    [&b"nvidia"[..], b"cuda", b"nvcuvid", b"nvoptix"]
        .iter()
        .any(|n| key.windows(n.len()).any(|w| w == *n))
}

/// The host's `etc/ld.so.cache` entries that may be driver libraries, and
/// how many entries it has; None when it is missing, unreadable or empty.
fn read_host_cache(host: &HostRoot) -> Option<(Vec<ldcache::Entry>, usize)> {
    let bytes = host.read(Path::new("etc/ld.so.cache")).ok()?;
    let (wanted, total) = match super::ldcache_index::layout(&bytes) {
        Some(layout) => {
            let idx = layout.over(&bytes);
            (idx.plain_entries(may_be_driver_library), idx.len())
        }
        None => {
            let all = ldcache::parse(&bytes).ok()?;
            let total = all.len();
            let wanted = all
                .into_iter()
                .filter(|e| may_be_driver_library(e.key.as_bytes()))
                .collect();
            (wanted, total)
        }
    };
    (total > 0).then_some((wanted, total))
}

/// The cache's x86 entries whose files exist inside the root, and the
/// directories its driver libraries are in (scanned too, should the
/// cache lack libcuda or libnvidia-ml).
fn cache_candidates(
    host: &HostRoot,
    entries: &[ldcache::Entry],
) -> (Vec<Candidate>, Vec<(PathBuf, bool)>) {
    let mut candidates = Vec::new();
    let mut dirs = Vec::new();
    for e in entries {
        if e.hwcap != 0 || !(e.is_x86_64() || e.is_i386()) {
            continue;
        }
        let value = unrooted(Path::new(&e.value), host.path());
        if CORE
            .iter()
            .chain(&["libnvidia"])
            .any(|n| e.key.starts_with(n))
        {
            if let Some(dir) = value.parent() {
                dirs.push((dir.to_path_buf(), e.is_i386()));
            }
        }
        let Some(host_path) = host.real_path(&value) else {
            continue; // the soname link may be missing: the scan finds the file
        };
        candidates.push(Candidate {
            file_name: file_name_of(&host_path),
            host_path,
            key: Some(e.key.clone()),
            bits32: e.is_i386(),
        });
    }
    (candidates, dirs)
}

/// The directories, inside the root, the cached driver libraries really
/// are in when those are the driver's own (a component names nvidia:
/// Debian's `usr/lib/x86_64-linux-gnu/nvidia/current`). ldconfig does not
/// look there, so the libraries only the alternatives links name
/// (Debian's libnvidia-cfg.so.1, in `…/nvidia/`) are missing from the
/// cache; a listing of such a small directory finds them. A shared
/// directory (`/usr/lib/x86_64-linux-gnu`, thousands of files) is never
/// listed for this.
fn driver_only_dirs(host: &HostRoot, candidates: &[Candidate]) -> Vec<(PathBuf, bool)> {
    let mut dirs: Vec<(PathBuf, bool)> = Vec::new();
    for c in candidates {
        let Some(dir) = c.host_path.parent() else {
            continue;
        };
        let Ok(rel) = dir.strip_prefix(host.path()) else {
            continue;
        };
        let own = rel.iter().any(|p| p.to_string_lossy().contains("nvidia"));
        if own && !dirs.iter().any(|(d, _)| d == rel) {
            dirs.push((rel.to_path_buf(), c.bits32));
        }
    }
    dirs
}

/// A cache entry's path as seen inside the root: a cache written with
/// `ldconfig -C ROOT/...` for a root lists paths with the root in front.
fn unrooted(value: &Path, root: &Path) -> PathBuf {
    match value.strip_prefix(root) {
        Ok(rest) if root != Path::new("/") => Path::new("/").join(rest),
        _ => value.to_path_buf(),
    }
}

/// Scans each directory once, however many of the paths lead to it.
fn scan_dirs(host: &HostRoot, dirs: Vec<(PathBuf, bool)>, version: &str, out: &mut Vec<Candidate>) {
    let mut seen = std::collections::HashSet::new();
    for (dir, bits32) in dirs {
        let Ok(listing) = host.read_dir(&dir) else {
            continue;
        };
        if listing.identity().map_or(true, |id| seen.insert(id)) {
            scan_dir(host, (&dir, &listing), bits32, version, out);
        }
    }
}

/// `.so.<version>`, the name ending of the driver's libraries; when the
/// libraries are not of the kernel module's version, `source` says so.
fn version_suffix(candidates: &[Candidate], version: &str, source: &mut String) -> String {
    match library_version(candidates, version) {
        Some(v) if v != version => {
            source.push_str(&format!(
                "; libraries of version {v}, the kernel module is {version}"
            ));
            format!(".so.{v}")
        }
        _ => format!(".so.{version}"),
    }
}

/// The candidates whose names end in `suffix`, one library per file,
/// 64-bit ones first, each group by file name.
fn libraries_with_suffix(candidates: Vec<Candidate>, suffix: &str) -> Vec<Library> {
    let mut libs: Vec<Library> = Vec::new();
    for c in candidates {
        if c.file_name.ends_with(suffix) {
            add_library(
                &mut libs,
                c.host_path,
                c.file_name,
                c.key.as_deref(),
                c.bits32,
            );
        }
    }
    libs.sort_by(|a, b| (a.bits32, &a.file_name).cmp(&(b.bits32, &b.file_name)));
    libs
}

fn file_name_of(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The driver's library version: the kernel module's when some library
/// carries it, else the one most libcuda/libnvidia-ml files carry.
fn library_version(candidates: &[Candidate], kernel: &str) -> Option<String> {
    let kernel_suffix = format!(".so.{kernel}");
    if candidates
        .iter()
        .any(|c| c.file_name.ends_with(&kernel_suffix))
    {
        return Some(kernel.to_string());
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for c in candidates {
        if !CORE.contains(&library_name(&c.file_name)) {
            continue;
        }
        let Some((_, v)) = c.file_name.split_once(".so.") else {
            continue;
        };
        if v.split('.').count() < 2
            || !v
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        match counts.iter_mut().find(|(x, _)| x == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v.to_string(), 1)),
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(v, _)| v)
}

/// Adds the files of one directory that may be driver libraries: those of
/// the kernel module's version, and NVIDIA-named ones of any `N.N` version.
/// Each is opened once inside the root; its ELF header is read through that
/// fd, and its real path (the bind-mount source) is the fd's.
fn scan_dir(
    host: &HostRoot,
    (dir, listing): (&Path, &HostDir),
    bits32: bool,
    version: &str,
    out: &mut Vec<Candidate>,
) {
    let suffix = format!(".so.{version}");
    let driver_named = |n: &str| {
        let name = library_name(n);
        name.contains("nvidia") || name.contains("cuda") || name.starts_with("libnv")
    };
    let mut names: Vec<String> = listing
        .entries()
        .iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(&suffix)
                || (driver_named(n) && n.split_once(".so.").is_some_and(|(_, v)| v.contains('.')))
        })
        .collect();
    names.sort();
    // Files the cache already led to are not opened again.
    names.retain(|n| !out.iter().any(|c| c.host_path.ends_with(dir.join(n))));
    for n in names {
        let Ok(file) = host.open_file(&dir.join(&n)) else {
            continue;
        };
        let Some(host_path) = fd_path(&file) else {
            continue;
        };
        if out
            .iter()
            .any(|c| c.host_path == host_path && c.key.is_some())
        {
            continue;
        }
        let soname = super::elf::soname(&file).or_else(|| soname_link(listing, &n));
        out.push(Candidate {
            bits32: super::elf::is_32bit(&file).unwrap_or(bits32),
            file_name: n,
            host_path,
            key: soname,
        });
    }
}

/// For a library without an ELF soname: the link beside it that points at
/// it (`libcuda.so.1 -> libcuda.so.580.1`), else the soname NVIDIA gives
/// that library.
pub(super) fn soname_link(listing: &HostDir, file: &str) -> Option<String> {
    let name = library_name(file);
    let link = listing
        .entries()
        .iter()
        .filter(|e| e.kind == Kind::Symlink)
        .filter(|e| {
            listing
                .read_link(&e.name)
                .is_some_and(|t| t.file_name().is_some_and(|f| f.to_string_lossy() == file))
        })
        .map(|e| e.name.to_string_lossy().into_owned())
        .filter(|l| l.starts_with(&format!("{name}.so.")) && l != file)
        .min_by_key(|l| l.len());
    link.or_else(|| {
        let version = file.split_once(".so.")?.1;
        Some(match name {
            "libGLX_nvidia" | "libEGL_nvidia" => format!("{name}.so.0"),
            "libGLESv2_nvidia" => format!("{name}.so.2"),
            "libnvidia-glcore"
            | "libnvidia-tls"
            | "libnvidia-eglcore"
            | "libnvidia-glsi"
            | "libnvidia-rtcore"
            | "libnvidia-cbl"
            | "libnvidia-gpucomp"
            | "libnvidia-glvkspirv" => format!("{name}.so.{version}"),
            _ => format!("{name}.so.1"),
        })
    })
}

/// The directories `etc/ld.so.conf` names (following `include` globs of
/// the form `DIR/*.conf`), resolved inside the host root.
fn ld_so_conf_dirs(host: &HostRoot) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut files = vec![PathBuf::from("etc/ld.so.conf")];
    let mut read = 0;
    while let Some(f) = files.pop() {
        read += 1;
        if read > 64 {
            break;
        }
        let Ok(text) = host.read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(pattern) = line.strip_prefix("include") {
                let pattern = Path::new(pattern.trim());
                let (Some(dir), Some(glob)) = (pattern.parent(), pattern.file_name()) else {
                    continue;
                };
                let glob = glob.to_string_lossy();
                let (prefix, suffix) = glob.split_once('*').unwrap_or((&glob, ""));
                let Ok(listing) = host.read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = listing
                    .entries()
                    .iter()
                    .map(|e| e.name.to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
                    .collect();
                names.sort();
                files.extend(names.into_iter().rev().map(|n| dir.join(n)));
            } else if line.starts_with('/') {
                out.push(PathBuf::from(line));
            }
        }
    }
    out
}

fn add_library(
    libs: &mut Vec<Library>,
    host_path: PathBuf,
    file_name: String,
    key: Option<&str>,
    bits32: bool,
) {
    // The cache may list a file under its soname and its dev name (`.so`).
    let soname = key.filter(|k| !k.ends_with(".so")).map(str::to_string);
    if let Some(l) = libs.iter_mut().find(|l| l.host_path == host_path) {
        if let Some(s) = soname {
            l.soname = s;
        }
        return;
    }
    libs.push(Library {
        name: library_name(&file_name).to_string(),
        soname: soname.unwrap_or_else(|| file_name.clone()),
        file_name,
        host_path,
        bits32,
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_driver_library_passes_the_cache_filter() {
        for cap in Caps::each() {
            for name in capability_libraries(cap) {
                assert!(
                    may_be_driver_library(format!("{name}.so.1").as_bytes()),
                    "{name}"
                );
            }
        }
        assert!(!may_be_driver_library(b"libc.so.6"));
        assert!(!may_be_driver_library(b"libssl.so.3"));
    }

    use super::*;
    use crate::gpu::elf::tests::elf_with_soname;
    use std::os::unix::fs::symlink;

    const V: &str = "580.1";

    /// A fake root whose library directory reaches outside it through
    /// symlinks (absolute, `..`), next to an outside tree holding libraries
    /// with a soname that must never be read.
    fn escaping_root() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        let lib = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        for n in ["libnvidia-ml", "libnvidia-encode", "libnvidia-cfg"] {
            std::fs::write(
                outside.join(format!("{n}.so.{V}")),
                elf_with_soname("libescaped.so.9"),
            )
            .unwrap();
        }
        std::fs::write(
            lib.join(format!("libcuda.so.{V}")),
            elf_with_soname("libcuda.so.1"),
        )
        .unwrap();
        // Absolute: resolved under the root, where nothing is.
        symlink(
            outside.join(format!("libnvidia-ml.so.{V}")),
            lib.join(format!("libnvidia-ml.so.{V}")),
        )
        .unwrap();
        // `..` past the top stops at the root.
        symlink(
            format!(
                "../../../../../../../../../..{}/libnvidia-encode.so.{V}",
                outside.display()
            ),
            lib.join(format!("libnvidia-encode.so.{V}")),
        )
        .unwrap();
        // Absolute, with the same path inside the root: that one is read.
        let shadow = root.join(outside.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&shadow).unwrap();
        std::fs::write(
            shadow.join(format!("libnvidia-cfg.so.{V}")),
            elf_with_soname("libnvidia-cfg.so.1"),
        )
        .unwrap();
        symlink(
            outside.join(format!("libnvidia-cfg.so.{V}")),
            lib.join(format!("libnvidia-cfg.so.{V}")),
        )
        .unwrap();
        (tmp, root, outside)
    }

    fn assert_inside(libs: &[Library], root: &Path) {
        let root = std::fs::canonicalize(root).unwrap();
        for l in libs {
            assert!(l.host_path.starts_with(&root), "{l:?} is outside {root:?}");
            assert_ne!(l.soname, "libescaped.so.9", "{l:?}: read from outside");
        }
    }

    #[test]
    fn a_scan_never_reads_a_library_outside_the_root() {
        let (_tmp, root, _outside) = escaping_root();
        let host = HostRoot::open(&root).unwrap();
        let (libs, source) = find_libraries(&host, V);
        assert!(source.contains("scan"), "{source}");
        assert_inside(&libs, &root);
        let names: Vec<(&str, &str)> = libs
            .iter()
            .map(|l| (l.file_name.as_str(), l.soname.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("libcuda.so.580.1", "libcuda.so.1"),
                ("libnvidia-cfg.so.580.1", "libnvidia-cfg.so.1"),
            ]
        );
    }

    /// The host cache itself, and the files it names, are looked up inside
    /// the root: a cache that is a link to an outside cache is not read,
    /// and an entry naming an outside file finds nothing there.
    #[test]
    fn the_cache_and_its_entries_stay_inside_the_root() {
        let (_tmp, root, outside) = escaping_root();
        let outside_lib = outside.join(format!("libnvidia-ml.so.{V}"));
        let cache = ldcache::write(&[
            ldcache::Entry::new(
                ldcache::FLAG_X86_64,
                "libnvidia-ml.so.1",
                &outside_lib.to_string_lossy(),
            ),
            ldcache::Entry::new(
                ldcache::FLAG_X86_64,
                "libcuda.so.1",
                &format!("/usr/lib/x86_64-linux-gnu/libcuda.so.{V}"),
            ),
        ]);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // A cache in the root listing an outside file.
        std::fs::write(root.join("etc/ld.so.cache"), &cache).unwrap();
        let host = HostRoot::open(&root).unwrap();
        let (libs, source) = find_libraries(&host, V);
        assert!(source.contains("(2 entries)"), "{source}");
        assert_inside(&libs, &root);
        assert!(libs.iter().any(|l| l.name == "libcuda"), "{libs:?}");
        assert!(!libs.iter().any(|l| l.name == "libnvidia-ml"), "{libs:?}");
        // The cache as a link to one outside the root: not read at all.
        std::fs::write(outside.join("ld.so.cache"), &cache).unwrap();
        std::fs::remove_file(root.join("etc/ld.so.cache")).unwrap();
        symlink(outside.join("ld.so.cache"), root.join("etc/ld.so.cache")).unwrap();
        let (libs, source) = find_libraries(&host, V);
        assert!(source.contains("no usable etc/ld.so.cache"), "{source}");
        assert_inside(&libs, &root);
    }
}
