//! A GPU bundle run again, as `make bench` runs it: the driver libraries'
//! other names are links in the image (not a bind each), the image's own
//! files are left alone, and the cache memo vessel keeps on the image's
//! ld.so.cache stands only while the file is the one it wrote.

use super::{can_run, which_bundle};
use crate::harness::{self, unique, TestResult};
use std::path::Path;

const LIB: &str = "usr/lib/x86_64-linux-gnu";

/// The memo attribute on `cache`, if the filesystem kept one.
fn memo(cache: &Path) -> Option<String> {
    let path = std::ffi::CString::new(cache.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = [0u8; 640];
    // SAFETY: a buffer of the length given, NUL-terminated strings.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"user.vessel.ldcache".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn a_bundle_run_again_keeps_links_and_the_images_files() -> TestResult {
    can_run()?;
    let script =
        format!("cuda-which libcuda.so.1 libcuda.so; cat /{LIB}/libnvidia-ml.so.1 | wc -c");
    let b = which_bundle(&script, "debian", &["NVIDIA_VISIBLE_DEVICES=0"]);
    let lib = b.rootfs().join(LIB);
    std::fs::write(lib.join("libnvidia-ml.so.1"), "the image's own").unwrap();
    let cache = b.rootfs().join("etc/ld.so.cache");
    let image_cache = std::fs::read(&cache).unwrap();
    let want = format!("libcuda.so.1 => /{LIB}/libcuda.so.1 ");
    for round in ["first", "again", "after the image's cache came back"] {
        let out = b.run_ok(&unique("gpu-rerun"));
        assert!(out.contains(&want), "{round}: {out}");
        assert!(
            out.contains(&format!("libcuda.so => /{LIB}/libcuda.so")),
            "{round}: {out}"
        );
        let ml_size: usize = out.lines().last().unwrap().trim().parse().unwrap();
        assert!(
            ml_size > 100,
            "{round}: the driver's libnvidia-ml.so.1 is bound over the image's: {out}"
        );
        let link = std::fs::read_link(lib.join("libcuda.so.1")).unwrap();
        assert!(
            link.to_string_lossy().starts_with("libcuda.so.5"),
            "{round}: libcuda.so.1 -> {}",
            link.display()
        );
        assert_eq!(
            std::fs::read(lib.join("libnvidia-ml.so.1")).unwrap(),
            b"the image's own",
            "{round}: the image's file was changed"
        );
        if let Some(m) = memo(&cache) {
            assert!(m.starts_with("vessel-ldcache-1 "), "{round}: {m}");
        }
        if round == "again" {
            // As the image's ldconfig would: a cache without the driver's
            // entries, written in place (the memo attribute stays on it).
            std::fs::write(&cache, &image_cache).unwrap();
        }
    }
    Ok(())
}

harness::tests![a_bundle_run_again_keeps_links_and_the_images_files];
