//! What the container's init and exec children log reaches the parent's
//! `--log` over the sync socket (their own filesystem is the container's).

use crate::harness::{self, Bundle, TestResult};
use serde_json::Value;

fn debug_lines(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "debug")
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .collect()
}

fn the_child_s_debug_lines_reach_the_log_file() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("the child's log relay is vessel's")?;
    let mut b = Bundle::new(&["sleep", "30"]);
    let log = b.path().join("debug-log.json");
    b.runtime_args = vec![
        "--debug".into(),
        "--log".into(),
        log.to_string_lossy().into_owned(),
        "--log-format".into(),
        "json".into(),
    ];
    let id = harness::unique("childlog");
    let out = b.launch(&["run", "--detach"], &id, &[]);
    assert!(out.status.success(), "{}", harness::stderr_of(&out));
    let exec = b.rt(&["exec", &id, "true"]);
    let _ = b.rt(&["delete", "--force", &id]);
    assert!(exec.status.success(), "{}", harness::stderr_of(&exec));
    let lines = debug_lines(&log);
    for want in ["init: rootfs", "init: ready to exec sleep", "exec: joined"] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "no {want:?} line in {lines:?}"
        );
    }
    Ok(())
}

harness::tests![the_child_s_debug_lines_reach_the_log_file,];
