//! `vessel gpu cdi` as NVIDIA's toolkit generates specs (index, UUID, MIG
//! and `all` devices; MIG UUIDs from the fake driver's NVML through
//! vessel-nvml; IMEX channels; versions; atomic output), what a container
//! gets for `MIG-<uuid>` (from such a spec) and the jit-cdi names, and the
//! systemd units that keep the spec current.

use super::{can_run, fake_root, gpu_bundle, nvml_helper, run_fail, NO_CONFIG};
use crate::harness::{self, skip, unique, TestResult, Why};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MIG_UUID: &str = "MIG-f0f0f0f0-1111-2222-3333-444444444444";
/// Lists the container's GPU, MIG capability and IMEX channel nodes.
const ALL_NODES: &str = "ls /dev /dev/nvidia-caps /dev/nvidia-caps-imex-channels 2>/dev/null | grep -E '^(nvidia[0-9]|nvidia-cap[0-9]|channel)' | tr '\\n' ' '; echo";

/// `vessel --gpu-root FAKE gpu cdi ARGS` with the helper `nvml` (None: none).
fn gpu_cdi(args: &[&str], nvml: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(harness::runtime_bin());
    c.env("VESSEL_CONFIG", NO_CONFIG)
        .env(
            "VESSEL_NVML",
            nvml.unwrap_or(Path::new("/nonexistent/vessel-nvml")),
        )
        .arg("--gpu-root")
        .arg(fake_root())
        .args(["gpu", "cdi"])
        .args(args);
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn names(spec: &Value) -> Vec<String> {
    spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

fn node_paths(spec: &Value, name: &str) -> Vec<String> {
    let dev = spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no device {name}: {spec}"));
    dev["containerEdits"]["deviceNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap().to_string())
        .collect()
}

/// A CDI directory holding the spec `vessel gpu cdi --output` wrote.
fn spec_dir(nvml: &Path) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nvidia.yaml");
    let out = gpu_cdi(&["--output", file.to_str().unwrap()], Some(nvml), &[]);
    assert!(out.status.success(), "{}", harness::stderr_of(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    vessel::gpu::cdi::parse_spec(&file, &text).expect("vessel's reader reads it");
    let spec: Value = serde_yaml_ng::from_str(&text).unwrap();
    (dir, spec)
}

fn cdi_bundle(script: &str, env: &[&str], cdi_dir: &Path) -> harness::Bundle {
    let mut b = gpu_bundle(script, "debian", env);
    b.runtime_env
        .push(("VESSEL_CDI_SPEC_DIRS".into(), cdi_dir.display().to_string()));
    b
}

fn the_spec_has_every_device_and_the_version_asked_for() -> TestResult {
    can_run()?;
    let nvml = nvml_helper()?;
    let (dir, spec) = spec_dir(&nvml);
    assert_eq!(spec["cdiVersion"], "0.7.0");
    assert_eq!(spec["kind"], "nvidia.com/gpu");
    assert_eq!(
        names(&spec),
        [
            "0",
            "GPU-11111111-2222-3333-4444-555555555555",
            "1",
            "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "0:0",
            MIG_UUID,
            "all"
        ]
    );
    let mig = [
        "/dev/nvidia1",
        "/dev/nvidia-caps/nvidia-cap12",
        "/dev/nvidia-caps/nvidia-cap13",
    ];
    assert_eq!(node_paths(&spec, MIG_UUID), mig);
    assert_eq!(node_paths(&spec, "0:0"), mig);
    assert_eq!(node_paths(&spec, "1"), ["/dev/nvidia0"]);
    assert_eq!(node_paths(&spec, "all").len(), 4);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "only the spec, no temporary file");
    // Older readers: 0.5.0 on request, JSON on stdout; older than the
    // content allows is refused with the reason.
    let out = gpu_cdi(&["--cdi-version", "0.5.0"], Some(&nvml), &[]);
    let old: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(old["cdiVersion"], "0.5.0");
    assert_eq!(names(&old), names(&spec));
    let out = gpu_cdi(&["--cdi-version", "0.4.0"], Some(&nvml), &[]);
    let err = harness::stderr_of(&out);
    assert!(
        !out.status.success() && err.contains("needs CDI 0.5.0"),
        "{err}"
    );
    let out = gpu_cdi(&["--cdi-version", "minimum"], Some(&nvml), &[]);
    let min: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(min["cdiVersion"], "0.5.0");
    Ok(())
}

fn without_nvml_the_spec_has_all_but_mig_uuids() -> TestResult {
    can_run()?;
    let nvml = nvml_helper()?;
    for (helper, env, why) in [
        (None, vec![], "vessel-nvml (VESSEL_NVML) not found"),
        (
            Some(nvml.as_path()),
            vec![("VESSEL_FAKE_NVML", "no-driver")],
            "Driver Not Loaded",
        ),
    ] {
        let out = gpu_cdi(&[], helper, &env);
        let err = harness::stderr_of(&out);
        assert!(out.status.success(), "{why}: {err}");
        assert!(
            err.contains("MIG UUIDs left out") && err.contains(why),
            "{err}"
        );
        let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = names(&spec);
        assert!(
            n.contains(&"0:0".to_string()) && n.contains(&"all".to_string()),
            "{n:?}"
        );
        assert!(!n.iter().any(|d| d.starts_with("MIG-")), "{n:?}");
    }
    Ok(())
}

fn a_mig_uuid_gets_exactly_its_mig_device() -> TestResult {
    can_run()?;
    let nvml = nvml_helper()?;
    let (dir, _) = spec_dir(&nvml);
    let env = format!("NVIDIA_VISIBLE_DEVICES={MIG_UUID}");
    let out =
        cdi_bundle(&format!("{ALL_NODES}; gpu-probe"), &[&env], dir.path()).run_ok(&unique("gpu"));
    assert!(
        out.starts_with("nvidia1 nvidia-cap12 nvidia-cap13 \n"),
        "{out}"
    );
    assert!(out.contains("gpus=1"), "{out}");
    // The jit-cdi kind, named by an annotation, reads the same spec.
    let mut b = cdi_bundle(ALL_NODES, &[], dir.path());
    b.config["annotations"] =
        json!({"cdi.k8s.io/gpu": format!("runtime.nvidia.com/gpu={MIG_UUID}")});
    let out = b.run_ok(&unique("gpu"));
    assert!(
        out.starts_with("nvidia1 nvidia-cap12 nvidia-cap13 \n"),
        "{out}"
    );
    Ok(())
}

fn a_mig_uuid_no_spec_names_fails_saying_how_to_fix_it() -> TestResult {
    can_run()?;
    let empty = tempfile::tempdir().unwrap();
    let env = format!("NVIDIA_VISIBLE_DEVICES={MIG_UUID}");
    let err = run_fail(&cdi_bundle("true", &[&env], empty.path()));
    assert!(
        err.contains(MIG_UUID)
            && err.contains("vessel gpu cdi --output /var/run/cdi/nvidia.yaml")
            && err.contains("NVML"),
        "{err}"
    );
    Ok(())
}

fn jit_cdi_names_are_answered_from_discovery() -> TestResult {
    can_run()?;
    let empty = tempfile::tempdir().unwrap();
    let cases = [
        (Some("runtime.nvidia.com/gpu=0"), None, "nvidia1 \n"),
        (None, Some("runtime.nvidia.com/gpu=1"), "nvidia0 \n"),
        (
            Some("runtime.nvidia.com/gpu=GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
            None,
            "nvidia0 \n",
        ),
        (
            Some("runtime.nvidia.com/gpu=0:0"),
            None,
            "nvidia1 nvidia-cap12 nvidia-cap13 \n",
        ),
        (
            None,
            Some("runtime.nvidia.com/gpu=all"),
            "nvidia0 nvidia1 \n",
        ),
    ];
    for (env, annotation, want) in cases {
        let vars: Vec<String> = env
            .map(|e| format!("NVIDIA_VISIBLE_DEVICES={e}"))
            .into_iter()
            .collect();
        let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
        let mut b = cdi_bundle(&format!("{ALL_NODES}; gpu-probe"), &vars, empty.path());
        if let Some(a) = annotation {
            b.config["annotations"] = json!({ "cdi.k8s.io/gpu": a });
        }
        let out = b.run_ok(&unique("gpu"));
        assert!(out.starts_with(want), "{env:?} {annotation:?}: {out}");
    }
    Ok(())
}

fn imex_channels_have_cdi_names() -> TestResult {
    can_run()?;
    let empty = tempfile::tempdir().unwrap();
    let run = |cdi_dir: &Path, annotation: &str| {
        let mut b = cdi_bundle(ALL_NODES, &["NVIDIA_VISIBLE_DEVICES=0"], cdi_dir);
        b.config["annotations"] = json!({ "cdi.k8s.io/imex": annotation });
        b.run_ok(&unique("gpu"))
    };
    // Without a spec vessel answers the kind itself.
    assert_eq!(
        run(empty.path(), "nvidia.com/imex-channel=1"),
        "nvidia1 channel1 \n"
    );
    assert_eq!(
        run(empty.path(), "nvidia.com/imex-channel=all"),
        "nvidia1 channel0 channel1 \n"
    );
    // The spec `gpu cdi --class imex-channel` writes gives the same.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imex.json");
    let out = gpu_cdi(
        &[
            "--class",
            "imex-channel",
            "--output",
            file.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", harness::stderr_of(&out));
    let spec: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(spec["kind"], "nvidia.com/imex-channel");
    assert_eq!(names(&spec), ["0", "1", "all"]);
    assert_eq!(
        run(dir.path(), "nvidia.com/imex-channel=1"),
        "nvidia1 channel1 \n"
    );
    Ok(())
}

/// The units as `make install SYSTEMD=1` writes them, with `bin` as the
/// installed vessel.
fn installed_units(bin: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd");
    let mut paths = Vec::new();
    for ext in ["service", "path"] {
        let name = format!("vessel-cdi-refresh.{ext}");
        let text = std::fs::read_to_string(src.join(&name)).unwrap();
        let to = dir.path().join(&name);
        std::fs::write(
            &to,
            text.replace("/usr/local/bin/vessel", bin.to_str().unwrap()),
        )
        .unwrap();
        paths.push(to);
    }
    let path = paths.pop().unwrap();
    (dir, paths.pop().unwrap(), path)
}

fn the_refresh_units_pass_systemd_analyze_verify() -> TestResult {
    can_run()?;
    let (_units, service, path) = installed_units(&harness::runtime_bin());
    let Ok(out) = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args([&service, &path])
        .output()
    else {
        return skip(
            Why::HostFeature,
            "no systemd-analyze (systemd) to verify the units with",
        );
    };
    let err = harness::stderr_of(&out);
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("vessel-cdi-refresh"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
    Ok(())
}

fn the_refresh_units_command_writes_the_spec() -> TestResult {
    can_run()?;
    let (_units, service, _) = installed_units(&harness::runtime_bin());
    let text = std::fs::read_to_string(&service).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(Path::new(words[0]), harness::runtime_bin(), "{exec}");
    let at = words
        .iter()
        .position(|w| *w == "--output")
        .expect("--output");
    assert_eq!(words[at + 1], "/var/run/cdi/nvidia.yaml");
    // The same command, against the fake driver and into a temp dir.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nvidia.yaml");
    let mut args: Vec<String> = words[1..].iter().map(|w| w.to_string()).collect();
    args[at] = file.display().to_string();
    let out = Command::new(words[0])
        .env("VESSEL_CONFIG", NO_CONFIG)
        .arg("--gpu-root")
        .arg(fake_root())
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", harness::stderr_of(&out));
    let spec: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(spec["kind"], "nvidia.com/gpu");
    assert!(names(&spec).contains(&"all".to_string()));
    Ok(())
}

harness::tests![
    the_spec_has_every_device_and_the_version_asked_for,
    without_nvml_the_spec_has_all_but_mig_uuids,
    a_mig_uuid_gets_exactly_its_mig_device,
    a_mig_uuid_no_spec_names_fails_saying_how_to_fix_it,
    jit_cdi_names_are_answered_from_discovery,
    imex_channels_have_cdi_names,
    the_refresh_units_pass_systemd_analyze_verify,
    the_refresh_units_command_writes_the_spec,
];
