//! The library API: create, start, signal, wait for, query and delete a
//! container. The `vessel` binary is a thin CLI over this module.
//!
//! ```no_run
//! use vessel::container::{CreateOptions, Runtime};
//! # fn main() -> vessel::error::Result<()> {
//! let rt = Runtime::new("/run/vessel");
//! let c = rt.create("demo", &CreateOptions::new("/path/to/bundle"))?;
//! rt.start("demo")?;
//! let code = rt.wait(c.pid)?; // only for containers created by this process
//! rt.delete("demo", false)?;
//! # let _ = code; Ok(()) }
//! ```

use crate::bundle::{check_id, Bundle};
use crate::cgroup::{self, Cgroup, Hierarchies, Layout};
use crate::error::{Error, IoContext, Result};
use crate::hooks::{self, Kind};
use crate::init::InitConfig;
use crate::spawn;
use crate::state::{proc_stat, rfc3339_now, State, StateRoot, Status};
use nix::sys::signal::Signal;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `create` (runc's flags).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
}

impl CreateOptions {
    pub fn new(bundle: impl Into<PathBuf>) -> CreateOptions {
        CreateOptions {
            bundle: bundle.into(),
            ..Default::default()
        }
    }
}

/// A created container: its id and the host pid of its init process.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub pid: i32,
}

/// The runtime, rooted at a state directory (`--root`).
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: StateRoot,
}

/// With VESSEL_TRACE set, prints the time since the process started
/// creating a container, per phase.
fn trace(what: &str) {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t0 = T0.get_or_init(std::time::Instant::now);
    if std::env::var_os("VESSEL_TRACE").is_some() {
        eprintln!("vessel: trace: {what}: {:?}", t0.elapsed());
    }
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            root: StateRoot::new(root),
        }
    }

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
        let plan = spawn::plan_namespaces(&bundle.spec)?;
        trace("load bundle");
        let dir = self.root.claim(id)?;
        let lock = self.root.lock(id)?;
        let mut cleanup = Cleanup {
            dir: Some(dir.clone()),
            cgroup: None,
            pid: None,
        };
        let result = self.create_claimed(id, opts, bundle, &plan, &mut cleanup, lock.as_raw_fd());
        if result.is_ok() {
            cleanup.disarm();
        }
        result
    }

    fn create_claimed(
        &self,
        id: &str,
        opts: &CreateOptions,
        bundle: Bundle,
        plan: &spawn::NamespacePlan,
        cleanup: &mut Cleanup,
        lock_fd: std::os::fd::RawFd,
    ) -> Result<Created> {
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
        let cg_path = cgroup::container_path(linux.and_then(|l| l.cgroups_path().as_deref()), id);
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
            cgroup_created: Cgroup::planned(&hierarchies, &cg_path).unwrap_or_default(),
            own_pid_ns: plan.own_pid,
            config: bundle.config.clone(),
            creator: Some(crate::state::this_process()),
        };
        self.root.save(&state)?;
        let cg = match Cgroup::create(&hierarchies, &cg_path) {
            Ok(cg) => cg,
            // Rootless without a delegated cgroup: no cgroup, as runc does.
            Err(e) if !is_root() => {
                crate::log::debug(&format!("rootless: running without a cgroup ({e})"));
                Cgroup::default()
            }
            Err(e) => return Err(e),
        };
        cleanup.cgroup = Some(cg.clone());
        state.cgroup_dirs = cg.dirs.clone();
        state.cgroup_created = cg.created.clone();
        if let Some(r) = linux
            .and_then(|l| l.resources().as_ref())
            .filter(|_| !cg.dirs.is_empty())
        {
            crate::resources::apply(&cg.dirs, r)?;
        }
        trace("cgroup");

        let seccomp = match bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
        {
            Some(s) => Some(crate::seccomp::compile(s)?),
            None => None,
        };
        trace("seccomp");
        let terminal = cfg_terminal(&bundle);
        let console = match &opts.console_socket {
            Some(path) if terminal => Some(crate::init::pty::connect(path)?),
            _ => None,
        };
        let cfg = InitConfig {
            id: id.to_string(),
            bundle,
            hierarchies: hierarchies.all.clone(),
            cgroup_dirs: cg.dirs.clone(),
            cgroup_ns: plan.new_cgroup,
            new_user: plan.new_user,
            terminal,
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            preserve_fds: opts.preserve_fds,
            fifo: Some(fifo),
            close_in_child: vec![lock_fd],
            own_exe: own_exe()?,
            seccomp,
            console,
        };
        let into = (hierarchies.layout() == Layout::Unified)
            .then(|| cg.dirs.first())
            .flatten();
        let (pid, chan, born_in_cgroup) = spawn::clone_init(plan, &cfg, into.map(|d| d.as_path()))?;
        cleanup.pid = Some(pid);
        trace("clone");
        state.pid = pid;
        state.pid_start_time = proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
        self.root.save(&state)?;
        if plan.new_user {
            spawn::write_id_maps(pid, &cfg.bundle.spec)?;
        }
        if !born_in_cgroup {
            cg.add(pid)?;
        }
        trace("cgroup add");
        let rules = cfg
            .bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        if cg.dirs.is_empty() {
            // rootless without a cgroup: no device filter either
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
        spawn::drive_child(&chan, &cfg.bundle.spec, &hook_state, &cfg.bundle.dir)?;
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

    /// Loads a container and its live status.
    pub fn state(&self, id: &str) -> Result<(State, Status)> {
        let state = self.root.load(id)?;
        let status = self.root.status(&state);
        Ok((state, status))
    }

    /// All containers under the root (entries without a readable state,
    /// such as one still being created, are skipped).
    pub fn list(&self) -> Result<Vec<(State, Status)>> {
        let mut out = Vec::new();
        for id in self.root.ids()? {
            if let Ok(s) = self.state(&id) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Releases the init process into the user's program.
    pub fn start(&self, id: &str) -> Result<()> {
        let _lock = self.root.lock(id)?;
        let (state, status) = self.state(id)?;
        match status {
            Status::Created => {}
            Status::Stopped => {
                return Err(wrong_state(
                    id,
                    status,
                    "cannot start a container that has stopped",
                ))
            }
            _ => {
                return Err(wrong_state(
                    id,
                    status,
                    "cannot start a container that is not created",
                ))
            }
        }
        let fifo = self.root.fifo_path(id);
        release_fifo(&fifo, &state)?;
        let _ = std::fs::remove_file(&fifo);
        let spec = state.spec()?;
        if let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()) {
            let json = state.hook_state(Status::Running);
            // Like runc (not the spec's "warn and go on"): a failed poststart
            // hook ends the container and fails start.
            if let Err(e) = hooks::run_all(Kind::Poststart, h, &json, &state.bundle) {
                kill_and_wait(&state);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sends `signal` to the init process, or with `all` to every process
    /// in the container's cgroup.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let (state, status) = self.state(id)?;
        if status == Status::Stopped && !all {
            return Err(wrong_state(id, status, "container not running"));
        }
        if all {
            for pid in Cgroup::pids(&state.cgroup_dirs) {
                // SAFETY: kill(2) on a pid from the container's cgroup.
                unsafe { libc::kill(pid, signal) };
            }
            return Ok(());
        }
        if state.pid <= 0 {
            return Err(wrong_state(id, status, "its process does not exist yet"));
        }
        // SAFETY: kill(2) on the container's init pid, checked alive above.
        if unsafe { libc::kill(state.pid, signal) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::invalid(format!(
                "sending signal {signal} to container {id} (pid {}): {e}",
                state.pid
            )));
        }
        Ok(())
    }

    /// Deletes a stopped (or, with `force`, any) container: its processes,
    /// cgroup and state; then the poststop hooks.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        check_id(id)?;
        let dir = self.root.container_dir(id);
        let lock = match self.root.lock(id) {
            Ok(l) => l,
            Err(Error::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let (state, status) = match self.state(id) {
            Ok(s) => s,
            Err(Error::NotFound(_)) => {
                // A create that died before writing its state: nothing runs.
                std::fs::remove_dir_all(&dir).ctx("removing", &dir)?;
                return if force {
                    Ok(())
                } else {
                    Err(Error::NotFound(id.to_string()))
                };
            }
            Err(e) => return Err(e),
        };
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(wrong_state(
                id,
                status,
                "cannot delete a container that is not stopped (use --force)",
            ));
        }
        // A create killed half-way (creator recorded) may have left init waiting.
        if status != Status::Stopped || state.creator.is_some() {
            kill_and_wait(&state);
        }
        if !state.own_pid_ns {
            // Without its own pid namespace, the container's other processes
            // outlive init: end them too.
            for pid in Cgroup::pids(&state.cgroup_dirs) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
            if cgroup::is_frozen(&state.cgroup_dirs) {
                let _ = cgroup::set_frozen(&state.cgroup_dirs, false);
            }
        }
        cgroup::remove_dirs(&state.cgroup_created);
        std::fs::remove_dir_all(&dir).ctx("removing", &dir)?;
        drop(lock);
        if let Some(h) = state
            .spec()
            .ok()
            .as_ref()
            .and_then(|s| s.hooks().as_ref())
            .and_then(|h| h.poststop().as_ref())
        {
            let json = state.hook_state(Status::Stopped);
            if let Err(e) = hooks::run_all(Kind::Poststop, h, &json, &state.bundle) {
                crate::log::warn(&format!("{e}"));
            }
        }
        Ok(())
    }

    /// Freezes every process of a running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let _lock = self.root.lock(id)?;
        let (state, status) = self.state(id)?;
        if status != Status::Running {
            return Err(wrong_state(
                id,
                status,
                "only a running container can be paused",
            ));
        }
        cgroup::set_frozen(&state.cgroup_dirs, true)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let _lock = self.root.lock(id)?;
        let (state, status) = self.state(id)?;
        if status != Status::Paused {
            return Err(wrong_state(
                id,
                status,
                "only a paused container can be resumed",
            ));
        }
        cgroup::set_frozen(&state.cgroup_dirs, false)
    }

    /// Changes a live container's resources (`update`).
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let _lock = self.root.lock(id)?;
        let (state, status) = self.state(id)?;
        if status == Status::Stopped {
            return Err(wrong_state(id, status, "cannot update a stopped container"));
        }
        crate::resources::apply(&state.cgroup_dirs, resources)
    }

    /// Host pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let (state, _) = self.state(id)?;
        Ok(Cgroup::pids(&state.cgroup_dirs))
    }

    /// Waits for a container created by this process to exit; returns its
    /// exit code (128+N for signal N).
    pub fn wait(&self, pid: i32) -> Result<i32> {
        loop {
            match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys(format!("waiting for pid {pid}"), e)),
            }
        }
    }
}

/// True when vessel runs as root (else rootless).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The default `--root`: /run/vessel for root, $XDG_RUNTIME_DIR/vessel
/// (or /tmp/vessel-UID) for a rootless user.
pub fn default_root() -> PathBuf {
    if is_root() {
        return PathBuf::from("/run/vessel");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("vessel"),
        // SAFETY: geteuid cannot fail.
        None => PathBuf::from(format!("/tmp/vessel-{}", unsafe { libc::geteuid() })),
    }
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

fn wrong_state(id: &str, status: Status, what: &str) -> Error {
    Error::WrongState {
        id: id.to_string(),
        status: status.to_string(),
        what: what.to_string(),
    }
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

/// Opens exec.fifo for reading (which lets init's blocking open finish) and
/// reads init's byte; gives up if init dies instead.
fn release_fifo(fifo: &Path, state: &State) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .ctx("opening", fifo)?;
    loop {
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 {
            let mut b = [0u8; 1];
            // SAFETY: reading into a 1-byte buffer.
            let r = unsafe { libc::read(f.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
            if r == 1 {
                return Ok(());
            }
            if r == 0 || pfd.revents & libc::POLLHUP != 0 {
                return Err(Error::Init(format!(
                    "container {} exited before it could start",
                    state.id
                )));
            }
        }
        if !crate::state::process_alive(state.pid, state.pid_start_time) {
            return Err(Error::Init(format!(
                "container {} exited before it could start",
                state.id
            )));
        }
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// SIGKILLs the init process and waits for it to be gone.
fn kill_and_wait(state: &State) {
    // pid 0 (a create killed before its clone) would mean our own process group.
    if state.pid <= 0 {
        return;
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(state.pid), Signal::SIGKILL);
    // A frozen process cannot die until thawed.
    if cgroup::is_frozen(&state.cgroup_dirs) {
        let _ = cgroup::set_frozen(&state.cgroup_dirs, false);
    }
    // SAFETY: pidfd_open returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, state.pid, 0) } as i32;
    if raw >= 0 {
        // SAFETY: a fresh fd.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 10_000) };
    } else {
        for _ in 0..1000 {
            if !crate::state::process_alive(state.pid, state.pid_start_time) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
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
