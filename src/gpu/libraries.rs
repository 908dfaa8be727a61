//! The driver's libraries: which exist (from the host's ld.so.cache, else a
//! directory scan reading each file's ELF soname) and which each
//! capability brings.

use super::discover::real_path;
use super::ldcache;
use super::request::Caps;
use std::os::fd::OwnedFd;
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

/// Driver libraries: from the host's ld.so.cache, else a scan of the usual
/// library directories. Only files named `*.so.<driver version>` count.
pub(super) fn find_libraries(
    root: &Path,
    root_fd: &OwnedFd,
    version: &str,
) -> (Vec<Library>, String) {
    let suffix = format!(".so.{version}");
    let mut libs: Vec<Library> = Vec::new();
    let cache_path = root.join("etc/ld.so.cache");
    let cached = std::fs::read(&cache_path)
        .ok()
        .and_then(|b| ldcache::parse(&b).ok())
        .filter(|e| !e.is_empty());
    let source;
    if let Some(entries) = cached {
        source = format!("{} ({} entries)", cache_path.display(), entries.len());
        for e in entries {
            if e.hwcap != 0 || !(e.is_x86_64() || e.is_i386()) {
                continue;
            }
            let Some(host_path) = real_path(root_fd, Path::new(&e.value)) else {
                continue;
            };
            let file_name = host_path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if !file_name.ends_with(&suffix) {
                continue;
            }
            add_library(&mut libs, host_path, file_name, Some(&e.key), e.is_i386());
        }
    } else {
        let dirs = [
            ("usr/lib64", false),
            ("usr/lib/x86_64-linux-gnu", false),
            ("usr/lib/x86_64-linux-gnu/nvidia/current", false),
            ("lib64", false),
            ("lib/x86_64-linux-gnu", false),
            ("usr/lib32", true),
            ("usr/lib/i386-linux-gnu", true),
            ("usr/lib", true),
        ];
        source = "a scan of the library directories (no usable etc/ld.so.cache)".to_string();
        for (dir, bits32) in dirs {
            let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(&suffix))
                .collect();
            names.sort();
            for n in names {
                let Some(host_path) = real_path(root_fd, &Path::new(dir).join(&n)) else {
                    continue;
                };
                let soname = super::elf::soname(&host_path);
                let is32 = super::elf::is_32bit(&host_path).unwrap_or(bits32);
                add_library(&mut libs, host_path, n, soname.as_deref(), is32);
            }
        }
    }
    libs.sort_by(|a, b| (a.bits32, &a.file_name).cmp(&(b.bits32, &b.file_name)));
    (libs, source)
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
