//! The syscalls behind `plan::sched`: sched_setattr, ioprio_set,
//! set_mempolicy and sched_setaffinity, each error naming its spec field.

use crate::error::{Error, Result};
use crate::plan::sched::{BitList, MemPolicyPlan, SchedPlan};
use crate::plan::ProcessPlan;

/// `struct sched_attr`, SCHED_ATTR_SIZE_VER1 (with the utilization clamps,
/// which the spec gives no values for: zero, as runc passes).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// Scheduler, I/O priority and memory policy of the calling process, while
/// it still has the capabilities they may need (CAP_SYS_NICE,
/// CAP_SYS_ADMIN for the realtime I/O class).
pub fn apply(plan: &ProcessPlan) -> Result<()> {
    if let Some(s) = &plan.scheduler {
        set_scheduler(s)?;
    }
    if let Some(prio) = plan.io_priority {
        set_io_priority(prio)?;
    }
    if let Some(m) = &plan.memory_policy {
        set_memory_policy(m)?;
    }
    Ok(())
}

fn set_io_priority(prio: u16) -> Result<()> {
    // SAFETY: ioprio_set on ourselves with a plain integer value.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio as i32) };
    if rc == 0 {
        return Ok(());
    }
    let e = nix::Error::last();
    let hint = if e == nix::Error::EPERM {
        " (IOPRIO_CLASS_RT needs CAP_SYS_ADMIN or CAP_SYS_NICE)"
    } else {
        ""
    };
    let class = match prio >> 13 {
        1 => "IOPRIO_CLASS_RT",
        2 => "IOPRIO_CLASS_BE",
        _ => "IOPRIO_CLASS_IDLE",
    };
    let level = prio & 7;
    Err(Error::sys(
        format!("process.ioPriority (class {class}, level {level}){hint}"),
        e,
    ))
}

fn set_scheduler(s: &SchedPlan) -> Result<()> {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: s.policy,
        flags: s.flags,
        nice: s.nice,
        priority: s.priority,
        runtime: s.runtime,
        deadline: s.deadline,
        period: s.period,
        util_min: 0,
        util_max: 0,
    };
    // SAFETY: a valid sched_attr whose size field is its own size.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc == 0 {
        return Ok(());
    }
    let e = nix::Error::last();
    let hint = match e {
        nix::Error::EPERM if s.policy == 6 => {
            " (SCHED_DEADLINE needs CAP_SYS_NICE and the process allowed on every CPU: no cpuset limit)"
        }
        nix::Error::EPERM if matches!(s.policy as i32, libc::SCHED_FIFO | libc::SCHED_RR) => {
            " (a realtime policy needs CAP_SYS_NICE and, under cgroup v1 realtime group scheduling, cpu time for it: linux.resources.cpu.realtimeRuntime)"
        }
        nix::Error::EPERM => " (a lower nice needs CAP_SYS_NICE)",
        nix::Error::EBUSY => " (the kernel cannot admit this deadline bandwidth)",
        _ => "",
    };
    Err(Error::sys(
        format!(
            "process.scheduler (policy {}, nice {}, priority {}){hint}",
            s.name, s.nice, s.priority
        ),
        e,
    ))
}

fn set_memory_policy(m: &MemPolicyPlan) -> Result<()> {
    let (ptr, maxnode) = match &m.nodes {
        // The kernel reads maxnode - 1 bits.
        Some(n) => (n.mask.as_ptr(), n.mask.len() * 64 + 1),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `ptr` holds (maxnode - 1) / 64 words, or is null with maxnode 0.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, m.mode, ptr, maxnode) };
    if rc == 0 {
        return Ok(());
    }
    let e = nix::Error::last();
    let nodes = m.nodes.as_ref().map_or("", |n| n.text.as_str());
    let hint = if e == nix::Error::EINVAL {
        " (nodes offline or outside the cpuset's mems, see /sys/devices/system/node/online; or flags this mode or kernel does not take)"
    } else {
        ""
    };
    Err(Error::sys(
        format!(
            "linux.memoryPolicy (mode {}, nodes {nodes:?}){hint}",
            m.name
        ),
        e,
    ))
}

/// sched_setaffinity of `pid` (0: the caller); `field` names the spec field.
pub fn set_affinity(pid: i32, cpus: &BitList, field: &str) -> Result<()> {
    // SAFETY: the mask's own length in bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            cpus.mask.len() * 8,
            cpus.mask.as_ptr(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = nix::Error::last();
    let hint = if e == nix::Error::EINVAL {
        " (no CPU of the list is online and in the container's cpuset)"
    } else {
        ""
    };
    Err(Error::sys(format!("{field} {:?}{hint}", cpus.text), e))
}

/// The final CPU affinity, just before execve. With an initial set and no
/// final, every CPU: the kernel narrows that to the cgroup's cpuset, which
/// is what the spec asks for then.
pub fn apply_final_affinity(plan: &ProcessPlan) -> Result<()> {
    let affinity = &plan.cpu_affinity;
    match (&affinity.last, &affinity.initial) {
        (Some(cpus), _) => set_affinity(0, cpus, "process.execCPUAffinity.final"),
        (None, Some(_)) => {
            let all = BitList {
                text: "all".into(),
                mask: vec![u64::MAX; 128],
            };
            set_affinity(
                0,
                &all,
                "resetting the CPU affinity after process.execCPUAffinity.initial",
            )
        }
        (None, None) => Ok(()),
    }
}
