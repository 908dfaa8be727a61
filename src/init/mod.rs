//! The container's init process: everything between clone and execve.
//! It runs in the cloned child, reports each step to the parent over the
//! sync socket (see `sync.rs`), and turns every failure into an `Error`
//! message the parent prints as `create`'s error.

mod devnodes;
pub mod exec;
pub(crate) mod fsutil;
mod mountfd;
pub(crate) mod process;
pub(crate) mod procfs;
pub mod pty;
mod rootfs;

use procfs::ProcFs;

use crate::bundle::Bundle;
use crate::cgroup::Hierarchy;
use crate::error::{Error, Result, SysContext};
use crate::hooks::{self, Kind};
use crate::sync::{Channel, Msg};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

pub use fsutil::ensure_in_root;

/// What the init process needs; built by the parent before clone and
/// inherited through the copied address space.
pub struct InitConfig {
    pub id: String,
    pub bundle: Bundle,
    pub hierarchies: Vec<Hierarchy>,
    /// The container's directory in each of `hierarchies`.
    pub cgroup_dirs: Vec<PathBuf>,
    /// A new cgroup namespace is wanted (made after joining the cgroup).
    pub cgroup_ns: bool,
    /// The init process is in a new user namespace (maps written by the parent).
    pub new_user: bool,
    /// A user namespace to enter last, by path.
    pub join_user: Option<PathBuf>,
    pub terminal: bool,
    pub no_pivot: bool,
    /// The container has its own mount namespace. Without one (the spec's
    /// "inherit"), the rootfs and its mounts are set up in the runtime's
    /// namespace, under a private bind of the rootfs, and entered by chroot.
    pub own_mount_ns: bool,
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

fn run(cfg: &InitConfig, chan: &Channel) -> Result<Never> {
    let spec = &cfg.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json: field process is missing"))?;
    chan.expect(&Msg::Go, "parent")?;
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
    if cfg.new_user {
        // Become the namespace's root, so what init creates belongs to the
        // mapped ids rather than to the host's root.
        let root = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
        nix::unistd::setresgid(root.0, root.0, root.0)
            .sys(|| "user namespace: gid 0 must be mapped (linux.gidMappings)".into())?;
        nix::unistd::setresuid(root.1, root.1, root.1)
            .sys(|| "user namespace: uid 0 must be mapped (linux.uidMappings)".into())?;
    }
    // A user namespace joined by path is entered last (prepare_exec): open
    // it now, while its path still names the host's /proc.
    let join_user = cfg.join_user.as_ref().map(open_namespace).transpose()?;
    join_namespaces(spec)?;
    if new_network_namespace(spec) {
        loopback_up()?;
    }
    if cfg.cgroup_ns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .sys(|| "creating the cgroup namespace".into())?;
    }
    nix::unistd::setsid().sys(|| "setsid".into())?;
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    if !cfg.no_new_keyring {
        join_session_keyring(&cfg.id);
    }
    let rootfd = rootfs::prepare(cfg)?;
    chan.send(&Msg::MountsDone)?;
    chan.expect(&Msg::HooksDone, "parent")?;
    // Hooks in the container see the pid as the container does (runc).
    let hook_state = |status: &str| {
        let pid = Some(nix::unistd::getpid().as_raw());
        hooks::state_json(
            spec.version(),
            &cfg.id,
            status,
            pid,
            &cfg.bundle.dir,
            spec.annotations(),
        )
    };
    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().as_ref())
    {
        hooks::run_all(
            Kind::CreateContainer,
            h,
            &hook_state("creating"),
            &cfg.bundle.dir,
        )?;
    }
    if cfg.own_mount_ns {
        rootfs::pivot(&cfg.bundle.rootfs, cfg.no_pivot)?;
    } else {
        rootfs::chroot(&cfg.bundle.rootfs)?;
    }
    drop(rootfd);
    if cfg.terminal {
        setup_console(cfg, process)?;
    }
    set_sysctls(&proc, spec)?;
    set_names(spec)?;
    rootfs::finish(cfg)?;
    let mut ready = prepare_exec(
        &proc,
        process,
        cfg.seccomp.as_ref(),
        cfg.own_exe,
        cfg.preserve_fds,
        join_user,
    )?;
    ready.hand_over_listener(chan)?;
    chan.send(&Msg::Ready)?;
    if let Some(fifo) = &cfg.fifo {
        wait_for_start(fifo)?;
    }
    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
    {
        hooks::run_all(
            Kind::StartContainer,
            h,
            &hook_state("created"),
            &cfg.bundle.dir,
        )?;
    }
    // The parent of `create` is gone by now: an error reaches the container's stderr.
    ready.exec()
}

/// Everything between a process's namespaces and its execve: rlimits,
/// seccomp, capabilities and user, cwd, umask, the program; shared by the
/// init process and `exec`.
pub struct ReadyToExec<'a> {
    program: std::path::PathBuf,
    program_c: std::ffi::CString,
    argv: Vec<std::ffi::CString>,
    envp: Vec<std::ffi::CString>,
    late_seccomp: Option<&'a crate::seccomp::Program>,
    /// A notify filter's listener fd, for the parent to pass on.
    listener: Option<OwnedFd>,
}

pub fn prepare_exec<'a>(
    proc: &ProcFs,
    process: &oci_spec::runtime::Process,
    seccomp: Option<&'a crate::seccomp::Program>,
    own_exe: (u64, u64),
    preserve_fds: i32,
    join_user: Option<OwnedFd>,
) -> Result<ReadyToExec<'a>> {
    process::set_rlimits(process)?;
    // Entered after everything that needs the host's root (mounts, nodes,
    // rlimits); the user, groups and capabilities below are then the
    // namespace's. The namespaces vessel made stay owned by the host's.
    if let Some(fd) = join_user {
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWUSER).sys(|| {
            "joining the user namespace of linux.namespaces (with --no-pivot this is refused: the process is chrooted)".into()
        })?;
    }
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it
    // before the capabilities go (as runc does); else as late as possible.
    let nnp = process.no_new_privileges().unwrap_or(false);
    let mut listener = None;
    if let (Some(filter), false) = (seccomp, nnp) {
        listener = filter.install()?;
    }
    process::set_lsm_labels(proc, process)?;
    process::drop_bounding(process.capabilities().as_ref())?;
    process::set_user_and_caps(process)?;
    let cwd = process.cwd();
    nix::unistd::chdir(cwd)
        .map_err(|e| Error::invalid(format!("process.cwd {}: {e}", cwd.display())))?;
    let umask = process.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::invalid("process.args must name the program to run"))?;
    let env = process::exec_env(process);
    let program = process::find_program(arg0, &env)?;
    process::refuse_own_binary(&program, own_exe)?;
    // A notify filter goes in before Ready even with no_new_privs: its fd
    // must reach the listener while the parent still waits (as runc).
    let notifies = seccomp.is_some_and(|f| f.notifies());
    if let (Some(filter), true) = (seccomp, nnp && notifies) {
        listener = filter.install()?;
    }
    let ready = ReadyToExec {
        program_c: fsutil::cstr(&program),
        program,
        argv: process::to_cstrings(&args)?,
        envp: process::to_cstrings(&env)?,
        late_seccomp: if nnp && !notifies { seccomp } else { None },
        listener,
    };
    reset_signals();
    close_fds_on_exec(3i32.saturating_add(preserve_fds.max(0)))?;
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
        Err(Error::invalid(format!(
            "exec {}: {e}",
            self.program.display()
        )))
    }
}

/// setns into every namespace given by `path`, except pid and time (the
/// parent joins those before clone, as they only apply to children).
fn join_namespaces(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let joins: Vec<(LinuxNamespaceType, PathBuf)> = linux
        .namespaces()
        .iter()
        .flatten()
        .filter(|ns| {
            !matches!(
                ns.typ(),
                LinuxNamespaceType::Pid | LinuxNamespaceType::Time | LinuxNamespaceType::User
            )
        })
        .filter_map(|ns| ns.path().clone().map(|p| (ns.typ(), p)))
        .collect();
    setns_all(&joins, false)
}

fn open_namespace(path: &PathBuf) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::invalid(format!("namespace path {}: {e}", path.display())))
}

/// Joins namespaces by path: every path opened first (in the runtime's
/// mount namespace), then the user namespace first (it grants the
/// capabilities to join the others) and mount last. setns checks each
/// namespace is of the type named.
pub(crate) fn setns_all(joins: &[(LinuxNamespaceType, PathBuf)], user_last: bool) -> Result<()> {
    let mut fds: Vec<(OwnedFd, LinuxNamespaceType, &PathBuf)> = Vec::new();
    for (typ, path) in joins {
        fds.push((
            open_namespace(path)
                .map_err(|e| Error::invalid(format!("linux.namespaces {typ:?}: {e}")))?,
            *typ,
            path,
        ));
    }
    // A user namespace the container joined by path owns none of its other
    // namespaces: those are joined first, as the host's root.
    fds.sort_by_key(|(_, t, _)| match t {
        LinuxNamespaceType::User if user_last => 3,
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    for (fd, typ, path) in fds {
        nix::sched::setns(fd, ns_flag(typ)).sys(|| {
            format!(
                "joining {typ:?} namespace {} (is it a {typ:?} namespace?)",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// A pty whose master goes to the console socket and whose slave becomes
/// /dev/console and the process's stdio.
fn setup_console(cfg: &InitConfig, process: &oci_spec::runtime::Process) -> Result<()> {
    let socket = cfg
        .console
        .as_ref()
        .ok_or_else(|| Error::invalid("process.terminal needs --console-socket"))?;
    pty::setup(socket, process, true)
}

fn new_network_namespace(spec: &Spec) -> bool {
    crate::bundle::namespaces(spec)
        .any(|ns| ns.typ() == LinuxNamespaceType::Network && ns.path().is_none())
}

/// A new network namespace starts with `lo` down; runc brings it up.
fn loopback_up() -> Result<()> {
    // SAFETY: a datagram socket used only for interface ioctls, closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(Error::invalid(format!(
            "bringing up lo: socket: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: ifreq is plain data; the name fits.
    let rc = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let e = std::io::Error::last_os_error();
        libc::close(sock);
        if rc == 0 {
            Ok(())
        } else {
            Err(e)
        }
    };
    rc.map_err(|e| Error::invalid(format!("bringing up lo: {e}")))
}

/// The clone flag of a namespace type: setns checks the fd is of that type.
pub fn ns_flag(t: LinuxNamespaceType) -> nix::sched::CloneFlags {
    use nix::sched::CloneFlags as F;
    match t {
        LinuxNamespaceType::Mount => F::CLONE_NEWNS,
        LinuxNamespaceType::Uts => F::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => F::CLONE_NEWIPC,
        LinuxNamespaceType::Network => F::CLONE_NEWNET,
        LinuxNamespaceType::Pid => F::CLONE_NEWPID,
        LinuxNamespaceType::Cgroup => F::CLONE_NEWCGROUP,
        LinuxNamespaceType::User => F::CLONE_NEWUSER,
        LinuxNamespaceType::Time => F::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

fn set_sysctls(proc: &ProcFs, spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctl {
        if key.contains("..") || key.contains('/') && key.contains('.') {
            return Err(Error::invalid(format!(
                "linux.sysctl {key:?}: not a sysctl name"
            )));
        }
        proc.write(&format!("sys/{}", key.replace('.', "/")), value)
            .map_err(|e| Error::invalid(format!("linux.sysctl {key}={value}: {e}")))?;
    }
    Ok(())
}

fn set_names(spec: &Spec) -> Result<()> {
    let own_uts = crate::bundle::namespaces(spec).any(|ns| ns.typ() == LinuxNamespaceType::Uts);
    let hostname = spec.hostname().as_deref().filter(|h| !h.is_empty());
    let domainname = spec.domainname().as_deref().filter(|h| !h.is_empty());
    if (hostname.is_some() || domainname.is_some()) && !own_uts {
        return Err(Error::invalid(
            "hostname/domainname need a uts namespace in linux.namespaces",
        ));
    }
    if let Some(h) = hostname {
        nix::unistd::sethostname(h).sys(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = domainname {
        // SAFETY: a valid buffer and its length.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::invalid(format!(
                "domainname {d:?}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// A fresh session keyring per container, so containers do not share the
/// host's keys (runc's behaviour; `--no-new-keyring` skips it).
fn join_session_keyring(id: &str) {
    let name = std::ffi::CString::new(format!("_ses.{id}")).unwrap_or_default();
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a valid name. Failure (no
    // keyring support) is not fatal, as in runc.
    unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            1, /* KEYCTL_JOIN_SESSION_KEYRING */
            name.as_ptr(),
        )
    };
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
        .map_err(|e| Error::invalid(format!("writing exec.fifo: {e}")))?;
    Ok(())
}
