//! Rootless: the runtime run by an unprivileged user (nobody) on a bundle
//! from `spec --rootless`, as runc supports it. Needs setpriv (util-linux)
//! and unprivileged user namespaces.

use crate::harness;
use std::process::Command;

const NOBODY: &str = "65534";

fn as_nobody(state: &std::path::Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg("env")
        .arg(format!("XDG_RUNTIME_DIR={}", state.display()))
        .arg(harness::runtime_bin())
        .arg("--root")
        .arg(state.join("rt"));
    c
}

#[test]
fn rootless_container_runs_as_the_users_own_id() {
    if !harness::can_run() {
        return;
    }
    let userns_ok = Command::new("setpriv")
        .args([
            "--reuid",
            NOBODY,
            "--regid",
            NOBODY,
            "--clear-groups",
            "unshare",
            "-U",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !userns_ok {
        eprintln!("SKIPPED: unprivileged user namespaces are not allowed on this host");
        return;
    }
    let b = harness::Bundle::new(&["true"]);
    let state = b.path().join("rootless-state");
    std::fs::create_dir(&state).unwrap();
    let chown = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(b.path())
        .status()
        .unwrap();
    assert!(chown.success());
    std::fs::remove_file(b.path().join("config.json")).ok();
    let out = as_nobody(&state)
        .args(["spec", "--rootless", "--bundle"])
        .arg(b.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    config["root"]["path"] = "rootfs".into();
    std::fs::write(b.path().join("config.json"), config.to_string()).unwrap();
    let id = harness::unique("rootless");
    let out = as_nobody(&state)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .output()
        .unwrap();
    let _ = as_nobody(&state).args(["delete", "--force", &id]).output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines, ["0", &format!("0 {NOBODY} 1")]);
}
