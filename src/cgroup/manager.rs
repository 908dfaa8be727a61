//! The one entry point to a container's cgroup. `Manager::for_create`
//! reads the host's hierarchies once and picks the driver (cgroupfs on v1,
//! v2 or hybrid; systemd with `--systemd-cgroup`; none for a rootless
//! container without a delegated cgroup); `Manager::recorded` rebuilds it
//! from what `state.json` keeps, so `update`, `events`, `pause`/`resume`,
//! `exec`, `kill` and `delete` use the layout and driver decided at create
//! instead of probing the host again.

use super::hierarchy::{self, Hierarchies, Hierarchy, Layout};
use super::{bpf_devices, devices, freezer, fs, resources, stats, systemd};
use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Who makes and owns the container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// vessel makes the directories itself.
    Cgroupfs,
    /// A transient systemd scope (`--systemd-cgroup`).
    Systemd,
    /// No cgroup: rootless without a delegated cgroup, as runc.
    None,
}

/// What `create` tells the manager about the container.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub id: &'a str,
    /// `linux.cgroupsPath`.
    pub cgroups_path: Option<&'a Path>,
    /// `--systemd-cgroup`.
    pub systemd: bool,
    /// vessel runs as an ordinary user.
    pub rootless: bool,
}

/// A container's cgroup: the driver, the host's layout, the directory it
/// has in each hierarchy, and which directories vessel made (so destroy
/// removes exactly those).
#[derive(Debug, Clone)]
pub struct Manager {
    pub driver: Driver,
    pub layout: Layout,
    /// One directory per hierarchy.
    pub dirs: Vec<PathBuf>,
    /// Directories made by vessel, parents before children.
    pub created: Vec<PathBuf>,
    /// The systemd scope's name (`Driver::Systemd`).
    pub unit: Option<String>,
    /// What only `create` has: the hierarchies (one per entry of `dirs`).
    setup: Option<Setup>,
}

#[derive(Debug, Clone)]
struct Setup {
    hierarchies: Vec<Hierarchy>,
    rootless: bool,
    /// The scope to start around the init process (`Driver::Systemd`).
    unit: Option<systemd::Unit>,
}

impl Manager {
    /// Picks the driver and where the container's cgroup goes; makes nothing.
    pub fn for_create(req: &Request) -> Result<Manager> {
        let hs = Hierarchies::detect()?;
        let (driver, dirs, unit) = if req.systemd {
            let unit = systemd::parse_path(req.cgroups_path, req.id)?;
            let dirs = hs
                .all
                .iter()
                .map(|h| hierarchy::dir_in(h, &unit.cgroup, ""))
                .collect();
            (Driver::Systemd, dirs, Some(unit))
        } else {
            let path = cgroupfs_path(req);
            let own = hierarchy::own_cgroups_for(&path)?;
            let dirs = hs
                .all
                .iter()
                .map(|h| hierarchy::dir_in(h, &path, &own))
                .collect();
            (Driver::Cgroupfs, dirs, None)
        };
        Ok(Manager {
            driver,
            layout: hs.layout(),
            dirs,
            created: Vec::new(),
            unit: unit.as_ref().map(|u| u.name.clone()),
            setup: Some(Setup {
                hierarchies: hs.all,
                rootless: req.rootless,
                unit,
            }),
        })
    }

    /// The manager of an existing container, from its state. Fields an
    /// older vessel did not record are worked out as it did: the driver
    /// from the unit and directories, the layout from the directories'
    /// files (a v1 directory has `tasks`).
    pub fn recorded(
        driver: Option<Driver>,
        layout: Option<Layout>,
        dirs: Vec<PathBuf>,
        created: Vec<PathBuf>,
        unit: Option<String>,
    ) -> Manager {
        let driver = driver.unwrap_or(match (&unit, dirs.is_empty()) {
            (Some(_), _) => Driver::Systemd,
            (None, true) => Driver::None,
            (None, false) => Driver::Cgroupfs,
        });
        let layout = layout.unwrap_or_else(|| layout_of_dirs(&dirs));
        Manager {
            driver,
            layout,
            dirs,
            created,
            unit,
            setup: None,
        }
    }

    /// The hierarchies read at create (empty for a recorded manager).
    pub fn hierarchies(&self) -> &[Hierarchy] {
        self.setup.as_ref().map_or(&[], |s| &s.hierarchies)
    }

    /// The directories `create` would make (parents first), made nothing
    /// yet: recorded first, so a create killed half-way can be undone.
    pub fn planned(&self) -> Vec<PathBuf> {
        if self.driver != Driver::Cgroupfs {
            return Vec::new();
        }
        self.hierarchies()
            .iter()
            .zip(&self.dirs)
            .flat_map(|(h, d)| fs::missing(h, d))
            .collect()
    }

    /// Makes the cgroup and applies `resources` to it, before the init
    /// process exists (systemd's scope comes in `add_init`). Rootless
    /// without a delegated cgroup, it turns into `Driver::None`.
    pub fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        if self.driver != Driver::Cgroupfs {
            return Ok(());
        }
        match self.make_dirs() {
            Ok(()) => {}
            Err(e) if self.setup.as_ref().is_some_and(|s| s.rootless) => {
                self.fall_back_to_none(&e, resources.is_some());
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        match resources {
            Some(r) => self.apply(r),
            None => Ok(()),
        }
    }

    fn make_dirs(&mut self) -> Result<()> {
        let Some(setup) = &self.setup else {
            return Ok(());
        };
        for (h, dir) in setup.hierarchies.iter().zip(&self.dirs) {
            if let Err(e) = fs::make_dir(h, dir, &mut self.created) {
                warn_all(fs::remove_dirs(&self.created, &self.dirs));
                self.created.clear();
                return Err(e);
            }
            if h.unified && self.layout == Layout::Unified {
                fs::enable_controllers(&h.mountpoint, dir);
            }
        }
        Ok(())
    }

    fn fall_back_to_none(&mut self, e: &Error, wants_resources: bool) {
        let msg = format!("rootless: no delegated cgroup to use ({e}): running without a cgroup");
        if wants_resources {
            crate::log::warn(&format!("{msg}; linux.resources are not applied"));
        } else {
            crate::log::debug(&msg);
        }
        self.driver = Driver::None;
        self.dirs.clear();
        self.created.clear();
    }

    /// The directory to clone the init process into (`CLONE_INTO_CGROUP`):
    /// only a cgroupfs cgroup on a pure v2 host.
    pub fn clone_into(&self) -> Option<&Path> {
        (self.driver == Driver::Cgroupfs && self.layout == Layout::Unified)
            .then(|| self.dirs.first().map(PathBuf::as_path))
            .flatten()
    }

    /// Places the init process: cgroupfs moves it in (unless it was born
    /// there); systemd starts the scope around it, with the resources and
    /// device rules as unit properties, then writes the files systemd has
    /// no property for.
    pub fn add_init(&mut self, init: &Init) -> Result<()> {
        match self.driver {
            Driver::Cgroupfs if !init.born_in_cgroup => {
                fs::write_procs(&self.dirs, init.pid, "adding the container to")
            }
            Driver::Systemd => self.start_scope(init),
            _ => Ok(()),
        }
    }

    fn start_scope(&mut self, init: &Init) -> Result<()> {
        let Some(unit) = self.setup.as_ref().and_then(|s| s.unit.clone()) else {
            return Ok(());
        };
        let all: Vec<_> = init
            .rules
            .iter()
            .cloned()
            .chain(devices::default_device_rules())
            .collect();
        let v2 = self.layout == Layout::Unified;
        let props = systemd::properties(&unit, init.id, init.pid, init.resources, &all, v2);
        systemd::start(&unit, init.pid, &props)?;
        // Hierarchies systemd did not realise the scope in get the directory
        // from vessel (and lose it on destroy).
        let mut missing = Vec::new();
        if let Some(setup) = &self.setup {
            for (h, dir) in setup.hierarchies.iter().zip(&self.dirs) {
                if !dir.exists() {
                    fs::make_dir(h, dir, &mut self.created)?;
                    missing.push(dir.clone());
                }
            }
        }
        fs::write_procs(&missing, init.pid, "adding the container to")?;
        match init.resources {
            Some(r) => self.apply(r),
            None => Ok(()),
        }
    }

    /// Sets up the device filter for `rules` (the spec's; runc's default
    /// allow list follows): v1 `devices.allow`/`deny`, or an eBPF program
    /// on v2. A rootless container gets none (loading one needs privilege,
    /// and it can only bind the host's nodes), as runc.
    pub fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let rootless = self.setup.as_ref().is_some_and(|s| s.rootless);
        if self.dirs.is_empty() || rootless {
            return Ok(());
        }
        if self.layout != Layout::Unified {
            return match self.dir_of("devices") {
                Some(dir) => devices::apply_v1(dir, rules),
                None => Ok(()),
            };
        }
        let all: Vec<_> = rules
            .iter()
            .cloned()
            .chain(devices::default_device_rules())
            .collect();
        bpf_devices::attach(&self.dirs[0], &all)
    }

    /// Adds a process (`exec`) to the container's cgroup.
    pub fn add(&self, pid: i32, what: &'static str) -> Result<()> {
        fs::write_procs(&self.dirs, pid, what)
    }

    /// Applies `linux.resources` to the cgroup's files.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        resources::apply(r, self.layout != Layout::Unified, &|f| self.locate(f))
    }

    /// `update`: checks, then the new resources; on v2 the device program
    /// is replaced (the new rules, then the default allow list, as at
    /// create). v1 keeps its device rules, as runc's update does: a v1
    /// change would pass through "deny everything" while the container runs.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        resources::check_before_update(&|f| self.locate(f), r)?;
        self.apply(r)?;
        let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        if self.layout != Layout::Unified || self.dirs.len() != 1 {
            crate::log::warn("update: linux.resources.devices cannot change on cgroup v1: ignored");
            return Ok(());
        }
        let all: Vec<_> = rules
            .iter()
            .cloned()
            .chain(devices::default_device_rules())
            .collect();
        bpf_devices::replace(&self.dirs[0], &all)
    }

    /// Freezes (or thaws) every process and waits until the kernel is done.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        freezer::set_frozen(self.layout, &self.dirs, frozen)
    }

    pub fn is_frozen(&self) -> bool {
        freezer::is_frozen(self.layout, &self.dirs)
    }

    /// One `events --stats` sample in runc's shape.
    pub fn stats(&self) -> serde_json::Value {
        stats::sample(self.layout, &self.dirs)
    }

    /// Host pids of every process in the cgroup (its whole subtree).
    pub fn pids(&self) -> Vec<i32> {
        fs::pids(&self.dirs)
    }

    /// Removes what create made: stops the systemd scope (when systemd
    /// still runs: with it gone, so is the unit) and removes the
    /// directories vessel made. Returns what went wrong, for warnings.
    pub fn destroy(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(unit) = &self.unit {
            if Path::new(systemd::SOCKET).exists() {
                if let Err(e) = systemd::stop(unit) {
                    problems.push(e.to_string());
                }
            }
        }
        problems.extend(fs::remove_dirs(&self.created, &self.dirs));
        problems
    }

    /// A cgroup file's path in the container's cgroup, where it exists. At
    /// create the hierarchies say which directory has a v1 controller's
    /// files (one look instead of one per hierarchy).
    pub fn locate(&self, file: &str) -> Option<PathBuf> {
        let controller = file.split('.').next().unwrap_or(file);
        if let Some(dir) = self.dir_of(controller) {
            let path = dir.join(file);
            return path.exists().then_some(path);
        }
        resources::in_dirs(&self.dirs, file)
    }

    /// The directory of the v1 hierarchy that has `controller` (create only).
    fn dir_of(&self, controller: &str) -> Option<&Path> {
        let hs = self.hierarchies();
        if hs.len() != self.dirs.len() {
            return None;
        }
        hs.iter()
            .zip(&self.dirs)
            .find(|(h, _)| h.controllers.iter().any(|c| c == controller))
            .map(|(_, d)| d.as_path())
    }
}

/// The init process `add_init` places.
#[derive(Debug, Clone, Copy)]
pub struct Init<'a> {
    pub id: &'a str,
    pub pid: i32,
    /// `clone3(CLONE_INTO_CGROUP)` put it in the cgroup already.
    pub born_in_cgroup: bool,
    pub resources: Option<&'a LinuxResources>,
    /// The spec's device rules.
    pub rules: &'a [LinuxDeviceCgroup],
}

/// The cgroupfs path of a container: a rootless container without a
/// cgroupsPath gets a child of the caller's own cgroup (usable where that
/// subtree is delegated to the user, systemd's user@UID.service), as runc.
fn cgroupfs_path(req: &Request) -> PathBuf {
    let unset = req.cgroups_path.map_or(true, |p| p.as_os_str().is_empty());
    if req.rootless && unset {
        PathBuf::from(format!("vessel-{}", req.id))
    } else {
        hierarchy::container_path(req.cgroups_path, req.id)
    }
}

/// The layout of a state written before the layout was recorded, as the
/// commands then told it: v1 where a directory has `tasks`.
fn layout_of_dirs(dirs: &[PathBuf]) -> Layout {
    let v1 = dirs.iter().filter(|d| d.join("tasks").exists()).count();
    match v1 {
        0 => Layout::Unified,
        n if n == dirs.len() => Layout::Legacy,
        _ => Layout::Hybrid,
    }
}

pub(super) fn warn_all(problems: Vec<String>) {
    for p in problems {
        crate::log::warn(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_states_get_their_driver_and_layout_as_before() {
        let tmp = tempfile::tempdir().unwrap();
        let v1 = tmp.path().join("memory/c");
        let v2 = tmp.path().join("unified/c");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v1.join("tasks"), "").unwrap();
        std::fs::write(v2.join("cgroup.controllers"), "").unwrap();
        let m = Manager::recorded(None, None, vec![v1.clone(), v2.clone()], vec![], None);
        assert_eq!((m.driver, m.layout), (Driver::Cgroupfs, Layout::Hybrid));
        let m = Manager::recorded(None, None, vec![v1.clone()], vec![], None);
        assert_eq!(m.layout, Layout::Legacy);
        let m = Manager::recorded(None, None, vec![v2.clone()], vec![], Some("x.scope".into()));
        assert_eq!((m.driver, m.layout), (Driver::Systemd, Layout::Unified));
        let m = Manager::recorded(None, None, vec![], vec![], None);
        assert_eq!(m.driver, Driver::None);
        // Recorded fields win over the files.
        let m = Manager::recorded(
            Some(Driver::Cgroupfs),
            Some(Layout::Unified),
            vec![v1],
            vec![],
            None,
        );
        assert_eq!(m.layout, Layout::Unified);
    }

    #[test]
    fn driver_and_layout_are_recorded_by_name() {
        assert_eq!(
            serde_json::to_string(&Driver::Cgroupfs).unwrap(),
            "\"cgroupfs\""
        );
        assert_eq!(serde_json::to_string(&Driver::None).unwrap(), "\"none\"");
        assert_eq!(
            serde_json::to_string(&Layout::Hybrid).unwrap(),
            "\"hybrid\""
        );
        assert_eq!(serde_json::to_string(&Layout::Legacy).unwrap(), "\"v1\"");
        assert_eq!(
            serde_json::from_str::<Layout>("\"v2\"").unwrap(),
            Layout::Unified
        );
    }

    #[test]
    fn rootless_default_path_is_under_the_callers_cgroup() {
        let req = Request {
            id: "c1",
            cgroups_path: None,
            systemd: false,
            rootless: true,
        };
        assert_eq!(cgroupfs_path(&req), Path::new("vessel-c1"));
        let root = Request {
            rootless: false,
            ..req
        };
        assert_eq!(cgroupfs_path(&root), Path::new("/vessel/c1"));
    }

    #[test]
    fn files_are_found_in_their_controllers_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let hierarchy = |name: &str| Hierarchy {
            mountpoint: tmp.path().join(name),
            root: "/".into(),
            controllers: vec![name.into()],
            unified: false,
        };
        let dirs = vec![tmp.path().join("cpu/c"), tmp.path().join("pids/c")];
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(dirs[1].join("pids.max"), "max").unwrap();
        let m = Manager {
            driver: Driver::Cgroupfs,
            layout: Layout::Legacy,
            dirs: dirs.clone(),
            created: vec![],
            unit: None,
            setup: Some(Setup {
                hierarchies: vec![hierarchy("cpu"), hierarchy("pids")],
                rootless: false,
                unit: None,
            }),
        };
        assert_eq!(m.locate("pids.max"), Some(dirs[1].join("pids.max")));
        assert_eq!(m.locate("cpu.shares"), None);
        assert_eq!(m.dir_of("pids"), Some(dirs[1].as_path()));
    }
}
