//! runtime-spec 1.3's process attributes: `process.scheduler`,
//! `process.ioPriority`, `process.execCPUAffinity` and
//! `linux.memoryPolicy`, observed from inside the container
//! (/proc/self/stat, /proc/self/status, /proc/self/numa_maps, `ionice`),
//! and bad values refused by `create` with the field named and no state
//! left behind.

use crate::harness::{self, Bundle, TestResult, Why};
use serde_json::{json, Value};
use std::process::{Output, Stdio};

/// Neither reference runtime has these fields: runc 1.1.5 and crun 1.8.1
/// both ignore them silently (tried: every test here fails under crun).
fn new_in_1_3(what: &str) -> TestResult {
    harness::can_run()?;
    harness::vessel_only(&format!("runc 1.1.5 and crun 1.8.1 lack {what}"))
}

/// /proc/PID/stat fields by their proc(5) number (1-based), counted after
/// the command name, which may hold spaces.
fn stat_field(stat: &str, n: usize) -> i64 {
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    rest.split_whitespace().nth(n - 3).unwrap().parse().unwrap()
}

const STAT_NICE: usize = 19;
const STAT_RT_PRIORITY: usize = 40;
const STAT_POLICY: usize = 41;

/// `exec --process FILE ID` of PROCESS (a process object).
fn exec_process(b: &Bundle, id: &str, process: Value) -> Output {
    let file = b.path().join(format!("{}.json", harness::unique("proc")));
    std::fs::write(&file, process.to_string()).unwrap();
    b.cmd()
        .args(["exec", "--process", file.to_str().unwrap(), id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn process_json(args: &[&str], extra: Value) -> Value {
    let mut p = json!({"cwd": "/", "args": args, "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin:/sbin:/usr/bin"]});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

/// `create` of B fails naming FIELD, and leaves no container behind.
fn refused_naming(b: &Bundle, prefix: &str, field: &str) {
    let id = harness::unique(prefix);
    let out = b.create_detached(&id);
    let err = harness::stderr_of(&out);
    assert!(!out.status.success(), "create with a bad {field} succeeded");
    assert!(err.contains(field), "the error names {field}: {err}");
    assert!(b.state(&id).is_none(), "no state is left for {id}");
}

fn scheduler_batch_and_nice_reach_init_and_exec() -> TestResult {
    new_in_1_3("process.scheduler")?;
    let mut b = Bundle::new(&["cat", "/proc/self/stat"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    let stat = b.run_ok(&harness::unique("sched-batch"));
    assert_eq!(stat_field(&stat, STAT_POLICY), libc::SCHED_BATCH as i64);
    assert_eq!(stat_field(&stat, STAT_NICE), 7);
    // `exec` without --process takes the container's process, scheduler too.
    b.config["process"]["args"] = json!(["sleep", "100"]);
    let id = harness::unique("sched-exec");
    b.start_detached(&id);
    let out = b.rt(&["exec", &id, "cat", "/proc/self/stat"]);
    let stat = harness::stdout_ok(&out);
    assert_eq!(stat_field(&stat, STAT_POLICY), libc::SCHED_BATCH as i64);
    assert_eq!(stat_field(&stat, STAT_NICE), 7);
    Ok(())
}

fn scheduler_fifo_priority_with_realtime_runtime() -> TestResult {
    new_in_1_3("process.scheduler")?;
    let mut b = Bundle::new(&["cat", "/proc/self/stat"]);
    b.use_test_cgroup();
    // cgroup v1 with RT group scheduling: a realtime task needs runtime.
    b.config["linux"]["resources"]["cpu"] =
        json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000});
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10});
    let stat = b.run_ok(&harness::unique("sched-fifo"));
    assert_eq!(stat_field(&stat, STAT_POLICY), libc::SCHED_FIFO as i64);
    assert_eq!(stat_field(&stat, STAT_RT_PRIORITY), 10);
    Ok(())
}

fn scheduler_deadline_from_exec_process_json() -> TestResult {
    new_in_1_3("process.scheduler")?;
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique("sched-dl");
    b.start_detached(&id);
    let sched = json!({"scheduler": {"policy": "SCHED_DEADLINE",
        "flags": ["SCHED_FLAG_RESET_ON_FORK"],
        "runtime": 42000, "deadline": 100000, "period": 1000000}});
    let out = exec_process(&b, &id, process_json(&["cat", "/proc/self/stat"], sched));
    let stat = harness::stdout_ok(&out);
    assert_eq!(stat_field(&stat, STAT_POLICY), 6, "SCHED_DEADLINE: {stat}");
    Ok(())
}

fn bad_scheduler_is_refused_naming_the_field() -> TestResult {
    new_in_1_3("process.scheduler")?;
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "priority": 5});
    refused_naming(&b, "sched-bad", "process.scheduler.priority");
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 40});
    refused_naming(&b, "sched-bad", "process.scheduler.nice");
    b.config["process"]["scheduler"] =
        json!({"policy": "SCHED_DEADLINE", "runtime": 9, "deadline": 5});
    refused_naming(&b, "sched-bad", "process.scheduler");
    Ok(())
}

fn io_priority_is_applied() -> TestResult {
    new_in_1_3("process.ioPriority")?;
    let mut b = Bundle::new(&["sh", "-c", "ionice -p $$"]);
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let out = b.run_ok(&harness::unique("ioprio-be"));
    assert_eq!(out.trim(), "best-effort: prio 6");
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    let out = b.run_ok(&harness::unique("ioprio-idle"));
    assert!(out.starts_with("idle"), "{out}");
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9});
    refused_naming(&b, "ioprio-bad", "process.ioPriority.priority");
    Ok(())
}

fn cpus_allowed(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in status")
        .trim()
        .to_string()
}

/// Two online CPUs, as affinity tests need.
fn needs_two_cpus() -> TestResult {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    harness::skip_unless(
        online.trim() != "0" && !online.trim().is_empty(),
        Why::HostFeature,
        "fewer than two online CPUs",
    )
}

fn exec_cpu_affinity_is_for_exec_only() -> TestResult {
    new_in_1_3("process.execCPUAffinity")?;
    needs_two_cpus()?;
    let mut b = Bundle::new(&["sleep", "100"]);
    b.config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"});
    let id = harness::unique("affinity");
    let pid = b.start_detached(&id);
    // Not the init process (the spec: "not applicable to the container's init").
    let init = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(cpus_allowed(&init), cpus_allowed(&host));
    // `exec` with the container's process: its final list.
    let out = b.rt(&["exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(cpus_allowed(&harness::stdout_ok(&out)), "1");
    // A process.json with its own lists.
    let own = json!({"execCPUAffinity": {"initial": "1", "final": "0"}});
    let out = exec_process(&b, &id, process_json(&["cat", "/proc/self/status"], own));
    assert_eq!(cpus_allowed(&harness::stdout_ok(&out)), "0");
    // Initial alone: back to every CPU of the cgroup before execve.
    let initial = json!({"execCPUAffinity": {"initial": "1"}});
    let out = exec_process(
        &b,
        &id,
        process_json(&["cat", "/proc/self/status"], initial),
    );
    assert_eq!(cpus_allowed(&harness::stdout_ok(&out)), cpus_allowed(&host));
    // A CPU that is not online: exec fails naming the field.
    for field in ["initial", "final"] {
        let offline = json!({"execCPUAffinity": {field: "4000"}});
        let out = exec_process(&b, &id, process_json(&["true"], offline));
        assert!(
            !out.status.success(),
            "exec with {field} CPU 4000 succeeded"
        );
        let err = harness::stderr_of(&out);
        assert!(
            err.contains(&format!("process.execCPUAffinity.{field}")),
            "{err}"
        );
    }
    Ok(())
}

fn bad_cpu_list_fails_create() -> TestResult {
    new_in_1_3("process.execCPUAffinity")?;
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["execCPUAffinity"] = json!({"final": "3-1"});
    refused_naming(&b, "affinity-bad", "process.execCPUAffinity.final");
    b.config["process"]["execCPUAffinity"] = json!({"initial": "0,x"});
    refused_naming(&b, "affinity-bad", "execCPUAffinity");
    Ok(())
}

/// Every mapping of numa_maps text has POLICY ("bind:0").
fn all_mappings_have(maps: &str, policy: &str) -> bool {
    !maps.is_empty()
        && maps
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some(policy))
}

fn needs_numa_maps() -> TestResult {
    harness::skip_unless(
        std::path::Path::new("/proc/self/numa_maps").exists(),
        Why::HostFeature,
        "no /proc/self/numa_maps (a kernel without CONFIG_NUMA)",
    )
}

fn memory_policy_bind_and_interleave_on_node_0() -> TestResult {
    new_in_1_3("linux.memoryPolicy")?;
    needs_numa_maps()?;
    let mut b = Bundle::new(&["cat", "/proc/self/numa_maps"]);
    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    let maps = b.run_ok(&harness::unique("mempol-bind"));
    assert!(all_mappings_have(&maps, "bind:0"), "{maps}");
    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    let maps = b.run_ok(&harness::unique("mempol-il"));
    assert!(all_mappings_have(&maps, "interleave:0"), "{maps}");
    // `exec`'d processes get the container's policy as well.
    b.config["process"]["args"] = json!(["sleep", "100"]);
    let id = harness::unique("mempol-exec");
    b.start_detached(&id);
    let maps = harness::stdout_ok(&b.rt(&["exec", &id, "cat", "/proc/self/numa_maps"]));
    assert!(all_mappings_have(&maps, "interleave:0"), "{maps}");
    Ok(())
}

fn bad_memory_policy_fails_create() -> TestResult {
    new_in_1_3("linux.memoryPolicy")?;
    let mut b = Bundle::new(&["true"]);
    // A node past the last online one (this host's are in node/online).
    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "1000"});
    refused_naming(&b, "mempol-bad", "linux.memoryPolicy");
    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND"});
    refused_naming(&b, "mempol-bad", "linux.memoryPolicy");
    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_LOCAL", "nodes": "0"});
    refused_naming(&b, "mempol-bad", "linux.memoryPolicy.nodes");
    Ok(())
}

harness::tests![
    scheduler_batch_and_nice_reach_init_and_exec,
    scheduler_fifo_priority_with_realtime_runtime,
    scheduler_deadline_from_exec_process_json,
    bad_scheduler_is_refused_naming_the_field,
    io_priority_is_applied,
    exec_cpu_affinity_is_for_exec_only,
    bad_cpu_list_fails_create,
    memory_policy_bind_and_interleave_on_node_0,
    bad_memory_policy_fails_create,
];
