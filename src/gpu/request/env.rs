//! The words of a request as the spec holds them: the `NVIDIA_*` variables
//! of `process.env` (device lists, IMEX channels, requirements) and the
//! `cdi.k8s.io/*` annotations.

use super::{DeviceRef, Devices, ImexChannels};
use crate::error::{Error, Result};
use oci_spec::runtime::Spec;
use std::collections::HashMap;

/// MIG administration (`all`): the MIG config and monitor capabilities of
/// the container's MIG-capable GPUs, for a privileged container.
pub const MIG_CONFIG_ENV: &str = "NVIDIA_MIG_CONFIG_DEVICES";
pub const MIG_MONITOR_ENV: &str = "NVIDIA_MIG_MONITOR_DEVICES";

/// The feature-gated host devices, each turned on by [`FEATURE_ENABLED`]:
/// GPUDirect Storage, RDMA (Mellanox OFED), NVSwitch, GDRCopy.
pub const GDS_ENV: &str = "NVIDIA_GDS";
pub const MOFED_ENV: &str = "NVIDIA_MOFED";
pub const NVSWITCH_ENV: &str = "NVIDIA_NVSWITCH";
pub const GDRCOPY_ENV: &str = "NVIDIA_GDRCOPY";
/// The one value that turns a feature on, exactly (as NVIDIA's toolkit).
pub const FEATURE_ENABLED: &str = "enabled";

/// The spec's `process.env`, empty when it has none.
pub(super) fn spec_env(spec: &Spec) -> &[String] {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().as_deref())
        .unwrap_or(&[])
}

pub(super) fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    // The last definition wins, as in execve's environment.
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// True for `vendor/class=name`.
pub fn is_cdi_name(s: &str) -> bool {
    let Some((kind, name)) = s.split_once('=') else {
        return false;
    };
    let Some((vendor, class)) = kind.split_once('/') else {
        return false;
    };
    let ok = |p: &str, extra: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    ok(vendor, "-_.") && ok(class, "-_") && ok(name, "-_.:")
}

/// One device of a list found in `what` (named in the error).
fn parse_device(s: &str, what: &str) -> Result<DeviceRef> {
    let bad = || {
        Error::invalid(format!(
            "{what}: {s:?} is not a GPU (use all, none, void, indexes like 0,1, GPU-<uuid>, <gpu>:<mig>, MIG-<uuid>, a PCI bus id or a CDI name like nvidia.com/gpu=0)"
        ))
    };
    if let Ok(i) = s.parse() {
        return Ok(DeviceRef::Index(i));
    }
    if s.starts_with("GPU-") && s.len() > 4 {
        return Ok(DeviceRef::Uuid(s.to_string()));
    }
    if s.starts_with("MIG-") && s.len() > 4 {
        return Ok(DeviceRef::MigUuid(s.to_string()));
    }
    let parts: Vec<&str> = s.split(':').collect();
    if let [g, m] = parts[..] {
        if let (Ok(g), Ok(m)) = (g.parse(), m.parse()) {
            return Ok(DeviceRef::Mig(g, m));
        }
    }
    // A PCI bus id: [domain:]bus:device.function, hex.
    let hexish = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit() || c == '.');
    if (2..=3).contains(&parts.len()) && parts.iter().all(|p| hexish(p)) && s.contains('.') {
        return Ok(DeviceRef::BusId(s.to_lowercase()));
    }
    Err(bad())
}

/// The non-empty words of a comma list.
pub(super) fn comma_words(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|w| !w.is_empty())
}

/// Splits a device list into driver devices and CDI names; `what` (the
/// variable, the hook) is named in errors.
pub(super) fn parse_list(list: &str, what: &str, cdi: &mut Vec<String>) -> Result<Option<Devices>> {
    parse_words(comma_words(list), what, cdi)
}

/// `parse_list` of words already split (the ids of the device mounts).
pub(super) fn parse_words<'w>(
    words: impl IntoIterator<Item = &'w str>,
    what: &str,
    cdi: &mut Vec<String>,
) -> Result<Option<Devices>> {
    let mut refs = Vec::new();
    let mut any_gpu_word = false;
    for w in words {
        match w {
            "all" => return Ok(Some(Devices::All)),
            "none" => any_gpu_word = true,
            "void" => {}
            w if is_cdi_name(w) => cdi.push(w.to_string()),
            w => {
                any_gpu_word = true;
                let r = parse_device(w, what)?;
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
    }
    Ok(match (any_gpu_word, refs.is_empty()) {
        (false, _) => None,
        (true, true) => Some(Devices::NoGpu),
        (true, false) => Some(Devices::List(refs)),
    })
}

/// IMEX channels (`NVIDIA_IMEX_CHANNELS`, or the ids of `imex/` mounts):
/// `all`, channel numbers, or nothing (`none`, `void`, empty). `what` is
/// named in errors.
pub(super) fn parse_imex<'w>(
    words: impl IntoIterator<Item = &'w str>,
    what: &str,
) -> Result<Option<ImexChannels>> {
    let mut channels = Vec::new();
    for w in words {
        match w {
            "all" => return Ok(Some(ImexChannels::All)),
            "none" | "void" => {}
            w => {
                let n: u32 = w.parse().map_err(|_| {
                    Error::invalid(format!(
                        "{what}: {w:?} is not an IMEX channel (use all, none, or channel numbers like 0,1)"
                    ))
                })?;
                if !channels.contains(&n) {
                    channels.push(n);
                }
            }
        }
    }
    Ok((!channels.is_empty()).then_some(ImexChannels::List(channels)))
}

/// `parse_imex` of a comma list.
pub(super) fn parse_imex_list(list: &str, what: &str) -> Result<Option<ImexChannels>> {
    parse_imex(comma_words(list), what)
}

/// The requirement expressions to check, per NVIDIA's rules.
pub(super) fn requirements(env: &[String]) -> Vec<String> {
    let disabled = env_value(env, "NVIDIA_DISABLE_REQUIRE")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
    if disabled {
        return Vec::new();
    }
    let mut out: Vec<String> = env
        .iter()
        .filter_map(|e| e.split_once('='))
        .filter(|(k, v)| k.starts_with("NVIDIA_REQUIRE_") && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_string())
        .collect();
    let has_cuda_require = env_value(env, "NVIDIA_REQUIRE_CUDA").is_some();
    if !has_cuda_require {
        // Legacy images: CUDA_VERSION=10.1.243 requires cuda>=10.1.
        if let Some(v) = env_value(env, "CUDA_VERSION") {
            let mm: Vec<&str> = v.split('.').take(2).collect();
            if mm.len() == 2 && mm.iter().all(|p| p.parse::<u32>().is_ok()) {
                out.push(format!("cuda>={}.{}", mm[0], mm[1]));
            }
        }
    }
    out
}

/// Adds the CDI names of the `cdi.k8s.io/*` annotations to `cdi`, in key
/// order (a HashMap has none of its own), and each key to `sources`.
pub(super) fn cdi_annotations(
    annotations: &HashMap<String, String>,
    cdi: &mut Vec<String>,
    sources: &mut Vec<String>,
) -> Result<()> {
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with("cdi.k8s.io/"))
        .collect();
    keys.sort();
    for k in keys {
        for name in annotations[k]
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !is_cdi_name(name) {
                return Err(Error::invalid(format!(
                    "annotation {k}: {name:?} is not a fully qualified CDI device name (vendor.com/class=name)"
                )));
            }
            cdi.push(name.to_string());
        }
        sources.push(format!("annotation {k}"));
    }
    Ok(())
}
