//! `update`'s input: the `--resources` JSON (`linux.resources`), with
//! runc's flags merged over it (a flag wins over the file's field).

use crate::cli::UpdateArgs;
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

/// The fields `linux.resources` has; anything else in `--resources` is a mistake.
const KNOWN: [&str; 9] = [
    "devices",
    "memory",
    "cpu",
    "pids",
    "blockIO",
    "hugepageLimits",
    "network",
    "rdma",
    "unified",
];

/// The resources `update` applies: the `--resources` JSON, then the flags over it.
pub fn resources(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = match &a.resources {
        Some(path) => read_json(path)?,
        None => json!({}),
    };
    check_fields(&r)?;
    merge_flags(&mut r, a)?;
    serde_json::from_value(r).map_err(|e| Error::invalid(format!("update: {e}")))
}

/// The `--resources` file (`-`: stdin) as JSON.
fn read_json(path: &std::path::Path) -> Result<Value> {
    let text = if path.as_os_str() == "-" {
        let mut t = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut t)
            .map_err(|e| Error::invalid(format!("reading resources from stdin: {e}")))?;
        t
    } else {
        std::fs::read(path)
            .map_err(|e| Error::invalid(format!("--resources {}: {e}", path.display())))?
    };
    serde_json::from_slice(&text).map_err(|e| Error::invalid(format!("--resources: {e}")))
}

fn check_fields(r: &Value) -> Result<()> {
    match r
        .as_object()
        .and_then(|o| o.keys().find(|k| !KNOWN.contains(&k.as_str())))
    {
        Some(unknown) => Err(Error::invalid(format!(
            "--resources: unknown field {unknown:?} (known: {})",
            KNOWN.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Sets `r[section][key]`, making the section where it is missing.
fn set(r: &mut Value, section: &str, key: &str, v: Value) {
    if !r[section].is_object() {
        r[section] = json!({});
    }
    r[section][key] = v;
}

/// The flags over the JSON, as runc's `update` merges them.
fn merge_flags(r: &mut Value, a: &UpdateArgs) -> Result<()> {
    for (flag, key, v) in [
        ("--memory", "limit", &a.memory),
        ("--memory-reservation", "reservation", &a.memory_reservation),
        ("--memory-swap", "swap", &a.memory_swap),
    ] {
        if let Some(s) = v {
            set(r, "memory", key, parse_size(flag, s)?.into());
        }
    }
    for (key, v) in [
        ("shares", a.cpu_shares),
        ("period", a.cpu_period),
        ("realtimePeriod", a.cpu_rt_period),
    ] {
        if let Some(v) = v {
            set(r, "cpu", key, v.into());
        }
    }
    for (key, v) in [
        ("quota", a.cpu_quota),
        ("realtimeRuntime", a.cpu_rt_runtime),
    ] {
        if let Some(v) = v {
            set(r, "cpu", key, v.into());
        }
    }
    for (key, v) in [("cpus", &a.cpuset_cpus), ("mems", &a.cpuset_mems)] {
        if let Some(v) = v {
            set(r, "cpu", key, v.clone().into());
        }
    }
    if let Some(v) = a.pids_limit {
        set(r, "pids", "limit", v.into());
    }
    if let Some(v) = a.blkio_weight {
        set(r, "blockIO", "weight", v.into());
    }
    Ok(())
}

/// `512m`, `1G`, `1024` (bytes); `-1` is unlimited.
pub fn parse_size(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| {
        Error::invalid(format!("{flag} {s:?}: not a size (e.g. 512m, 1g, 1048576)"))
    })?;
    if n < 0.0 && n != -1.0 {
        return Err(Error::invalid(format!("{flag} {s:?}: negative size")));
    }
    Ok(if n == -1.0 {
        -1
    } else {
        (n * mult as f64) as i64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> UpdateArgs {
        let mut full = vec!["vessel", "update"];
        full.extend_from_slice(argv);
        match crate::cli::Cli::try_parse_from(full).unwrap().command {
            Some(crate::cli::Command::Update(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_win_over_the_json() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("r.json");
        std::fs::write(
            &file,
            r#"{"memory":{"limit":1000,"swap":5000},"pids":{"limit":7}}"#,
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let r = resources(&args(&[
            "-r",
            path,
            "--memory",
            "1m",
            "--cpu-quota=-1",
            "c1",
        ]))
        .unwrap();
        let m = r.memory().as_ref().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(1 << 20), Some(5000)));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(-1));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 7);
    }

    #[test]
    fn unknown_fields_and_bad_sizes_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("r.json");
        std::fs::write(&file, r#"{"memry":{}}"#).unwrap();
        let e = resources(&args(&["-r", file.to_str().unwrap(), "c1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"memry\""), "{e}");
        let e = resources(&args(&["--memory", "lots", "c1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--memory"), "{e}");
        assert_eq!(parse_size("--memory", "-1").unwrap(), -1);
        assert_eq!(parse_size("--memory", "1.5k").unwrap(), 1536);
        assert!(parse_size("--memory", "-2").is_err());
    }
}
