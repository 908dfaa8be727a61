//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup
//! is a transient scope with its resources as unit properties, which a
//! `systemctl daemon-reload` keeps. Needs root and systemd as PID 1 (the
//! v2+systemd VM of runtime-tests/vm/cgroup-layouts.sh); elsewhere SKIPPED.

use crate::harness::{self, unique, Bundle, TestResult, Why};
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn has_systemd() -> TestResult {
    harness::skip_unless(
        Path::new("/run/systemd/private").exists() && Path::new("/run/systemd/system").exists(),
        Why::NoSystemd,
        "the systemd cgroup driver needs systemd as PID 1",
    )
}

fn show(unit: &str, props: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", unit, "-p", props])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scope_bundle(script: &str) -> (Bundle, String, String) {
    let mut b = Bundle::new(&["sh", "-c", script]);
    let name = unique("t");
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:vessel-test:{name}"));
    b.config["linux"]["resources"] = json!({
        "memory": {"limit": 67108864},
        "pids": {"limit": 30},
        "devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 42, "minor": 1, "access": "rw"}]
    });
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/allowed42", "type": "c", "major": 42, "minor": 1, "fileMode": 438},
        {"path": "/dev/denied42", "type": "c", "major": 42, "minor": 2, "fileMode": 438}
    ]);
    b.runtime_args.push("--systemd-cgroup".into());
    (b, format!("vessel-test-{name}.scope"), name)
}

fn the_container_runs_in_a_transient_scope_with_its_properties() -> TestResult {
    harness::can_run()?;
    has_systemd()?;
    let (b, unit, _) = scope_bundle("cat /proc/self/cgroup; sleep 60");
    let id = unique("sd");
    b.start_detached(&id);
    assert!(
        show(&unit, "ActiveState").contains("ActiveState=active"),
        "{}",
        show(&unit, "ActiveState")
    );
    let props = show(&unit, "MemoryMax,TasksMax,Delegate,DevicePolicy");
    for want in ["TasksMax=30", "Delegate=yes", "DevicePolicy=strict"] {
        assert!(props.contains(want), "{unit}: no {want}: {props}");
    }
    assert!(
        props.contains("MemoryMax=67108864") || props.contains("MemoryLimit=67108864"),
        "{props}"
    );
    let state = b.state(&id).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("/system.slice/{unit}")), "{cg}");

    // daemon-reload re-applies the unit: the limits and the device rules stay.
    let ok = Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .unwrap();
    assert!(ok.success());
    let probe = b.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /dev/allowed42 2>&1; cat /dev/denied42 2>&1; true",
    ]);
    let out = String::from_utf8_lossy(&probe.stdout);
    assert!(
        out.contains("allowed42': No such device or address"),
        "{out}"
    );
    assert!(out.contains("denied42': Operation not permitted"), "{out}");
    let dir = harness::cgroup_dirs(&format!("/system.slice/{unit}"))
        .into_iter()
        .find(|d| d.join("pids.max").exists())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("pids.max"))
            .unwrap()
            .trim(),
        "30"
    );

    harness::stdout_ok(&b.rt(&["delete", "--force", &id]));
    assert!(harness::wait_for(10.0, || !show(&unit, "ActiveState").contains("=active")));
    assert!(!dir.exists(), "{} left behind", dir.display());
    Ok(())
}

fn a_bad_systemd_cgroups_path_is_refused_by_name() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("the refusal by name is vessel's")?;
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["cgroupsPath"] = json!("/not/slice/form");
    b.runtime_args.push("--systemd-cgroup".into());
    let out = b.run(&unique("sdbad"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slice:prefix:name"), "{err}");
    assert!(String::from_utf8_lossy(&b.rt(&["list", "-q"]).stdout)
        .trim()
        .is_empty());
    Ok(())
}

harness::tests![
    the_container_runs_in_a_transient_scope_with_its_properties,
    a_bad_systemd_cgroups_path_is_refused_by_name,
];
