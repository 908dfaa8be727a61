//! list (table, JSON, quiet), spec (into --bundle or the cwd, never over a
//! config.json) and --version.

use super::bundle;
use crate::harness::{self, stderr_of, Bundle, TestResult};
use serde_json::Value;

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

harness::tests![
    list_shows_container_in_table_json_and_quiet,
    list_of_empty_root_prints_header_only,
    spec_writes_config_and_refuses_to_overwrite,
    spec_without_bundle_writes_into_cwd,
    version_flag_prints_version,
];
