//! Everything between a process's namespaces and its execve: rlimits,
//! seccomp, LSM labels, capabilities and user, cwd, umask, the program;
//! shared by the init process and `exec`.

use super::procfs::ProcFs;
use super::{process, Never};
use crate::error::{Error, Result, SysContext};
use crate::plan::ProcessPlan;
use crate::sync::{Channel, Msg};
use std::os::fd::{OwnedFd, RawFd};

pub struct ReadyToExec<'a> {
    program: std::path::PathBuf,
    program_c: std::ffi::CString,
    argv: Vec<std::ffi::CString>,
    envp: Vec<std::ffi::CString>,
    late_seccomp: Option<&'a crate::seccomp::Program>,
    /// A notify filter's listener fd, for the parent to pass on.
    listener: Option<OwnedFd>,
}

/// What `prepare` needs besides the process.
pub struct ExecSetup<'a> {
    pub seccomp: Option<&'a crate::seccomp::Program>,
    /// Device and inode of vessel's executable (see `refuse_own_binary`).
    pub own_exe: (u64, u64),
    pub preserve_fds: i32,
    /// A user namespace joined by path, entered here (last).
    pub join_user: Option<OwnedFd>,
}

pub fn prepare<'a>(
    proc: &ProcFs,
    plan: &ProcessPlan,
    setup: ExecSetup<'a>,
) -> Result<ReadyToExec<'a>> {
    process::set_rlimits(plan)?;
    // Before a joined user namespace: CAP_SYS_NICE counts in the host's.
    super::sched::apply(plan)?;
    // Entered after everything that needs the host's root (mounts, nodes,
    // rlimits); the user, groups and capabilities below are then the
    // namespace's. The namespaces vessel made stay owned by the host's.
    if let Some(fd) = setup.join_user {
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWUSER).sys(|| {
            "joining the user namespace of linux.namespaces (with --no-pivot this is refused: the process is chrooted)".into()
        })?;
    }
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it
    // before the capabilities go (as runc does); else as late as possible.
    let nnp = plan.no_new_privileges;
    let seccomp = setup.seccomp;
    let mut listener = None;
    if let (Some(filter), false) = (seccomp, nnp) {
        listener = filter.install()?;
    }
    process::set_lsm_labels(proc, plan)?;
    process::drop_bounding(&plan.caps.bounding)?;
    process::set_user_and_caps(plan)?;
    nix::unistd::chdir(&plan.cwd)
        .map_err(|e| Error::invalid(format!("process.cwd {}: {e}", plan.cwd.display())))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(plan.umask));
    let env = process::exec_env(plan);
    let program = process::find_program(&plan.args[0], &env)?;
    process::refuse_own_binary(&program, setup.own_exe)?;
    // A notify filter goes in before Ready even with no_new_privs: its fd
    // must reach the listener while the parent still waits (as runc).
    let notifies = seccomp.is_some_and(|f| f.notifies());
    if let (Some(filter), true) = (seccomp, nnp && notifies) {
        listener = filter.install()?;
    }
    let ready = ReadyToExec {
        program_c: crate::util::fs::cstr(&program),
        program,
        argv: process::to_cstrings(&plan.args)?,
        envp: process::to_cstrings(&env)?,
        late_seccomp: if nnp && !notifies { seccomp } else { None },
        listener,
    };
    super::sched::apply_final_affinity(plan)?;
    reset_signals();
    close_fds_on_exec(3i32.saturating_add(setup.preserve_fds.max(0)))?;
    Ok(ready)
}

impl ReadyToExec<'_> {
    /// Sends a notify filter's listener fd to the parent and waits until
    /// it has reached `listenerPath`.
    pub fn hand_over_listener(&mut self, chan: &Channel) -> Result<()> {
        if let Some(fd) = self.listener.take() {
            chan.send_fd(&fd)?;
            drop(fd);
            chan.expect(&Msg::SeccompDone, "parent")?;
        }
        Ok(())
    }

    /// Installs a late seccomp filter and execs; returns only on failure.
    pub fn exec(self) -> Result<Never> {
        if let Some(filter) = self.late_seccomp {
            filter.install()?;
        }
        let e = nix::unistd::execve(&self.program_c, &self.argv, &self.envp).unwrap_err();
        Err(Error::sys(format!("exec {}", self.program.display()), e))
    }
}

/// Default dispositions and an empty mask: the container must not inherit
/// vessel's ignored SIGPIPE or any blocked signal.
fn reset_signals() {
    // SAFETY: plain signal syscalls on this single-threaded process.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Every fd from `first` up closes on exec (CVE-2024-21626): the preserved
/// ones stay open, vessel's own stay usable until exec.
fn close_fds_on_exec(first: i32) -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Older kernels: mark each open fd.
    for entry in std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::io("listing", "/proc/self/fd", e))?
        .flatten()
    {
        if let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        {
            if fd >= first {
                // SAFETY: setting FD_CLOEXEC on a possibly-closed fd is harmless.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
    Ok(())
}
