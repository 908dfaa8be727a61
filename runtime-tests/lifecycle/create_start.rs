//! create and start: the state they leave, the pid file, the bundle path,
//! and what a second create or start of one ID does.

use super::{bundle, cmdline};
use crate::harness::{self, read_when_present, stderr_of, TestResult};
use std::path::Path;
use std::time::Duration;

fn state_after_create_reports_created_pid_and_bundle() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-created");
    let pid_file = b.path().join("container.pid");
    let out = b.launch(
        &["create"],
        &id,
        &["--pid-file", pid_file.to_str().unwrap()],
    );
    assert!(out.status.success(), "create failed: {}", stderr_of(&out));

    let st = b.state(&id).expect("state after create");
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str(), "{st}");
    let oci = st["ociVersion"].as_str().unwrap_or("");
    assert!(
        oci.starts_with("1."),
        "state ociVersion should be a 1.x spec version: {st}"
    );
    let pid = st["pid"].as_i64().expect("pid in state");
    assert!(pid > 0, "{st}");
    let from_file = std::fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(
        from_file
            .trim()
            .parse::<i64>()
            .expect("pid file holds a number"),
        pid
    );
    assert!(
        harness::pid_alive(pid as i32),
        "the created container's process should exist"
    );
    let bundle_field = st["bundle"].as_str().expect("bundle in state");
    assert!(Path::new(bundle_field).is_absolute(), "{st}");
    assert_eq!(
        Path::new(bundle_field).canonicalize().unwrap(),
        b.path().canonicalize().unwrap()
    );
    Ok(())
}

fn state_after_start_reports_running() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-running");
    let pid = b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    let st = b.state(&id).expect("state after start");
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(
        st["pid"].as_i64(),
        Some(pid as i64),
        "start keeps the pid: {st}"
    );
    assert!(
        harness::wait_for(5.0, || cmdline(pid) == ["sleep", "30"]),
        "container process runs the user's args: {:?}",
        cmdline(pid)
    );
    Ok(())
}

fn created_container_waits_for_start() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sh", "-c", "echo started > /started; exec sleep 30"]);
    let id = harness::unique("lc-waits");
    let pid = b.create_ok(&id);
    let marker = b.rootfs().join("started");
    // Give a (wrongly) running process a moment to show itself.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "the user process ran before start");
    let args = cmdline(pid);
    assert!(
        !args.is_empty(),
        "the created container's process should exist"
    );
    assert_ne!(
        args.first().map(String::as_str),
        Some("sh"),
        "the user process was exec'd before start: {args:?}"
    );
    assert_eq!(b.status(&id).as_deref(), Some("created"));

    harness::stdout_ok(&b.rt(&["start", &id]));
    assert!(
        harness::wait_for(5.0, || marker.exists()),
        "the user process did not run after start"
    );
    assert!(
        harness::wait_for(5.0, || cmdline(pid) == ["sleep", "30"]),
        "{:?}",
        cmdline(pid)
    );
    Ok(())
}

fn duplicate_id_create_fails_and_first_is_untouched() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sh", "-c", "echo first > /who; exec sleep 30"]);
    let id = harness::unique("lc-dup");
    let pid = b.create_ok(&id);
    let (_cg2, mut b2) = bundle(&["sh", "-c", "echo second > /who; exec sleep 30"]);
    // Same state root as the first bundle, so the ID collides.
    b2.root = b.root.clone();
    let out = b2.create_detached(&id);
    assert_eq!(
        out.status.code(),
        Some(1),
        "second create with the same id: {}",
        stderr_of(&out)
    );
    let st = b.state(&id).expect("first container still there");
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
    assert_eq!(
        Path::new(st["bundle"].as_str().unwrap())
            .canonicalize()
            .unwrap(),
        b.path().canonicalize().unwrap()
    );
    harness::stdout_ok(&b.rt(&["start", &id]));
    let who = read_when_present(&b.rootfs().join("who"), 5.0);
    assert_eq!(who.as_deref(), Some("first\n"));
    assert!(
        !b2.rootfs().join("who").exists(),
        "the second bundle's process ran"
    );
    Ok(())
}

fn start_of_running_container_fails() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-start2");
    let pid = b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    let out = b.rt(&["start", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "second start: {}",
        stderr_of(&out)
    );
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    assert!(harness::pid_alive(pid));
    Ok(())
}

fn start_of_stopped_container_fails() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sh", "-c", "echo x >> /runs"]);
    let id = harness::unique("lc-startstopped");
    b.create_ok(&id);
    harness::stdout_ok(&b.rt(&["start", &id]));
    assert!(b.wait_status(&id, "stopped", 5));
    let out = b.rt(&["start", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "start of a stopped container: {}",
        stderr_of(&out)
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("runs")).unwrap(),
        "x\n",
        "the process ran twice"
    );
    Ok(())
}

fn pid_file_relative_path_resolves_against_cwd() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-pidrel");
    let cwd = b.path().join("elsewhere");
    std::fs::create_dir(&cwd).unwrap();
    b.write_config();
    b.track(&id);
    let err = std::fs::File::create(b.path().join("pidrel.stderr")).unwrap();
    let status = b
        .cmd()
        .current_dir(&cwd)
        .args(["create", "--bundle"])
        .arg(b.path())
        .args(["--pid-file", "rel.pid", &id])
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "create: {}",
        std::fs::read_to_string(b.path().join("pidrel.stderr")).unwrap()
    );
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap();
    let written =
        std::fs::read_to_string(cwd.join("rel.pid")).expect("pid file relative to the cwd");
    assert_eq!(written.trim().parse::<i64>().unwrap(), pid);
    assert!(
        !b.path().join("rel.pid").exists(),
        "pid file resolved against the bundle"
    );
    Ok(())
}

fn create_with_relative_bundle_records_absolute_path() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-relbundle");
    b.write_config();
    b.track(&id);
    let parent = b.path().parent().unwrap();
    let name = b.path().file_name().unwrap();
    let status = b
        .cmd()
        .current_dir(parent)
        .arg("create")
        .arg("--bundle")
        .arg(name)
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let st = b.state(&id).unwrap();
    let bundle_field = st["bundle"].as_str().unwrap();
    assert!(Path::new(bundle_field).is_absolute(), "{st}");
    assert_eq!(
        Path::new(bundle_field).canonicalize().unwrap(),
        b.path().canonicalize().unwrap()
    );
    Ok(())
}

harness::tests![
    state_after_create_reports_created_pid_and_bundle,
    state_after_start_reports_running,
    created_container_waits_for_start,
    duplicate_id_create_fails_and_first_is_untouched,
    start_of_running_container_fails,
    start_of_stopped_container_fails,
    pid_file_relative_path_resolves_against_cwd,
    create_with_relative_bundle_records_absolute_path,
];
