//! Device cgroup rules for cgroup v1 (`devices.allow`/`devices.deny`).

use crate::error::{Error, IoContext, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::path::Path;

/// Writes v1 device rules into the devices directory `dir`: "deny all"
/// first, as runc's device emulator starts from it, then the spec's rules
/// and runc's defaults in order.
pub(super) fn apply_v1(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let deny_all = dir.join("devices.deny");
    std::fs::write(&deny_all, "a").ctx("writing", &deny_all)?;
    for rule in rules.iter().chain(default_device_rules().iter()) {
        let (file, line) = v1_device_line(rule)?;
        let path = dir.join(file);
        std::fs::write(&path, &line).map_err(|e| {
            Error::invalid(format!("device rule {line:?} in {}: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// runc's default allow list, appended after the spec's rules.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

/// The v1 file (`devices.allow`/`devices.deny`) and line for one rule.
pub fn v1_device_line(rule: &LinuxDeviceCgroup) -> Result<(&'static str, String)> {
    let typ = match rule.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::P) => {
            return Err(Error::invalid(
                "linux.resources.devices: type \"p\" (fifo) cannot be a device cgroup rule",
            ))
        }
    };
    let num = |n: Option<i64>| {
        n.filter(|&n| n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(Error::invalid(format!(
            "linux.resources.devices: access {access:?} must be made of r, w and m"
        )));
    }
    let line = if typ == 'a' {
        format!("a *:* {access}")
    } else {
        format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor()))
    };
    Ok((
        if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        },
        line,
    ))
}
