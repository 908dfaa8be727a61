//! `exec`: a new process in a running container: its namespaces, cgroup,
//! user, capabilities, rlimits, no_new_privs and seccomp, exactly like the
//! init process got them.

use crate::container::Runtime;
use crate::error::{Error, Result};
use crate::init::exec::ExecConfig;
use crate::plan::ProcessPlan;
use crate::state::{State, Status};
use crate::sync::{self, Msg};
use nix::sched::CloneFlags;
use oci_spec::runtime::{Capability, LinuxNamespaceType, Process, Spec};
use std::path::PathBuf;

/// What `exec`'s flags ask for when no `--process` file is given.
#[derive(Debug, Clone, Default)]
pub struct ExecFlags {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `UID[:GID]`
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub tty: bool,
}

/// The process to run: the `--process` file as is, or the container's own
/// process with the flags applied (runc's rules).
pub fn build_process(
    spec: &Spec,
    process_file: Option<&std::path::Path>,
    flags: &ExecFlags,
) -> Result<Process> {
    if let Some(path) = process_file {
        let text = std::fs::read(path)
            .map_err(|e| Error::invalid(format!("--process {}: {e}", path.display())))?;
        let p: Process = crate::bundle::parse_process(&text)
            .map_err(|e| Error::invalid(format!("--process {}: {e}", path.display())))?;
        if p.args().as_ref().map_or(true, |a| a.is_empty()) {
            return Err(Error::invalid(format!(
                "--process {}: args must name the program to run",
                path.display()
            )));
        }
        crate::bundle::check_process(&p)?;
        return Ok(p);
    }
    if flags.args.is_empty() {
        return Err(Error::invalid(
            "exec: give the command to run after the container id (or --process FILE)",
        ));
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(flags.args.clone()));
    p.set_terminal(Some(flags.tty));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(flags.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &flags.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(user) = &flags.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let bad = || Error::invalid(format!("--user {user:?}: expected UID[:GID] as numbers"));
        let mut u = p.user().clone();
        u.set_uid(uid.parse().map_err(|_| bad())?);
        if let Some(g) = gid {
            u.set_gid(g.parse().map_err(|_| bad())?);
        }
        p.set_user(u);
    }
    if !flags.additional_gids.is_empty() {
        let mut u = p.user().clone();
        u.set_additional_gids(Some(flags.additional_gids.clone()));
        p.set_user(u);
    }
    if !flags.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &flags.caps {
            let cap: Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| Error::invalid(format!("--cap {name:?}: unknown capability")))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    if flags.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    crate::bundle::check_process(&p)?;
    Ok(p)
}

/// Options of `exec` besides the process.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
}

/// A started exec process; `pid` is the host pid.
pub struct Execed {
    pub pid: i32,
}

impl Runtime {
    /// Starts `process` in container `id`.
    pub fn exec(&self, id: &str, process: Process, opts: &ExecOptions) -> Result<Execed> {
        let (state, spec) = self.exec_target(id)?;
        self.exec_in(&state, &spec, process, opts)
    }

    /// The container to exec into, with its spec (to build the process
    /// from); refused once it has stopped.
    pub fn exec_target(&self, id: &str) -> Result<(State, Spec)> {
        let (state, status) = self.state(id)?;
        if status == Status::Stopped {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                what: "cannot exec in a stopped container".into(),
            });
        }
        let spec = state.spec()?;
        Ok((state, spec))
    }

    /// `exec` into a container already looked up with `exec_target`:
    /// plan the process, fork a child into the container's namespaces and
    /// cgroup, and wait until it has exec'd (or failed).
    pub fn exec_in(
        &self,
        state: &State,
        spec: &Spec,
        process: Process,
        opts: &ExecOptions,
    ) -> Result<Execed> {
        crate::container::check_preserved_fds(opts.preserve_fds)?;
        let (cfg, for_children) = exec_config(state, spec, process, opts)?;
        let (pid, parent) = fork_exec_child(&cfg, &for_children)?;
        let fail = |e: Error| {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            e
        };
        // execCPUAffinity.initial: before the move into the cgroup.
        if let Some(cpus) = &cfg.process.cpu_affinity.initial {
            crate::init::sched::set_affinity(pid, cpus, "process.execCPUAffinity.initial")
                .map_err(fail)?;
        }
        state
            .cgroup()
            .add(pid, "adding the exec process to")
            .map_err(fail)?;
        parent.send(&Msg::Go).map_err(fail)?;
        wait_until_exec(&parent, state, spec, pid).map_err(fail)?;
        if let Some(pid_file) = &opts.pid_file {
            crate::container::write_pid_file(pid_file, pid)?;
        }
        Ok(Execed { pid })
    }
}

/// Everything the exec child needs, checked before the fork, and the
/// namespaces (pid, time) the parent must join for it.
fn exec_config(
    state: &State,
    spec: &Spec,
    process: Process,
    opts: &ExecOptions,
) -> Result<(ExecConfig, Vec<(LinuxNamespaceType, PathBuf)>)> {
    let linux = spec.linux().as_ref();
    let process = ProcessPlan::new(&process)?
        .with_memory_policy(linux.and_then(|l| l.memory_policy().as_ref()))?;
    for w in &process.warnings {
        crate::log::warn(w);
    }
    let mut namespaces = Vec::new();
    let mut for_children = Vec::new();
    for ns in crate::bundle::namespaces(spec) {
        let kind = crate::plan::namespaces::of(ns.typ());
        let path = PathBuf::from(format!("/proc/{}/ns/{}", state.pid, kind.proc_name));
        if kind.for_children {
            for_children.push((kind.typ, path));
        } else {
            namespaces.push((kind.typ, path));
        }
    }
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::compile(s)?),
        None => None,
    };
    let console = match &opts.console_socket {
        Some(path) if process.terminal => Some(crate::init::pty::connect(path)?),
        None if process.terminal => {
            return Err(Error::invalid("exec --tty needs --console-socket"))
        }
        _ => None,
    };
    let user_last = crate::bundle::namespaces(spec)
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_some());
    // Without its own mount namespace, the container's root is a chroot.
    let own_mount = namespaces
        .iter()
        .any(|(t, _)| *t == LinuxNamespaceType::Mount);
    let cfg = ExecConfig {
        process,
        chroot: (!own_mount).then(|| PathBuf::from(format!("/proc/{}/root", state.pid))),
        namespaces,
        user_last,
        seccomp,
        console,
        preserve_fds: opts.preserve_fds,
        own_exe: crate::container::own_exe()?,
        close_in_child: Vec::new(),
    };
    Ok((cfg, for_children))
}

/// Forks the exec child, born in the container's pid (and time)
/// namespace: the parent joins those for its children only and goes back
/// right after the fork.
fn fork_exec_child(
    cfg: &ExecConfig,
    for_children: &[(LinuxNamespaceType, PathBuf)],
) -> Result<(i32, sync::Channel)> {
    let (parent, child) = sync::pair()?;
    let mut guard = crate::spawn::ForChildren::new();
    for (typ, path) in for_children {
        guard.join(*typ, path)?;
    }
    let pid = crate::spawn::fork_clone(CloneFlags::empty());
    if pid == 0 {
        std::mem::forget(guard);
        drop(parent);
        crate::init::exec::child_main(cfg, &child);
    }
    drop(guard);
    drop(child);
    if pid < 0 {
        return Err(Error::os("exec: clone", std::io::Error::last_os_error()));
    }
    Ok((pid as i32, parent))
}

/// Waits for the child's end of the socket to close on execve; a notify
/// seccomp filter's listener goes to its agent on the way, as at create.
fn wait_until_exec(parent: &sync::Channel, state: &State, spec: &Spec, pid: i32) -> Result<()> {
    let mut msg = parent.recv()?;
    if let Some(Msg::SeccompFd(fd)) = msg {
        let listener = crate::seccomp::listener_of(spec);
        let mut st = state.clone();
        st.pid = pid;
        let json = st.hook_state(crate::state::Status::Running);
        crate::spawn::pass_listener(parent, fd, listener.as_ref(), &json)?;
        msg = parent.recv()?;
    }
    match msg {
        None => Ok(()),
        Some(Msg::Error(e)) => Err(Error::Init(e)),
        Some(_) => Err(Error::Init(
            "exec: unexpected message from the child".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        crate::bundle::parse_spec(
            br#"{"ociVersion":"1.0.0","process":{"cwd":"/srv","args":["init"],"env":["A=1"],"user":{"uid":0,"gid":0},
                "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn flags_apply_over_the_container_process() {
        let flags = ExecFlags {
            args: vec!["sh".into()],
            env: vec!["B=2".into()],
            user: Some("1000:100".into()),
            caps: vec!["CAP_CHOWN".into()],
            ..Default::default()
        };
        let p = build_process(&spec(), None, &flags).unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &vec!["sh".to_string()]);
        assert_eq!(
            p.env().as_ref().unwrap(),
            &vec!["A=1".to_string(), "B=2".to_string()]
        );
        assert_eq!(p.cwd(), &PathBuf::from("/srv"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert!(p
            .capabilities()
            .as_ref()
            .unwrap()
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::Chown));
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let e = build_process(&spec(), None, &ExecFlags::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("command"), "{e}");
        let flags = ExecFlags {
            args: vec!["sh".into()],
            user: Some("bob".into()),
            ..Default::default()
        };
        assert!(build_process(&spec(), None, &flags)
            .err()
            .unwrap()
            .to_string()
            .contains("--user"));
        let flags = ExecFlags {
            args: vec!["sh".into()],
            caps: vec!["CAP_NOPE".into()],
            ..Default::default()
        };
        assert!(build_process(&spec(), None, &flags)
            .err()
            .unwrap()
            .to_string()
            .contains("CAP_NOPE"));
        let e = build_process(
            &spec(),
            Some(std::path::Path::new("/nonexistent.json")),
            &flags,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("--process"), "{e}");
    }
}
