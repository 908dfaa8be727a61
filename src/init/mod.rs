//! The container's init process: everything between clone and execve.
//! It runs in the cloned child, works from the `Plan` alone (it never
//! reads the spec), reports each step to the parent over the sync socket
//! (see `sync.rs`), and turns every failure into an `Error` message the
//! parent prints as `create`'s error.

mod devnodes;
pub mod exec;
mod mounts;
mod namespaces;
pub(crate) mod process;
pub(crate) mod procfs;
pub mod pty;
mod ready;
mod rootfs;
pub(crate) mod sched;

pub(crate) use namespaces::setns_all;
use procfs::ProcFs;
pub use ready::ExecSetup;

use crate::cgroup::Hierarchy;
use crate::error::{Error, Result, SysContext};
use crate::hooks::{self, Kind};
use crate::plan::Plan;
use crate::sync::{Channel, Msg};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// What the init process needs; built by the parent before clone and
/// inherited through the copied address space.
pub struct InitConfig {
    pub id: String,
    pub plan: Plan,
    pub hierarchies: Vec<Hierarchy>,
    /// The container's directory in each of `hierarchies`.
    pub cgroup_dirs: Vec<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// O_PATH fd of exec.fifo; opened for writing to wait for `start`.
    pub fifo: Option<OwnedFd>,
    /// Parent fds the child must close at once (the state lock: a copy in
    /// the child would hold it until exec).
    pub close_in_child: Vec<RawFd>,
    /// Device and inode of vessel's executable (see `refuse_own_binary`).
    pub own_exe: (u64, u64),
    /// The compiled `linux.seccomp` filter.
    pub seccomp: Option<crate::seccomp::Program>,
    /// Connected `--console-socket`, for a terminal process.
    pub console: Option<OwnedFd>,
}

/// The child's entry point after clone: never returns.
pub fn child_main(cfg: &InitConfig, chan: &Channel) -> ! {
    for fd in &cfg.close_in_child {
        // SAFETY: closing an fd that the parent owns and the child must not hold.
        unsafe { libc::close(*fd) };
    }
    crate::sync::relay_logs(chan);
    let err = match run(cfg, chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if chan.send(&Msg::Error(err.to_string())).is_err() {
        // After Ready the parent may be gone: tell the container's stderr.
        eprintln!("vessel: error: {err}");
    }
    // SAFETY: leave without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(1) }
}

pub enum Never {}

/// The flow of `../shared/DESIGN.md`'s step 3, one named step a line.
fn run(cfg: &InitConfig, chan: &Channel) -> Result<Never> {
    let plan = &cfg.plan;
    chan.expect(&Msg::Go, "parent")?;
    let proc = become_private(&plan.process)?;
    let join_user = enter_namespaces(cfg)?;
    let rootfd = rootfs::prepare(cfg)?;
    crate::log::debug(&format!(
        "init: rootfs {} ready: {} mounts, {} device nodes{}",
        plan.rootfs.display(),
        plan.mounts.len(),
        plan.devices.len(),
        if plan.dev_is_bind {
            ", /dev bound from the host"
        } else {
            ""
        }
    ));
    chan.send(&Msg::MountsDone)?;
    chan.expect(&Msg::HooksDone, "parent")?;
    run_hooks(cfg, Kind::CreateContainer, "creating")?;
    if plan.namespaces.has_mount {
        rootfs::pivot(&plan.rootfs, cfg.no_pivot)?;
    } else {
        rootfs::chroot(&plan.rootfs)?;
    }
    drop(rootfd);
    if plan.process.terminal {
        setup_console(cfg)?;
    }
    proc.write_sysctls(&plan.sysctls)?;
    namespaces::set_names(plan.hostname.as_deref(), plan.domainname.as_deref())?;
    rootfs::finish(plan)?;
    let setup = ExecSetup {
        seccomp: cfg.seccomp.as_ref(),
        own_exe: cfg.own_exe,
        preserve_fds: cfg.preserve_fds,
        join_user,
    };
    let mut ready = ready::prepare(&proc, &plan.process, setup)?;
    ready.hand_over_listener(chan)?;
    crate::log::debug(&format!("init: ready to exec {}", plan.process.args[0]));
    chan.send(&Msg::Ready)?;
    // `create` stops reading here: later lines go to the container's stderr.
    crate::sync::stop_relaying_logs();
    if let Some(fifo) = &cfg.fifo {
        wait_for_start(fifo)?;
    }
    run_hooks(cfg, Kind::StartContainer, "created")?;
    // The parent of `create` is gone by now: an error reaches the container's stderr.
    ready.exec()
}

/// Non-dumpable, with the host's procfs in hand and oom_score_adj set:
/// what must happen before the container's namespaces are entered.
fn become_private(process: &crate::plan::ProcessPlan) -> Result<ProcFs> {
    // Until execve, nothing in the container may open /proc/1/exe (vessel).
    // Not before Go: a rootless parent writes our id maps through /proc,
    // which non-dumpable would close to it. No container process exists yet.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // The host's procfs, before any mount namespace is joined or mounted
    // into: sysctls, LSM labels and oom_score_adj go through it only.
    let proc = ProcFs::open().map_err(|e| Error::io("opening", "/proc", e))?;
    // Still host root here: later, /proc/self files of a non-dumpable
    // process are not ours to write.
    process::set_oom_score_adj(&proc, process)?;
    Ok(proc)
}

/// The namespaces the clone did not make: a new user namespace's root,
/// joins by path, `lo`, the cgroup namespace, a new session and keyring.
/// Returns the user namespace to join last, opened while its path still
/// names the host's /proc.
fn enter_namespaces(cfg: &InitConfig) -> Result<Option<OwnedFd>> {
    let ns = &cfg.plan.namespaces;
    if ns.new_user {
        namespaces::become_root()?;
    }
    let join_user = ns
        .join_user
        .as_deref()
        .map(namespaces::open_namespace)
        .transpose()?;
    setns_all(&ns.join_in_child, false)?;
    if ns.new_network {
        namespaces::loopback_up()?;
    }
    if ns.new_cgroup {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .sys(|| "creating the cgroup namespace".into())?;
    }
    nix::unistd::setsid().sys(|| "setsid".into())?;
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    if !cfg.no_new_keyring {
        namespaces::join_session_keyring(&cfg.id);
    }
    Ok(join_user)
}

/// The hooks that run in the container; they see the pid as the
/// container does (runc).
fn run_hooks(cfg: &InitConfig, kind: Kind, status: &str) -> Result<()> {
    let hooks = &cfg.plan.hooks;
    let list = match kind {
        Kind::CreateContainer => &hooks.create_container,
        _ => &hooks.start_container,
    };
    if list.is_empty() {
        return Ok(());
    }
    let state = hooks::state_json(
        &hooks.oci_version,
        &cfg.id,
        status,
        Some(nix::unistd::getpid().as_raw()),
        &cfg.plan.bundle_dir,
        &hooks.annotations,
    );
    hooks::run_all(kind, list, &state, &cfg.plan.bundle_dir)
}

/// A pty whose master goes to the console socket and whose slave becomes
/// /dev/console and the process's stdio.
fn setup_console(cfg: &InitConfig) -> Result<()> {
    let socket = cfg
        .console
        .as_ref()
        .ok_or_else(|| Error::invalid("process.terminal needs --console-socket"))?;
    pty::setup(socket, &cfg.plan.process, true)
}

/// Blocks until `start` opens exec.fifo for reading.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    // A created container ends on TERM, INT or HUP, as runc's (Go) init
    // does; as pid 1 of its namespace it would otherwise ignore them, and
    // `kill` of a created container would do nothing. execve resets these.
    extern "C" fn end(sig: libc::c_int) {
        // SAFETY: async-signal-safe exit.
        unsafe { libc::_exit(128 + sig) }
    }
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: installing a handler that only calls _exit.
        unsafe { libc::signal(sig, end as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    }
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| {
            Error::invalid(format!(
                "opening exec.fifo through {path}: {e} (the container needs /proc mounted)"
            ))
        })?;
    use std::io::Write;
    (&f).write_all(b"0")
        .map_err(|e| Error::os("writing exec.fifo", e))?;
    Ok(())
}
