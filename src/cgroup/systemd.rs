//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is
//! a transient scope (`cgroupsPath` = `slice:prefix:name` → unit
//! `prefix-name.scope` in `slice`) that systemd creates around the init
//! process, with the resources and device rules as unit properties so a
//! `systemctl daemon-reload` re-applies them instead of resetting them
//! (the way GPUs got lost under NVIDIA's hook: toolkit issues 251/1227).
//! It is delegated, so vessel then writes the files systemd has no
//! property for, as with the cgroupfs driver.

use super::dbus::{Buf, Conn, Value};
use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use std::path::{Path, PathBuf};

pub const SOCKET: &str = "/run/systemd/private";

/// A container's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub slice: String,
    /// `prefix-name.scope`
    pub name: String,
    /// The scope's path inside every cgroup hierarchy.
    pub cgroup: PathBuf,
}

fn valid_part(s: &str) -> bool {
    !s.contains('/') && !s.contains("..") && s.chars().all(|c| c.is_ascii_graphic())
}

/// `system.slice:docker:ID` (empty: `system.slice:vessel:ID`).
pub fn parse_path(cgroups_path: Option<&Path>, id: &str) -> Result<Unit> {
    let text = cgroups_path
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (slice, prefix, name) = if text.is_empty() {
        (
            "system.slice".to_string(),
            "vessel".to_string(),
            id.to_string(),
        )
    } else {
        let parts: Vec<&str> = text.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(Error::invalid(format!(
                "linux.cgroupsPath {text:?}: with --systemd-cgroup it must be slice:prefix:name (e.g. system.slice:vessel:{id})"
            )));
        };
        (
            if slice.is_empty() {
                "system.slice".into()
            } else {
                slice.to_string()
            },
            prefix.to_string(),
            name.to_string(),
        )
    };
    if !slice.ends_with(".slice")
        || ![&slice, &prefix, &name].iter().all(|p| valid_part(p))
        || name.is_empty()
    {
        return Err(Error::invalid(format!(
            "linux.cgroupsPath {text:?}: not a valid slice:prefix:name (the slice must end in .slice; no '/' or '..')"
        )));
    }
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    let cgroup = expand_slice(&slice)?.join(&unit);
    Ok(Unit {
        slice,
        name: unit,
        cgroup,
    })
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice` (systemd's nesting).
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let stem = slice.strip_suffix(".slice").unwrap_or(slice);
    let mut path = PathBuf::from("/");
    if stem == "-" || stem.is_empty() {
        return Ok(path);
    }
    if stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(Error::invalid(format!("slice {slice:?}: invalid name")));
    }
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

/// The name /proc/devices gives a major, for `char-NAME` rules.
fn major_name(typ: &str, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let section = if typ == "char" { "Character" } else { "Block" };
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("Character") || line.starts_with("Block") {
            inside = line.starts_with(section);
            continue;
        }
        let mut it = line.split_whitespace();
        if inside && it.next().and_then(|m| m.parse::<i64>().ok()) == Some(major) {
            return it.next().map(str::to_string);
        }
    }
    None
}

/// DeviceAllow entries for the allow rules (None: everything is allowed).
/// Deny rules after the leading "deny all" cannot be said to systemd; vessel's
/// own filter, applied as well, still enforces them.
pub fn device_allow(rules: &[LinuxDeviceCgroup]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for r in rules.iter().filter(|r| r.allow()) {
        let access = r.access().clone().unwrap_or_else(|| "rwm".into());
        let typ = match r.typ() {
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "char",
            Some(LinuxDeviceType::B) => "block",
            _ if r.major().is_none() && r.minor().is_none() => return None,
            _ => continue,
        };
        let entry = match (r.major(), r.minor()) {
            (Some(ma), Some(mi)) if ma >= 0 && mi >= 0 => format!("/dev/{typ}/{ma}:{mi}"),
            (Some(ma), _) if ma >= 0 => match major_name(typ, ma) {
                Some(n) => format!("{typ}-{n}"),
                None => continue,
            },
            _ => format!("{typ}-*"),
        };
        out.push((entry, access));
    }
    Some(out)
}

/// The unit's properties: placement, delegation, accounting, and the
/// resources systemd manages itself.
pub fn properties(
    unit: &Unit,
    id: &str,
    pid: i32,
    r: Option<&LinuxResources>,
    rules: &[LinuxDeviceCgroup],
    v2: bool,
) -> Vec<(String, Value)> {
    let mut p: Vec<(String, Value)> = vec![
        (
            "Description".into(),
            Value::Str(format!("vessel container {id}")),
        ),
        ("Slice".into(), Value::Str(unit.slice.clone())),
        ("Delegate".into(), Value::Bool(true)),
        ("PIDs".into(), Value::U32s(vec![pid as u32])),
        ("DefaultDependencies".into(), Value::Bool(false)),
        ("MemoryAccounting".into(), Value::Bool(true)),
        ("CPUAccounting".into(), Value::Bool(true)),
        ("TasksAccounting".into(), Value::Bool(true)),
    ];
    let size = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if let Some(r) = r {
        if let Some(m) = r.memory() {
            if let Some(l) = m.limit().filter(|&l| l != 0) {
                p.push((
                    if v2 { "MemoryMax" } else { "MemoryLimit" }.into(),
                    Value::U64(size(l)),
                ));
            }
            if v2 {
                if let Some(l) = m.reservation().filter(|&l| l != 0) {
                    p.push(("MemoryLow".into(), Value::U64(size(l))));
                }
                // v1's swap is memory+swap, v2's swap alone (as resources::plan_v2).
                if let Some(sw) = m.swap().filter(|&s| s != 0) {
                    let swap = match m.limit() {
                        _ if sw < 0 => u64::MAX,
                        Some(l) if l > 0 => (sw - l).max(0) as u64,
                        _ => sw as u64,
                    };
                    p.push(("MemorySwapMax".into(), Value::U64(swap)));
                }
            }
        }
        if let Some(l) = r.pids().as_ref().map(|p| p.limit()).filter(|&l| l != 0) {
            p.push(("TasksMax".into(), Value::U64(size(l))));
        }
        if let Some(c) = r.cpu() {
            if let Some(s) = c.shares().filter(|&s| s != 0) {
                if v2 {
                    let weight = 1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142;
                    p.push(("CPUWeight".into(), Value::U64(weight)));
                } else {
                    p.push(("CPUShares".into(), Value::U64(s)));
                }
            }
            if let Some(q) = c.quota().filter(|&q| q > 0) {
                let period = c.period().filter(|&v| v != 0).unwrap_or(100_000);
                p.push((
                    "CPUQuotaPerSecUSec".into(),
                    Value::U64((q as u64 * 1_000_000).div_ceil(period).max(10_000)),
                ));
                p.push(("CPUQuotaPeriodUSec".into(), Value::U64(period)));
            }
        }
    }
    match device_allow(rules) {
        Some(list) => {
            p.push(("DevicePolicy".into(), Value::Str("strict".into())));
            p.push(("DeviceAllow".into(), Value::StrPairs(list)));
        }
        None => p.push(("DevicePolicy".into(), Value::Str("auto".into()))),
    }
    p
}

fn dbus_error(what: &str, unit: &str, (name, msg): (String, String)) -> Error {
    let hint = if name.ends_with("UnitExists") {
        format!(" (left from an earlier container? `systemctl stop {unit}`)")
    } else {
        String::new()
    };
    Error::invalid(format!("systemd: {what} {unit}: {name}: {msg}{hint}"))
}

/// Starts the scope with `pid` in it and waits until systemd has moved it.
pub fn start(unit: &Unit, pid: i32, props: &[(String, Value)]) -> Result<()> {
    let mut conn = Conn::connect(Path::new(SOCKET))?;
    let mut body = Buf::default();
    body.str(&unit.name);
    body.str("replace");
    body.array(8, |b| {
        for (k, v) in props {
            b.structure(|b| {
                b.str(k);
                v.write(b);
            });
        }
    });
    body.array(8, |_| {});
    conn.call("StartTransientUnit", "ssa(sv)a(sa(sv))", &body)?
        .map_err(|e| dbus_error("starting", &unit.name, e))?;
    // The job moves the pid; it is done once /proc says so.
    let want = format!("/{}", unit.name);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if now.lines().any(|l| l.ends_with(&want)) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::invalid(format!(
                "systemd: {} started but pid {pid} is not in it after 10 s",
                unit.name
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Stops the scope (its processes are killed by systemd) and forgets a
/// failed state; a unit that is already gone is fine.
pub fn stop(unit: &str) -> Result<()> {
    let mut conn = Conn::connect(Path::new(SOCKET))?;
    let mut body = Buf::default();
    body.str(unit);
    body.str("replace");
    match conn.call("StopUnit", "ss", &body)? {
        Ok(_) => {}
        Err((name, _)) if name.ends_with("NoSuchUnit") => return Ok(()),
        Err(e) => return Err(dbus_error("stopping", unit, e)),
    }
    let mut body = Buf::default();
    body.str(unit);
    let _ = conn.call("ResetFailedUnit", "s", &body)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_names_the_scope_and_its_slice() {
        let u = parse_path(Some(Path::new("system.slice:docker:abc")), "x").unwrap();
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(u.cgroup, Path::new("/system.slice/docker-abc.scope"));
        let u = parse_path(Some(Path::new("a-b.slice::c")), "x").unwrap();
        assert_eq!(u.cgroup, Path::new("/a.slice/a-b.slice/c.scope"));
        let u = parse_path(None, "id1").unwrap();
        assert_eq!(u.name, "vessel-id1.scope");
        for bad in [
            "/abs/path",
            "system.slice:x",
            "system:p:n",
            "system.slice:../x:n",
            "a--b.slice:p:n",
        ] {
            assert!(parse_path(Some(Path::new(bad)), "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn device_rules_become_device_allow() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":195,"minor":0,"access":"rw"},
                {"allow":true,"type":"c","access":"m"},{"allow":true,"type":"c","major":1,"access":"rwm"}]"#,
        )
        .unwrap();
        let a = device_allow(&rules).unwrap();
        assert_eq!(a[0], ("/dev/char/195:0".to_string(), "rw".to_string()));
        assert_eq!(a[1], ("char-*".to_string(), "m".to_string()));
        assert_eq!(a[2], ("char-mem".to_string(), "rwm".to_string()));
        let all: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"access":"rwm"}]"#).unwrap();
        assert_eq!(device_allow(&all), None);
    }
}
