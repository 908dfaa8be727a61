//! How a hook is invoked: its args, exactly its env, the bundle as its
//! cwd, annotations in its state, Docker's `sh -c` form.

use super::hook_bundle;
use crate::harness::{self, TestResult};
use serde_json::json;
use std::path::Path;

fn hook_gets_its_args_and_exactly_its_env() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(&["true"]);
    let mut hook = h.rec("prestart", "prestart", &["one", "two words", ""]);
    hook["env"] = json!(["HOOK_A=1", "HOOK_B=two words"]);
    h.add("prestart", hook);
    let id = harness::unique("hk-argsenv");
    h.b.write_config();
    h.b.track(&id);
    let err = std::fs::File::create(h.b.path().join("argsenv.stderr")).unwrap();
    let status =
        h.b.cmd()
            .env("VESSEL_TEST_LEAK", "leaked")
            .args(["create", "--bundle"])
            .arg(h.b.path())
            .arg(&id)
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .status()
            .unwrap();
    assert!(
        status.success(),
        "create: {}",
        std::fs::read_to_string(h.b.path().join("argsenv.stderr")).unwrap()
    );
    assert_eq!(
        h.got("prestart", "args").as_deref(),
        Some("one\ntwo words\n\n")
    );
    let env = h.got("prestart", "env").unwrap();
    let vars: Vec<&str> = env.lines().collect();
    assert!(vars.contains(&"HOOK_A=1"), "{env}");
    assert!(vars.contains(&"HOOK_B=two words"), "{env}");
    assert!(
        !env.contains("VESSEL_TEST_LEAK"),
        "the runtime's environment leaked into a hook with its own env: {env}"
    );
    Ok(())
}

fn host_hooks_run_with_bundle_as_cwd() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(&["true"]);
    h.add_rec("prestart");
    h.add_rec("createRuntime");
    let id = harness::unique("hk-cwd");
    h.b.write_config();
    h.b.track(&id);
    let status =
        h.b.cmd()
            .current_dir("/")
            .args(["create", "--bundle"])
            .arg(h.b.path())
            .arg(&id)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
    assert!(status.success());
    let bundle = h.b.path().canonicalize().unwrap();
    for name in ["prestart", "createRuntime"] {
        let cwd = h.got(name, "cwd").unwrap();
        assert_eq!(
            Path::new(cwd.trim()).canonicalize().unwrap(),
            bundle,
            "{name} cwd"
        );
    }
    Ok(())
}

fn hook_state_includes_annotations() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(&["true"]);
    h.b.config["annotations"] = json!({"org.vessel.test": "yes", "org.vessel.other": "two words"});
    h.add_rec("prestart");
    let id = harness::unique("hk-annot");
    h.b.create_ok(&id);
    let st = h.state_json("prestart");
    assert_eq!(
        st["annotations"],
        json!({"org.vessel.test": "yes", "org.vessel.other": "two words"}),
        "{st}"
    );
    Ok(())
}

fn docker_style_sh_c_prestart_hook_with_args() -> TestResult {
    harness::can_run()?;
    let (_cg, mut h) = hook_bundle(&["sh", "-c", "echo user-ran"]);
    let out = h.out().display().to_string();
    let script = format!("cat > '{out}/docker.json'; echo \"$0|$1|$2\" > '{out}/docker.args'");
    h.add(
        "prestart",
        json!({"path": "/bin/sh", "args": ["sh", "-c", script, "zero", "one", "two"]}),
    );
    let id = harness::unique("hk-docker");
    assert_eq!(h.b.run_ok(&id), "user-ran\n");
    assert_eq!(h.got("docker", "args").as_deref(), Some("zero|one|two\n"));
    let st = h.state_json("docker");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "creating");
    assert!(st["pid"].as_i64().unwrap_or(0) > 0, "{st}");
    Ok(())
}

harness::tests![
    hook_gets_its_args_and_exactly_its_env,
    host_hooks_run_with_bundle_as_cwd,
    hook_state_includes_annotations,
    docker_style_sh_c_prestart_hook_with_args,
];
