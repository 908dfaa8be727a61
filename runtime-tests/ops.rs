//! pause/resume, ps and kill --all on a running container.

use crate::harness::{self, Bundle, TestResult, Why};
use std::time::Duration;

fn ticker() -> (Bundle, String, i32) {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.02; done",
    ]);
    let id = harness::unique("ops");
    let pid = b.start_detached(&id);
    (b, id, pid)
}

fn tick(b: &Bundle) -> u64 {
    std::fs::read_to_string(b.rootfs().join("tmp/tick"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

fn pause_freezes_and_resume_thaws() -> TestResult {
    harness::can_run()?;
    let (b, id, _) = ticker();
    assert!(harness::wait_for(5.0, || tick(&b) > 0));
    harness::stdout_ok(&b.rt(&["pause", &id]));
    assert_eq!(b.status(&id).as_deref(), Some("paused"));
    let frozen_at = tick(&b);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        tick(&b),
        frozen_at,
        "the container kept running while paused"
    );
    // Pausing twice, or deleting without --force, is refused.
    assert!(!b.rt(&["pause", &id]).status.success());
    assert!(!b.rt(&["delete", &id]).status.success());
    harness::stdout_ok(&b.rt(&["resume", &id]));
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    assert!(
        harness::wait_for(5.0, || tick(&b) > frozen_at),
        "no progress after resume"
    );
    assert!(!b.rt(&["resume", &id]).status.success());
    Ok(())
}

fn paused_container_can_be_force_deleted() -> TestResult {
    harness::can_run()?;
    let (b, id, pid) = ticker();
    harness::stdout_ok(&b.rt(&["pause", &id]));
    harness::stdout_ok(&b.rt(&["delete", "--force", &id]));
    assert!(harness::wait_for(5.0, || !harness::pid_alive(pid)));
    assert!(b.state(&id).is_none());
    Ok(())
}

fn ps_json_lists_every_host_pid_of_the_container() -> TestResult {
    harness::can_run()?;
    let (b, id, pid) = ticker();
    let out = b
        .cmd()
        .args(["exec", "-d", &id, "sleep", "30"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let pids = || -> Vec<i64> {
        let out = harness::stdout_ok(&b.rt(&["ps", "--format", "json", &id]));
        serde_json::from_str(&out).expect("a JSON array")
    };
    assert!(
        harness::wait_for(5.0, || pids().len() >= 3),
        "init, its sleep, and the exec: {:?}",
        pids()
    );
    assert!(pids().contains(&(pid as i64)));
    let table = harness::stdout_ok(&b.rt(&["ps", &id]));
    assert!(table.lines().next().unwrap().contains("PID"), "{table}");
    assert!(table.lines().any(|l| l.contains("sleep 30")), "{table}");
    assert!(
        !table.contains("cargo"),
        "only the container's processes: {table}"
    );
    Ok(())
}

fn kill_all_signals_every_process() -> TestResult {
    harness::can_run()?;
    let (b, id, pid) = ticker();
    let out = b
        .cmd()
        .args(["exec", "-d", &id, "sleep", "30"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    harness::stdout_ok(&b.rt(&["kill", "--all", &id, "KILL"]));
    assert!(harness::wait_for(5.0, || !harness::pid_alive(pid)));
    assert!(b.wait_status(&id, "stopped", 5));
    Ok(())
}

fn memory_limit(cg: &str) -> Option<String> {
    let dir = harness::cgroup_dirs(cg)
        .into_iter()
        .find(|d| d.join("memory.limit_in_bytes").exists() || d.join("memory.max").exists())?;
    std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.max")))
        .ok()
        .map(|s| s.trim().to_string())
}

fn resources_at_create_and_update_with_zeros_as_unset() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["sleep", "100"]);
    b.config["linux"]["resources"]["memory"] = serde_json::json!({"limit": 67108864});
    b.config["linux"]["resources"]["pids"] = serde_json::json!({"limit": 50});
    let cg = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_string();
    let id = harness::unique("update");
    b.start_detached(&id);
    assert_eq!(memory_limit(&cg).as_deref(), Some("67108864"));
    harness::stdout_ok(&b.rt(&["update", "--memory", "128m", "--pids-limit", "60", &id]));
    assert_eq!(memory_limit(&cg).as_deref(), Some("134217728"));
    // Docker's second update: zeros for everything it does not change.
    let file = b.path().join("res.json");
    std::fs::write(&file, r#"{"memory":{"limit":0,"reservation":0,"swap":0},"cpu":{"shares":0,"quota":0,"period":0,"cpus":"","mems":""},"pids":{"limit":0},"blockIO":{"weight":0}}"#).unwrap();
    harness::stdout_ok(&b.rt(&["update", "--resources", file.to_str().unwrap(), &id]));
    assert_eq!(
        memory_limit(&cg).as_deref(),
        Some("134217728"),
        "a zero must not reset the limit"
    );
    let pids_dir = harness::cgroup_dirs(&cg)
        .into_iter()
        .find(|d| d.join("pids.max").exists())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(pids_dir.join("pids.max"))
            .unwrap()
            .trim(),
        "60"
    );
    // Bad input: a clear error, container untouched.
    assert!(!b.rt(&["update", "--memory", "lots", &id]).status.success());
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    Ok(())
}

fn events_stats_reports_the_containers_pids_and_memory() -> TestResult {
    harness::can_run()?;
    let (b, id, _) = ticker();
    let out = harness::stdout_ok(&b.rt(&["events", "--stats", &id]));
    let ev: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON event");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], serde_json::json!(id));
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    Ok(())
}

/// Docker's `update --memory 64m --memory-swap 128m` on a container with no
/// limit yet: the limit must go first (memsw may never be below it).
fn update_memory_and_swap_from_unlimited() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let b = Bundle::new(&["sleep", "100"]);
    let cg = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_string();
    let id = harness::unique("update-swap");
    b.start_detached(&id);
    let Some(dir) = harness::cgroup_dirs(&cg)
        .into_iter()
        .find(|d| d.join("memory.memsw.limit_in_bytes").exists())
    else {
        return harness::skip(
            Why::HostFeature,
            "no swap accounting (memory.memsw) on this host",
        );
    };
    let file = b.path().join("res.json");
    std::fs::write(&file, r#"{"memory":{"limit":67108864,"reservation":0,"swap":134217728,"kernel":0},"cpu":{"shares":0,"quota":0,"period":0},"blockIO":{"weight":0}}"#).unwrap();
    harness::stdout_ok(&b.rt(&["update", "--resources", file.to_str().unwrap(), &id]));
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory.limit_in_bytes"), "67108864");
    assert_eq!(read("memory.memsw.limit_in_bytes"), "134217728");
    // And growing again: memsw first this time.
    harness::stdout_ok(&b.rt(&["update", "--memory", "256m", "--memory-swap", "512m", &id]));
    assert_eq!(read("memory.limit_in_bytes"), "268435456");
    assert_eq!(read("memory.memsw.limit_in_bytes"), "536870912");
    Ok(())
}

fn update_with_unknown_field_or_negative_size_changes_nothing() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("the checks of update --resources are vessel's")?;
    let mut b = Bundle::new(&["sleep", "100"]);
    b.config["linux"]["resources"]["memory"] = serde_json::json!({"limit": 67108864});
    let cg = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_string();
    let id = harness::unique("update-bad");
    b.start_detached(&id);
    let file = b.path().join("bad.json");
    std::fs::write(&file, r#"{"memroy":{"limit":1}}"#).unwrap();
    let out = b.rt(&["update", "--resources", file.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memroy"));
    assert_eq!(
        b.rt(&["update", "--memory", "-5", &id]).status.code(),
        Some(1)
    );
    assert_eq!(memory_limit(&cg).as_deref(), Some("67108864"));
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    Ok(())
}

harness::tests![
    pause_freezes_and_resume_thaws,
    paused_container_can_be_force_deleted,
    ps_json_lists_every_host_pid_of_the_container,
    kill_all_signals_every_process,
    resources_at_create_and_update_with_zeros_as_unset,
    events_stats_reports_the_containers_pids_and_memory,
    update_memory_and_swap_from_unlimited,
    update_with_unknown_field_or_negative_size_changes_nothing,
];
