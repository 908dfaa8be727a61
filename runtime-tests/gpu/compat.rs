//! CUDA forward compatibility: an image's `/usr/local/cuda/compat`
//! libraries (NVIDIA's cuda-compat package) are loaded ahead of the host
//! driver's when their driver branch is newer than the host's, and only
//! then. Checked with glibc's own loader in the container (`cuda-which`
//! prints the file it picked); the fake host driver is 580.159.04.

use super::{built, can_run, src, which_bundle};
use crate::harness::{self, unique, Bundle, TestResult};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::Path;

/// The fake driver's libcuda, as the host gives it.
pub(super) const HOST_LIBCUDA: &str =
    "libcuda.so.1 => /usr/lib/x86_64-linux-gnu/libcuda.so.1 (cuda 12020)";

const HOST_PTX: &str =
    "libnvidia-ptxjitcompiler.so.1 => /usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1";

/// Which file each name loads, the way CUDA programs open them.
const WHICH: &str =
    "cuda-which libcuda.so.1; cuda-which libcuda.so; cuda-which libnvidia-ptxjitcompiler.so.1; true";

/// Installs cuda-compat's files of driver `version` in `dir` as the
/// package lays them out: a fake libcuda reporting CUDA 12.9 (12090) and a
/// ptxjitcompiler under their full version, with soname and dev-name links.
pub(super) fn install_compat(dir: &Path, version: &str) {
    let cuda = built(
        "libcuda-compat.so",
        &[
            "-shared",
            "-fPIC",
            "-DFAKE_CUDA_VERSION=12090",
            "-Wl,-soname,libcuda.so.1",
            &src("libcuda.c"),
        ],
    );
    let ptx = built(
        "libptx-compat.so",
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libnvidia-ptxjitcompiler.so.1",
            &src("libstub.c"),
        ],
    );
    std::fs::create_dir_all(dir).unwrap();
    for (lib, name) in [(cuda, "libcuda"), (ptx, "libnvidia-ptxjitcompiler")] {
        let file = format!("{name}.so.{version}");
        std::fs::copy(lib, dir.join(&file)).unwrap();
        symlink(&file, dir.join(format!("{name}.so.1"))).unwrap();
        symlink(format!("{name}.so.1"), dir.join(format!("{name}.so"))).unwrap();
    }
}

/// An image laid out as NVIDIA's CUDA images are: the toolkit in
/// `/usr/local/cuda-12.9`, reached through `/usr/local/cuda ->
/// /etc/alternatives/cuda -> /usr/local/cuda-12.9` (links inside the
/// image, which are followed), with cuda-compat of `version`.
fn compat_image(env: &[&str], version: &str) -> Bundle {
    let b = which_bundle(WHICH, "debian", env);
    let root = b.rootfs();
    install_compat(&root.join("usr/local/cuda-12.9/compat"), version);
    std::fs::create_dir_all(root.join("etc/alternatives")).unwrap();
    symlink("/usr/local/cuda-12.9", root.join("etc/alternatives/cuda")).unwrap();
    symlink("/etc/alternatives/cuda", root.join("usr/local/cuda")).unwrap();
    b
}

fn a_newer_compat_libcuda_is_loaded_ahead_of_the_drivers() -> TestResult {
    can_run()?;
    let compat = "/usr/local/cuda/compat";
    let b = compat_image(&["NVIDIA_VISIBLE_DEVICES=0"], "590.44.01");
    let out = b.run_ok(&unique("gpu"));
    for want in [
        format!("libcuda.so.1 => {compat}/libcuda.so.590.44.01 (cuda 12090)"),
        format!("libcuda.so => {compat}/libcuda.so.590.44.01 (cuda 12090)"),
        format!("libnvidia-ptxjitcompiler.so.1 => {compat}/libnvidia-ptxjitcompiler.so.590.44.01"),
    ] {
        assert!(out.contains(&want), "no {want}: {out}");
    }
    // The host's libraries are still bound in; only the cache order chose.
    let mut b = compat_image(&["NVIDIA_VISIBLE_DEVICES=0"], "590.44.01");
    b.config["process"]["args"] =
        serde_json::json!(["cuda-which", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"]);
    let out = b.run_ok(&unique("gpu"));
    assert!(out.contains("(cuda 12020)"), "{out}");
    // Without compute the container gets no libcuda, compat or not.
    let b = compat_image(
        &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=utility",
        ],
        "590.44.01",
    );
    let out = b.run_ok(&unique("gpu"));
    assert!(out.contains("libcuda.so.1: not loaded"), "{out}");
    Ok(())
}

fn an_older_or_same_branch_compat_libcuda_is_not_used() -> TestResult {
    can_run()?;
    // Older; the host's branch with an older minor; and with a newer one
    // (the major decides, as in NVIDIA's toolkit).
    for version in ["570.172.08", "580.65.06", "580.200.01"] {
        let b = compat_image(&["NVIDIA_VISIBLE_DEVICES=all"], version);
        let out = b.run_ok(&unique("gpu"));
        assert!(out.contains(HOST_LIBCUDA), "{version}: {out}");
        assert!(out.contains(HOST_PTX), "{version}: {out}");
        assert!(!out.contains("/usr/local/cuda/compat"), "{version}: {out}");
    }
    Ok(())
}

/// An inotify watch on a directory and the files in it: any open or read
/// of them is seen.
struct Watch(OwnedFd);

impl Watch {
    fn new(dir: &Path) -> Watch {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain syscalls; the fd is owned right away.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let wd = unsafe {
            libc::inotify_add_watch(
                fd.as_raw_fd(),
                path.as_ptr(),
                libc::IN_OPEN | libc::IN_ACCESS,
            )
        };
        assert!(
            wd >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        Watch(fd)
    }

    /// True when something opened or read the directory or a file in it
    /// since the last call.
    fn touched(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut seen = false;
        loop {
            // SAFETY: a buffer of the length passed.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return seen;
            }
            seen = true;
        }
    }
}

/// A compat directory that is a link out of the rootfs (absolute, with
/// `..`, or through its parent): resolved inside the image, where nothing
/// is, so the host's libcuda is loaded and no file outside is opened.
fn cve_2025_23267_a_compat_dir_linked_out_of_the_rootfs_is_not_followed() -> TestResult {
    can_run()?;
    let outside = tempfile::tempdir().unwrap();
    let compat = outside.path().join("compat");
    install_compat(&compat, "590.44.01");
    let dots = format!("../../../../../../../../../../..{}", compat.display());
    let links = [
        ("usr/local/cuda/compat", compat.display().to_string()),
        ("usr/local/cuda/compat", dots),
        ("usr/local/cuda", outside.path().display().to_string()),
    ];
    let watch = Watch::new(&compat);
    for (link, target) in links {
        let b = which_bundle(WHICH, "debian", &["NVIDIA_VISIBLE_DEVICES=0"]);
        let at = b.rootfs().join(link);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        symlink(&target, &at).unwrap();
        assert!(
            !watch.touched(),
            "the test itself read {}",
            compat.display()
        );
        let out = b.run_ok(&unique("gpu"));
        assert!(out.contains(HOST_LIBCUDA), "{link} -> {target}: {out}");
        assert!(out.contains(HOST_PTX), "{link} -> {target}: {out}");
        let cache = std::fs::read(b.rootfs().join("etc/ld.so.cache")).unwrap();
        assert!(
            !String::from_utf8_lossy(&cache).contains("cuda/compat"),
            "{link} -> {target}: the outside libraries are in the cache"
        );
        assert!(
            !watch.touched(),
            "{link} -> {target}: something opened {} outside the rootfs",
            compat.display()
        );
    }
    // The watch would have seen it.
    std::fs::read(compat.join("libcuda.so.590.44.01")).unwrap();
    assert!(watch.touched(), "the inotify watch sees no reads");
    Ok(())
}

harness::tests![
    a_newer_compat_libcuda_is_loaded_ahead_of_the_drivers,
    an_older_or_same_branch_compat_libcuda_is_not_used,
    cve_2025_23267_a_compat_dir_linked_out_of_the_rootfs_is_not_followed,
];
