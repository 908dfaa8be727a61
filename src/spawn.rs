//! The parent side of `create`: one clone into the new namespaces, the
//! child placed in its cgroup, the parent's hooks, and the wait for Ready.

use crate::error::{Error, Result, SysContext};
use crate::init::{self, InitConfig};
use crate::plan::{namespaces, Namespaces};
use crate::sync::{self, Channel, Msg};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// Writes the user namespace's id maps for the init process (as root on the
/// host, so any mapping the spec asks for is allowed).
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    // An unprivileged parent may map only its own ids, and the gid map only
    // once setgroups is denied.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        let path = format!("/proc/{pid}/setgroups");
        std::fs::write(&path, "deny")
            .map_err(|e| Error::os(format!("rootless: writing {path}"), e))?;
    }
    for (file, maps) in [
        ("uid_map", linux.and_then(|l| l.uid_mappings().as_ref())),
        ("gid_map", linux.and_then(|l| l.gid_mappings().as_ref())),
    ] {
        let text: String = maps
            .into_iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect();
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &text).map_err(|e| {
            Error::invalid(format!(
                "linux.{}: writing {path}: {e}",
                if file == "uid_map" {
                    "uidMappings"
                } else {
                    "gidMappings"
                }
            ))
        })?;
    }
    Ok(())
}

/// Namespaces that apply only to children (pid, time): joined by the parent
/// just before a clone and restored when this guard drops.
pub(crate) struct ForChildren {
    restore: Vec<(OwnedFd, CloneFlags)>,
}

impl Drop for ForChildren {
    fn drop(&mut self) {
        for (fd, flag) in self.restore.drain(..) {
            let _ = nix::sched::setns(fd, flag);
        }
    }
}

impl ForChildren {
    pub(crate) fn new() -> ForChildren {
        ForChildren {
            restore: Vec::new(),
        }
    }

    /// Remembers our own namespace of that type, to go back to.
    fn save(&mut self, typ: LinuxNamespaceType) -> Result<CloneFlags> {
        let kind = namespaces::of(typ);
        let (name, flag) = (kind.proc_name, kind.flag);
        let own = std::fs::File::open(format!("/proc/self/ns/{name}"))
            .map_err(|e| Error::io("opening", format!("/proc/self/ns/{name}"), e))?;
        self.restore.push((own.into(), flag));
        Ok(flag)
    }

    /// Makes children born in the pid or time namespace at `path`.
    pub(crate) fn join(&mut self, typ: LinuxNamespaceType, path: &std::path::Path) -> Result<()> {
        let flag = self.save(typ)?;
        let f = std::fs::File::open(path).map_err(|e| {
            Error::invalid(format!(
                "linux.namespaces {typ:?} path {}: {e}",
                path.display()
            ))
        })?;
        nix::sched::setns(f.as_fd(), flag)
            .sys(|| format!("joining {typ:?} namespace {}", path.display()))
    }
}

/// A fork-style clone (no new stack, no CLONE_VM) with namespace flags:
/// 0 in the child, its pid in the parent, -1 on failure.
pub(crate) fn fork_clone(flags: CloneFlags) -> i64 {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: vessel is single-threaded; the child gets a private copy of
    // memory and runs only init or exec code before execve or _exit.
    unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) }
}

fn enter_for_children(plan: &Namespaces) -> Result<ForChildren> {
    let mut guard = ForChildren::new();
    for (typ, path) in &plan.join_for_children {
        guard.join(*typ, path)?;
    }
    if plan.new_time {
        let flag = guard.save(LinuxNamespaceType::Time)?;
        nix::sched::unshare(flag).sys(|| "creating the time namespace".into())?;
        for (clock, line) in &plan.time_offsets {
            std::fs::write("/proc/self/timens_offsets", line)
                .map_err(|e| Error::os(format!("linux.timeOffsets {clock}"), e))?;
        }
    }
    Ok(guard)
}

/// Clones the init process. The child never returns from here.
/// `into_cgroup`: on a pure cgroup v2 host, the container's cgroup
/// directory: the child is then born in it (clone3 with CLONE_INTO_CGROUP)
/// instead of being moved there, which costs a cgroup migration. Returns
/// the pid and whether the child was born in the cgroup.
pub fn clone_init(
    cfg: &InitConfig,
    into_cgroup: Option<&std::path::Path>,
) -> Result<(i32, Channel, bool)> {
    let plan = &cfg.plan.namespaces;
    let (parent, child) = sync::pair()?;
    let guard = enter_for_children(plan)?;
    let cgroup_fd = into_cgroup.and_then(|d| std::fs::File::open(d).ok());
    let mut born_in_cgroup = false;
    let mut pid = -1;
    if let Some(fd) = &cgroup_fd {
        pid = clone3_into(plan.clone_flags.bits() as u64, fd.as_raw_fd());
        born_in_cgroup = pid >= 0;
    }
    if pid < 0 {
        pid = fork_clone(plan.clone_flags);
    }
    drop(cgroup_fd);
    if pid < 0 {
        return Err(Error::invalid(format!(
            "clone with namespaces {:?}: {}",
            plan.clone_flags,
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        std::mem::forget(guard);
        drop(parent);
        init::child_main(cfg, &child);
    }
    drop(guard);
    drop(child);
    Ok((pid as i32, parent, born_in_cgroup))
}

/// clone3(CLONE_INTO_CGROUP), fork-style; -1 where the kernel refuses.
fn clone3_into(flags: u64, cgroup_fd: i32) -> i64 {
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: flags | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup_fd as u64,
    };
    // SAFETY: clone3 without CLONE_VM or a stack behaves like fork; the
    // args struct is of the size passed.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    }
}

/// Waits for the child to report that its mounts are done, runs the
/// parent-side hooks, and waits for Ready.
pub fn drive_child(
    chan: &Channel,
    spec: &Spec,
    state_json: &[u8],
    bundle: &std::path::Path,
) -> Result<()> {
    chan.send(&Msg::Go)?;
    chan.expect(&Msg::MountsDone, "container init")?;
    if let Some(hooks) = spec.hooks() {
        if let Some(h) = hooks.prestart() {
            crate::hooks::run_all(crate::hooks::Kind::Prestart, h, state_json, bundle)?;
        }
        if let Some(h) = hooks.create_runtime() {
            crate::hooks::run_all(crate::hooks::Kind::CreateRuntime, h, state_json, bundle)?;
        }
    }
    chan.send(&Msg::HooksDone)?;
    let listener = crate::seccomp::listener_of(spec);
    if let Msg::SeccompFd(fd) =
        chan.expect_either(&Msg::Ready, &Msg::SeccompFd(0), "container init")?
    {
        pass_listener(chan, fd, listener.as_ref(), state_json)?;
        chan.expect(&Msg::Ready, "container init")?;
    }
    Ok(())
}

/// The parent's side of a notify filter: the child's listener fd goes to
/// the agent, then the child may go on.
pub fn pass_listener(
    chan: &Channel,
    fd: std::os::fd::RawFd,
    listener: Option<&(std::path::PathBuf, String)>,
    state_json: &[u8],
) -> Result<()> {
    // SAFETY: received with SCM_RIGHTS: ours to own.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let listener =
        listener.ok_or_else(|| Error::Init("seccomp fd without a listenerPath".into()))?;
    crate::seccomp::forward_listener(fd, listener, state_json)?;
    chan.send(&Msg::SeccompDone)
}
