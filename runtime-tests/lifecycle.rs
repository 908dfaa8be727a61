//! The container lifecycle as runc 1.1.5 drives it: create / start / state /
//! kill / delete / run / list / spec / --version, exit codes included.
//!
//! Every container gets its own `/vessel-test-...` cgroupsPath so that the
//! runtime never creates cgroups under the test process's own ones.

use crate::harness::{self, read_when_present, stderr_of, Bundle, CgroupGuard, TestResult};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// A bundle for ARGS with a private test cgroup, removed by the guard.
fn bundle(args: &[&str]) -> (CgroupGuard, Bundle) {
    let (cg, b, _) = harness::isolated_bundle(args);
    (cg, b)
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

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

fn list_shows_container_in_table_json_and_quiet() -> TestResult {
    harness::can_run()?;
    let (_cg, b) = bundle(&["sleep", "30"]);
    let id = harness::unique("lc-list");
    let pid = b.create_ok(&id);

    let table = harness::stdout_ok(&b.rt(&["list"]));
    let mut lines = table.lines();
    let header = lines.next().unwrap_or("");
    for col in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(
            header.split_whitespace().any(|w| w == col),
            "list header lacks {col}: {table}"
        );
    }
    let row: Vec<&str> = lines
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .expect("row for the container")
        .split_whitespace()
        .collect();
    assert_eq!(row[1], pid.to_string(), "{table}");
    assert_eq!(row[2], "created", "{table}");

    let json: Value =
        serde_json::from_str(&harness::stdout_ok(&b.rt(&["list", "--format", "json"])))
            .expect("list --format json prints JSON");
    let arr = json.as_array().expect("a JSON array");
    assert_eq!(arr.len(), 1, "{json}");
    assert_eq!(arr[0]["id"], id.as_str());
    assert_eq!(arr[0]["status"], "created");
    assert_eq!(arr[0]["pid"].as_i64(), Some(pid as i64));

    let quiet = harness::stdout_ok(&b.rt(&["list", "-q"]));
    assert_eq!(quiet, format!("{id}\n"));
    Ok(())
}

fn list_of_empty_root_prints_header_only() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["true"]);
    let table = harness::stdout_ok(&b.rt(&["list"]));
    assert_eq!(table.lines().count(), 1, "{table}");
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(harness::stdout_ok(&b.rt(&["list", "-q"])), "");
    // runc 1.1.5 prints `null` (a nil Go slice), not `[]`.
    assert_eq!(
        harness::stdout_ok(&b.rt(&["list", "--format", "json"])),
        "null\n"
    );
    Ok(())
}

fn spec_writes_config_and_refuses_to_overwrite() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["true"]);
    let dir = b.path().join("spec-out");
    std::fs::create_dir(&dir).unwrap();
    harness::stdout_ok(&b.rt(&["spec", "--bundle", dir.to_str().unwrap()]));
    let cfg: Value = serde_json::from_slice(
        &std::fs::read(dir.join("config.json")).expect("spec wrote config.json"),
    )
    .expect("valid JSON");
    assert!(
        cfg["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{cfg}"
    );
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert_eq!(cfg["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(cfg["process"]["terminal"], true);
    let ns: Vec<&str> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&want), "spec namespaces {ns:?} lack {want}");
    }

    std::fs::write(dir.join("config.json"), "{\"marker\": true}").unwrap();
    let out = b.rt(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "spec over an existing config.json: {}",
        stderr_of(&out)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("config.json")).unwrap(),
        "{\"marker\": true}",
        "spec overwrote config.json"
    );
    Ok(())
}

fn spec_without_bundle_writes_into_cwd() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["true"]);
    let dir = b.path().join("spec-cwd");
    std::fs::create_dir(&dir).unwrap();
    let out = b.cmd().arg("spec").current_dir(&dir).output().unwrap();
    harness::stdout_ok(&out);
    let cfg: Value = serde_json::from_slice(
        &std::fs::read(dir.join("config.json")).expect("config.json in cwd"),
    )
    .unwrap();
    assert_eq!(cfg["root"]["path"], "rootfs");
    Ok(())
}

fn version_flag_prints_version() -> TestResult {
    harness::can_run()?;
    for flag in ["--version", "-v"] {
        let out = std::process::Command::new(harness::runtime_bin())
            .arg(flag)
            .output()
            .unwrap();
        let text = harness::stdout_ok(&out);
        let first = text.lines().next().unwrap_or("");
        assert!(first.contains(" version "), "{flag}: {text}");
        assert!(
            text.lines().any(|l| l.starts_with("spec: 1.")),
            "{flag} should name the OCI spec version: {text}"
        );
    }
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
    kill_sigkill_stops_container,
    kill_term_ends_a_created_container,
    kill_accepts_kill_sigkill_and_9,
    kill_default_signal_is_term,
    kill_sends_named_signal_usr1,
    kill_signal_number_and_sig_prefix_accepted,
    kill_unknown_signal_fails_and_container_keeps_running,
    kill_of_stopped_container_fails,
    delete_removes_stopped_container,
    delete_of_created_container_kills_and_removes_it,
    delete_running_without_force_fails_and_leaves_it_running,
    delete_force_removes_running_container,
    run_propagates_exit_code,
    run_returns_128_plus_signal_when_process_killed_by_signal,
    run_returns_137_when_container_killed_from_outside,
    run_detach_returns_while_container_runs,
    run_stdio_inherited_without_terminal,
    list_shows_container_in_table_json_and_quiet,
    list_of_empty_root_prints_header_only,
    spec_writes_config_and_refuses_to_overwrite,
    spec_without_bundle_writes_into_cwd,
    version_flag_prints_version,
    duplicate_id_create_fails_and_first_is_untouched,
    start_of_running_container_fails,
    start_of_stopped_container_fails,
    pid_file_relative_path_resolves_against_cwd,
    create_with_relative_bundle_records_absolute_path,
];
