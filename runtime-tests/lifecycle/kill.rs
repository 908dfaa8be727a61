//! kill: the signal names and numbers it takes, its default (TERM), and
//! what it does to created, running and stopped containers.

use super::bundle;
use crate::harness::{self, read_when_present, stderr_of, Bundle, TestResult};

/// A container whose shell records the signals USR1 and TERM in /tmp/sig
/// (in the rootfs) and exits 0.
const TRAP_SCRIPT: &str =
    "trap 'echo got-usr1 > /tmp/sig; exit 0' USR1; trap 'echo got-term > /tmp/sig; exit 0' TERM; echo ready > /tmp/ready; while :; do sleep 0.1; done";

/// Creates and starts a TRAP_SCRIPT container, waiting until its traps are set.
fn start_trap_container(b: &Bundle, id: &str) {
    b.create_ok(id);
    harness::stdout_ok(&b.rt(&["start", id]));
    let ready = b.rootfs().join("tmp/ready");
    assert!(
        harness::wait_for(5.0, || ready.exists()),
        "the trap script never became ready"
    );
}

fn kill_sigkill_stops_container() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-kill");
    let pid = b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    harness::stdout_ok(&b.rt(&["kill", &id, "KILL"]));
    assert!(
        b.wait_status(&id, "stopped", 5),
        "status after kill KILL: {:?}",
        b.status(&id)
    );
    assert!(
        !harness::pid_alive(pid),
        "the container process survived SIGKILL"
    );
    Ok(())
}

/// runtime-tools' kill: a created container (its process not started yet)
/// ends on TERM, as runc's does.
fn kill_term_ends_a_created_container() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-killcreated");
    let pid = b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["kill", &id, "TERM"]));
    assert!(
        b.wait_status(&id, "stopped", 5),
        "status after kill TERM of a created container: {:?}",
        b.status(&id)
    );
    assert!(!harness::pid_alive(pid));
    let start = b.rt(&["start", &id]);
    assert!(!start.status.success(), "start after the init ended");
    Ok(())
}

fn kill_accepts_kill_sigkill_and_9() -> TestResult {
    harness::can_run()?;
    for sig in ["KILL", "SIGKILL", "9"] {
        let (_cg, b) = bundle(&["sleep", "30"]);
        let id = harness::unique("lc-killsig");
        let pid = b.create_ok(&id);
        harness::stdout_ok(&b.rt(&["start", &id]));
        let out = b.rt(&["kill", &id, sig]);
        assert!(
            out.status.success(),
            "kill {sig} refused: {}",
            stderr_of(&out)
        );
        assert!(
            b.wait_status(&id, "stopped", 5),
            "kill {sig}: status {:?}",
            b.status(&id)
        );
        assert!(!harness::pid_alive(pid));
    }
    Ok(())
}

fn kill_default_signal_is_term() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sh", "-c", TRAP_SCRIPT]);
    let id = harness::unique("lc-term");
    start_trap_container(&b, &id);
    harness::stdout_ok(&b.rt(&["kill", &id]));
    let got = read_when_present(&b.rootfs().join("tmp/sig"), 5.0);
    assert_eq!(got.as_deref().map(str::trim), Some("got-term"));
    assert!(
        b.wait_status(&id, "stopped", 5),
        "the trap exits 0: {:?}",
        b.status(&id)
    );
    Ok(())
}

fn kill_sends_named_signal_usr1() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sh", "-c", TRAP_SCRIPT]);
    let id = harness::unique("lc-usr1");
    start_trap_container(&b, &id);
    harness::stdout_ok(&b.rt(&["kill", &id, "USR1"]));
    let got = read_when_present(&b.rootfs().join("tmp/sig"), 5.0);
    assert_eq!(got.as_deref().map(str::trim), Some("got-usr1"));
    assert!(b.wait_status(&id, "stopped", 5), "{:?}", b.status(&id));
    Ok(())
}

fn kill_signal_number_and_sig_prefix_accepted() -> TestResult {
    harness::can_run()?;
    for sig in ["SIGUSR1", "10"] {
        let (_cg, b) = bundle(&["sh", "-c", TRAP_SCRIPT]);
        let id = harness::unique("lc-usr1n");
        start_trap_container(&b, &id);
        let out = b.rt(&["kill", &id, sig]);
        assert!(out.status.success(), "kill {sig}: {}", stderr_of(&out));
        let got = read_when_present(&b.rootfs().join("tmp/sig"), 5.0);
        assert_eq!(
            got.as_deref().map(str::trim),
            Some("got-usr1"),
            "kill {sig}"
        );
    }
    Ok(())
}

fn kill_unknown_signal_fails_and_container_keeps_running() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-badsig");
    let pid = b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    for sig in ["BOGUS", "99"] {
        let out = b.rt(&["kill", &id, sig]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "kill {sig}: {}",
            stderr_of(&out)
        );
    }
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    assert!(harness::pid_alive(pid));
    Ok(())
}

fn kill_of_stopped_container_fails() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["true"]);
    let id = harness::unique("lc-killstopped");
    b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    assert!(b.wait_status(&id, "stopped", 5));
    let out = b.rt(&["kill", &id, "KILL"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "kill of a stopped container: {}",
        stderr_of(&out)
    );
    assert_eq!(
        b.status(&id).as_deref(),
        Some("stopped"),
        "the container's state survives the failed kill"
    );
    Ok(())
}

harness::tests![
    kill_sigkill_stops_container,
    kill_term_ends_a_created_container,
    kill_accepts_kill_sigkill_and_9,
    kill_default_signal_is_term,
    kill_sends_named_signal_usr1,
    kill_signal_number_and_sig_prefix_accepted,
    kill_unknown_signal_fails_and_container_keeps_running,
    kill_of_stopped_container_fails,
];
