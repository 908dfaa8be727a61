//! The cgroupfs operations the drivers share: making a container's
//! directories (recording which ones vessel made), moving a process in,
//! listing its processes, and removing what was made.

use super::hierarchy::Hierarchy;
use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// The directories missing on the way to `dir` inside `h` (parents first):
/// what making `dir` would create.
pub(super) fn missing(h: &Hierarchy, dir: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut d = dir.to_path_buf();
    while !d.exists() && d.starts_with(&h.mountpoint) && d != h.mountpoint {
        missing.push(d.clone());
        if !d.pop() {
            break;
        }
    }
    missing.reverse();
    missing
}

/// Makes `dir` and its missing parents in hierarchy `h`, appending each
/// directory made to `created` (parents first). A new v1 cpuset directory
/// gets its parent's cpus and mems.
pub(super) fn make_dir(h: &Hierarchy, dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let cpuset = !h.unified && h.controllers.iter().any(|c| c == "cpuset");
    mkdir_all_recording(dir, cpuset, created)
}

/// mkdir first and walks up only on ENOENT: an existing parent costs one
/// failed mkdir, not a stat per level.
fn mkdir_all_recording(dir: &Path, cpuset: bool, created: &mut Vec<PathBuf>) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Some(parent) = dir.parent() else {
                return Err(Error::io("creating cgroup", dir, e));
            };
            mkdir_all_recording(parent, cpuset, created)?;
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(Error::io("creating cgroup", dir, e)),
            }
        }
        Err(e) => return Err(Error::io("creating cgroup", dir, e)),
    }
    created.push(dir.to_path_buf());
    if cpuset {
        inherit_cpuset(dir)?;
    }
    Ok(())
}

/// On cgroup v2 a cgroup only has the controllers its parent delegates:
/// enable every available one down the path to `dir` (as runc does), so
/// memory.max, pids.max and friends exist in the container's cgroup.
/// A level that refuses (a parent with processes of its own) is left as is.
pub(super) fn enable_controllers(mount: &Path, dir: &Path) {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return;
    };
    let mut level = mount.to_path_buf();
    for comp in rel.components() {
        let available =
            std::fs::read_to_string(level.join("cgroup.controllers")).unwrap_or_default();
        let enable: Vec<String> = available
            .split_whitespace()
            .map(|c| format!("+{c}"))
            .collect();
        if !enable.is_empty() {
            let _ = std::fs::write(level.join("cgroup.subtree_control"), enable.join(" "));
        }
        level.push(comp);
    }
}

/// A new v1 cpuset cgroup starts with no cpus and mems, and refuses tasks
/// until they are set: copy the parent's, as runc does.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let Ok(current) = std::fs::read_to_string(&own) else {
            // Not a cpuset directory after all (the hierarchy's mountpoint).
            return Ok(());
        };
        if current.trim().is_empty() {
            // The parent may be another container's fresh parent, not filled in yet.
            let mut value =
                std::fs::read_to_string(parent.join(file)).ctx("reading", parent.join(file))?;
            if value.trim().is_empty() {
                inherit_cpuset(parent)?;
                value =
                    std::fs::read_to_string(parent.join(file)).ctx("reading", parent.join(file))?;
            }
            std::fs::write(&own, value.trim()).ctx("writing", &own)?;
        }
    }
    Ok(())
}

/// Moves `pid` into every directory of `dirs`.
pub(super) fn write_procs(dirs: &[PathBuf], pid: i32, what: &'static str) -> Result<()> {
    let pid = pid.to_string();
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, &pid).ctx(what, &procs)?;
    }
    Ok(())
}

/// Host pids in the cgroup: the whole subtree of the first directory (a
/// container may make child cgroups).
pub(super) fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    let Some(dir) = dirs.first() else {
        return vec![];
    };
    let mut pids = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    pids
}

/// Removes cgroup directories, children first. A directory still busy with
/// exiting tasks is retried for a short while; a parent shared with other
/// containers (not empty) is left in place. Returns what could not be
/// removed among `own` (the container's own directories): that is a leak.
pub(super) fn remove_dirs(created: &[PathBuf], own: &[PathBuf]) -> Vec<String> {
    let mut failed = Vec::new();
    for dir in created.iter().rev() {
        let mut result = Ok(());
        for attempt in 0..50 {
            result = std::fs::remove_dir(dir);
            match &result {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                _ => break,
            }
        }
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound && own.contains(dir) => {
                failed.push(format!("removing cgroup {}: {e}", dir.display()));
            }
            _ => {}
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_and_remove_in_a_temporary_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Hierarchy {
            mountpoint: tmp.path().join("pids"),
            root: "/".into(),
            controllers: vec!["pids".into()],
            unified: false,
        };
        std::fs::create_dir(tmp.path().join("pids")).unwrap();
        let dir = tmp.path().join("pids/x/y");
        assert_eq!(
            missing(&h, &dir),
            vec![tmp.path().join("pids/x"), dir.clone()]
        );
        let mut created = Vec::new();
        make_dir(&h, &dir, &mut created).unwrap();
        assert_eq!(created, vec![tmp.path().join("pids/x"), dir.clone()]);
        make_dir(&h, &dir, &mut created).unwrap();
        assert_eq!(created.len(), 2, "an existing directory is not recorded");
        assert!(remove_dirs(&created, std::slice::from_ref(&dir)).is_empty());
        assert!(!tmp.path().join("pids/x").exists());
    }

    #[test]
    fn a_leftover_own_directory_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        std::fs::create_dir_all(dir.join("child")).unwrap();
        let failed = remove_dirs(std::slice::from_ref(&dir), std::slice::from_ref(&dir));
        assert_eq!(failed.len(), 1);
        assert!(failed[0].contains("removing cgroup"), "{failed:?}");
        // A shared parent that stays is not a failure.
        let parent = tmp.path().to_path_buf();
        assert!(remove_dirs(&[parent], std::slice::from_ref(&dir)).is_empty());
    }
}
