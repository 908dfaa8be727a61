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

use crate::bundle::check_id;
use crate::error::{Error, IoContext, Result};
use crate::hooks::{self, Kind};
use crate::state::{State, StateRoot, Status};
use nix::sys::signal::Signal;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

mod create;

pub use create::cfg_terminal;
pub(crate) use create::{check_preserved_fds, own_exe, write_pid_file};
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
    /// Where GPU drivers and CDI specs are found (`--gpu-root`).
    pub gpu: crate::gpu::options::GpuOptions,
    /// Containers created get their cgroup from systemd (`--systemd-cgroup`).
    pub systemd_cgroup: bool,
}

/// With VESSEL_TRACE set, prints the time since the process started
/// creating a container, per phase. Each line is one write(2) (stderr is
/// unbuffered: `eprintln!` writes each piece of the format separately), so
/// a line costs the next phase a single syscall.
pub(crate) fn trace(what: &str) {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let t0 = T0.get_or_init(std::time::Instant::now);
    if *ON.get_or_init(|| std::env::var_os("VESSEL_TRACE").is_some()) {
        let line = format!("vessel: trace: {what}: {:?}\n", t0.elapsed());
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            root: StateRoot::new(root),
            gpu: crate::gpu::options::GpuOptions::default(),
            systemd_cgroup: false,
        }
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
                let e = wrong_state(id, status, "cannot start a container that has stopped");
                return Err(crate::cgroup::explain_oom(
                    e,
                    &state.cgroup_dirs,
                    "before start",
                ));
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
            // The spec's rule, not runc's (which fails start and kills the
            // container): a failed poststart hook is a warning, and the
            // remaining hooks and the container go on.
            hooks::run_all_warn(Kind::Poststart, h, &json, &state.bundle);
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
            for pid in state.cgroup().pids() {
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
        let cg = state.cgroup();
        end_processes(&state, status, &cg);
        // Best effort: what cannot be removed is said, and delete goes on.
        for problem in cg.destroy() {
            crate::log::warn(&problem);
        }
        if let Ok(spec) = state.spec() {
            unmount_host_rootfs(&spec, &state.bundle);
        }
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
            hooks::run_all_warn(Kind::Poststop, h, &json, &state.bundle);
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
        state.cgroup().freeze(true)
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
        state.cgroup().freeze(false)
    }

    /// Changes a live container's resources (`update`).
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let _lock = self.root.lock(id)?;
        let (state, status) = self.state(id)?;
        if status == Status::Stopped {
            return Err(wrong_state(id, status, "cannot update a stopped container"));
        }
        state.cgroup().update(resources)
    }

    /// Host pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let (state, _) = self.state(id)?;
        Ok(state.cgroup().pids())
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

pub(crate) fn wrong_state(id: &str, status: Status, what: &str) -> Error {
    Error::WrongState {
        id: id.to_string(),
        status: status.to_string(),
        what: what.to_string(),
    }
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

/// Before delete removes the cgroup: SIGKILLs a live (or half-created)
/// init; without its own pid namespace, the container's other processes
/// outlive init: they are ended too.
fn end_processes(state: &State, status: Status, cg: &crate::cgroup::Manager) {
    // A create killed half-way (creator recorded) may have left init waiting.
    if status != Status::Stopped || state.creator.is_some() {
        kill_and_wait(state, cg);
    }
    if !state.own_pid_ns {
        for pid in cg.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        if cg.is_frozen() {
            let _ = cg.freeze(false);
        }
    }
}

/// SIGKILLs the init process and waits for it to be gone.
fn kill_and_wait(state: &State, cg: &crate::cgroup::Manager) {
    // pid 0 (a create killed before its clone) would mean our own process group.
    if state.pid <= 0 {
        return;
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(state.pid), Signal::SIGKILL);
    // A frozen process cannot die until thawed.
    if cg.is_frozen() {
        let _ = cg.freeze(false);
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

/// A container without its own mount namespace had its rootfs bound onto
/// itself, and its mounts made, in the runtime's namespace: undo that bind
/// (and everything under it). Only a bind vessel made is taken off: one
/// stacked on a mount of the same filesystem at the rootfs, or one of a
/// subdirectory; an engine's own rootfs mount (a filesystem's root) stays.
fn unmount_host_rootfs(spec: &oci_spec::runtime::Spec, bundle: &std::path::Path) {
    use oci_spec::runtime::LinuxNamespaceType;
    if crate::bundle::namespaces(spec).any(|ns| ns.typ() == LinuxNamespaceType::Mount) {
        return;
    }
    let Some(root) = spec.root().as_ref() else {
        return;
    };
    let rootfs = bundle.join(root.path());
    let Ok(rootfs) = rootfs.canonicalize() else {
        return;
    };
    let Ok(mounts) = crate::util::proc::mountinfo() else {
        return;
    };
    // The mounts at the rootfs, in mount order.
    let at: Vec<_> = mounts.iter().filter(|m| m.mount_point == rootfs).collect();
    let Some(top) = at.last() else {
        return;
    };
    let stacked = at.iter().any(|m| m.id == top.parent && m.dev == top.dev);
    if stacked || top.root != std::path::Path::new("/") {
        let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
    }
}
