//! `linux.seccomp` compiled with libseccomp into a BPF program before the
//! init process reports Ready (so a bad profile fails `create` with a clear
//! error), and installed with one seccomp(2) call at the end.

use crate::error::{Error, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use std::io::{Read, Seek};
use std::str::FromStr;

/// A compiled filter: the BPF instructions and the seccomp(2) flags.
pub struct Program {
    filter: Vec<libc::sock_filter>,
    flags: u32,
    /// Where the listener fd of a SCMP_ACT_NOTIFY filter goes, and the
    /// metadata sent with it.
    pub listener: Option<(std::path::PathBuf, String)>,
}

/// SECCOMP_FILTER_FLAG_NEW_LISTENER: seccomp(2) returns the notify fd.
const FLAG_NEW_LISTENER: u32 = 1 << 3;

fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    use LinuxSeccompAction as A;
    Ok(match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno.map_or(libc::EPERM, |e| e as i32)),
        A::ScmpActTrace => ScmpAction::Trace(errno.map_or(libc::EPERM as u16, |e| e as u16)),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    use LinuxSeccompOperator as O;
    match op {
        O::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        O::ScmpCmpLt => (ScmpCompareOp::Less, value),
        O::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        O::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        O::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        O::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // runc's convention: value is the mask, valueTwo the expected value.
        O::ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0)),
    }
}

fn lib_err(what: String) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    move |e| Error::invalid(format!("linux.seccomp: {what}: {e}"))
}

/// Compiles the spec's filter.
pub fn compile(s: &LinuxSeccomp) -> Result<Program> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib_err("creating the filter".into()))?;
    for arch in s.architectures().iter().flatten() {
        let name = name_of(arch);
        let a = ScmpArch::from_str(&name).map_err(lib_err(format!("architecture {name}")))?;
        ctx.add_arch(a)
            .map_err(lib_err(format!("architecture {name}")))?;
    }
    let mut flags = filter_flags(s)?;
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        add_rule(&mut ctx, i, rule, default)?;
    }
    let listener = listener(s, default)?;
    if listener.is_some() {
        flags |= FLAG_NEW_LISTENER;
    }
    Ok(Program {
        filter: export(&ctx)?,
        flags,
        listener,
    })
}

/// `linux.seccomp.flags` as seccomp(2) flags.
fn filter_flags(s: &LinuxSeccomp) -> Result<u32> {
    let mut flags = 0u32;
    for f in s.flags().iter().flatten() {
        match name_of(f).as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => flags |= libc::SECCOMP_FILTER_FLAG_LOG as u32,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => {
                flags |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32
            }
            // One thread: TSYNC has nothing to synchronise.
            "SECCOMP_FILTER_FLAG_TSYNC" => {}
            other => {
                return Err(Error::invalid(format!(
                    "linux.seccomp.flags: {other:?} is not supported"
                )))
            }
        }
    }
    Ok(flags)
}

/// One `syscalls` entry: a rule per known name (unknown names, newer or of
/// another architecture, are skipped, as in runc).
fn add_rule(
    ctx: &mut ScmpFilterContext,
    i: usize,
    rule: &oci_spec::runtime::LinuxSyscall,
    default: ScmpAction,
) -> Result<()> {
    let act = action(rule.action(), rule.errno_ret())?;
    if act == default {
        return Ok(()); // libseccomp refuses rules that repeat the default
    }
    let conds: Vec<ScmpArgCompare> = rule
        .args()
        .iter()
        .flatten()
        .map(|a| {
            let (op, datum) = compare(a.op(), a.value(), a.value_two());
            ScmpArgCompare::new(a.index() as u32, op, datum)
        })
        .collect();
    let mut indexes: Vec<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
    indexes.sort_unstable();
    let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
    for name in rule.names() {
        let Ok(sys) = ScmpSyscall::from_name(name) else {
            continue;
        };
        let what = || format!("syscalls[{i}] {name}");
        if conds.is_empty() {
            ctx.add_rule(act, sys).map_err(lib_err(what()))?;
        } else if repeated {
            // Two conditions on one argument can only be ORed: one rule each.
            for c in &conds {
                ctx.add_rule_conditional(act, sys, std::slice::from_ref(c))
                    .map_err(lib_err(what()))?;
            }
        } else {
            ctx.add_rule_conditional(act, sys, &conds)
                .map_err(lib_err(what()))?;
        }
    }
    Ok(())
}

/// Where a notify filter's listener fd goes; None without notify rules.
fn listener(s: &LinuxSeccomp, default: ScmpAction) -> Result<Option<(std::path::PathBuf, String)>> {
    let notify = default == ScmpAction::Notify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    match (notify, s.listener_path()) {
        (false, _) => Ok(None),
        (true, Some(path)) if path.is_absolute() => Ok(Some((
            path.clone(),
            s.listener_metadata().clone().unwrap_or_default(),
        ))),
        (true, _) => Err(Error::invalid(
            "linux.seccomp: SCMP_ACT_NOTIFY needs an absolute linux.seccomp.listenerPath",
        )),
    }
}

/// The BPF program libseccomp generates, read back through a memfd
/// (Debian 12's libseccomp 2.5 has no in-memory export).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let name = c"vessel-seccomp";
    // SAFETY: memfd_create with a valid name.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::invalid(format!(
            "linux.seccomp: memfd: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a fresh fd we own.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    ctx.export_bpf(&file)
        .map_err(lib_err("generating BPF".into()))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::invalid(format!("linux.seccomp: reading BPF: {e}")))?;
    let size = std::mem::size_of::<libc::sock_filter>();
    Ok(bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

impl Program {
    /// Installs the filter on this process (needs no_new_privs or
    /// CAP_SYS_ADMIN); returns the listener fd of a notify filter.
    pub fn install(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        let prog = libc::sock_fprog {
            len: self.filter.len() as u16,
            filter: self.filter.as_ptr() as *mut _,
        };
        // SAFETY: a valid sock_fprog pointing at our filter.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const _,
            )
        };
        if rc < 0 {
            return Err(Error::invalid(format!(
                "linux.seccomp: installing the filter: {}",
                std::io::Error::last_os_error()
            )));
        }
        if self.flags & FLAG_NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER, seccomp(2) returns a new fd.
            return Ok(Some(unsafe {
                std::os::fd::FromRawFd::from_raw_fd(rc as i32)
            }));
        }
        Ok(None)
    }

    /// True for a filter with SCMP_ACT_NOTIFY rules.
    pub fn notifies(&self) -> bool {
        self.listener.is_some()
    }

    pub fn len(&self) -> usize {
        self.filter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }
}

/// `linux.seccomp.listenerPath` and `listenerMetadata`, when set.
pub fn listener_of(spec: &oci_spec::runtime::Spec) -> Option<(std::path::PathBuf, String)> {
    let s = spec.linux().as_ref()?.seccomp().as_ref()?;
    Some((
        s.listener_path().clone()?,
        s.listener_metadata().clone().unwrap_or_default(),
    ))
}

/// Sends a notify filter's listener fd to the agent at `listener.0`, with
/// runc's `ContainerProcessState` JSON (fds ["seccompFd"], the pid, the
/// metadata and the container's state) in the same message.
pub fn forward_listener(
    fd: std::os::fd::OwnedFd,
    listener: &(std::path::PathBuf, String),
    state_json: &[u8],
) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let (path, metadata) = listener;
    let state: serde_json::Value = serde_json::from_slice(state_json).unwrap_or_default();
    let msg = serde_json::json!({
        "ociVersion": state["ociVersion"],
        "fds": ["seccompFd"],
        "pid": state["pid"],
        "metadata": metadata,
        "state": state,
    })
    .to_string();
    let sock = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        Error::invalid(format!(
            "linux.seccomp.listenerPath {}: {e} (is the seccomp agent listening?)",
            path.display()
        ))
    })?;
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(msg.as_bytes())];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| Error::sys(format!("sending the seccomp fd to {}", path.display()), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn docker_style_profile_compiles() {
        let s = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{"names":["read","write","no_such_syscall_xyz"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                            {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"op":"SCMP_CMP_MASKED_EQ"}]},
                            {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        let p = compile(&s).unwrap();
        assert!(p.len() > 10);
    }

    #[test]
    fn notify_and_bad_arch_are_clear_errors() {
        let e = compile(&seccomp(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("SCMP_ACT_NOTIFY"), "{e}");
    }
}
