//! The root filesystem and mounts (config.md "Root", "Mounts";
//! config-linux.md "rootfsPropagation"), observed in the container's
//! /proc/self/mountinfo, `stat`, and what writes do.

mod binds;
mod mounts;
mod propagation;
mod root;

use crate::harness::{self, Bundle, MountInfo};
use serde_json::Value;
use std::path::PathBuf;

fn add_mount(b: &mut Bundle, m: Value) {
    b.config["mounts"].as_array_mut().unwrap().push(m);
}

/// A host directory for bind sources, inside the bundle's temporary
/// directory (outside the rootfs).
fn host_dir(b: &Bundle, name: &str) -> PathBuf {
    let d = b.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mountinfo_after(out: &str, marker: &str) -> Vec<MountInfo> {
    let text = out
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker} in output:\n{out}"));
    harness::parse_mountinfo(text)
}
