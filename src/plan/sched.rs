//! The process's scheduling attributes, checked and turned into syscall
//! arguments: `process.scheduler` (sched_setattr), `process.ioPriority`
//! (ioprio_set), `process.execCPUAffinity` (sched_setaffinity) and
//! `linux.memoryPolicy` (set_mempolicy). Pure: the init process and `exec`
//! only make the calls.

use crate::error::{Error, Result};
use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process, Scheduler,
};

/// `struct sched_attr` fields (sched_setattr(2)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedPlan {
    /// The policy's name, for errors.
    pub name: String,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// A CPU (or NUMA node) list: the text as given and its bitmask words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitList {
    pub text: String,
    pub mask: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AffinityPlan {
    /// Set by `exec` on the new process before it joins the cgroup.
    pub initial: Option<BitList>,
    /// Set by the process itself just before execve.
    pub last: Option<BitList>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemPolicyPlan {
    /// The mode's name, for errors.
    pub name: String,
    /// The mode ORed with its MPOL_F_* flags, set_mempolicy's first argument.
    pub mode: i32,
    pub nodes: Option<BitList>,
}

// Linux's uapi numbers (sched.h, ioprio.h, mempolicy.h).
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const SCHED_FLAG_RECLAIM: u64 = 0x02;
const SCHED_FLAG_DL_OVERRUN: u64 = 0x04;
const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
const SCHED_FLAG_KEEP_PARAMS: u64 = 0x10;
const SCHED_FLAG_UTIL_CLAMP_MIN: u64 = 0x20;
const SCHED_FLAG_UTIL_CLAMP_MAX: u64 = 0x40;
const IOPRIO_CLASS_SHIFT: u16 = 13;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
/// Above any CPU or node number a kernel supports (NR_CPUS is at most 8192).
const MAX_BIT: usize = 8191;

pub fn scheduler(process: &Process) -> Result<Option<SchedPlan>> {
    let Some(s) = process.scheduler() else {
        return Ok(None);
    };
    let name = serde_name(&s.policy());
    let (policy, realtime) = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => (libc::SCHED_OTHER, false),
        LinuxSchedulerPolicy::SchedFifo => (libc::SCHED_FIFO, true),
        LinuxSchedulerPolicy::SchedRr => (libc::SCHED_RR, true),
        LinuxSchedulerPolicy::SchedBatch => (libc::SCHED_BATCH, false),
        LinuxSchedulerPolicy::SchedIdle => (libc::SCHED_IDLE, false),
        LinuxSchedulerPolicy::SchedDeadline => (6, false),
        LinuxSchedulerPolicy::SchedIso => {
            return Err(Error::invalid(
                "process.scheduler.policy SCHED_ISO: Linux has no such policy",
            ))
        }
    };
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(Error::invalid(format!(
            "process.scheduler.nice {nice}: must be between -20 and 19"
        )));
    }
    let priority = s.priority().unwrap_or(0);
    if realtime && !(1..=99).contains(&priority) {
        return Err(Error::invalid(format!(
            "process.scheduler.priority {priority}: {name} needs a priority between 1 and 99"
        )));
    }
    if !realtime && priority != 0 {
        return Err(Error::invalid(format!(
            "process.scheduler.priority {priority}: only SCHED_FIFO and SCHED_RR take a priority, not {name}"
        )));
    }
    check_deadline(s, policy == 6, &name)?;
    Ok(Some(SchedPlan {
        name,
        policy: policy as u32,
        flags: s
            .flags()
            .iter()
            .flatten()
            .map(sched_flag)
            .fold(0, |a, f| a | f),
        nice,
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    }))
}

/// runtime <= deadline <= period, as the kernel admits them, said plainly.
fn check_deadline(s: &Scheduler, is_deadline: bool, name: &str) -> Result<()> {
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if !is_deadline {
        if runtime != 0 || deadline != 0 || period != 0 {
            return Err(Error::invalid(format!(
                "process.scheduler: runtime, deadline and period are for SCHED_DEADLINE only, not {name}"
            )));
        }
        return Ok(());
    }
    if runtime == 0 || deadline == 0 {
        return Err(Error::invalid(
            "process.scheduler: SCHED_DEADLINE needs a runtime and a deadline (nanoseconds)",
        ));
    }
    if runtime > deadline || (period != 0 && deadline > period) {
        return Err(Error::invalid(format!(
            "process.scheduler: SCHED_DEADLINE needs runtime <= deadline <= period (got {runtime}, {deadline}, {period})"
        )));
    }
    Ok(())
}

fn sched_flag(f: &LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => SCHED_FLAG_RESET_ON_FORK,
        LinuxSchedulerFlag::SchedFlagReclaim => SCHED_FLAG_RECLAIM,
        LinuxSchedulerFlag::SchedFlagDLOverrun => SCHED_FLAG_DL_OVERRUN,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => SCHED_FLAG_KEEP_POLICY,
        LinuxSchedulerFlag::SchedFlagKeepParams => SCHED_FLAG_KEEP_PARAMS,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => SCHED_FLAG_UTIL_CLAMP_MIN,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => SCHED_FLAG_UTIL_CLAMP_MAX,
    }
}

/// The ioprio value: class in the top bits, the level (0..7) below.
pub fn io_priority(process: &Process) -> Result<Option<u16>> {
    let Some(p) = process.io_priority() else {
        return Ok(None);
    };
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1u16,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::invalid(format!(
            "process.ioPriority.priority {}: must be between 0 and 7",
            p.priority()
        )));
    }
    Ok(Some(class << IOPRIO_CLASS_SHIFT | p.priority() as u16))
}

pub fn exec_cpu_affinity(process: &Process) -> Result<AffinityPlan> {
    let Some(a) = process.exec_cpu_affinity() else {
        return Ok(AffinityPlan::default());
    };
    let list = |field: &str, text: &Option<String>| {
        text.as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| bit_list(t, &format!("process.execCPUAffinity.{field}"), "CPU"))
            .transpose()
    };
    Ok(AffinityPlan {
        initial: list("initial", a.initial())?,
        last: list("final", a.cpu_affinity_final())?,
    })
}

pub fn memory_policy(policy: Option<&LinuxMemoryPolicy>) -> Result<Option<MemPolicyPlan>> {
    let Some(p) = policy else {
        return Ok(None);
    };
    let name = serde_name(&p.mode());
    let nodes = p
        .nodes()
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| bit_list(t, "linux.memoryPolicy.nodes", "node"))
        .transpose()?;
    use MemoryPolicyModeType as M;
    let (mode, needs_nodes) = match p.mode() {
        M::MpolDefault => (0, Some(false)),
        M::MpolPreferred => (1, None),
        M::MpolBind => (2, Some(true)),
        M::MpolInterleave => (3, Some(true)),
        M::MpolLocal => (4, Some(false)),
        M::MpolPreferredMany => (5, Some(true)),
        M::MpolWeightedInterleave => (6, Some(true)),
    };
    match (needs_nodes, &nodes) {
        (Some(true), None) => {
            return Err(Error::invalid(format!(
                "linux.memoryPolicy: mode {name} needs nodes"
            )))
        }
        (Some(false), Some(n)) => {
            return Err(Error::invalid(format!(
                "linux.memoryPolicy.nodes {:?}: mode {name} takes no nodes",
                n.text
            )))
        }
        _ => {}
    }
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
            MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
            MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
        };
    }
    if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
        return Err(Error::invalid(
            "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        ));
    }
    if flags != 0 && needs_nodes == Some(false) {
        return Err(Error::invalid(format!(
            "linux.memoryPolicy.flags: mode {name} takes no flags"
        )));
    }
    Ok(Some(MemPolicyPlan {
        name,
        mode: mode | flags,
        nodes,
    }))
}

/// Parses "0-3,7" into a bitmask; `what` names the field in errors.
pub fn bit_list(text: &str, field: &str, what: &str) -> Result<BitList> {
    let bad = |why: String| Error::invalid(format!("{field} {text:?}: {why}"));
    let number = |s: &str| -> Result<usize> {
        let n: usize = s
            .trim()
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a {what} number")))?;
        if n > MAX_BIT {
            return Err(bad(format!("{what} {n} is above {MAX_BIT}")));
        }
        Ok(n)
    };
    let mut mask = Vec::new();
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if first > last {
            return Err(bad(format!("range {part:?} runs backwards")));
        }
        if mask.len() <= last / 64 {
            mask.resize(last / 64 + 1, 0u64);
        }
        for bit in first..=last {
            mask[bit / 64] |= 1 << (bit % 64);
        }
    }
    Ok(BitList {
        text: text.to_string(),
        mask,
    })
}

/// The spec's name of an enum value ("SCHED_FIFO", "MPOL_BIND").
fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The spec's scheduler flag names that oci-spec 0.10 spells otherwise,
/// with its spelling.
const FLAG_SPELLINGS: [(&str, &str); 2] = [
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
];

/// Whether config text names a flag oci-spec would not parse.
pub fn has_spec_flag_names(text: &[u8]) -> bool {
    FLAG_SPELLINGS
        .iter()
        .any(|(spec, _)| text.windows(spec.len()).any(|w| w == spec.as_bytes()))
}

/// Accepts the spec's (and runc's) flag names in a process object's JSON
/// before oci-spec parses it.
pub fn accept_spec_flag_names(process: &mut serde_json::Value) {
    let flags = process.pointer_mut("/scheduler/flags");
    for f in flags.and_then(|f| f.as_array_mut()).into_iter().flatten() {
        if let Some((_, theirs)) = FLAG_SPELLINGS.iter().find(|(spec, _)| f == spec) {
            *f = (*theirs).into();
        }
    }
}

#[cfg(test)]
#[path = "sched_tests.rs"]
mod tests;
