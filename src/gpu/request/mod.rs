//! What GPUs a container asks for, from its spec alone (pure): the
//! `NVIDIA_*` variables of `process.env`, `cdi.k8s.io/*` annotations, the
//! device plugin's volume mounts, and the prestart hooks Docker (`--gpus`)
//! and ctr (`--gpus`) add, which are translated into the same request and
//! removed so they never run. The node's policy (`Policy`, from the config
//! file) says which of them are read.
//!
//! `caps`: driver capabilities; `env`: the variables and annotations;
//! `features`: MIG administration and the feature-gated fabric devices;
//! `hooks`: the engines' hooks; `policy`: the device plugin's strategies
//! and the toolkit's rule; `fast_path`: the allocation-free "nothing
//! asked" check every container start makes first.

mod caps;
mod env;
mod fast_path;
mod features;
mod hooks;
mod policy;

pub use caps::Caps;
pub use env::is_cdi_name;
pub use fast_path::nothing_asked;
pub use features::{Feature, MigAdmin};
pub use hooks::{gpu_hook, take_gpu_hooks, HookRequest};
pub use policy::{
    device_mounts, mounted_id, Inputs, MountedId, Policy, ENVVAR_SETTING, VOLUME_MOUNTS_ROOT,
    VOLUME_MOUNTS_SETTING,
};

use crate::error::Result;
use env::{
    cdi_annotations, env_value, parse_imex, parse_imex_list, parse_list, parse_words, requirements,
};
use oci_spec::runtime::Spec;
use policy::{choose, Asked, Chosen};

/// One entry of a device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    Index(usize),
    Uuid(String),
    BusId(String),
    /// `<gpu>:<mig>`: the mig-th MIG device of GPU index gpu.
    Mig(usize, usize),
    MigUuid(String),
}

/// Which GPUs, from the discovered driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    All,
    /// Driver files and control nodes, no GPU (`none`).
    NoGpu,
    List(Vec<DeviceRef>),
}

/// IMEX channels (`/dev/nvidia-caps-imex-channels/channel<N>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImexChannels {
    /// Every channel the host has.
    All,
    List(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    /// GPUs from the driver; None when only CDI devices were asked for.
    pub devices: Option<Devices>,
    /// Fully qualified CDI names (`vendor/class=name`).
    pub cdi: Vec<String>,
    pub caps: Caps,
    /// `NVIDIA_REQUIRE_*` expressions (already empty when disabled).
    pub requires: Vec<String>,
    /// IMEX channels; None for none.
    pub imex: Option<ImexChannels>,
    /// MIG administration (`NVIDIA_MIG_CONFIG_DEVICES` and
    /// `NVIDIA_MIG_MONITOR_DEVICES`); only a privileged container has any.
    pub mig_admin: MigAdmin,
    /// The feature-gated devices turned on (`NVIDIA_GDS=enabled`, ...).
    pub features: Vec<Feature>,
    /// Where the request came from, for messages and `gpu doctor`.
    pub source: String,
}

/// What a spec asks for, and what of it the policy ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// None means no GPU support at all.
    pub request: Option<GpuRequest>,
    /// What was ignored and why (for the log; the container still runs).
    pub ignored: Vec<String>,
}

/// `parse` of a spec's env, annotations, device mounts and privilege.
pub fn from_spec(spec: &Spec, hooks: &[HookRequest], policy: &Policy) -> Result<Parsed> {
    let mounts = device_mounts(spec);
    parse(&Inputs::of_spec(spec, hooks, &mounts), policy)
}

/// A device list as `NVIDIA_VISIBLE_DEVICES` holds it, without its CDI
/// names (`what` is named in errors).
pub fn device_list(list: &str, what: &str) -> Result<Option<Devices>> {
    parse_list(list, what, &mut Vec::new())
}

/// The container's GPU request, read as `policy` says.
pub fn parse(inputs: &Inputs, policy: &Policy) -> Result<Parsed> {
    let mut words = Words::default();
    words.visible_devices(inputs, policy)?;
    if let Some(a) = inputs.annotations {
        cdi_annotations(a, &mut words.cdi, &mut words.sources)?;
    }
    let mut caps = match env_value(inputs.env, "NVIDIA_DRIVER_CAPABILITIES") {
        Some(v) if v.split(',').any(|w| !w.trim().is_empty()) => Some(Caps::parse(v)?),
        _ => None,
    };
    let caps_from_env = caps.is_some();
    let mut requires = requirements(inputs.env);
    for h in inputs.hooks {
        words.sources.push(h.what.to_string());
        if let Some(list) = &h.devices {
            words.hook_devices(list, h.what)?;
        }
        if !caps_from_env && h.caps.is_some() {
            caps = h.caps;
        }
        requires.extend(h.requires.iter().cloned());
    }
    words.cdi.dedup();
    if words.devices.is_none() && words.cdi.is_empty() {
        return Ok(Parsed {
            request: None,
            ignored: words.ignored,
        });
    }
    let imex = words.imex_channels(inputs, policy)?;
    let mig_admin = features::mig_admin(inputs.env, inputs.privileged)?;
    let features = features::features(inputs.env, &mut words.ignored);
    Ok(Parsed {
        request: Some(GpuRequest {
            devices: words.devices,
            cdi: words.cdi,
            caps: caps.unwrap_or(policy.default_caps),
            requires,
            imex,
            mig_admin,
            features,
            source: words.sources.join(", "),
        }),
        ignored: words.ignored,
    })
}

/// What `parse` has read so far.
#[derive(Default)]
struct Words {
    devices: Option<Devices>,
    cdi: Vec<String>,
    sources: Vec<String>,
    ignored: Vec<String>,
}

impl Words {
    /// The GPUs of the device mounts or `NVIDIA_VISIBLE_DEVICES`.
    fn visible_devices(&mut self, inputs: &Inputs, policy: &Policy) -> Result<()> {
        match choose(inputs, policy, Asked::Devices)? {
            Chosen::Nothing => {}
            Chosen::Mounts(ids) => {
                let what = format!("the device mounts under {VOLUME_MOUNTS_ROOT}");
                self.devices = parse_words(ids.iter().map(String::as_str), &what, &mut self.cdi)?;
                self.sources.push(format!("{what}: {}", ids.join(",")));
            }
            Chosen::Env(v) => {
                self.devices = parse_list(v, "NVIDIA_VISIBLE_DEVICES", &mut self.cdi)?;
                self.sources.push(format!("NVIDIA_VISIBLE_DEVICES={v}"));
            }
            Chosen::Ignored(why) => self.ignored.push(why),
        }
        Ok(())
    }

    /// A hook's `--device=` list: it replaces the devices read so far;
    /// its CDI names are added.
    fn hook_devices(&mut self, list: &str, what: &str) -> Result<()> {
        let mut cdi = Vec::new();
        if let Some(d) = parse_list(list, what, &mut cdi)? {
            self.devices = Some(d);
        }
        self.cdi.extend(cdi);
        Ok(())
    }

    /// The IMEX channels of a GPU request, by the same policy.
    fn imex_channels(&mut self, inputs: &Inputs, policy: &Policy) -> Result<Option<ImexChannels>> {
        Ok(match choose(inputs, policy, Asked::Imex)? {
            Chosen::Nothing => None,
            Chosen::Mounts(ids) => {
                let what = format!("the IMEX mounts under {VOLUME_MOUNTS_ROOT}/imex");
                self.sources.push(format!("{what}: {}", ids.join(",")));
                parse_imex(ids.iter().map(String::as_str), &what)?
            }
            Chosen::Env(v) => {
                self.sources.push(format!("NVIDIA_IMEX_CHANNELS={v}"));
                parse_imex_list(v, "NVIDIA_IMEX_CHANNELS")?
            }
            Chosen::Ignored(why) => {
                self.ignored.push(why);
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req(env: &[&str]) -> Result<Option<GpuRequest>> {
        let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
        parse(&Inputs::env(&env), &Policy::default()).map(|p| p.request)
    }

    fn with_annotations(a: &HashMap<String, String>) -> Result<Option<GpuRequest>> {
        let inputs = Inputs {
            annotations: Some(a),
            ..Default::default()
        };
        parse(&inputs, &Policy::default()).map(|p| p.request)
    }

    #[test]
    fn unset_void_and_empty_mean_no_gpu_support() {
        assert_eq!(req(&["PATH=/bin"]).unwrap(), None);
        assert_eq!(req(&["NVIDIA_VISIBLE_DEVICES=void"]).unwrap(), None);
        assert_eq!(req(&["NVIDIA_VISIBLE_DEVICES="]).unwrap(), None);
    }

    #[test]
    fn device_lists_parse_every_form() {
        let r =
            req(&["NVIDIA_VISIBLE_DEVICES=0, GPU-abc,1:2,MIG-x,0000:3B:00.0,nvidia.com/gpu=1,0"])
                .unwrap()
                .unwrap();
        assert_eq!(
            r.devices,
            Some(Devices::List(vec![
                DeviceRef::Index(0),
                DeviceRef::Uuid("GPU-abc".into()),
                DeviceRef::Mig(1, 2),
                DeviceRef::MigUuid("MIG-x".into()),
                DeviceRef::BusId("0000:3b:00.0".into()),
            ]))
        );
        assert_eq!(r.cdi, vec!["nvidia.com/gpu=1".to_string()]);
        assert_eq!(r.caps, Caps::UTILITY | Caps::COMPUTE);
        let none = req(&["NVIDIA_VISIBLE_DEVICES=none"]).unwrap().unwrap();
        assert_eq!(none.devices, Some(Devices::NoGpu));
        let all = req(&["NVIDIA_VISIBLE_DEVICES=all"]).unwrap().unwrap();
        assert_eq!(all.devices, Some(Devices::All));
        let only_cdi = req(&["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=all"])
            .unwrap()
            .unwrap();
        assert_eq!(only_cdi.devices, None);
        assert!(req(&["NVIDIA_VISIBLE_DEVICES=gpu0"])
            .unwrap_err()
            .to_string()
            .contains("\"gpu0\""));
    }

    #[test]
    fn capabilities_parse_and_unknown_ones_are_errors() {
        let r = req(&[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=video,graphics",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(r.caps, Caps::VIDEO | Caps::GRAPHICS);
        let all = req(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=all"])
            .unwrap()
            .unwrap();
        assert!(all.caps.is_all());
        let e = req(&[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=compute,warp",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("\"warp\""), "{e}");
    }

    #[test]
    fn requirements_follow_nvidia_rules() {
        let r = req(&[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.0",
            "NVIDIA_REQUIRE_X=driver>=500",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(r.requires, vec!["cuda>=12.0", "driver>=500"]);
        let off = req(&[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_REQUIRE_CUDA=cuda>=99",
            "NVIDIA_DISABLE_REQUIRE=true",
        ])
        .unwrap()
        .unwrap();
        assert!(off.requires.is_empty());
        let legacy = req(&["NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=10.1.243"])
            .unwrap()
            .unwrap();
        assert_eq!(legacy.requires, vec!["cuda>=10.1"]);
    }

    #[test]
    fn annotations_name_cdi_devices() {
        let mut a = HashMap::new();
        a.insert(
            "cdi.k8s.io/gpu".to_string(),
            "nvidia.com/gpu=0,vendor.com/x=y".to_string(),
        );
        let r = with_annotations(&a).unwrap().unwrap();
        assert_eq!(r.cdi, vec!["nvidia.com/gpu=0", "vendor.com/x=y"]);
        a.insert("cdi.k8s.io/bad".to_string(), "gpu0".to_string());
        assert!(with_annotations(&a).is_err());
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn imex_channels_come_with_a_gpu_request() {
        let imex = |env: &[&str]| req(env).map(|r| r.and_then(|r| r.imex));
        let gpu = "NVIDIA_VISIBLE_DEVICES=0";
        assert_eq!(
            imex(&[gpu, "NVIDIA_IMEX_CHANNELS=0, 1,1"]).unwrap(),
            Some(ImexChannels::List(vec![0, 1]))
        );
        assert_eq!(
            imex(&[gpu, "NVIDIA_IMEX_CHANNELS=1,all"]).unwrap(),
            Some(ImexChannels::All)
        );
        for nothing in ["none", "", "void"] {
            let var = format!("NVIDIA_IMEX_CHANNELS={nothing}");
            assert_eq!(imex(&[gpu, &var]).unwrap(), None, "{nothing:?}");
        }
        for bad in ["-1", "x", "0,1.5"] {
            let var = format!("NVIDIA_IMEX_CHANNELS={bad}");
            let e = imex(&[gpu, &var]).unwrap_err().to_string();
            assert!(
                e.contains("IMEX") && e.contains("not an IMEX channel"),
                "{e}"
            );
        }
        // Without a GPU request the variable is not read at all.
        assert_eq!(req(&["NVIDIA_IMEX_CHANNELS=x"]).unwrap(), None);
    }

    #[test]
    fn the_nodes_default_capabilities_apply_when_none_are_asked() {
        let policy = Policy {
            default_caps: Caps::VIDEO,
            ..Policy::default()
        };
        let caps = |env: &[&str]| {
            let env = strings(env);
            parse(&Inputs::env(&env), &policy)
                .unwrap()
                .request
                .unwrap()
                .caps
        };
        assert_eq!(caps(&["NVIDIA_VISIBLE_DEVICES=0"]), Caps::VIDEO);
        assert_eq!(
            caps(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES="]),
            Caps::VIDEO
        );
        assert_eq!(
            caps(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES= , "]),
            Caps::VIDEO
        );
        assert_eq!(
            caps(&[
                "NVIDIA_VISIBLE_DEVICES=0",
                "NVIDIA_DRIVER_CAPABILITIES=compute"
            ]),
            Caps::COMPUTE
        );
    }

    /// The device plugin's volume mounts, read when the node accepts them;
    /// the variable of an unprivileged container, ignored when it does
    /// not, with a reason; CDI annotations either way.
    #[test]
    fn the_policy_decides_what_a_request_is_read_from() {
        let mounts: Vec<String> = ["GPU-abc", "cdi/vendor.com/x/y", "imex/2"]
            .iter()
            .map(|id| format!("{VOLUME_MOUNTS_ROOT}/{id}"))
            .collect();
        let mounts: Vec<&str> = mounts.iter().map(String::as_str).collect();
        let env = strings(&["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_IMEX_CHANNELS=0"]);
        let mut annotations = HashMap::new();
        annotations.insert("cdi.k8s.io/gpu".to_string(), "nvidia.com/gpu=1".to_string());
        let strict = Policy {
            envvar_when_unprivileged: false,
            volume_mounts: true,
            ..Policy::default()
        };
        let mut inputs = Inputs {
            env: &env,
            device_mounts: &mounts,
            ..Default::default()
        };
        let r = parse(&inputs, &strict).unwrap().request.unwrap();
        assert_eq!(
            r.devices,
            Some(Devices::List(vec![DeviceRef::Uuid("GPU-abc".into())]))
        );
        assert_eq!(r.cdi, ["vendor.com/x=y"]);
        assert_eq!(r.imex, Some(ImexChannels::List(vec![2])));
        // No mounts: the unprivileged container's variables are ignored.
        inputs.device_mounts = &[];
        let p = parse(&inputs, &strict).unwrap();
        assert_eq!(p.request, None);
        assert!(p.ignored[0].contains(ENVVAR_SETTING), "{:?}", p.ignored);
        // CDI annotations are the engine's: still read, without the
        // ignored channels.
        inputs.annotations = Some(&annotations);
        let p = parse(&inputs, &strict).unwrap();
        let r = p.request.unwrap();
        assert_eq!(
            (r.devices, r.cdi, r.imex),
            (None, vec!["nvidia.com/gpu=1".into()], None)
        );
        assert_eq!(p.ignored.len(), 2, "{:?}", p.ignored);
        // Nothing smuggled through an ignored variable: CDI names, or the
        // mounts' root with no mounts (ignored, not an error).
        for smuggled in ["nvidia.com/gpu=all", VOLUME_MOUNTS_ROOT] {
            let env = strings(&[&format!("NVIDIA_VISIBLE_DEVICES={smuggled}")]);
            let p = parse(&Inputs::env(&env), &strict).unwrap();
            assert_eq!(p.request, None, "{smuggled}");
            assert_eq!(p.ignored.len(), 1, "{smuggled}: {:?}", p.ignored);
        }
    }
}
