//! `create`: claim the id, record the state, make the cgroup, clone the
//! init process and drive it to Ready; on any error, undo all of it.

use super::{is_root, trace, CreateOptions, Created, Runtime};
use crate::bundle::{check_id, Bundle};
use crate::cgroup::{self, Cgroup, Hierarchies, Layout};
use crate::error::{Error, IoContext, Result};
use crate::init::InitConfig;
use crate::plan::Plan;
use crate::spawn;
use crate::state::{proc_stat, rfc3339_now, State, Status};
use nix::sys::signal::Signal;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

impl Runtime {
    /// Creates the container: namespaces, cgroup, rootfs, and an init
    /// process waiting for `start`. On error nothing is left behind.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Created> {
        trace("start");
        check_id(id)?;
        let bundle = Bundle::load(&opts.bundle)?;
        self.create_bundle(id, opts, bundle)
    }

    /// `create` for a bundle already loaded (`opts.bundle` is not read again).
    pub fn create_bundle(&self, id: &str, opts: &CreateOptions, bundle: Bundle) -> Result<Created> {
        check_id(id)?;
        check_preserved_fds(opts.preserve_fds)?;
        if opts.console_socket.is_some() && !cfg_terminal(&bundle) {
            return Err(Error::invalid(
                "--console-socket is only for a terminal: process.terminal is false",
            ));
        }
        if cfg_terminal(&bundle) && opts.console_socket.is_none() {
            return Err(Error::invalid(
                "process.terminal is true: a console socket is needed (--console-socket PATH)",
            ));
        }
        // Every check that can fail, before anything exists.
        let plan = Plan::new(&bundle)?;
        for w in &plan.process.warnings {
            crate::log::warn(w);
        }
        let seccomp = match bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
        {
            Some(s) => Some(crate::seccomp::compile(s)?),
            None => None,
        };
        trace("plan");
        let dir = self.root.claim(id)?;
        let lock = self.root.lock(id)?;
        // The state directory and its lock, timed apart from the GPU step.
        trace("claim");
        let mut cleanup = Cleanup {
            dir: Some(dir.clone()),
            cgroup: None,
            pid: None,
        };
        let planned = Planned { plan, seccomp };
        let result = self.create_claimed(id, opts, bundle, planned, &mut cleanup, lock.as_raw_fd());
        if result.is_ok() {
            cleanup.disarm();
        }
        result
    }

    fn create_claimed(
        &self,
        id: &str,
        opts: &CreateOptions,
        mut bundle: Bundle,
        planned: Planned,
        cleanup: &mut Cleanup,
        lock_fd: std::os::fd::RawFd,
    ) -> Result<Created> {
        // GPUs first: from here on they are ordinary devices and mounts.
        let container_dir = self.root.container_dir(id);
        let report =
            crate::gpu::prepare(&mut bundle.spec, &bundle.rootfs, &container_dir, &self.gpu)?;
        let edited = report.is_some();
        if let Some(report) = report {
            crate::log::debug(&format!("gpu: {report:?}"));
            bundle.config = serde_json::to_string(&bundle.spec)
                .map_err(|e| Error::invalid(format!("serializing the GPU-edited spec: {e}")))?;
        }
        let Planned { mut plan, seccomp } = planned;
        if edited {
            // The GPU's devices and mounts, planned like the bundle's own.
            plan = Plan::new(&bundle)?;
        }
        trace("gpu");
        let fifo_path = self.root.fifo_path(id);
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(|e| Error::sys(format!("mkfifo {}", fifo_path.display()), e))?;
        // mkfifo honours the umask; every container user must be able to write it.
        std::fs::set_permissions(
            &fifo_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o622),
        )
        .ctx("chmod", &fifo_path)?;
        let fifo = open_path(&fifo_path)?;

        let hierarchies = Hierarchies::detect()?;
        let linux = bundle.spec.linux().as_ref();
        let cgroups_path = linux.and_then(|l| l.cgroups_path().as_deref());
        let unit = if self.systemd_cgroup {
            Some(cgroup::systemd::parse_path(cgroups_path, id)?)
        } else {
            None
        };
        let rootless_default =
            !is_root() && cgroups_path.map_or(true, |p| p.as_os_str().is_empty());
        let cg_path = if rootless_default {
            // A child of the caller's own cgroup: usable where that subtree
            // is delegated to the user (systemd's user@UID.service), as runc.
            PathBuf::from(format!("vessel-{id}"))
        } else {
            cgroup::container_path(cgroups_path, id)
        };
        // Recorded before the cgroup exists, so a create killed from here on
        // leaves a state that `delete --force` cleans up.
        let mut state = State {
            oci_version: bundle.spec.version().clone(),
            id: id.to_string(),
            pid: 0,
            pid_start_time: 0,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: rfc3339_now(),
            annotations: bundle
                .spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            cgroup_dirs: Vec::new(),
            // What create is about to make; replaced by what it made.
            cgroup_created: match unit {
                Some(_) => Vec::new(),
                None => Cgroup::planned(&hierarchies, &cg_path).unwrap_or_default(),
            },
            systemd_unit: unit.as_ref().map(|u| u.name.clone()),
            own_pid_ns: plan.namespaces.own_pid,
            config: bundle.config.clone(),
            creator: Some(crate::state::this_process()),
        };
        self.root.save(&state)?;
        let mut cg = match &unit {
            // systemd makes the scope around the init process, after the clone.
            Some(u) => Cgroup::for_systemd(&hierarchies, u),
            None => match Cgroup::create(&hierarchies, &cg_path) {
                Ok(cg) => cg,
                // Rootless without a delegated cgroup: no cgroup, as runc does.
                Err(e) if !is_root() => {
                    let msg = format!(
                        "rootless: no delegated cgroup to use ({e}): running without a cgroup"
                    );
                    if linux.is_some_and(|l| l.resources().is_some()) {
                        crate::log::warn(&format!("{msg}; linux.resources are not applied"));
                    } else {
                        crate::log::debug(&msg);
                    }
                    Cgroup::default()
                }
                Err(e) => return Err(e),
            },
        };
        cleanup.cgroup = Some(cg.clone());
        state.cgroup_dirs = cg.dirs.clone();
        state.cgroup_created = cg.created.clone();
        let resources = linux
            .and_then(|l| l.resources().clone())
            .filter(|_| !cg.dirs.is_empty());
        if let (Some(r), None) = (&resources, &unit) {
            crate::resources::apply(&cg.dirs, r)?;
        }
        if linux.is_some_and(|l| l.intel_rdt().is_some()) {
            let why = if Path::new("/sys/fs/resctrl/info").exists() {
                "vessel does not manage resctrl groups yet"
            } else {
                "this host has no resctrl (Intel RDT) filesystem"
            };
            crate::log::warn(&format!("linux.intelRdt ignored: {why}"));
        }
        trace("cgroup");

        let console = match &opts.console_socket {
            Some(path) if plan.process.terminal => Some(crate::init::pty::connect(path)?),
            _ => None,
        };
        let cfg = InitConfig {
            id: id.to_string(),
            plan,
            hierarchies: hierarchies.all.clone(),
            cgroup_dirs: cg.dirs.clone(),
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            preserve_fds: opts.preserve_fds,
            fifo: Some(fifo),
            close_in_child: vec![lock_fd],
            own_exe: own_exe()?,
            seccomp,
            console,
        };
        // VESSEL_CLONE_INTO_CGROUP=0 turns it off, to measure what it saves.
        let into_allowed = std::env::var_os("VESSEL_CLONE_INTO_CGROUP").map_or(true, |v| v != "0");
        let into = (hierarchies.layout() == Layout::Unified && unit.is_none() && into_allowed)
            .then(|| cg.dirs.first())
            .flatten();
        let (pid, chan, born_in_cgroup) = spawn::clone_init(&cfg, into.map(|d| d.as_path()))?;
        cleanup.pid = Some(pid);
        trace("clone");
        state.pid = pid;
        state.pid_start_time = proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
        self.root.save(&state)?;
        if cfg.plan.namespaces.new_user {
            spawn::write_id_maps(pid, &bundle.spec)?;
        }
        let rules = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        if let Some(u) = &unit {
            let all: Vec<_> = rules
                .iter()
                .cloned()
                .chain(cgroup::default_device_rules())
                .collect();
            let v2 = hierarchies.layout() == Layout::Unified;
            let props = cgroup::systemd::properties(u, id, pid, resources.as_ref(), &all, v2);
            cg.join_systemd(u, pid, &props)?;
            cleanup.cgroup = Some(cg.clone());
            state.cgroup_created = cg.created.clone();
            if let Some(r) = &resources {
                crate::resources::apply(&cg.dirs, r)?;
            }
        } else if !born_in_cgroup {
            cg.add(pid)?;
        }
        trace("cgroup add");
        if cg.dirs.is_empty() || !is_root() {
            // Rootless: no device filter (loading one needs privilege, and
            // the container can only bind the host's nodes), as runc.
        } else if hierarchies.layout() != Layout::Unified {
            cg.apply_v1_devices(&rules)?;
        } else if let Some(dir) = cg.dirs.first() {
            let all: Vec<_> = rules
                .into_iter()
                .chain(cgroup::default_device_rules())
                .collect();
            cgroup::bpf_devices::attach(dir, &all)?;
        }
        let hook_state = state.hook_state(Status::Creating);
        spawn::drive_child(&chan, &bundle.spec, &hook_state, &bundle.dir)
            .map_err(|e| cgroup::explain_oom(e, &cg.dirs, "during create"))?;
        trace("init ready");
        let state = State {
            creator: None,
            ..state
        };
        self.root.save(&state)?;
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        trace("create done");
        Ok(Created {
            id: id.to_string(),
            pid,
        })
    }
}

/// The plan and the compiled seccomp filter: made before the id is claimed.
struct Planned {
    plan: Plan,
    seccomp: Option<crate::seccomp::Program>,
}

/// The caller must really pass the fds it asks to preserve (runc checks too).
pub(crate) fn check_preserved_fds(n: i32) -> Result<()> {
    for fd in 3..3 + n.max(0) {
        // SAFETY: F_GETFD only inspects the fd table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::invalid(format!(
                "--preserve-fds {n}: fd {fd} is not open"
            )));
        }
    }
    Ok(())
}

/// Whether the bundle's process asks for a terminal.
pub fn cfg_terminal(bundle: &Bundle) -> bool {
    bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// Undoes a failed create: kills the child, removes the cgroup and state.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    pid: Option<i32>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.pid = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            cg.remove();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(crate) fn own_exe() -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/exe").ctx("stat", "/proc/self/exe")?;
    Ok((m.dev(), m.ino()))
}

fn open_path(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("opening {}", path.display()), e))?;
    // SAFETY: open returned a new fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).ctx("resolving", path)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string()).ctx("writing pid file", &tmp)?;
    std::fs::rename(&tmp, &path).ctx("writing pid file", &path)?;
    Ok(())
}
