//! Which words of the spec a request is read from, by the node's policy.
//! NVIDIA's Kubernetes device plugin passes a pod's GPUs either in
//! `NVIDIA_VISIBLE_DEVICES` (its `envvar` strategy) or as one `/dev/null`
//! bind per device under [`VOLUME_MOUNTS_ROOT`] (`volume-mounts`), which a
//! pod cannot fake through its own env (nor at all, where Pod Security
//! forbids hostPath volumes and SYS_ADMIN). The rule is NVIDIA container
//! toolkit's, with its setting names: the mounts when they are accepted
//! and present, else the variable, which an unprivileged container may
//! set only when the node accepts that. CDI annotations and the engines'
//! hooks come from the engine, not the pod, and are not subject to it.

use super::env::env_value;
use super::{Caps, HookRequest};
use crate::error::{Error, Result};
use oci_spec::runtime::{Capability, Mount, Spec};
use std::collections::HashMap;
use std::path::Path;

/// Where the device plugin mounts `/dev/null` once per allocated device:
/// `<root>/<id>` (an index, a UUID or a CDI name), `<root>/cdi/<CDI name>`
/// and `<root>/imex/<channel>`. As the variable's value, it says "the
/// devices are in the mounts".
pub const VOLUME_MOUNTS_ROOT: &str = "/var/run/nvidia-container-devices";

/// The config keys of the policy (`[gpu]`), named in messages.
pub const ENVVAR_SETTING: &str = "accept-nvidia-visible-devices-envvar-when-unprivileged";
pub const VOLUME_MOUNTS_SETTING: &str = "accept-nvidia-visible-devices-as-volume-mounts";

/// What the node's config lets a container ask for, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// An unprivileged container's `NVIDIA_VISIBLE_DEVICES` and
    /// `NVIDIA_IMEX_CHANNELS` are read ([`ENVVAR_SETTING`]).
    pub envvar_when_unprivileged: bool,
    /// The device plugin's mounts are read ([`VOLUME_MOUNTS_SETTING`]).
    pub volume_mounts: bool,
    /// The capabilities when `NVIDIA_DRIVER_CAPABILITIES` is unset or empty.
    pub default_caps: Caps,
}

impl Default for Policy {
    /// The toolkit's defaults.
    fn default() -> Self {
        Policy {
            envvar_when_unprivileged: true,
            volume_mounts: false,
            default_caps: Caps::default_set(),
        }
    }
}

/// The parts of a spec a request is read from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    /// `process.env`.
    pub env: &'a [String],
    pub annotations: Option<&'a HashMap<String, String>>,
    /// The engines' GPU hooks, already taken out of the spec.
    pub hooks: &'a [HookRequest],
    /// The destinations of the spec's `/dev/null` binds under
    /// [`VOLUME_MOUNTS_ROOT`].
    pub device_mounts: &'a [&'a str],
    /// `CAP_SYS_ADMIN` in the process's bounding set: the toolkit's test
    /// for a privileged container.
    pub privileged: bool,
}

impl<'a> Inputs<'a> {
    /// Only an environment: an unprivileged container without mounts.
    pub fn env(env: &'a [String]) -> Inputs<'a> {
        Inputs {
            env,
            ..Default::default()
        }
    }

    /// The inputs of `spec`; `mounts` is [`device_mounts`] of it.
    pub fn of_spec(spec: &'a Spec, hooks: &'a [HookRequest], mounts: &'a [&'a str]) -> Inputs<'a> {
        Inputs {
            env: super::env::spec_env(spec),
            annotations: spec.annotations().as_ref(),
            hooks,
            device_mounts: mounts,
            privileged: is_privileged(spec),
        }
    }
}

/// True when the bounding set has CAP_SYS_ADMIN.
fn is_privileged(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .is_some_and(|b| b.contains(&Capability::SysAdmin))
}

/// A bind of `/dev/null` under [`VOLUME_MOUNTS_ROOT`], as the device plugin
/// makes them (the toolkit reads only those). Allocation-free: every
/// container start asks.
pub(super) fn is_device_mount(m: &Mount) -> bool {
    m.source().as_deref() == Some(Path::new("/dev/null"))
        && m.destination().starts_with(VOLUME_MOUNTS_ROOT)
}

/// The destinations of the spec's device mounts.
pub fn device_mounts(spec: &Spec) -> Vec<&str> {
    spec.mounts()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .filter(|m| is_device_mount(m))
        .filter_map(|m| m.destination().to_str())
        .collect()
}

/// What one mount under [`VOLUME_MOUNTS_ROOT`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountedId {
    /// An entry of a device list: index, UUID, CDI name.
    Device(String),
    /// An IMEX channel (`imex/<N>`).
    Imex(String),
}

/// The device a mount at `destination` names; None for a path that is
/// not below the root. `cdi/` is followed by a CDI name, written as
/// `vendor/class=name` or, as the toolkit writes it, `vendor/class/name`.
pub fn mounted_id(destination: &str) -> Option<MountedId> {
    let rest = destination.strip_prefix(VOLUME_MOUNTS_ROOT)?;
    if !rest.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = rest
        .split('/')
        .filter(|p| !matches!(*p, "" | "."))
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(match parts.as_slice() {
        ["imex", channel] => MountedId::Imex(channel.to_string()),
        ["cdi", vendor, class, name] if !class.contains('=') => {
            MountedId::Device(format!("{vendor}/{class}={name}"))
        }
        ["cdi", name @ ..] if !name.is_empty() => MountedId::Device(name.join("/")),
        _ => MountedId::Device(parts.join("/")),
    })
}

/// The two things the policy decides: GPUs and IMEX channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    Devices,
    Imex,
}

impl Asked {
    pub(super) fn env_key(self) -> &'static str {
        match self {
            Asked::Devices => "NVIDIA_VISIBLE_DEVICES",
            Asked::Imex => "NVIDIA_IMEX_CHANNELS",
        }
    }

    fn pick(self, id: MountedId) -> Option<String> {
        match (self, id) {
            (Asked::Devices, MountedId::Device(d)) | (Asked::Imex, MountedId::Imex(d)) => Some(d),
            _ => None,
        }
    }

    /// A value that asks for nothing, so ignoring it is not worth a word.
    fn asks_nothing(self, value: &str) -> bool {
        value
            .split(',')
            .map(str::trim)
            .all(|w| w.is_empty() || w == "void" || (self == Asked::Imex && w == "none"))
    }
}

/// Where the policy says to read a request from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Chosen<'a> {
    Nothing,
    /// The ids of the device plugin's mounts.
    Mounts(Vec<String>),
    /// The variable's value.
    Env(&'a str),
    /// The variable asked, the policy refused: why, for the log.
    Ignored(String),
}

/// The toolkit's rule: the mounts, when accepted and present; else the
/// variable, when the container is privileged or the node accepts it from
/// unprivileged ones. The variable set to [`VOLUME_MOUNTS_ROOT`] without
/// mounts to read is an error naming what to change, where the variable
/// is read at all.
pub(super) fn choose<'a>(inputs: &Inputs<'a>, policy: &Policy, asked: Asked) -> Result<Chosen<'a>> {
    if policy.volume_mounts {
        let mut ids: Vec<String> = Vec::new();
        for id in inputs.device_mounts.iter().filter_map(|d| mounted_id(d)) {
            if let Some(id) = asked.pick(id).filter(|id| !ids.contains(id)) {
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            return Ok(Chosen::Mounts(ids));
        }
    }
    let key = asked.env_key();
    let Some(value) = env_value(inputs.env, key).filter(|v| !asked.asks_nothing(v)) else {
        return Ok(Chosen::Nothing);
    };
    if inputs.privileged || policy.envvar_when_unprivileged {
        // The variable naming the mounts' root is no device list; where
        // the variable is not read at all, it is ignored like any other.
        if value.trim().trim_end_matches('/') == VOLUME_MOUNTS_ROOT {
            return Err(mounts_not_read(key, policy));
        }
        return Ok(Chosen::Env(value));
    }
    Ok(Chosen::Ignored(format!(
        "{key}={value} ignored: the container is not privileged (no CAP_SYS_ADMIN in its bounding set) and {ENVVAR_SETTING} is false in [gpu] of vessel's config file; it gets no GPU from that variable (the device plugin's volume-mounts strategy or CDI annotations pass GPUs on such a node)"
    )))
}

/// The variable says the devices are mounted, but none are read.
fn mounts_not_read(key: &str, policy: &Policy) -> Error {
    if policy.volume_mounts {
        Error::invalid(format!(
            "{key}={VOLUME_MOUNTS_ROOT} asks for the devices mounted there (the device plugin's volume-mounts strategy), but the spec has no bind of /dev/null below {VOLUME_MOUNTS_ROOT}/"
        ))
    } else {
        Error::invalid(format!(
            "{key}={VOLUME_MOUNTS_ROOT} asks for the devices mounted there (the device plugin's volume-mounts strategy), which this node does not read: set {VOLUME_MOUNTS_SETTING} = true in [gpu] of vessel's config file ($VESSEL_CONFIG, default /etc/vessel/config.toml), or run the device plugin with its envvar strategy"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_destinations_name_devices() {
        let id = |d: &str| mounted_id(d);
        let dev = |s: &str| Some(MountedId::Device(s.into()));
        let root = VOLUME_MOUNTS_ROOT;
        assert_eq!(id(&format!("{root}/GPU-abc")), dev("GPU-abc"));
        assert_eq!(id(&format!("{root}/0")), dev("0"));
        assert_eq!(id(&format!("{root}//1/")), dev("1"));
        assert_eq!(
            id(&format!("{root}/nvidia.com/gpu=0")),
            dev("nvidia.com/gpu=0")
        );
        assert_eq!(
            id(&format!("{root}/cdi/nvidia.com/gpu=0")),
            dev("nvidia.com/gpu=0")
        );
        assert_eq!(
            id(&format!("{root}/cdi/nvidia.com/gpu/all")),
            dev("nvidia.com/gpu=all")
        );
        assert_eq!(
            id(&format!("{root}/imex/3")),
            Some(MountedId::Imex("3".into()))
        );
        assert_eq!(id(root), None);
        assert_eq!(id(&format!("{root}/")), None);
        assert_eq!(id(&format!("{root}2/0")), None);
        assert_eq!(id(&format!("{root}/../etc")), None);
        assert_eq!(id("/dev/null"), None);
    }

    fn env(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// What `choose` makes of these devices.
    fn chosen<'a>(
        env: &'a [String],
        device_mounts: &'a [&'a str],
        privileged: bool,
        policy: &Policy,
    ) -> Result<Chosen<'a>> {
        let inputs = Inputs {
            env,
            device_mounts,
            privileged,
            ..Default::default()
        };
        choose(&inputs, policy, Asked::Devices)
    }

    /// Every combination of privilege, the two settings and where the
    /// devices are given, against the toolkit's rule.
    #[test]
    fn the_policy_matrix_is_the_toolkits() {
        let mounts = [format!("{VOLUME_MOUNTS_ROOT}/1")];
        let mounts: Vec<&str> = mounts.iter().map(String::as_str).collect();
        let all = env(&["NVIDIA_VISIBLE_DEVICES=all"]);
        let root = env(&[&format!("NVIDIA_VISIBLE_DEVICES={VOLUME_MOUNTS_ROOT}")]);
        for privileged in [false, true] {
            for envvar_when_unprivileged in [false, true] {
                for volume_mounts in [false, true] {
                    let policy = Policy {
                        envvar_when_unprivileged,
                        volume_mounts,
                        ..Policy::default()
                    };
                    let what = format!("privileged {privileged}, {policy:?}");
                    let run = |env, mounts| chosen(env, mounts, privileged, &policy);
                    let env_read = privileged || envvar_when_unprivileged;
                    // The variable alone.
                    match run(&all, &[]).unwrap() {
                        Chosen::Env("all") => assert!(env_read, "{what}"),
                        Chosen::Ignored(why) => {
                            assert!(!env_read, "{what}");
                            assert!(why.contains(ENVVAR_SETTING), "{what}: {why}");
                        }
                        other => panic!("{what}: {other:?}"),
                    }
                    // The variable and mounts: the mounts win when read.
                    let both = run(&all, &mounts).unwrap();
                    if volume_mounts {
                        assert_eq!(both, Chosen::Mounts(vec!["1".into()]), "{what}");
                    } else {
                        assert_eq!(both == Chosen::Env("all"), env_read, "{what}");
                    }
                    // The variable pointing at the mounts: the mounts when
                    // read; else an error naming the setting where the
                    // variable is read, and ignored where it is not.
                    match run(&root, &mounts) {
                        Ok(Chosen::Mounts(ids)) => {
                            assert!(volume_mounts, "{what}");
                            assert_eq!(ids, ["1"], "{what}");
                        }
                        Ok(Chosen::Ignored(why)) => {
                            assert!(!volume_mounts && !env_read, "{what}");
                            assert!(why.contains(ENVVAR_SETTING), "{what}: {why}");
                        }
                        Ok(other) => panic!("{what}: {other:?}"),
                        Err(e) => {
                            assert!(!volume_mounts && env_read, "{what}");
                            assert!(e.to_string().contains(VOLUME_MOUNTS_SETTING), "{what}: {e}");
                        }
                    }
                    match run(&root, &[]) {
                        Ok(c) => assert!(
                            !env_read && matches!(c, Chosen::Ignored(_)),
                            "{what}: {c:?}"
                        ),
                        Err(e) => {
                            assert!(env_read, "{what}");
                            assert!(!e.to_string().contains("is not a GPU"), "{what}: {e}");
                        }
                    }
                    // Nothing asked is nothing, whatever the policy.
                    let void = env(&["NVIDIA_VISIBLE_DEVICES=void"]);
                    assert_eq!(run(&void, &[]).unwrap(), Chosen::Nothing, "{what}");
                }
            }
        }
    }

    #[test]
    fn imex_channels_follow_the_same_rule() {
        let mounts = [
            format!("{VOLUME_MOUNTS_ROOT}/0"),
            format!("{VOLUME_MOUNTS_ROOT}/imex/1"),
            format!("{VOLUME_MOUNTS_ROOT}/imex/1"),
        ];
        let mounts: Vec<&str> = mounts.iter().map(String::as_str).collect();
        let vars = env(&["NVIDIA_IMEX_CHANNELS=0"]);
        let policy = Policy {
            volume_mounts: true,
            envvar_when_unprivileged: false,
            ..Policy::default()
        };
        let mut inputs = Inputs {
            env: &vars,
            device_mounts: &mounts,
            ..Default::default()
        };
        assert_eq!(
            choose(&inputs, &policy, Asked::Imex).unwrap(),
            Chosen::Mounts(vec!["1".into()])
        );
        inputs.device_mounts = &[];
        assert!(matches!(
            choose(&inputs, &policy, Asked::Imex).unwrap(),
            Chosen::Ignored(_)
        ));
        inputs.privileged = true;
        assert_eq!(
            choose(&inputs, &policy, Asked::Imex).unwrap(),
            Chosen::Env("0")
        );
        let none = env(&["NVIDIA_IMEX_CHANNELS=none"]);
        inputs.env = &none;
        inputs.privileged = false;
        assert_eq!(
            choose(&inputs, &policy, Asked::Imex).unwrap(),
            Chosen::Nothing
        );
    }
}
