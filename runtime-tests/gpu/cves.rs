//! Regression tests named after NVIDIA container toolkit CVEs, in the
//! shapes their exploits took, against vessel's GPU path: CVE-2025-23266
//! (the image's `LD_PRELOAD` reached the toolkit's privileged
//! createContainer hook) and CVE-2025-23267 (its update-ldcache hook
//! followed the image's links). The compat directory linked out of the
//! rootfs (the same CVE's class) is in compat.rs.

use super::compat::HOST_LIBCUDA;
use super::{built, can_run, src, which_bundle};
use crate::harness::{self, unique, TestResult};
use serde_json::json;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// A host program for every hook kind (fake/hook-probe.c): its library is
/// found through its RUNPATH, which LD_LIBRARY_PATH comes before.
fn hook_probe() -> PathBuf {
    let lib = built(
        "libvessel-stub.so.1",
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libvessel-stub.so.1",
            &src("libstub.c"),
        ],
    );
    let dir = lib.parent().unwrap().display().to_string();
    built(
        "hook-probe",
        &[
            &src("hook-probe.c"),
            &lib.display().to_string(),
            &format!("-Wl,-rpath,{dir}"),
            "-Wl,--enable-new-dtags",
        ],
    )
}

/// fake/evil.c built to append to `marker`.
fn evil_library(marker: &Path) -> PathBuf {
    built(
        &format!("{}.so", unique("evil")),
        &[
            "-shared",
            "-fPIC",
            &format!("-DMARKER=\"{}\"", marker.display()),
            &src("evil.c"),
        ],
    )
}

/// The variable's value naming the image's library: through the hook's
/// working directory (the bundle), by its host path, and by its path in
/// the container. For LD_LIBRARY_PATH, `/evil-lib` holds it as libcuda
/// (for the container) and `host-evil-lib` as the hook's library.
fn loader_variable(var: &str, rootfs: &Path, evil: &Path) -> String {
    let root = rootfs.display();
    match var {
        "LD_PRELOAD" => format!("/proc/self/cwd/rootfs/evil.so {root}/evil.so /evil.so"),
        "LD_AUDIT" => format!("{root}/evil.so:/evil.so"),
        _ => {
            for (dir, name) in [
                ("evil-lib", "libcuda.so.1"),
                ("host-evil-lib", "libvessel-stub.so.1"),
            ] {
                std::fs::create_dir_all(rootfs.join(dir)).unwrap();
                std::fs::copy(evil, rootfs.join(dir).join(name)).unwrap();
            }
            format!("/evil-lib:{root}/host-evil-lib")
        }
    }
}

/// The image's `LD_PRELOAD`, `LD_AUDIT` and `LD_LIBRARY_PATH` name a
/// library of the image that marks whoever loads it. With a GPU request
/// and a host program as every kind of hook, nothing on the host loads
/// it (no marker at its host path); the container's own process does
/// (its marker in the rootfs), so the library was loadable all along.
fn cve_2025_23266_the_images_loader_variables_reach_no_host_process() -> TestResult {
    can_run()?;
    let probe = hook_probe();
    for var in ["LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH"] {
        let markers = tempfile::tempdir().unwrap();
        let marker = markers.path().join("marker");
        let evil = evil_library(&marker);
        let mut b = which_bundle("", "debian", &["NVIDIA_VISIBLE_DEVICES=0"]);
        b.config["process"]["args"] = json!(["cuda-which", "libcuda.so.1"]);
        let rootfs = b.rootfs();
        std::fs::copy(&evil, rootfs.join("evil.so")).unwrap();
        let inside = rootfs.join(marker.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        let value = loader_variable(var, &rootfs, &evil);

        // Run on the host with the variable, the hook program loads it.
        let out = Command::new(&probe)
            .env(var, &value)
            .current_dir(b.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{var}: {out:?}");
        assert!(
            marker.exists(),
            "{var}: the library does not mark a host process"
        );
        std::fs::remove_file(&marker).unwrap();

        b.config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(format!("{var}={value}")));
        for kind in [
            "createRuntime",
            "createContainer",
            "prestart",
            "poststart",
            "poststop",
        ] {
            b.config["hooks"][kind] = json!([{"path": probe, "args": ["hook-probe", kind]}]);
        }
        let out = b.run_ok(&unique("gpu"));
        assert!(
            !marker.exists(),
            "{var}: loaded by a host process: {}",
            std::fs::read_to_string(&marker).unwrap_or_default()
        );
        let mark = std::fs::read_to_string(&inside)
            .unwrap_or_else(|e| panic!("{var}: not loaded in the container either ({e}): {out}"));
        assert!(
            mark.contains("exe /usr/local/bin/cuda-which"),
            "{var}: {mark}"
        );
        let loaded = if var == "LD_LIBRARY_PATH" {
            "libcuda.so.1 => /evil-lib/libcuda.so.1"
        } else {
            HOST_LIBCUDA
        };
        assert!(out.contains(loaded), "{var}: {out}");
    }
    Ok(())
}

/// (content, mtime) of a file.
fn snapshot(file: &Path) -> (Vec<u8>, SystemTime) {
    let content = std::fs::read(file).unwrap();
    (
        content,
        std::fs::metadata(file).unwrap().modified().unwrap(),
    )
}

/// The image's `/etc/ld.so.cache`, or `/etc` itself, a link to a host file
/// or directory (absolute, or climbing with `..`): vessel's cache write
/// resolves inside the rootfs and never touches the host's file, and the
/// container still loads the driver's libcuda.
fn cve_2025_23267_a_linker_cache_linked_out_of_the_rootfs_is_not_written() -> TestResult {
    can_run()?;
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("ld.so.cache");
    std::fs::write(&file, "a host file the runtime must not write\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    let before = snapshot(&file);
    let climb = "../../../../../../../../../../..";
    let cases = [
        ("etc/ld.so.cache", file.display().to_string()),
        ("etc/ld.so.cache", format!("{climb}{}", file.display())),
        ("etc", host.path().display().to_string()),
        ("etc", format!("{climb}{}", host.path().display())),
    ];
    for (link, target) in cases {
        let b = which_bundle(
            "cuda-which libcuda.so.1",
            "debian",
            &["NVIDIA_VISIBLE_DEVICES=0"],
        );
        let at = b.rootfs().join(link);
        if at.is_dir() {
            std::fs::rename(&at, b.rootfs().join("etc.image")).unwrap();
        } else {
            std::fs::remove_file(&at).unwrap();
        }
        symlink(&target, &at).unwrap();
        let out = b.run_ok(&unique("gpu"));
        assert!(out.contains(HOST_LIBCUDA), "{link} -> {target}: {out}");
        assert!(
            snapshot(&file) == before,
            "{link} -> {target}: the host file changed"
        );
        let names: Vec<_> = std::fs::read_dir(host.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["ld.so.cache"],
            "{link} -> {target}: files added on the host"
        );
        if link == "etc" {
            let kept = std::fs::symlink_metadata(&at)
                .unwrap()
                .file_type()
                .is_symlink();
            assert!(kept, "{link} -> {target}: the image's link was replaced");
        }
    }
    Ok(())
}

harness::tests![
    cve_2025_23266_the_images_loader_variables_reach_no_host_process,
    cve_2025_23267_a_linker_cache_linked_out_of_the_rootfs_is_not_written,
];
