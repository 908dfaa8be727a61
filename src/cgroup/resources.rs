//! `linux.resources` as cgroup file writes, for create and `update`, on v1
//! and v2. Zero means "not set" (runc's rule; Docker's update sends zeros
//! for what it does not change). Pure planning, then one write per file.

use crate::error::{Error, IoContext, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::path::PathBuf;

/// One cgroup file and the value to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: String,
    pub value: String,
}

fn w(file: &str, value: impl ToString) -> Write {
    Write {
        file: file.to_string(),
        value: value.to_string(),
    }
}

/// The writes for cgroup v1 controllers.
pub fn plan_v1(r: &LinuxResources) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        memory_v1(&mut out, m);
    }
    if let Some(c) = r.cpu() {
        cpu_v1(&mut out, c);
    }
    if let Some(p) = r.pids() {
        pids(&mut out, p.limit());
    }
    if let Some(b) = r.block_io() {
        blkio_v1(&mut out, b);
    }
    for h in r.hugepage_limits().iter().flatten() {
        out.push(w(
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            h.limit(),
        ));
    }
    rdma(&mut out, r);
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            out.push(w("net_cls.classid", id));
        }
        for p in n.priorities().iter().flatten() {
            out.push(w(
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            ));
        }
    }
    out
}

fn memory_v1(out: &mut Vec<Write>, m: &LinuxMemory) {
    let limit = m.limit().filter(|&l| l != 0);
    let swap = m.swap().filter(|&s| s != 0);
    // Both: limit first; `apply` swaps them when the current limit
    // would refuse the new memsw (memsw must stay >= the limit).
    if let Some(l) = limit {
        out.push(w("memory.limit_in_bytes", l));
    }
    if let Some(s) = swap {
        out.push(w("memory.memsw.limit_in_bytes", s));
    }
    if let Some(res) = m.reservation().filter(|&v| v != 0) {
        out.push(w("memory.soft_limit_in_bytes", res));
    }
    if let Some(sw) = m.swappiness().filter(|&v| v <= 100) {
        out.push(w("memory.swappiness", sw));
    }
    if m.disable_oom_killer() == Some(true) {
        out.push(w("memory.oom_control", 1));
    }
}

fn cpu_v1(out: &mut Vec<Write>, c: &LinuxCpu) {
    if let Some(v) = c.shares().filter(|&v| v != 0) {
        out.push(w("cpu.shares", v));
    }
    if let Some(v) = c.period().filter(|&v| v != 0) {
        out.push(w("cpu.cfs_period_us", v));
    }
    if let Some(v) = c.quota().filter(|&v| v != 0) {
        out.push(w("cpu.cfs_quota_us", v));
    }
    if let Some(v) = c.burst() {
        out.push(w("cpu.cfs_burst_us", v));
    }
    if let Some(v) = c.realtime_period().filter(|&v| v != 0) {
        out.push(w("cpu.rt_period_us", v));
    }
    if let Some(v) = c.realtime_runtime().filter(|&v| v != 0) {
        out.push(w("cpu.rt_runtime_us", v));
    }
    cpuset(out, c.cpus(), c.mems());
}

fn blkio_v1(out: &mut Vec<Write>, b: &LinuxBlockIo) {
    if let Some(v) = b.weight().filter(|&v| v != 0) {
        out.push(w("blkio.weight", v));
    }
    if let Some(v) = b.leaf_weight().filter(|&v| v != 0) {
        out.push(w("blkio.leaf_weight", v));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight() {
            out.push(w(
                "blkio.weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
        if let Some(v) = d.leaf_weight() {
            out.push(w(
                "blkio.leaf_weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
    }
    for (file, list) in [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ] {
        for d in list.iter().flatten() {
            out.push(w(file, format!("{}:{} {}", d.major(), d.minor(), d.rate())));
        }
    }
}

fn cpuset(out: &mut Vec<Write>, cpus: &Option<String>, mems: &Option<String>) {
    if let Some(v) = cpus.as_deref().filter(|v| !v.is_empty()) {
        out.push(w("cpuset.cpus", v));
    }
    if let Some(v) = mems.as_deref().filter(|v| !v.is_empty()) {
        out.push(w("cpuset.mems", v));
    }
}

/// `rdma.max` lines, the same on v1 and v2.
fn rdma(out: &mut Vec<Write>, r: &LinuxResources) {
    let mut devs: Vec<_> = r.rdma().iter().flatten().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, limits) in devs {
        let mut line = dev.clone();
        if let Some(h) = limits.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = limits.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line != *dev {
            out.push(w("rdma.max", line));
        }
    }
}

fn pids(out: &mut Vec<Write>, limit: i64) {
    match limit {
        0 => {}
        l if l < 0 => out.push(w("pids.max", "max")),
        l => out.push(w("pids.max", l)),
    }
}

/// "max" for -1 (unlimited), else the number.
fn max(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// The writes for cgroup v2, with runc's v1-to-v2 conversions.
pub fn plan_v2(r: &LinuxResources) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        memory_v2(&mut out, m);
    }
    if let Some(c) = r.cpu() {
        cpu_v2(&mut out, c);
    }
    if let Some(p) = r.pids() {
        pids(&mut out, p.limit());
    }
    if let Some(b) = r.block_io() {
        io_v2(&mut out, b);
    }
    for h in r.hugepage_limits().iter().flatten() {
        out.push(w(&format!("hugetlb.{}.max", h.page_size()), max(h.limit())));
    }
    rdma(&mut out, r);
    if r.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    }) {
        // runc ignores these on v2 too: there is no controller for them.
        crate::log::warn("linux.resources.network has no cgroup v2 equivalent: ignored");
    }
    for (k, v) in r.unified().iter().flatten() {
        out.push(w(k, v));
    }
    out
}

fn memory_v2(out: &mut Vec<Write>, m: &LinuxMemory) {
    let limit = m.limit().filter(|&l| l != 0);
    if let Some(l) = limit {
        out.push(w("memory.max", max(l)));
    }
    // v1's swap is memory+swap; v2's swap.max is swap alone.
    if let Some(s) = m.swap().filter(|&s| s != 0) {
        let v = match limit {
            _ if s < 0 => "max".to_string(),
            Some(l) if l > 0 => (s - l).max(0).to_string(),
            _ => s.to_string(),
        };
        out.push(w("memory.swap.max", v));
    }
    if let Some(res) = m.reservation().filter(|&v| v != 0) {
        out.push(w("memory.low", max(res)));
    }
}

fn cpu_v2(out: &mut Vec<Write>, c: &LinuxCpu) {
    if let Some(s) = c.shares().filter(|&v| v != 0) {
        let weight = 1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142;
        out.push(w("cpu.weight", weight));
    }
    let quota = c.quota().filter(|&v| v != 0);
    let period = c.period().filter(|&v| v != 0);
    if quota.is_some() || period.is_some() {
        let q = quota.map_or("max".to_string(), max);
        out.push(w("cpu.max", format!("{q} {}", period.unwrap_or(100_000))));
    }
    if let Some(v) = c.burst() {
        out.push(w("cpu.max.burst", v));
    }
    if let Some(idle) = c.idle() {
        out.push(w("cpu.idle", idle));
    }
    if c.realtime_period().is_some_and(|v| v != 0) || c.realtime_runtime().is_some_and(|v| v != 0) {
        crate::log::warn(
            "linux.resources.cpu.realtime*: cgroup v2 has no realtime controller: ignored",
        );
    }
    cpuset(out, c.cpus(), c.mems());
}

fn io_v2(out: &mut Vec<Write>, b: &LinuxBlockIo) {
    let to_v2 = |v: u16| 1 + (u32::from(v).clamp(10, 1000) - 10) * 9999 / 990;
    if let Some(v) = b.weight().filter(|&v| v != 0) {
        out.push(w("io.weight", format!("default {}", to_v2(v))));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight() {
            out.push(w(
                "io.weight",
                format!("{}:{} {}", d.major(), d.minor(), to_v2(v)),
            ));
        }
    }
    for (key, list) in [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ] {
        for d in list.iter().flatten() {
            out.push(w(
                "io.max",
                format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
            ));
        }
    }
}

/// v1 keeps memory.memsw.limit_in_bytes >= memory.limit_in_bytes at every
/// step: when the new memsw is above the current limit (growing), memsw
/// goes first; else the limit does (runc's rule).
fn order_memory_and_swap(locate: Locate, writes: &mut [Write]) {
    let pos = |f: &str| writes.iter().position(|x| x.file == f);
    let (Some(l), Some(s)) = (
        pos("memory.limit_in_bytes"),
        pos("memory.memsw.limit_in_bytes"),
    ) else {
        return;
    };
    let current: i64 = locate("memory.limit_in_bytes")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(i64::MAX);
    let new_swap: i64 = writes[s].value.parse().unwrap_or(-1);
    let swap_first = new_swap == -1 || current < new_swap;
    if swap_first != (s < l) {
        writes.swap(l, s);
    }
}

/// `memory.checkBeforeUpdate`: refuse a limit below what the container
/// already uses (the kernel would start reclaiming or OOM-killing).
pub fn check_before_update(locate: Locate, r: &LinuxResources) -> Result<()> {
    let Some(m) = r.memory() else {
        return Ok(());
    };
    let Some(limit) = m
        .limit()
        .filter(|&l| l > 0 && m.check_before_update() == Some(true))
    else {
        return Ok(());
    };
    let usage = ["memory.usage_in_bytes", "memory.current"]
        .iter()
        .find_map(|f| locate(f).and_then(|p| std::fs::read_to_string(p).ok()));
    if let Some(usage) = usage.and_then(|u| u.trim().parse::<i64>().ok()) {
        if usage > limit {
            return Err(Error::invalid(format!(
                "linux.resources.memory.limit {limit} is below the container's current usage {usage} (checkBeforeUpdate)"
            )));
        }
    }
    Ok(())
}

/// Values no cgroup version accepts, named by their spec field (-1 is
/// "unlimited"; other negatives are mistakes, whatever v2's "max" allows).
pub fn check(r: &LinuxResources) -> Result<()> {
    let bad = |field: &str, v: Option<i64>| match v {
        Some(v) if v < -1 => Err(Error::invalid(format!(
            "linux.resources.{field}: {v} is not valid (a size in bytes, or -1 for unlimited)"
        ))),
        _ => Ok(()),
    };
    if let Some(m) = r.memory() {
        bad("memory.limit", m.limit())?;
        bad("memory.reservation", m.reservation())?;
        bad("memory.swap", m.swap())?;
    }
    if let Some(c) = r.cpu() {
        bad("cpu.quota", c.quota())?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        if h.limit() < -1 {
            return Err(Error::invalid(format!(
                "linux.resources.hugepageLimits[{}].limit: {} is not valid",
                h.page_size(),
                h.limit()
            )));
        }
    }
    Ok(())
}

/// Applies `r` to a container's cgroup: v1 files on a v1 or hybrid host
/// (`v1`, from the recorded layout), else v2; each file is written where
/// `locate` finds it.
pub fn apply(r: &LinuxResources, v1: bool, locate: Locate) -> Result<()> {
    check(r)?;
    if v1 && r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::invalid(
            "linux.resources.unified needs a cgroup v2 host",
        ));
    }
    let mut writes = if v1 { plan_v1(r) } else { plan_v2(r) };
    if v1 {
        order_memory_and_swap(locate, &mut writes);
    }
    for write in writes {
        if write.file.contains('/') || write.file.contains("..") {
            return Err(Error::invalid(format!(
                "linux.resources: bad cgroup file name {:?}",
                write.file
            )));
        }
        let Some(path) = locate(&write.file) else {
            return Err(Error::invalid(format!(
                "linux.resources: {} is not available on this host (controller not mounted or not enabled)",
                write.file
            )));
        };
        std::fs::write(&path, &write.value)
            .ctx("writing", &path)
            .map_err(|e| {
                Error::invalid(format!(
                    "linux.resources: {} = {}: {e}",
                    write.file, write.value
                ))
            })?;
    }
    Ok(())
}

/// The path of a cgroup file in the container's cgroup, if it exists there
/// (`Manager::locate`).
pub type Locate<'a> = &'a dyn Fn(&str) -> Option<PathBuf>;

/// `locate` over plain directories: the first that has the file.
pub fn in_dirs(dirs: &[PathBuf], file: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(file)).find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn zeros_mean_unset_as_docker_sends_them() {
        let r = res(
            r#"{"memory":{"limit":0,"swap":0,"reservation":0},"cpu":{"shares":0,"quota":0,"period":0,"cpus":"","mems":""},"pids":{"limit":0},"blockIO":{"weight":0}}"#,
        );
        assert!(plan_v1(&r).is_empty());
        assert!(plan_v2(&r).is_empty());
    }

    #[test]
    fn v1_memory_order_keeps_memsw_above_the_limit() {
        let r = res(r#"{"memory":{"limit":104857600,"swap":209715200}}"#);
        let mut p = plan_v1(&r);
        // Growing from a 50 MB limit: memsw first.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("memory.limit_in_bytes"), "52428800").unwrap();
        let dirs = [tmp.path().to_path_buf()];
        order_memory_and_swap(&|f| in_dirs(&dirs, f), &mut p);
        assert_eq!(
            p,
            vec![
                w("memory.memsw.limit_in_bytes", 209715200),
                w("memory.limit_in_bytes", 104857600)
            ]
        );
        // From unlimited (a fresh container, as Docker's update finds it): the limit first.
        std::fs::write(
            tmp.path().join("memory.limit_in_bytes"),
            "9223372036854771712",
        )
        .unwrap();
        order_memory_and_swap(&|f| in_dirs(&dirs, f), &mut p);
        assert_eq!(
            p,
            vec![
                w("memory.limit_in_bytes", 104857600),
                w("memory.memsw.limit_in_bytes", 209715200)
            ]
        );
    }

    #[test]
    fn block_io_hugetlb_and_network_on_v1() {
        let r = res(
            r#"{"blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],"weightDevice":[{"major":8,"minor":0,"weight":500}]},
                       "hugepageLimits":[{"pageSize":"2MB","limit":4194304}],"network":{"classID":1048577,"priorities":[{"name":"eth0","priority":5}]}}"#,
        );
        let p = plan_v1(&r);
        assert!(p.contains(&w("blkio.throttle.read_bps_device", "8:0 1048576")));
        assert!(p.contains(&w("blkio.weight_device", "8:0 500")));
        assert!(p.contains(&w("hugetlb.2MB.limit_in_bytes", 4194304)));
        assert!(p.contains(&w("net_cls.classid", 1048577)));
        assert!(p.contains(&w("net_prio.ifpriomap", "eth0 5")));
        assert!(plan_v2(&r).contains(&w("io.max", "8:0 rbps=1048576")));
    }

    #[test]
    fn burst_and_rdma_on_both_versions() {
        let r = res(
            r#"{"cpu":{"burst":20000},"rdma":{"mlx5_1":{"hcaHandles":3},"mlx4_0":{"hcaHandles":2,"hcaObjects":2000}}}"#,
        );
        let v1 = plan_v1(&r);
        assert!(v1.contains(&w("cpu.cfs_burst_us", 20000)));
        assert_eq!(
            v1.iter()
                .filter(|x| x.file == "rdma.max")
                .cloned()
                .collect::<Vec<_>>(),
            vec![
                w("rdma.max", "mlx4_0 hca_handle=2 hca_object=2000"),
                w("rdma.max", "mlx5_1 hca_handle=3")
            ]
        );
        let v2 = plan_v2(&r);
        assert!(v2.contains(&w("cpu.max.burst", 20000)));
        assert!(v2.contains(&w("rdma.max", "mlx5_1 hca_handle=3")));
    }

    #[test]
    fn check_before_update_refuses_a_limit_below_usage() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("memory.current"), "50000000\n").unwrap();
        let dirs = [tmp.path().to_path_buf()];
        let locate = |f: &str| in_dirs(&dirs, f);
        let low = res(r#"{"memory":{"limit":10000000,"checkBeforeUpdate":true}}"#);
        let e = check_before_update(&locate, &low).unwrap_err().to_string();
        assert!(
            e.contains("checkBeforeUpdate") && e.contains("50000000"),
            "{e}"
        );
        let unchecked = res(r#"{"memory":{"limit":10000000}}"#);
        assert!(check_before_update(&locate, &unchecked).is_ok());
        let high = res(r#"{"memory":{"limit":100000000,"checkBeforeUpdate":true}}"#);
        assert!(check_before_update(&locate, &high).is_ok());
    }

    #[test]
    fn v2_conversions() {
        let r = res(
            r#"{"memory":{"limit":100,"swap":300},"cpu":{"shares":1024,"quota":50000,"period":100000},"pids":{"limit":-1},"blockIO":{"weight":500}}"#,
        );
        let p = plan_v2(&r);
        assert!(p.contains(&w("memory.max", 100)));
        assert!(p.contains(&w("memory.swap.max", 200)));
        assert!(p.contains(&w("cpu.weight", 39)));
        assert!(p.contains(&w("cpu.max", "50000 100000")));
        assert!(p.contains(&w("pids.max", "max")));
        assert!(p.contains(&w("io.weight", "default 4950")));
    }
}
