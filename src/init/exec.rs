//! The child of `vessel exec`: joins the running container's namespaces
//! (the parent already joined its pid namespace and put the child in its
//! cgroup), then becomes the requested process.

use super::{prepare_exec, pty, Never};
use crate::error::{Error, Result, SysContext};
use crate::sync::{Channel, Msg};
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

pub struct ExecConfig {
    pub process: Process,
    /// `/proc/<init>/ns/<type>` of each namespace to join, pid and time excluded.
    pub namespaces: Vec<(LinuxNamespaceType, PathBuf)>,
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
    let mut fds = Vec::new();
    for (typ, path) in &cfg.namespaces {
        let f = std::fs::File::open(path).map_err(|e| {
            Error::invalid(format!("joining {typ:?} namespace {}: {e}", path.display()))
        })?;
        fds.push((OwnedFd::from(f), *typ, path));
    }
    // Mount last: the other paths are looked up in the host's /proc.
    // The user namespace first (it grants the capabilities to join the
    // others), mount last.
    fds.sort_by_key(|(_, t, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    for (fd, typ, path) in fds {
        nix::sched::setns(fd, super::ns_flag(typ))
            .sys(|| format!("joining {typ:?} namespace {}", path.display()))?;
    }
    nix::unistd::setsid().sys(|| "setsid".into())?;
    if cfg.process.terminal().unwrap_or(false) {
        let socket = cfg
            .console
            .as_ref()
            .ok_or_else(|| Error::invalid("a terminal needs --console-socket"))?;
        let (master, slave) = pty::open_pty()?;
        if let Some(size) = cfg.process.console_size() {
            pty::set_size(&master, size.height() as u16, size.width() as u16);
        }
        let name = pty::slave_name(&master)?;
        pty::send_master(socket, &master, &name)?;
        drop(master);
        pty::become_terminal(&slave)?;
    }
    if let Some(adj) = cfg.process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::invalid(format!("process.oomScoreAdj {adj}: {e}")))?;
    }
    let ready = prepare_exec(
        &cfg.process,
        cfg.seccomp.as_ref(),
        cfg.own_exe,
        cfg.preserve_fds,
    )?;
    ready.exec()
}
