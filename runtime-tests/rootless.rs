//! Rootless: the runtime run by an unprivileged user (nobody) on a bundle
//! from `spec --rootless`, as runc supports it. Needs setpriv (util-linux)
//! and unprivileged user namespaces.

use crate::harness::{self, TestResult, Why};
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

fn userns_ok() -> TestResult {
    let ok = Command::new("setpriv")
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
    harness::skip_unless(
        ok,
        Why::HostFeature,
        "unprivileged user namespaces are not allowed on this host",
    )
}

/// A bundle from `spec --rootless` owned by nobody, running ARGS, and the
/// state directory for `as_nobody`.
fn rootless_bundle(args: &[&str]) -> (harness::Bundle, std::path::PathBuf) {
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
    config["process"]["args"] = serde_json::json!(args);
    config["root"]["path"] = "rootfs".into();
    std::fs::write(b.path().join("config.json"), config.to_string()).unwrap();
    (b, state)
}

fn rootless_container_runs_as_the_users_own_id() -> TestResult {
    harness::can_run()?;
    userns_ok()?;
    let (b, state) = rootless_bundle(&["sh", "-c", "id -u; cat /proc/self/uid_map"]);
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
    Ok(())
}

fn rootless_uses_a_delegated_cgroup() -> TestResult {
    harness::can_run()?;
    userns_ok()?;
    let unified = harness::cgroup_hierarchies();
    harness::skip_unless(
        unified.len() == 1 && unified[0].label.is_empty(),
        Why::CgroupLayout,
        "delegation to a user needs a pure cgroup v2 host",
    )?;
    // A subtree delegated to nobody, as systemd's user@.service does.
    let name = harness::unique("vessel-test-deleg");
    let deleg = unified[0].mount.join(&name);
    let _guard = harness::CgroupGuard::new(&format!("/{name}"));
    std::fs::create_dir(&deleg).unwrap();
    for f in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        let ok = Command::new("chown")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(deleg.join(f))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let (b, state) = rootless_bundle(&["sleep", "30"]);
    let id = harness::unique("rootless-cg");
    let runtime = as_nobody(&state);
    let argv: Vec<String> = std::iter::once(runtime.get_program())
        .chain(runtime.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Enter the delegated cgroup as root, then become nobody. The container
    // keeps running: no pipes for it to hold open.
    let err_path = b.path().join("run.err");
    let err = std::fs::File::create(&err_path).unwrap();
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            deleg.display()
        ))
        .arg("sh")
        .args(&argv)
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let st = as_nobody(&state).args(["state", &id]).output().unwrap();
    let pid = serde_json::from_slice::<serde_json::Value>(&st.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let _ = as_nobody(&state).args(["delete", "--force", &id]).output();
    assert!(cg.trim().ends_with(&format!("/{name}/vessel-{id}")), "{cg}");
    assert!(
        !deleg.join(format!("vessel-{id}")).exists(),
        "the container's cgroup was left"
    );
    Ok(())
}

harness::tests![
    rootless_container_runs_as_the_users_own_id,
    rootless_uses_a_delegated_cgroup,
];
