//! `linux.resources` on whatever cgroup layout the host has (v1, hybrid or
//! pure v2): each resource asserted from the cgroup files or from inside
//! the container. These are the tests `runtime-tests/vm/cgroup-layouts.sh`
//! runs inside the v2, v2+systemd and v1 VMs. Needs root.

use crate::harness::{self, isolated_bundle, unique, Bundle, TestResult, Why};
use serde_json::json;
use std::path::PathBuf;

/// The file of the container's cgroup `cg` named `v1` on v1 hierarchies or
/// `v2` on the unified one, whichever exists.
fn cg_file(cg: &str, v1: &str, v2: &str) -> Option<PathBuf> {
    harness::cgroup_dirs(cg)
        .into_iter()
        .find_map(|d| [v1, v2].iter().map(|f| d.join(f)).find(|p| p.exists()))
}

fn read(p: &PathBuf) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn pure_v2() -> bool {
    harness::cgroup_hierarchies()
        .iter()
        .all(|h| h.label.is_empty())
}

fn a_memory_hog_is_oom_killed_at_its_limit() -> TestResult {
    harness::can_run()?;
    // 100 MB into a shell variable, under a 32 MB limit with no swap.
    let (_cg, mut b, cg) = isolated_bundle(&[
        "sh",
        "-c",
        "a=$(dd if=/dev/zero bs=1M count=100 2>/dev/null | tr '\\0' x); echo survived",
    ]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    let id = unique("oom");
    b.create_ok(&id);
    let limit = cg_file(&cg, "memory.limit_in_bytes", "memory.max").expect("memory controller");
    assert_eq!(read(&limit), "33554432");
    let events = cg_file(&cg, "memory.oom_control", "memory.events").unwrap();
    harness::stdout_ok(&b.rt(&["start", &id]));
    // Generous: in the emulated single-vCPU VMs the hog needs close to a
    // minute to fill its 32 MB (about 55 s measured there).
    assert!(b.wait_status(&id, "stopped", 240), "the hog did not end");
    let text = std::fs::read_to_string(&events).unwrap();
    let kills: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        kills >= 1,
        "no OOM kill recorded in {}: {text}",
        events.display()
    );
    Ok(())
}

fn pids_max_refuses_the_next_fork() -> TestResult {
    harness::can_run()?;
    let (_cg, mut b, cg) = isolated_bundle(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 3 & done 2>&1; wait; true",
    ]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 4});
    let out = b.run(&unique("pids"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("can't fork"), "{text}");
    let _ = cg;
    Ok(())
}

fn cpu_quota_weight_and_burst_reach_the_cgroup() -> TestResult {
    harness::can_run()?;
    let (_cg, mut b, cg) = isolated_bundle(&["sleep", "30"]);
    b.config["linux"]["resources"]["cpu"] =
        json!({"quota": 50000, "period": 100000, "shares": 1024});
    let id = unique("cpu");
    b.create_ok(&id);
    if let Some(max) = cg_file(&cg, "cpu.cfs_quota_us", "cpu.max") {
        let v = read(&max);
        assert!(
            v == "50000" || v == "50000 100000",
            "{}: {v}",
            max.display()
        );
    } else {
        panic!("no cpu controller file for {cg}");
    }
    let weight = cg_file(&cg, "cpu.shares", "cpu.weight").unwrap();
    assert!(
        ["1024", "39"].contains(&read(&weight).as_str()),
        "{}",
        read(&weight)
    );
    // Burst needs kernel 5.14 (and runc 1.2: runc 1.1 ignores it).
    let burst = cg_file(&cg, "cpu.cfs_burst_us", "cpu.max.burst").filter(|_| harness::is_vessel());
    if let Some(burst) = burst {
        let file = b.path().join("burst.json");
        std::fs::write(&file, r#"{"cpu":{"burst":20000}}"#).unwrap();
        harness::stdout_ok(&b.rt(&["update", "--resources", file.to_str().unwrap(), &id]));
        assert_eq!(read(&burst), "20000");
    }
    Ok(())
}

fn update_changes_a_live_container_and_check_before_update_guards_it() -> TestResult {
    harness::can_run()?;
    let (_cg, mut b, cg) = isolated_bundle(&[
        "sh",
        "-c",
        "a=$(dd if=/dev/zero bs=1M count=24 2>/dev/null | tr '\\0' x); sleep 60",
    ]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    let id = unique("upd");
    b.start_detached(&id);
    let pids = cg_file(&cg, "pids.max", "pids.max").unwrap();
    assert_eq!(read(&pids), "20");
    harness::stdout_ok(&b.rt(&["update", "--pids-limit", "30", &id]));
    assert_eq!(read(&pids), "30");
    // Let the shell hold its 24 MB, then refuse a 4 MB limit.
    let usage = cg_file(&cg, "memory.usage_in_bytes", "memory.current").unwrap();
    assert!(harness::wait_for(20.0, || read(&usage)
        .parse::<u64>()
        .unwrap_or(0)
        > 16 << 20));
    let file = b.path().join("low.json");
    std::fs::write(
        &file,
        r#"{"memory":{"limit":4194304,"checkBeforeUpdate":true}}"#,
    )
    .unwrap();
    let out = b.rt(&["update", "--resources", file.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    if harness::is_vessel() {
        assert!(String::from_utf8_lossy(&out.stderr).contains("checkBeforeUpdate"));
    }
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    Ok(())
}

/// Major 42 is "demo/sample use": an allowed node fails with ENXIO, a
/// denied one with EPERM, on v1 (devices controller) and v2 (eBPF) alike.
fn device_bundle(script: &str) -> (harness::CgroupGuard, Bundle, String) {
    let (g, mut b, cg) = isolated_bundle(&["sh", "-c", script]);
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/allowed42", "type": "c", "major": 42, "minor": 1, "fileMode": 438},
        {"path": "/dev/denied42", "type": "c", "major": 42, "minor": 2, "fileMode": 438}
    ]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 42, "minor": 1, "access": "rw"}
    ]);
    (g, b, cg)
}

fn a_denied_device_fails_with_eperm_and_an_allowed_one_opens() -> TestResult {
    harness::can_run()?;
    let (_g, b, _) = device_bundle("cat /dev/allowed42 2>&1; cat /dev/denied42 2>&1; true");
    let out = b.run_ok(&unique("dev"));
    assert!(
        out.contains("allowed42': No such device or address"),
        "{out}"
    );
    assert!(out.contains("denied42': Operation not permitted"), "{out}");
    Ok(())
}

fn update_replaces_the_v2_device_filter() -> TestResult {
    harness::can_run()?;
    harness::skip_unless(
        pure_v2(),
        Why::CgroupLayout,
        "device rules change on update only on pure cgroup v2 (v1 keeps them, as runc)",
    )?;
    let (_g, b, _) = device_bundle("sleep 60");
    let id = unique("devupd");
    b.start_detached(&id);
    let probe = |b: &Bundle| {
        let out = b.rt(&[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /dev/allowed42 2>&1; cat /dev/denied42 2>&1; true",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(probe(&b).contains("denied42': Operation not permitted"));
    let file = b.path().join("dev.json");
    std::fs::write(
        &file,
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":42,"minor":2,"access":"rw"}]}"#,
    )
    .unwrap();
    harness::stdout_ok(&b.rt(&["update", "--resources", file.to_str().unwrap(), &id]));
    let out = probe(&b);
    assert!(out.contains("allowed42': Operation not permitted"), "{out}");
    assert!(
        out.contains("denied42': No such device or address"),
        "{out}"
    );
    Ok(())
}

fn bad_resources_fail_with_the_field_named() -> TestResult {
    harness::can_run()?;
    let cpus = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"cpu": {"cpus": "4000-4001"}}), "cpuset.cpus"),
        (json!({"memory": {"limit": -7}}), "memory"),
        (
            json!({"unified": {"pids.max": "7"}}),
            if pure_v2() { "" } else { "unified" },
        ),
    ];
    for (res, want) in cases {
        let (_g, mut b, _) = isolated_bundle(&["true"]);
        b.config["linux"]["resources"] = res.clone();
        let out = b.run(&unique("badres"));
        if want.is_empty() {
            assert!(
                out.status.success(),
                "{res}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        assert!(
            !out.status.success(),
            "{res} accepted (cpus possible: {cpus})"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{res}: {err}");
        assert!(String::from_utf8_lossy(&b.rt(&["list", "-q"]).stdout)
            .trim()
            .is_empty());
    }
    Ok(())
}

fn a_cgroups_path_with_dot_dot_stays_inside_the_hierarchy() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["cat", "/proc/self/cgroup"]);
    let name = unique("vessel-test-escape");
    b.config["linux"]["cgroupsPath"] = json!(format!("/../../{name}"));
    let _g = harness::CgroupGuard::new(&format!("/{name}"));
    let out = b.run_ok(&unique("esc"));
    assert!(out.contains(&format!("/{name}")), "{out}");
    for h in harness::cgroup_hierarchies() {
        assert!(
            !h.mount.parent().unwrap().join(&name).exists(),
            "escaped {}",
            h.mount.display()
        );
    }
    Ok(())
}

harness::tests![
    a_memory_hog_is_oom_killed_at_its_limit,
    pids_max_refuses_the_next_fork,
    cpu_quota_weight_and_burst_reach_the_cgroup,
    update_changes_a_live_container_and_check_before_update_guards_it,
    a_denied_device_fails_with_eperm_and_an_allowed_one_opens,
    update_replaces_the_v2_device_filter,
    bad_resources_fail_with_the_field_named,
    a_cgroups_path_with_dot_dot_stays_inside_the_hierarchy,
];
