//! run: its exit status (the process's, 128+signal), --detach, and the
//! stdio it hands the container without a terminal.

use super::{bundle, cmdline};
use crate::harness::{self, stderr_of, TestResult};
use std::time::{Duration, Instant};

fn run_propagates_exit_code() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sh", "-c", "exit 7"]);
    let out = b.run(&harness::unique("lc-exit7"));
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr_of(&out));
    Ok(())
}

fn run_returns_128_plus_signal_when_process_killed_by_signal() -> TestResult {
    harness::can_run()?;
    // Without a pid namespace the shell is not an init process, so it can
    // kill itself (an init ignores signals it has no handler for).
    let (_cg, mut b) = bundle(&["sh", "-c", "kill -9 $$"]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "pid");
    let out = b.run(&harness::unique("lc-sig9"));
    assert_eq!(out.status.code(), Some(137), "stderr: {}", stderr_of(&out));
    Ok(())
}

fn run_returns_137_when_container_killed_from_outside() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-extkill");
    b.write_config();
    b.track(&id);
    let mut child = b
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = b.wait_status(&id, "running", 10);
    let killed = b.rt(&["kill", &id, "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(running, "the container never ran");
    assert!(killed.status.success(), "kill: {}", stderr_of(&killed));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(137),
        "run's exit status when its container is SIGKILLed"
    );
    Ok(())
}

fn run_detach_returns_while_container_runs() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-detach");
    let t0 = Instant::now();
    let out = b.launch(&["run", "--detach"], &id, &[]);
    assert!(out.status.success(), "run --detach: {}", stderr_of(&out));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "run --detach waited for the container"
    );
    let st = b.state(&id).expect("state after run --detach");
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(harness::pid_alive(pid));
    assert_eq!(cmdline(pid), ["sleep", "30"]);
    Ok(())
}

fn run_stdio_inherited_without_terminal() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
    let out = b.run(&harness::unique("lc-stdio"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-stdout\n");
    assert!(
        stderr_of(&out).lines().any(|l| l == "to-stderr"),
        "stderr: {}",
        stderr_of(&out)
    );
    Ok(())
}

harness::tests![
    run_propagates_exit_code,
    run_returns_128_plus_signal_when_process_killed_by_signal,
    run_returns_137_when_container_killed_from_outside,
    run_detach_returns_while_container_runs,
    run_stdio_inherited_without_terminal,
];
