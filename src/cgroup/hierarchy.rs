//! The host's cgroup hierarchies, read once from /proc/self/mountinfo, and
//! where a container's cgroup path lands in each of them. Pure: tests feed
//! mountinfo and /proc/self/cgroup text.

use crate::error::{IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// The mount's root inside the hierarchy (`/` unless the host is itself a container).
    pub root: PathBuf,
    /// v1 controllers (`cpu`, `name=systemd`); empty for cgroup2.
    pub controllers: Vec<String>,
    pub unified: bool,
}

/// The host's cgroup layout, decided once at create from the mounts and
/// recorded in the state (`cgroup_layout`), so later commands do not probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Only v1 hierarchies.
    #[serde(rename = "v1")]
    Legacy,
    /// v1 controllers plus a cgroup2 mount without controllers.
    #[serde(rename = "hybrid")]
    Hybrid,
    /// Only cgroup2.
    #[serde(rename = "v2")]
    Unified,
}

#[derive(Debug, Clone)]
pub struct Hierarchies {
    pub all: Vec<Hierarchy>,
}

impl Hierarchies {
    /// Reads the cgroup mounts of this process's mount namespace.
    pub fn detect() -> Result<Hierarchies> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .ctx("reading", "/proc/self/mountinfo")?;
        Ok(Hierarchies::parse_mountinfo(&text))
    }

    pub fn parse_mountinfo(text: &str) -> Hierarchies {
        let mut all: Vec<Hierarchy> = Vec::new();
        for m in crate::util::proc::parse_mountinfo(text) {
            let hierarchy = match m.fstype.as_str() {
                "cgroup2" => Hierarchy {
                    mountpoint: m.mount_point,
                    root: m.root,
                    controllers: vec![],
                    unified: true,
                },
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_options
                        .split(',')
                        .filter(|o| is_controller(o))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    Hierarchy {
                        mountpoint: m.mount_point,
                        root: m.root,
                        controllers,
                        unified: false,
                    }
                }
                _ => continue,
            };
            // A hierarchy mounted twice: keep the first mount.
            if !all
                .iter()
                .any(|h| h.controllers == hierarchy.controllers && h.unified == hierarchy.unified)
            {
                all.push(hierarchy);
            }
        }
        Hierarchies { all }
    }

    pub fn layout(&self) -> Layout {
        let v1 = self.all.iter().any(|h| !h.unified);
        let v2 = self.all.iter().any(|h| h.unified);
        match (v1, v2) {
            (true, true) => Layout::Hybrid,
            (true, false) => Layout::Legacy,
            _ => Layout::Unified,
        }
    }

    pub fn find(&self, controller: &str) -> Option<&Hierarchy> {
        self.all
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    pub fn unified(&self) -> Option<&Hierarchy> {
        self.all.iter().find(|h| h.unified)
    }
}

fn is_controller(opt: &str) -> bool {
    !matches!(
        opt,
        "rw" | "ro"
            | "relatime"
            | "noatime"
            | "nosuid"
            | "nodev"
            | "noexec"
            | "xattr"
            | "clone_children"
    ) && !opt.starts_with("release_agent=")
}

/// The cgroup path (inside every hierarchy) for a container: absolute
/// `cgroupsPath` as is, a relative one under this process's own cgroup in
/// each hierarchy (as runc does), none as `/vessel/ID`.
pub fn container_path(cgroups_path: Option<&Path>, id: &str) -> PathBuf {
    match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new("/vessel").join(id),
    }
}

/// `N:controllers:path` lines of /proc/self/cgroup for a relative cgroupsPath.
fn own_cgroup(h: &Hierarchy, proc_self_cgroup: &str) -> PathBuf {
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        let matches = if h.unified {
            ctrls.is_empty()
        } else {
            let list: Vec<&str> = ctrls.split(',').collect();
            h.controllers.iter().all(|c| list.contains(&c.as_str()))
        };
        if matches {
            return PathBuf::from(path);
        }
    }
    PathBuf::from("/")
}

/// The container's directory in one hierarchy.
pub fn dir_in(h: &Hierarchy, path: &Path, proc_self_cgroup: &str) -> PathBuf {
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        own_cgroup(h, proc_self_cgroup).join(path)
    };
    let full = clean(&full);
    let inside = full.strip_prefix(&h.root).unwrap_or(&full);
    let rel = inside.strip_prefix("/").unwrap_or(inside);
    h.mountpoint.join(rel)
}

/// Lexically resolves `.` and `..` against `/` (as runc's CleanPath), so a
/// cgroupsPath can never leave the cgroup filesystem.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// /proc/self/cgroup, which a relative cgroupsPath is resolved against.
pub(super) fn own_cgroups_for(path: &Path) -> Result<String> {
    if path.is_absolute() {
        return Ok(String::new());
    }
    std::fs::read_to_string("/proc/self/cgroup").ctx("reading", "/proc/self/cgroup")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout_is_detected() {
        let hs = Hierarchies::parse_mountinfo(HYBRID);
        assert_eq!(hs.layout(), Layout::Hybrid);
        assert_eq!(hs.all.len(), 5);
        assert_eq!(
            hs.find("name=systemd").unwrap().mountpoint,
            Path::new("/sys/fs/cgroup/systemd")
        );
        assert!(hs.unified().is_some());
    }

    #[test]
    fn unified_layout_is_detected() {
        let hs = Hierarchies::parse_mountinfo(
            "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(hs.layout(), Layout::Unified);
    }

    #[test]
    fn paths_absolute_relative_and_default() {
        let hs = Hierarchies::parse_mountinfo(HYBRID);
        let mem = hs.find("memory").unwrap();
        let own = "4:memory:/machine/abc\n1:cpu:/\n0::/user\n";
        assert_eq!(
            dir_in(mem, Path::new("/a/b"), own),
            Path::new("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(
            dir_in(mem, Path::new("rel"), own),
            Path::new("/sys/fs/cgroup/memory/machine/abc/rel")
        );
        assert_eq!(
            dir_in(hs.unified().unwrap(), Path::new("rel"), own),
            Path::new("/sys/fs/cgroup/unified/user/rel")
        );
        assert_eq!(container_path(None, "c1"), Path::new("/vessel/c1"));
        assert_eq!(
            dir_in(mem, Path::new("/a/../../../../tmp/x"), own),
            Path::new("/sys/fs/cgroup/memory/tmp/x"),
            "never above the mount"
        );
    }
}
