//! CDI-shaped container edits and how they change a spec (CDI's rules):
//! a device node replaces any device at its path and gets an allow rule,
//! a mount replaces any mount at its destination and mounts are ordered by
//! path depth, env entries replace the same key, hooks are appended.
//! After this step the rest of vessel sees an ordinary spec.

use crate::error::{Error, Result};
use oci_spec::runtime::{Hook, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<CdiHook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<CdiMount>,
    #[serde(
        default,
        rename = "additionalGIDs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub additional_gids: Vec<u32>,
    /// Known to CDI, not supported here: an error when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_devices: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceNode {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CdiMount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CdiHook {
    pub hook_name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

impl ContainerEdits {
    /// Adds `other` after these edits.
    pub fn extend(&mut self, other: &ContainerEdits) {
        self.env.extend(other.env.iter().cloned());
        self.device_nodes.extend(other.device_nodes.iter().cloned());
        self.hooks.extend(other.hooks.iter().cloned());
        self.mounts.extend(other.mounts.iter().cloned());
        self.additional_gids
            .extend(other.additional_gids.iter().cloned());
        if other.intel_rdt.is_some() {
            self.intel_rdt = other.intel_rdt.clone();
        }
        if other.net_devices.is_some() {
            self.net_devices = other.net_devices.clone();
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == ContainerEdits::default()
    }
}

/// A read-only bind of a file or directory vessel made over a `/proc`
/// path of the container (its copies of the driver's `/proc` files).
pub fn proc_bind(host_path: &std::path::Path, container_path: &str) -> CdiMount {
    CdiMount {
        host_path: host_path.to_string_lossy().into_owned(),
        container_path: container_path.into(),
        options: ["ro", "nosuid", "nodev", "noexec", "bind"]
            .map(String::from)
            .to_vec(),
        typ: Some("bind".into()),
    }
}

/// Read-only, no set-uid, no devices: how driver files are bound.
pub fn ro_bind_options() -> Vec<String> {
    ["ro", "nosuid", "nodev", "bind"].map(String::from).to_vec()
}

fn device_type(s: &str, path: &str) -> Result<LinuxDeviceType> {
    Ok(match s {
        "c" | "u" => LinuxDeviceType::C,
        "b" => LinuxDeviceType::B,
        "p" => LinuxDeviceType::P,
        _ => {
            return Err(Error::invalid(format!(
                "CDI device node {path}: unknown type {s:?} (c, b, u or p)"
            )))
        }
    })
}

/// Fills type, numbers and mode from the host node, as CDI does.
fn complete(node: &DeviceNode) -> Result<DeviceNode> {
    let mut n = node.clone();
    if n.typ.is_some() && n.major.is_some() && n.minor.is_some() && n.file_mode.is_some() {
        return Ok(n);
    }
    let host = n.host_path.clone().unwrap_or_else(|| n.path.clone());
    let meta = std::fs::metadata(&host);
    match meta {
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_block_device() => {
            let t = if m.file_type().is_char_device() { "c" } else { "b" };
            if n.typ.is_none() {
                n.typ = Some(t.into());
            }
            if n.major.is_none() || n.minor.is_none() {
                n.major = Some(libc::major(m.rdev()) as i64);
                n.minor = Some(libc::minor(m.rdev()) as i64);
            }
            if n.file_mode.is_none() {
                n.file_mode = Some(m.mode() & 0o777);
            }
            Ok(n)
        }
        _ if n.major.is_some() && n.minor.is_some() => Ok(n),
        Ok(_) => Err(Error::invalid(format!(
            "CDI device node {}: {host} is not a device node",
            n.path
        ))),
        Err(e) => Err(Error::invalid(format!(
            "CDI device node {}: {host}: {e} (give type, major and minor, or a host node that exists)",
            n.path
        ))),
    }
}

fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count()
}

/// Applies `edits` to `spec` with CDI's rules.
pub fn apply(spec: &mut Spec, edits: &ContainerEdits) -> Result<()> {
    if edits.intel_rdt.is_some() || edits.net_devices.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(Error::invalid(
            "CDI containerEdits: intelRdt and netDevices are not supported by vessel",
        ));
    }
    apply_env(spec, &edits.env);
    apply_device_nodes(spec, &edits.device_nodes)?;
    apply_mounts(spec, &edits.mounts)?;
    if !edits.hooks.is_empty() {
        apply_hooks(spec, &edits.hooks)?;
    }
    apply_additional_gids(spec, &edits.additional_gids);
    Ok(())
}

/// Adds each node to `linux.devices`, replacing any at its path, with an
/// allow rule in `linux.resources.devices` for a char or block node.
fn apply_device_nodes(spec: &mut Spec, nodes: &[DeviceNode]) -> Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let owner = spec
        .process()
        .as_ref()
        .map(|p| (p.user().uid(), p.user().gid()))
        .unwrap_or((0, 0));
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut devices = linux.devices().clone().unwrap_or_default();
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    for node in nodes {
        if !node.path.starts_with('/') {
            return Err(Error::invalid(format!(
                "CDI device node {:?}: path must be absolute",
                node.path
            )));
        }
        let n = complete(node)?;
        let typ = device_type(n.typ.as_deref().unwrap_or("c"), &n.path)?;
        devices.retain(|d| d.path() != Path::new(&n.path));
        devices.push(linux_device(&n, typ, owner));
        if matches!(typ, LinuxDeviceType::C | LinuxDeviceType::B) {
            rules.push(allow_rule(&n, typ));
        }
    }
    resources.set_devices(Some(rules));
    linux.set_resources(Some(resources));
    linux.set_devices(Some(devices));
    spec.set_linux(Some(linux));
    Ok(())
}

/// The spec's device for a completed node; `owner` is the container
/// user's (uid, gid).
fn linux_device(n: &DeviceNode, typ: LinuxDeviceType, (uid, gid): (u32, u32)) -> LinuxDevice {
    let mut dev = LinuxDevice::default();
    dev.set_path(PathBuf::from(&n.path));
    dev.set_typ(typ);
    dev.set_major(n.major.unwrap_or(0));
    dev.set_minor(n.minor.unwrap_or(0));
    dev.set_file_mode(n.file_mode);
    // A node without an owner belongs to the container's user.
    dev.set_uid(n.uid.or((uid > 0).then_some(uid)));
    dev.set_gid(n.gid.or((gid > 0).then_some(gid)));
    dev
}

/// The device cgroup rule that lets the container open a completed node
/// (`rwm` unless the node names its permissions).
fn allow_rule(n: &DeviceNode, typ: LinuxDeviceType) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true);
    rule.set_typ(Some(typ));
    rule.set_major(Some(n.major.unwrap_or(0)));
    rule.set_minor(Some(n.minor.unwrap_or(0)));
    rule.set_access(Some(n.permissions.clone().unwrap_or_else(|| "rwm".into())));
    rule
}

/// Adds each mount, replacing any at its destination, then orders all
/// mounts by path depth so a parent is mounted before what is inside it.
fn apply_mounts(spec: &mut Spec, edits: &[CdiMount]) -> Result<()> {
    if edits.is_empty() {
        return Ok(());
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in edits {
        let mount = spec_mount(m)?;
        mounts.retain(|x| x.destination() != mount.destination());
        mounts.push(mount);
    }
    mounts.sort_by_key(|m| depth(m.destination()));
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// The spec's mount for a CDI mount (a bind mount unless it names a type).
fn spec_mount(m: &CdiMount) -> Result<Mount> {
    if !m.container_path.starts_with('/') {
        return Err(Error::invalid(format!(
            "CDI mount {:?}: containerPath must be absolute",
            m.container_path
        )));
    }
    let mut mount = Mount::default();
    mount.set_destination(PathBuf::from(&m.container_path));
    mount.set_source(Some(PathBuf::from(&m.host_path)));
    mount.set_typ(Some(m.typ.clone().unwrap_or_else(|| "bind".into())));
    mount.set_options(Some(m.options.clone()));
    Ok(mount)
}

/// Adds the groups to the process's additional groups, once each and
/// never group 0.
fn apply_additional_gids(spec: &mut Spec, additional: &[u32]) {
    if additional.is_empty() {
        return;
    }
    let Some(mut process) = spec.process().clone() else {
        return;
    };
    let mut user = process.user().clone();
    let mut gids = user.additional_gids().clone().unwrap_or_default();
    for g in additional {
        if *g != 0 && !gids.contains(g) {
            gids.push(*g);
        }
    }
    user.set_additional_gids(Some(gids));
    process.set_user(user);
    spec.set_process(Some(process));
}

fn apply_env(spec: &mut Spec, env: &[String]) {
    if env.is_empty() {
        return;
    }
    let Some(mut process) = spec.process().clone() else {
        return;
    };
    let mut current = process.env().clone().unwrap_or_default();
    for e in env {
        let key = e.split('=').next().unwrap_or(e);
        current.retain(|c| c.split('=').next() != Some(key));
        current.push(e.clone());
    }
    process.set_env(Some(current));
    spec.set_process(Some(process));
}

fn apply_hooks(spec: &mut Spec, hooks: &[CdiHook]) -> Result<()> {
    let mut all = spec.hooks().clone().unwrap_or_default();
    for h in hooks {
        let mut hook = Hook::default();
        hook.set_path(PathBuf::from(&h.path));
        hook.set_args((!h.args.is_empty()).then(|| h.args.clone()));
        hook.set_env((!h.env.is_empty()).then(|| h.env.clone()));
        hook.set_timeout(h.timeout);
        let push = |list: &Option<Vec<Hook>>| {
            let mut v = list.clone().unwrap_or_default();
            v.push(hook.clone());
            Some(v)
        };
        match h.hook_name.as_str() {
            "prestart" => all.set_prestart(push(all.prestart())),
            "createRuntime" => all.set_create_runtime(push(all.create_runtime())),
            "createContainer" => all.set_create_container(push(all.create_container())),
            "startContainer" => all.set_start_container(push(all.start_container())),
            "poststart" => all.set_poststart(push(all.poststart())),
            "poststop" => all.set_poststop(push(all.poststop())),
            other => {
                return Err(Error::invalid(format!(
                    "CDI hook {}: unknown hookName {other:?}",
                    h.path
                )))
            }
        };
    }
    spec.set_hooks(Some(all));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        serde_json::from_str(
            r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},
                "process":{"user":{"uid":1000,"gid":1000},"cwd":"/","args":["sh"],"env":["PATH=/bin","NVIDIA_VISIBLE_DEVICES=all"]},
                "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                          {"destination":"/usr/lib/libcuda.so.1","type":"bind","source":"/old"},
                          {"destination":"/dev/pts","type":"devpts","source":"devpts"}],
                "linux":{"devices":[{"path":"/dev/nvidia0","type":"c","major":1,"minor":1}],
                         "resources":{"devices":[{"allow":false,"access":"rwm"}]}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn applies_with_cdi_rules() {
        let mut s = spec();
        let edits: ContainerEdits = serde_json::from_str(
            r#"{"env":["NVIDIA_VISIBLE_DEVICES=void"],
                "deviceNodes":[{"path":"/dev/nvidia0","type":"c","major":195,"minor":0,"fileMode":438},
                               {"path":"/dev/nvidiactl","type":"c","major":195,"minor":255,"fileMode":438,"uid":0,"permissions":"rw"}],
                "mounts":[{"hostPath":"/host/libcuda.so.1","containerPath":"/usr/lib/libcuda.so.1","options":["ro","nosuid","nodev","bind"]}],
                "hooks":[{"hookName":"createContainer","path":"/bin/true"}],
                "additionalGIDs":[44]}"#,
        )
        .unwrap();
        apply(&mut s, &edits).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["process"]["env"],
            serde_json::json!(["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=void"])
        );
        let devs = v["linux"]["devices"].as_array().unwrap();
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0]["major"], 195);
        assert_eq!(devs[0]["uid"], 1000);
        assert_eq!(devs[1]["uid"], 0);
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules[1]["access"], "rwm");
        assert_eq!(rules[2]["access"], "rw");
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(dests, ["/proc", "/dev/pts", "/usr/lib/libcuda.so.1"]);
        assert_eq!(v["mounts"][2]["source"], "/host/libcuda.so.1");
        assert_eq!(v["hooks"]["createContainer"][0]["path"], "/bin/true");
        assert_eq!(
            v["process"]["user"]["additionalGids"],
            serde_json::json!([44])
        );
    }

    #[test]
    fn unknown_fields_and_bad_edits_are_errors() {
        assert!(serde_json::from_str::<ContainerEdits>(r#"{"devicenodes":[]}"#).is_err());
        let bad_hook: ContainerEdits =
            serde_json::from_str(r#"{"hooks":[{"hookName":"whenever","path":"/x"}]}"#).unwrap();
        assert!(apply(&mut spec(), &bad_hook)
            .unwrap_err()
            .to_string()
            .contains("whenever"));
        let missing: ContainerEdits =
            serde_json::from_str(r#"{"deviceNodes":[{"path":"/dev/nope-vessel-test"}]}"#).unwrap();
        assert!(apply(&mut spec(), &missing).is_err());
    }
}
