//! The parent side of `create`: one clone into the new namespaces, the
//! child placed in its cgroup, the parent's hooks, and the wait for Ready.

use crate::error::{Error, Result, SysContext};
use crate::init::{self, InitConfig};
use crate::sync::{self, Channel, Msg};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// What the spec asks of namespaces, split by who acts on it.
#[derive(Debug)]
pub struct NamespacePlan {
    /// New namespaces made by clone itself.
    pub clone_flags: CloneFlags,
    /// Join these before clone: they only apply to children (pid, time).
    pub join_for_children: Vec<(LinuxNamespaceType, std::path::PathBuf)>,
    pub new_time: bool,
    /// New cgroup namespace, made by the child once it is in its cgroup.
    pub new_cgroup: bool,
    pub has_mount: bool,
    pub own_pid: bool,
    /// A new user namespace: the parent writes its id maps after clone.
    pub new_user: bool,
    /// A user namespace joined by path: init enters it last, just before
    /// the process's credentials are set, so everything vessel sets up is
    /// set up as the host's root.
    pub join_user: Option<std::path::PathBuf>,
}

pub fn plan_namespaces(spec: &Spec) -> Result<NamespacePlan> {
    let mut plan = NamespacePlan {
        clone_flags: CloneFlags::empty(),
        join_for_children: Vec::new(),
        new_time: false,
        new_cgroup: false,
        has_mount: false,
        own_pid: false,
        new_user: false,
        join_user: None,
    };
    for ns in crate::bundle::namespaces(spec) {
        let typ = ns.typ();
        match typ {
            LinuxNamespaceType::Mount => plan.has_mount = true,
            LinuxNamespaceType::Pid => plan.own_pid = ns.path().is_none(),
            _ => {}
        }
        if let Some(path) = ns.path() {
            if matches!(typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
                plan.join_for_children.push((typ, path.clone()));
            }
            if typ == LinuxNamespaceType::User {
                plan.join_user = Some(path.clone());
            }
            continue;
        }
        match typ {
            LinuxNamespaceType::Mount => plan.clone_flags |= CloneFlags::CLONE_NEWNS,
            LinuxNamespaceType::Uts => plan.clone_flags |= CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => plan.clone_flags |= CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Network => plan.clone_flags |= CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::Pid => plan.clone_flags |= CloneFlags::CLONE_NEWPID,
            LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
            LinuxNamespaceType::Time => plan.new_time = true,
            LinuxNamespaceType::User => {
                plan.clone_flags |= CloneFlags::CLONE_NEWUSER;
                plan.new_user = true;
            }
        }
    }
    if plan.new_user {
        let linux = spec.linux().as_ref();
        let empty = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| m.is_none_or_empty();
        if empty(linux.and_then(|l| l.uid_mappings().as_ref()))
            || empty(linux.and_then(|l| l.gid_mappings().as_ref()))
        {
            return Err(Error::invalid(
                "linux.namespaces: a user namespace needs linux.uidMappings and linux.gidMappings",
            ));
        }
    }
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .is_some_and(|o| !o.is_empty());
    if offsets && !plan.new_time {
        return Err(Error::invalid(
            "linux.timeOffsets need a new time namespace in linux.namespaces",
        ));
    }
    Ok(plan)
}

trait NoneOrEmpty {
    fn is_none_or_empty(&self) -> bool;
}

impl<T> NoneOrEmpty for Option<&Vec<T>> {
    fn is_none_or_empty(&self) -> bool {
        self.map_or(true, |v| v.is_empty())
    }
}

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
            .map_err(|e| Error::invalid(format!("rootless: writing {path}: {e}")))?;
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

fn for_children_flag(typ: LinuxNamespaceType) -> (&'static str, CloneFlags) {
    match typ {
        LinuxNamespaceType::Pid => ("pid", CloneFlags::CLONE_NEWPID),
        _ => ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
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
        let (name, flag) = for_children_flag(typ);
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

fn enter_for_children(plan: &NamespacePlan, spec: &Spec) -> Result<ForChildren> {
    let mut guard = ForChildren::new();
    for (typ, path) in &plan.join_for_children {
        guard.join(*typ, path)?;
    }
    if plan.new_time {
        let flag = guard.save(LinuxNamespaceType::Time)?;
        nix::sched::unshare(flag).sys(|| "creating the time namespace".into())?;
        let offsets = spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().clone())
            .unwrap_or_default();
        for (clock, off) in offsets {
            let line = format!(
                "{clock} {} {}",
                off.secs().unwrap_or(0),
                off.nanosecs().unwrap_or(0)
            );
            std::fs::write("/proc/self/timens_offsets", &line)
                .map_err(|e| Error::invalid(format!("linux.timeOffsets {clock}: {e}")))?;
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
    plan: &NamespacePlan,
    cfg: &InitConfig,
    into_cgroup: Option<&std::path::Path>,
) -> Result<(i32, Channel, bool)> {
    let (parent, child) = sync::pair()?;
    let guard = enter_for_children(plan, &cfg.bundle.spec)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: &str) -> Spec {
        crate::bundle::parse_spec(
            format!(r#"{{"ociVersion":"1.0.0","linux":{{"namespaces":{ns}}}}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn namespaces_split_between_clone_child_and_parent() {
        let p = plan_namespaces(&spec(r#"[{"type":"mount"},{"type":"pid"},{"type":"cgroup"},{"type":"network","path":"/proc/1/ns/net"}]"#)).unwrap();
        assert_eq!(
            p.clone_flags,
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID
        );
        assert!(p.new_cgroup && p.own_pid && p.join_for_children.is_empty());
        let p = plan_namespaces(&spec(
            r#"[{"type":"mount"},{"type":"pid","path":"/proc/1/ns/pid"}]"#,
        ))
        .unwrap();
        assert_eq!(p.join_for_children.len(), 1);
        assert!(!p.own_pid);
    }

    #[test]
    fn missing_id_maps_are_refused_and_no_mount_namespace_is_inherited() {
        let p = plan_namespaces(&spec(r#"[{"type":"pid"}]"#)).unwrap();
        assert!(!p.has_mount && !p.clone_flags.contains(CloneFlags::CLONE_NEWNS));
        let e = plan_namespaces(&spec(r#"[{"type":"mount"},{"type":"user"}]"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("uidMappings"), "{e}");
        let p = plan_namespaces(&spec(
            r#"[{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"}]"#,
        ))
        .unwrap();
        assert_eq!(
            p.join_user.as_deref(),
            Some(std::path::Path::new("/proc/1/ns/user"))
        );
        assert!(!p.new_user && !p.clone_flags.contains(CloneFlags::CLONE_NEWUSER));
    }
}
