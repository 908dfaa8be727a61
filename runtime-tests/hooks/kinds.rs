//! When each kind of hook runs, the state it gets on stdin and the
//! namespaces it runs in; several hooks run in lifecycle and array order.

use super::{hook_bundle, USER_ARGS};
use crate::harness::{self, host_ns, ns_of, Bundle, TestResult};
use serde_json::Value;
use std::path::Path;

/// The checks common to every hook's state: ociVersion, id, bundle.
fn assert_common_state(st: &Value, id: &str, b: &Bundle) {
    assert!(
        st["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "ociVersion: {st}"
    );
    assert_eq!(st["id"], id, "{st}");
    let bundle = st["bundle"]
        .as_str()
        .unwrap_or_else(|| panic!("no bundle: {st}"));
    assert!(Path::new(bundle).is_absolute(), "{st}");
    assert_eq!(
        Path::new(bundle).canonicalize().unwrap(),
        b.path().canonicalize().unwrap(),
        "{st}"
    );
}

fn prestart_hook_gets_creating_state_before_user_process() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(USER_ARGS);
    h.add_rec("prestart");
    let id = harness::unique("hk-prestart");
    let pid = h.b.create_ok(&id);
    let st = h.state_json("prestart");
    assert_common_state(&st, &id, &h.b);
    assert_eq!(st["status"], "creating", "{st}");
    assert_eq!(
        st["pid"].as_i64(),
        Some(pid as i64),
        "prestart gets the container's host pid: {st}"
    );
    assert_eq!(h.got("prestart", "userstarted").as_deref(), Some("no\n"));
    assert_eq!(
        h.got("prestart", "mntns").unwrap().trim(),
        host_ns("mnt"),
        "prestart runs in the runtime's mount namespace"
    );
    assert_eq!(h.got("prestart", "pidns").unwrap().trim(), host_ns("pid"));
    Ok(())
}

fn create_runtime_hook_gets_creating_state_in_runtime_namespace() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(USER_ARGS);
    h.add_rec("createRuntime");
    let id = harness::unique("hk-creatert");
    let pid = h.b.create_ok(&id);
    let st = h.state_json("createRuntime");
    assert_common_state(&st, &id, &h.b);
    assert_eq!(st["status"], "creating", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64), "{st}");
    assert_eq!(
        h.got("createRuntime", "userstarted").as_deref(),
        Some("no\n")
    );
    assert_eq!(
        h.got("createRuntime", "mntns").unwrap().trim(),
        host_ns("mnt")
    );
    assert_eq!(
        h.got("createRuntime", "pidns").unwrap().trim(),
        host_ns("pid")
    );
    Ok(())
}

fn create_container_hook_runs_in_container_namespaces() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(USER_ARGS);
    h.add_rec("createContainer");
    let id = harness::unique("hk-createct");
    let pid = h.b.create_ok(&id);
    let st = h.state_json("createContainer");
    assert_common_state(&st, &id, &h.b);
    assert_eq!(st["status"], "creating", "{st}");
    // runc builds this state inside the container's init: pid 1.
    assert_eq!(st["pid"].as_i64(), Some(1), "{st}");
    assert_eq!(
        h.got("createContainer", "userstarted").as_deref(),
        Some("no\n")
    );
    assert_eq!(
        h.got("createContainer", "mntns").unwrap().trim(),
        ns_of(pid, "mnt"),
        "createContainer runs in the container's mount namespace"
    );
    assert_eq!(
        h.got("createContainer", "pidns").unwrap().trim(),
        ns_of(pid, "pid"),
        "createContainer runs in the container's pid namespace"
    );
    assert_ne!(ns_of(pid, "mnt"), host_ns("mnt"));
    Ok(())
}

fn start_container_hook_runs_inside_container_on_start() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(USER_ARGS);
    h.add_rec("startContainer");
    let id = harness::unique("hk-startct");
    let pid = h.b.create_ok(&id);
    let json_path = h.in_out().join("startContainer.json");
    assert!(!json_path.exists(), "startContainer ran at create");
    harness::stdout_ok(&h.b.rt(&["start", &id]));
    assert!(
        harness::wait_for(5.0, || std::fs::read_to_string(h.in_out().join("order"))
            .is_ok_and(|s| s.contains("startContainer"))),
        "startContainer did not run at start"
    );
    let st: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap())
        .expect("state JSON on stdin");
    assert_common_state(&st, &id, &h.b);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(1), "{st}");
    let read = |ext: &str| {
        std::fs::read_to_string(h.in_out().join(format!("startContainer.{ext}"))).unwrap()
    };
    assert_eq!(
        read("userstarted"),
        "no\n",
        "startContainer must run before the user process"
    );
    assert_eq!(read("mntns").trim(), ns_of(pid, "mnt"));
    assert_eq!(read("pidns").trim(), ns_of(pid, "pid"));
    assert!(
        harness::wait_for(5.0, || h.marker().exists()),
        "the user process did not run after startContainer"
    );
    Ok(())
}

fn poststart_hook_has_run_when_start_returns() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(USER_ARGS);
    h.add_rec("poststart");
    let id = harness::unique("hk-poststart");
    let pid = h.b.create_ok(&id);
    harness::stdout_ok(&h.b.rt(&["start", &id]));
    let st = h.state_json("poststart");
    assert_common_state(&st, &id, &h.b);
    // runc 1.1.5 runs poststart during create and says "created"; runc 1.2
    // (and the spec's lifecycle) run it in start, after the user process.
    let status = st["status"].as_str().unwrap_or("");
    assert!(status == "created" || status == "running", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64), "{st}");
    assert_eq!(h.got("poststart", "mntns").unwrap().trim(), host_ns("mnt"));
    assert_eq!(h.b.status(&id).as_deref(), Some("running"));
    Ok(())
}

fn poststop_hook_runs_on_delete_with_stopped_state() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(&["true"]);
    h.add_rec("poststop");
    let id = harness::unique("hk-poststop");
    h.b.create_ok(&id);
    harness::stdout_ok(&h.b.rt(&["start", &id]));
    assert!(h.b.wait_status(&id, "stopped", 5));
    assert!(
        h.got("poststop", "json").is_none(),
        "poststop ran before delete"
    );
    harness::stdout_ok(&h.b.rt(&["delete", &id]));
    let st = h.state_json("poststop");
    assert_common_state(&st, &id, &h.b);
    assert_eq!(st["status"], "stopped", "{st}");
    assert!(
        st.get("pid").is_none() || st["pid"] == 0,
        "a stopped container has no pid: {st}"
    );
    assert_eq!(h.got("poststop", "mntns").unwrap().trim(), host_ns("mnt"));
    assert!(h.b.state(&id).is_none());
    Ok(())
}

fn poststop_hook_runs_when_run_returns() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(&["sh", "-c", "echo done"]);
    h.add_rec("poststop");
    let id = harness::unique("hk-poststoprun");
    let out = h.b.run_ok(&id);
    assert_eq!(out, "done\n");
    let st = h.state_json("poststop");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "stopped", "{st}");
    Ok(())
}

fn hooks_run_in_lifecycle_order() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(USER_ARGS);
    for kind in [
        "poststop",
        "poststart",
        "createContainer",
        "createRuntime",
        "prestart",
    ] {
        h.add_rec(kind);
    }
    // Two hooks of one kind run in array order.
    let second = h.rec("prestart", "prestart-2", &[]);
    h.add("prestart", second);
    let id = harness::unique("hk-order");
    h.b.create_ok(&id);
    let after_create = h.order();
    assert_eq!(
        &after_create[..4],
        ["prestart", "prestart-2", "createRuntime", "createContainer"],
        "{after_create:?}"
    );
    harness::stdout_ok(&h.b.rt(&["start", &id]));
    assert_eq!(
        h.order(),
        [
            "prestart",
            "prestart-2",
            "createRuntime",
            "createContainer",
            "poststart"
        ]
    );
    harness::stdout_ok(&h.b.rt(&["kill", &id, "KILL"]));
    assert!(h.b.wait_status(&id, "stopped", 5));
    harness::stdout_ok(&h.b.rt(&["delete", &id]));
    assert_eq!(
        h.order(),
        [
            "prestart",
            "prestart-2",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
    Ok(())
}

harness::tests![
    prestart_hook_gets_creating_state_before_user_process,
    create_runtime_hook_gets_creating_state_in_runtime_namespace,
    create_container_hook_runs_in_container_namespaces,
    start_container_hook_runs_inside_container_on_start,
    poststart_hook_has_run_when_start_returns,
    poststop_hook_runs_on_delete_with_stopped_state,
    poststop_hook_runs_when_run_returns,
    hooks_run_in_lifecycle_order,
];
