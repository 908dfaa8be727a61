//! `create`: claim the id, record the state, make the cgroup, clone the
//! init process and drive it to Ready; on any error, undo all of it.

use super::{is_root, trace, CreateOptions, Created, Runtime};
use crate::bundle::{check_id, Bundle};
use crate::cgroup;
use crate::error::{Error, IoContext, Result};
use crate::init::InitConfig;
use crate::plan::Plan;
use crate::spawn;
use crate::state::{State, Status};
use crate::util::{proc, time::rfc3339_now};
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
        // GPUs first: from here on they are ordinary devices and mounts,
        // planned like the bundle's own.
        let Planned { mut plan, seccomp } = planned;
        if self.edit_for_gpus(id, &mut bundle)? {
            plan = Plan::new(&bundle)?;
        }
        trace("gpu");
        let fifo = make_exec_fifo(&self.root.fifo_path(id))?;
        let linux = bundle.spec.linux().as_ref();
        let mut cg = cgroup::Manager::for_create(&cgroup::Request {
            id,
            cgroups_path: linux.and_then(|l| l.cgroups_path().as_deref()),
            systemd: self.systemd_cgroup,
            rootless: !is_root(),
        })?;
        // Recorded before the cgroup exists, so a create killed from here on
        // leaves a state that `delete --force` cleans up.
        let mut state = initial_state(id, &bundle, &plan, &cg);
        self.root.save(&state)?;
        let resources = linux.and_then(|l| l.resources().clone());
        cg.create(resources.as_ref())?;
        cleanup.cgroup = Some(cg.clone());
        state.record_cgroup(&cg);
        warn_intel_rdt(&bundle.spec);
        trace("cgroup");

        let cfg = init_config(id, opts, plan, seccomp, &cg, fifo, lock_fd)?;
        let (pid, chan, born_in_cgroup) = spawn::clone_init(&cfg, clone_into(&cg))?;
        cleanup.pid = Some(pid);
        trace("clone");
        state.pid = pid;
        state.pid_start_time = proc::stat(pid).map(|(_, t)| t).unwrap_or(0);
        self.root.save(&state)?;
        if cfg.plan.namespaces.new_user {
            spawn::write_id_maps(pid, &bundle.spec)?;
        }
        let spec_resources = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref());
        let rules = spec_resources
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        let placed = cg.add_init(&cgroup::Init {
            id,
            pid,
            born_in_cgroup,
            resources: spec_resources,
            rules: &rules,
        });
        // What add_init made is undone on failure too.
        cleanup.cgroup = Some(cg.clone());
        placed?;
        state.record_cgroup(&cg);
        trace("cgroup add");
        cg.apply_devices(&rules)?;
        let hook_state = state.hook_state(Status::Creating);
        spawn::drive_child(&chan, &bundle.spec, &hook_state, &bundle.dir)
            .map_err(|e| cgroup::explain_oom(e, &cg.dirs, "during create"))?;
        trace("init ready");
        self.record_created(state, opts)?;
        trace("create done");
        Ok(Created {
            id: id.to_string(),
            pid,
        })
    }

    /// The state without its creator (so `state` no longer reports
    /// "creating"), and the pid file.
    fn record_created(&self, state: State, opts: &CreateOptions) -> Result<()> {
        let state = State {
            creator: None,
            ..state
        };
        self.root.save(&state)?;
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, state.pid)?;
        }
        Ok(())
    }

    /// The GPU step: edits the spec (and the config text kept in the
    /// state); true when it did.
    fn edit_for_gpus(&self, id: &str, bundle: &mut Bundle) -> Result<bool> {
        let container_dir = self.root.container_dir(id);
        if let Some(report) =
            crate::gpu::prepare(&mut bundle.spec, &bundle.rootfs, &container_dir, &self.gpu)?
        {
            if crate::log::debug_enabled() {
                crate::log::debug(&format!("gpu: {report:?}"));
            }
            bundle.config = serde_json::to_string(&bundle.spec)
                .map_err(|e| Error::invalid(format!("serializing the GPU-edited spec: {e}")))?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// exec.fifo, which init opens for writing to wait for `start`; returns an
/// O_PATH fd of it for the child.
fn make_exec_fifo(fifo_path: &Path) -> Result<OwnedFd> {
    nix::unistd::mkfifo(fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(|e| Error::sys(format!("mkfifo {}", fifo_path.display()), e))?;
    // mkfifo honours the umask; every container user must be able to write it.
    std::fs::set_permissions(
        fifo_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .ctx("chmod", fifo_path)?;
    open_path(fifo_path)
}

/// The state before the cgroup and the init process exist: the cgroup
/// directories create is about to make are recorded as made.
fn initial_state(id: &str, bundle: &Bundle, plan: &Plan, cg: &cgroup::Manager) -> State {
    State {
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
        cgroup_created: cg.planned(),
        systemd_unit: cg.unit.clone(),
        cgroup_driver: Some(cg.driver),
        cgroup_layout: Some(cg.layout),
        own_pid_ns: plan.namespaces.own_pid,
        config: bundle.config.clone(),
        creator: Some(crate::state::this_process()),
    }
}

fn warn_intel_rdt(spec: &oci_spec::runtime::Spec) {
    if spec
        .linux()
        .as_ref()
        .is_some_and(|l| l.intel_rdt().is_some())
    {
        let why = if Path::new("/sys/fs/resctrl/info").exists() {
            "vessel does not manage resctrl groups yet"
        } else {
            "this host has no resctrl (Intel RDT) filesystem"
        };
        crate::log::warn(&format!("linux.intelRdt ignored: {why}"));
    }
}

/// Where `clone3(CLONE_INTO_CGROUP)` puts the init process, if anywhere
/// (VESSEL_CLONE_INTO_CGROUP=0 turns it off, to measure what it saves).
fn clone_into(cg: &cgroup::Manager) -> Option<&Path> {
    let allowed = std::env::var_os("VESSEL_CLONE_INTO_CGROUP").map_or(true, |v| v != "0");
    cg.clone_into().filter(|_| allowed)
}

/// What the init process inherits: the plan, the cgroup, the compiled
/// seccomp filter and the console.
fn init_config(
    id: &str,
    opts: &CreateOptions,
    plan: Plan,
    seccomp: Option<crate::seccomp::Program>,
    cg: &cgroup::Manager,
    fifo: OwnedFd,
    lock_fd: std::os::fd::RawFd,
) -> Result<InitConfig> {
    let console = match &opts.console_socket {
        Some(path) if plan.process.terminal => Some(crate::init::pty::connect(path)?),
        _ => None,
    };
    Ok(InitConfig {
        id: id.to_string(),
        plan,
        hierarchies: cg.hierarchies().to_vec(),
        cgroup_dirs: cg.dirs.clone(),
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        fifo: Some(fifo),
        close_in_child: vec![lock_fd],
        own_exe: own_exe()?,
        seccomp,
        console,
    })
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
    cgroup: Option<cgroup::Manager>,
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
        // The create's own error is what the user gets; what cannot be
        // undone is said as warnings.
        if let Some(cg) = &self.cgroup {
            for problem in cg.destroy() {
                crate::log::warn(&format!("undoing the failed create: {problem}"));
            }
        }
        if let Some(dir) = &self.dir {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                crate::log::warn(&format!(
                    "undoing the failed create: removing {}: {e}",
                    dir.display()
                ));
            }
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
