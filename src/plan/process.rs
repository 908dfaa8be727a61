//! The process to exec, checked and typed in the parent (for the init
//! process and for `exec`): rlimits resolved to their resource numbers,
//! capabilities parsed, ids in range. What is left for the child is what
//! only the container can answer (the program on its PATH, HOME from its
//! /etc/passwd).

use super::sched::{self, AffinityPlan, MemPolicyPlan, SchedPlan};
use crate::error::{Error, Result};
use caps::Capability;
use oci_spec::runtime::Process;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    pub name: String,
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// The five capability sets; `None` when the spec gives no capabilities
/// at all (every set then becomes empty, as runc does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: Vec<Capability>,
    pub effective: Vec<Capability>,
    pub permitted: Vec<Capability>,
    pub inheritable: Vec<Capability>,
    pub ambient: Vec<Capability>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    pub args: Vec<String>,
    /// The spec's environment as given (the child adds HOME when missing).
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    pub terminal: bool,
    /// (height, width)
    pub console_size: Option<(u16, u16)>,
    pub rlimits: Vec<Rlimit>,
    pub caps: CapSets,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
    /// `process.scheduler`, `process.ioPriority` (the ioprio value) and
    /// `process.execCPUAffinity` (`exec` only: the init process ignores it,
    /// as the spec says and runc does).
    pub scheduler: Option<SchedPlan>,
    pub io_priority: Option<u16>,
    pub cpu_affinity: AffinityPlan,
    /// `linux.memoryPolicy`: the container's, set by its planner.
    pub memory_policy: Option<MemPolicyPlan>,
    /// Things the parent should warn about (an unknown capability name).
    pub warnings: Vec<String>,
}

impl ProcessPlan {
    pub fn new(process: &Process) -> Result<ProcessPlan> {
        crate::bundle::check_process(process)?;
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::invalid("process.args must name the program to run"));
        }
        let user = process.user();
        let mut warnings = Vec::new();
        let caps = process.capabilities().as_ref();
        let mut set =
            |list: Option<&oci_spec::runtime::Capabilities>| cap_list(list, &mut warnings);
        let caps = CapSets {
            bounding: set(caps.and_then(|c| c.bounding().as_ref())),
            effective: set(caps.and_then(|c| c.effective().as_ref())),
            permitted: set(caps.and_then(|c| c.permitted().as_ref())),
            inheritable: set(caps.and_then(|c| c.inheritable().as_ref())),
            ambient: set(caps.and_then(|c| c.ambient().as_ref())),
        };
        Ok(ProcessPlan {
            args,
            env: process.env().clone().unwrap_or_default(),
            cwd: process.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            terminal: process.terminal().unwrap_or(false),
            console_size: process
                .console_size()
                .map(|s| (s.height() as u16, s.width() as u16)),
            rlimits: rlimits(process)?,
            caps,
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            oom_score_adj: process.oom_score_adj(),
            apparmor_profile: non_empty(process.apparmor_profile()),
            selinux_label: non_empty(process.selinux_label()),
            scheduler: sched::scheduler(process)?,
            io_priority: sched::io_priority(process)?,
            cpu_affinity: sched::exec_cpu_affinity(process)?,
            memory_policy: None,
            warnings,
        })
    }
}

impl ProcessPlan {
    /// Adds the container's `linux.memoryPolicy` (init and `exec` alike).
    pub fn with_memory_policy(
        mut self,
        policy: Option<&oci_spec::runtime::LinuxMemoryPolicy>,
    ) -> Result<ProcessPlan> {
        self.memory_policy = sched::memory_policy(policy)?;
        Ok(self)
    }

    /// The init process: `execCPUAffinity` is for `exec`'d processes only
    /// (checked all the same, so a bad list fails `create`).
    pub fn without_exec_affinity(mut self) -> ProcessPlan {
        self.cpu_affinity = AffinityPlan::default();
        self
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

fn rlimits(process: &Process) -> Result<Vec<Rlimit>> {
    let mut out = Vec::new();
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let resource = rlimit_resource(&name)
            .ok_or_else(|| Error::invalid(format!("process.rlimits: unknown rlimit {name:?}")))?;
        if r.soft() > r.hard() {
            return Err(Error::invalid(format!(
                "process.rlimits {name}: soft limit {} is above the hard limit {}",
                r.soft(),
                r.hard()
            )));
        }
        out.push(Rlimit {
            name,
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    Ok(out)
}

fn rlimit_resource(name: &str) -> Option<i32> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as i32)
}

/// A capability this kernel or crate does not know is skipped with a
/// warning, as runc does; the list is sorted, so plans compare equal.
fn cap_list(
    list: Option<&oci_spec::runtime::Capabilities>,
    warnings: &mut Vec<String>,
) -> Vec<Capability> {
    let mut out = Vec::new();
    for c in list.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match Capability::from_str(&name) {
            Ok(cap) if !out.contains(&cap) => out.push(cap),
            Ok(_) => {}
            Err(_) => warnings.push(format!("unknown capability {name:?} ignored")),
        }
    }
    out.sort_by_key(|c| c.index());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: &str) -> Process {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rlimits_are_resolved_and_bad_ones_refused() {
        let p = process(
            r#"{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":20}]}"#,
        );
        let plan = ProcessPlan::new(&p).unwrap();
        assert_eq!(plan.rlimits[0].resource, libc::RLIMIT_NOFILE as i32);
        assert_eq!(rlimit_resource("RLIMIT_BOGUS"), None);
        let p = process(
            r#"{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"rlimits":[{"type":"RLIMIT_NOFILE","soft":30,"hard":20}]}"#,
        );
        let e = ProcessPlan::new(&p).unwrap_err().to_string();
        assert!(e.contains("above the hard limit"), "{e}");
    }

    #[test]
    fn capabilities_are_sorted_and_deduplicated() {
        let p = process(
            r#"{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_KILL","CAP_CHOWN","CAP_KILL"]}}"#,
        );
        let plan = ProcessPlan::new(&p).unwrap();
        assert_eq!(
            plan.caps.bounding,
            vec![Capability::CAP_CHOWN, Capability::CAP_KILL]
        );
        assert!(plan.caps.effective.is_empty());
    }
}
