//! pause/resume: the v1 freezer controller, or v2's `cgroup.freeze`.

use super::Layout;
use crate::error::{Error, IoContext, Result};
use std::path::PathBuf;

/// The freezer of a container's cgroup: v2 `cgroup.freeze` on a unified
/// host; on v1 and hybrid the v1 `freezer.state` (hybrid without the v1
/// controller: the cgroup2 directory's `cgroup.freeze`).
enum Freezer {
    V1(PathBuf),
    V2(PathBuf),
}

fn freezer(layout: Layout, dirs: &[PathBuf]) -> Option<Freezer> {
    if layout == Layout::Unified {
        return dirs
            .first()
            .filter(|d| d.join("cgroup.freeze").exists())
            .map(|d| Freezer::V2(d.clone()));
    }
    if let Some(d) = dirs.iter().find(|d| d.join("freezer.state").exists()) {
        return Some(Freezer::V1(d.clone()));
    }
    if layout == Layout::Legacy {
        return None;
    }
    dirs.iter()
        .find(|d| d.join("cgroup.freeze").exists())
        .map(|d| Freezer::V2(d.clone()))
}

pub(super) fn is_frozen(layout: Layout, dirs: &[PathBuf]) -> bool {
    match freezer(layout, dirs) {
        Some(Freezer::V1(d)) => {
            std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        }
        Some(Freezer::V2(d)) => {
            std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
        }
        None => false,
    }
}

/// Freezes (or thaws) every process of the container and waits until the
/// kernel says it is done.
pub(super) fn set_frozen(layout: Layout, dirs: &[PathBuf], frozen: bool) -> Result<()> {
    let (file, value, check_file, want) = match freezer(layout, dirs) {
        Some(Freezer::V1(d)) => {
            let v = if frozen { "FROZEN" } else { "THAWED" };
            (
                d.join("freezer.state"),
                v,
                d.join("freezer.state"),
                v.to_string(),
            )
        }
        Some(Freezer::V2(d)) => {
            let v = if frozen { "1" } else { "0" };
            (
                d.join("cgroup.freeze"),
                v,
                d.join("cgroup.events"),
                format!("frozen {v}"),
            )
        }
        None => {
            return Err(Error::invalid(
                "this host has no cgroup freezer (v1 freezer controller or cgroup v2)",
            ))
        }
    };
    for _ in 0..1000 {
        std::fs::write(&file, value).ctx("writing", &file)?;
        let now = std::fs::read_to_string(&check_file).ctx("reading", &check_file)?;
        if now.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(Error::invalid(format!(
        "{}: the kernel did not reach {want:?}",
        file.display()
    )))
}
