//! The child of `vessel exec`: joins the running container's namespaces
//! (the parent already joined its pid namespace and put the child in its
//! cgroup), then becomes the requested process.

use super::{pty, ExecSetup, Never};
use crate::error::{Error, Result, SysContext};
use crate::plan::ProcessPlan;
use crate::sync::{Channel, Msg};
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

pub struct ExecConfig {
    pub process: ProcessPlan,
    /// `/proc/<init>/ns/<type>` of each namespace to join, pid and time excluded.
    pub namespaces: Vec<(LinuxNamespaceType, PathBuf)>,
    /// The container joined its user namespace by path: enter it last.
    pub user_last: bool,
    /// `/proc/<init>/root` of a container without its own mount namespace.
    pub chroot: Option<PathBuf>,
    pub seccomp: Option<crate::seccomp::Program>,
    pub console: Option<OwnedFd>,
    pub preserve_fds: i32,
    pub own_exe: (u64, u64),
    pub close_in_child: Vec<RawFd>,
}

pub fn child_main(cfg: &ExecConfig, chan: &Channel) -> ! {
    // SAFETY: plain prctl; close fds the parent owns.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    for fd in &cfg.close_in_child {
        unsafe { libc::close(*fd) };
    }
    crate::sync::relay_logs(chan);
    let err = match run(cfg, chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = chan.send(&Msg::Error(err.to_string()));
    // SAFETY: leave without running the parent's destructors.
    unsafe { libc::_exit(1) }
}

fn run(cfg: &ExecConfig, chan: &Channel) -> Result<Never> {
    chan.expect(&Msg::Go, "parent")?;
    // The init's root is opened before joining its namespaces (a user
    // namespace may no longer see the host's /proc entry).
    let root = cfg
        .chroot
        .as_ref()
        .map(|r| {
            nix::fcntl::open(
                r,
                nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_RDONLY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .sys(|| format!("opening {}", r.display()))
        })
        .transpose()?;
    // The host's procfs, before the container's mount namespace (whose
    // /proc the container controls) is joined; still host root for
    // oom_score_adj, as in init.
    let proc = super::ProcFs::open().map_err(|e| Error::io("opening", "/proc", e))?;
    super::process::set_oom_score_adj(&proc, &cfg.process)?;
    super::setns_all(&cfg.namespaces, cfg.user_last)?;
    crate::log::debug(&format!(
        "exec: joined {} namespaces of the container",
        cfg.namespaces.len()
    ));
    if let Some(fd) = root {
        nix::unistd::fchdir(fd).sys(|| "fchdir to the container's root".into())?;
        nix::unistd::chroot(".").sys(|| "chroot".into())?;
        nix::unistd::chdir("/").sys(|| "chdir /".into())?;
        let _ = nix::unistd::close(fd);
    }
    nix::unistd::setsid().sys(|| "setsid".into())?;
    if cfg.process.terminal {
        let socket = cfg
            .console
            .as_ref()
            .ok_or_else(|| Error::invalid("a terminal needs --console-socket"))?;
        pty::setup(socket, &cfg.process, false)?;
    }
    let setup = ExecSetup {
        seccomp: cfg.seccomp.as_ref(),
        own_exe: cfg.own_exe,
        preserve_fds: cfg.preserve_fds,
        join_user: None,
    };
    let mut ready = super::ready::prepare(&proc, &cfg.process, setup)?;
    ready.hand_over_listener(chan)?;
    ready.exec()
}
