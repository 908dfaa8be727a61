//! delete, with and without --force, of stopped, created and running
//! containers.

use super::{bundle, cmdline};
use crate::harness::{self, stderr_of, TestResult};

fn delete_removes_stopped_container() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["true"]);
    let id = harness::unique("lc-delete");
    b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    assert!(b.wait_status(&id, "stopped", 5), "{:?}", b.status(&id));
    let st = b.state(&id).unwrap();
    assert_eq!(st["status"], "stopped");
    harness::stdout_ok(&b.rt(&["delete", &id]));
    let out = b.rt(&["state", &id]);
    assert!(
        !out.status.success(),
        "state of a deleted container should fail"
    );
    assert_eq!(out.status.code(), Some(1));
    let list = harness::stdout_ok(&b.rt(&["list", "-q"]));
    assert!(
        !list.lines().any(|l| l == id),
        "deleted container still listed: {list}"
    );
    Ok(())
}

fn delete_of_created_container_kills_and_removes_it() -> TestResult {
    harness::can_run()?;
    // runc deletes a created (never started) container without --force.
    let (_cg, b) = bundle(&["sh", "-c", "echo ran > /ran; sleep 30"]);
    let id = harness::unique("lc-delcreated");
    let pid = b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["delete", &id]));
    assert!(b.state(&id).is_none(), "state should fail after delete");
    assert!(
        harness::wait_for(5.0, || !harness::pid_alive(pid)),
        "the created process survived delete"
    );
    assert!(
        !b.rootfs().join("ran").exists(),
        "the user process ran although never started"
    );
    Ok(())
}

fn delete_running_without_force_fails_and_leaves_it_running() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-delrun");
    let pid = b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    let out = b.rt(&["delete", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "delete of a running container: {}",
        stderr_of(&out)
    );
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    assert!(harness::pid_alive(pid));
    assert_eq!(cmdline(pid), ["sleep", "30"]);
    Ok(())
}

fn delete_force_removes_running_container() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-delforce");
    let pid = b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    let out = b.rt(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete --force: {}", stderr_of(&out));
    assert!(
        b.state(&id).is_none(),
        "state should fail after delete --force"
    );
    assert!(
        harness::wait_for(5.0, || !harness::pid_alive(pid)),
        "the container process survived delete --force"
    );
    let list = harness::stdout_ok(&b.rt(&["list", "-q"]));
    assert!(!list.lines().any(|l| l == id));
    Ok(())
}

harness::tests![
    delete_removes_stopped_container,
    delete_of_created_container_kills_and_removes_it,
    delete_running_without_force_fails_and_leaves_it_running,
    delete_force_removes_running_container,
];
