//! What GPUs a container asks for, from its spec alone (pure): the
//! `NVIDIA_*` variables of `process.env`, `cdi.k8s.io/*` annotations, and
//! the prestart hooks Docker (`--gpus`) and ctr (`--gpus`) add, which are
//! translated into the same request and removed so they never run.
//!
//! `caps`: driver capabilities; `env`: the variables and annotations;
//! `hooks`: the engines' hooks; `fast_path`: the allocation-free "nothing
//! asked" check every container start makes first.

mod caps;
mod env;
mod fast_path;
mod hooks;

pub use caps::Caps;
pub use env::is_cdi_name;
pub use fast_path::nothing_asked;
pub use hooks::{gpu_hook, take_gpu_hooks, HookRequest};

use crate::error::Result;
use env::{cdi_annotations, env_value, parse_list, requirements, spec_env};
use oci_spec::runtime::Spec;
use std::collections::HashMap;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    /// GPUs from the driver; None when only CDI devices were asked for.
    pub devices: Option<Devices>,
    /// Fully qualified CDI names (`vendor/class=name`).
    pub cdi: Vec<String>,
    pub caps: Caps,
    /// `NVIDIA_REQUIRE_*` expressions (already empty when disabled).
    pub requires: Vec<String>,
    /// Where the request came from, for messages and `gpu doctor`.
    pub source: String,
}

/// `parse` of a spec's `process.env` and annotations.
pub fn from_spec(spec: &Spec, hooks: &[HookRequest]) -> Result<Option<GpuRequest>> {
    let none = HashMap::new();
    parse(
        spec_env(spec),
        spec.annotations().as_ref().unwrap_or(&none),
        hooks,
    )
}

/// The container's GPU request; None means no GPU support at all.
pub fn parse(
    env: &[String],
    annotations: &HashMap<String, String>,
    hooks: &[HookRequest],
) -> Result<Option<GpuRequest>> {
    let mut cdi = Vec::new();
    let mut sources = Vec::new();
    let mut devices = None;
    if let Some(v) = env_value(env, "NVIDIA_VISIBLE_DEVICES") {
        devices = parse_list(v, &mut cdi)?;
        sources.push(format!("NVIDIA_VISIBLE_DEVICES={v}"));
    }
    cdi_annotations(annotations, &mut cdi, &mut sources)?;
    let mut caps = match env_value(env, "NVIDIA_DRIVER_CAPABILITIES") {
        Some(v) if !v.trim().is_empty() => Caps::parse(v)?,
        _ => Caps::default_set(),
    };
    let mut requires = requirements(env);
    for h in hooks {
        sources.push(h.what.to_string());
        if let Some(list) = &h.devices {
            let mut ignored = Vec::new();
            if let Some(d) = parse_list(list, &mut ignored)? {
                devices = Some(d);
            }
            cdi.extend(ignored);
        }
        if let Some(c) = h.caps {
            if env_value(env, "NVIDIA_DRIVER_CAPABILITIES").is_none() {
                caps = c;
            }
        }
        requires.extend(h.requires.iter().cloned());
    }
    cdi.dedup();
    if devices.is_none() && cdi.is_empty() {
        return Ok(None);
    }
    Ok(Some(GpuRequest {
        devices,
        cdi,
        caps,
        requires,
        source: sources.join(", "),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req(env: &[&str]) -> Result<Option<GpuRequest>> {
        let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
        parse(&env, &HashMap::new(), &[])
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
        let r = parse(&[], &a, &[]).unwrap().unwrap();
        assert_eq!(r.cdi, vec!["nvidia.com/gpu=0", "vendor.com/x=y"]);
        a.insert("cdi.k8s.io/bad".to_string(), "gpu0".to_string());
        assert!(parse(&[], &a, &[]).is_err());
    }
}
