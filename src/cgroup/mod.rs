//! The container's cgroup on cgroup v1, v2 and hybrid hosts: where it goes,
//! making it, placing the init process in it, v1 device rules, and removing
//! it. Every function takes the hierarchy table, read once from
//! /proc/self/mountinfo, so tests point it at a temporary tree.

use crate::error::{Error, IoContext, Result};
use oci_spec::runtime::LinuxDeviceCgroup;
use std::path::{Path, PathBuf};

pub mod bpf_devices;
pub mod dbus;
mod devices;
mod freezer;
mod oom;
pub mod systemd;

pub use devices::{default_device_rules, v1_device_line};
pub use freezer::{is_frozen, set_frozen};
pub use oom::{explain as explain_oom, oom_kills};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 mount without controllers.
    Hybrid,
    /// Only cgroup2.
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
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 5 || r.len() < 3 {
                continue;
            }
            let (root, mountpoint) = (unescape(l[3]), unescape(l[4]));
            let hierarchy = match r[0] {
                "cgroup2" => Hierarchy {
                    mountpoint,
                    root,
                    controllers: vec![],
                    unified: true,
                },
                "cgroup" => {
                    let controllers: Vec<String> = r[2]
                        .split(',')
                        .filter(|o| is_controller(o))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    Hierarchy {
                        mountpoint,
                        root,
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

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// `update` with `linux.resources.devices`: on cgroup v2 the container's
/// device program is replaced (the new rules, then the default allow list,
/// as at create). cgroup v1 keeps its rules, as runc's update does: a v1
/// change would pass through "deny everything" while the container runs.
pub fn update_devices(dirs: &[PathBuf], r: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    let v2 = dirs.len() == 1
        && dirs[0].join("cgroup.controllers").exists()
        && !dirs[0].join("tasks").exists();
    if !v2 {
        crate::log::warn("update: linux.resources.devices cannot change on cgroup v1: ignored");
        return Ok(());
    }
    let all: Vec<_> = rules
        .iter()
        .cloned()
        .chain(default_device_rules())
        .collect();
    bpf_devices::replace(&dirs[0], &all)
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
fn own_cgroups_for(path: &Path) -> Result<String> {
    if path.is_absolute() {
        return Ok(String::new());
    }
    std::fs::read_to_string("/proc/self/cgroup").ctx("reading", "/proc/self/cgroup")
}

/// A container's cgroup: the directories it has in each hierarchy, and
/// which of those (and of their parents) vessel made, so delete removes
/// exactly what create made.
#[derive(Debug, Clone, Default)]
pub struct Cgroup {
    /// One directory per hierarchy.
    pub dirs: Vec<PathBuf>,
    /// Directories created by vessel, parents before children.
    pub created: Vec<PathBuf>,
    pub devices_dir: Option<PathBuf>,
    /// The systemd scope holding it (`--systemd-cgroup`).
    pub systemd_unit: Option<String>,
}

impl Cgroup {
    /// The directories `create` would make for `path` (parents first), made
    /// nothing yet: recorded first, so a create killed half-way can be undone.
    pub fn planned(hs: &Hierarchies, path: &Path) -> Result<Vec<PathBuf>> {
        let self_cgroup = own_cgroups_for(path)?;
        let mut out = Vec::new();
        for h in &hs.all {
            let mut missing = Vec::new();
            let mut d = dir_in(h, path, &self_cgroup);
            while !d.exists() && d.starts_with(&h.mountpoint) && d != h.mountpoint {
                missing.push(d.clone());
                if !d.pop() {
                    break;
                }
            }
            out.extend(missing.into_iter().rev());
        }
        Ok(out)
    }

    /// Makes the directories for `path` in every hierarchy.
    pub fn create(hs: &Hierarchies, path: &Path) -> Result<Cgroup> {
        let self_cgroup = own_cgroups_for(path)?;
        let mut cg = Cgroup::default();
        for h in &hs.all {
            let dir = dir_in(h, path, &self_cgroup);
            if let Err(e) = mkdir_all_recording(&dir, &mut cg.created) {
                cg.remove();
                return Err(e);
            }
            if h.controllers.iter().any(|c| c == "devices") {
                cg.devices_dir = Some(dir.clone());
            }
            if h.unified && hs.layout() == Layout::Unified {
                enable_controllers(&h.mountpoint, &dir);
            }
            cg.dirs.push(dir);
        }
        Ok(cg)
    }

    /// Moves `pid` into the cgroup in every hierarchy.
    pub fn add(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, &pid).ctx("adding the container to", &procs)?;
        }
        Ok(())
    }

    /// Writes v1 device rules (the spec's, then runc's defaults) in order.
    pub fn apply_v1_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let Some(dir) = &self.devices_dir else {
            return Ok(());
        };
        // Default deny first, as runc's device emulator starts from it.
        let deny_all = dir.join("devices.deny");
        std::fs::write(&deny_all, "a").ctx("writing", &deny_all)?;
        for rule in rules.iter().chain(default_device_rules().iter()) {
            let (file, line) = v1_device_line(rule)?;
            let path = dir.join(file);
            std::fs::write(&path, &line).map_err(|e| {
                Error::invalid(format!("device rule {line:?} in {}: {e}", path.display()))
            })?;
        }
        Ok(())
    }

    /// Host pids in the cgroup (from the first hierarchy).
    pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
        let Some(dir) = dirs.first() else {
            return vec![];
        };
        // The whole subtree: a container may make child cgroups.
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

    /// The scope's directories for the systemd driver: nothing is made
    /// here; `join_systemd` starts the unit once the init pid exists.
    pub fn for_systemd(hs: &Hierarchies, unit: &systemd::Unit) -> Cgroup {
        let mut cg = Cgroup {
            systemd_unit: Some(unit.name.clone()),
            ..Default::default()
        };
        for h in &hs.all {
            let dir = dir_in(h, &unit.cgroup, "");
            if h.controllers.iter().any(|c| c == "devices") {
                cg.devices_dir = Some(dir.clone());
            }
            cg.dirs.push(dir);
        }
        cg
    }

    /// Starts the systemd scope around `pid`; hierarchies systemd did not
    /// realise the scope in get the directory from vessel (and lose it on
    /// delete).
    pub fn join_systemd(
        &mut self,
        unit: &systemd::Unit,
        pid: i32,
        props: &[(String, dbus::Value)],
    ) -> Result<()> {
        systemd::start(unit, pid, props)?;
        let mut missing = Vec::new();
        for dir in &self.dirs {
            if !dir.exists() {
                mkdir_all_recording(dir, &mut self.created)?;
                missing.push(dir.clone());
            }
        }
        let pid = pid.to_string();
        for dir in missing {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, &pid).ctx("adding the container to", &procs)?;
        }
        Ok(())
    }

    /// Removes what create made (used on a failed create).
    pub fn remove(&self) {
        if let Some(unit) = self
            .systemd_unit
            .as_ref()
            .filter(|_| Path::new(systemd::SOCKET).exists())
        {
            if let Err(e) = systemd::stop(unit) {
                crate::log::warn(&e.to_string());
            }
        }
        remove_dirs(&self.created);
    }
}

/// Removes cgroup directories, children first. A directory still busy with
/// exiting tasks is retried for a short while; a parent shared with other
/// containers (not empty) is left in place.
pub fn remove_dirs(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        for attempt in 0..50 {
            match std::fs::remove_dir(dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                _ => break,
            }
        }
    }
}

fn mkdir_all_recording(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        mkdir_all_recording(parent, created)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            created.push(dir.to_path_buf());
            inherit_cpuset(dir)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("creating cgroup", dir, e)),
    }
}

/// On cgroup v2 a cgroup only has the controllers its parent delegates:
/// enable every available one down the path to `dir` (as runc does), so
/// memory.max, pids.max and friends exist in the container's cgroup.
/// A level that refuses (a parent with processes of its own) is left as is.
fn enable_controllers(mount: &Path, dir: &Path) {
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
    // v2 (no `tasks` file): an empty cpuset means "the parent's".
    if !dir.join("tasks").exists() {
        return Ok(());
    }
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        if !own.exists() {
            return Ok(());
        }
        let current = std::fs::read_to_string(&own).unwrap_or_default();
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

    #[test]
    fn device_rules_render_like_the_kernel_wants() {
        let rules = default_device_rules();
        assert_eq!(
            v1_device_line(&rules[0]).unwrap(),
            ("devices.allow", "c *:* m".to_string())
        );
        assert_eq!(
            v1_device_line(&rules[2]).unwrap(),
            ("devices.allow", "c 1:3 rwm".to_string())
        );
        let mut deny_all = LinuxDeviceCgroup::default();
        deny_all.set_allow(false);
        deny_all.set_access(Some("rwm".into()));
        assert_eq!(
            v1_device_line(&deny_all).unwrap(),
            ("devices.deny", "a *:* rwm".to_string())
        );
        deny_all.set_access(Some("rwx".into()));
        assert!(v1_device_line(&deny_all).is_err());
    }

    #[test]
    fn create_and_remove_in_a_temporary_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let hs = Hierarchies {
            all: vec![Hierarchy {
                mountpoint: tmp.path().join("pids"),
                root: "/".into(),
                controllers: vec!["pids".into()],
                unified: false,
            }],
        };
        std::fs::create_dir(tmp.path().join("pids")).unwrap();
        let cg = Cgroup::create(&hs, Path::new("/x/y")).unwrap();
        assert_eq!(cg.dirs, vec![tmp.path().join("pids/x/y")]);
        assert_eq!(cg.created.len(), 2);
        cg.remove();
        assert!(!tmp.path().join("pids/x").exists());
    }
}
