//! `MIG-<uuid>` when a container starts, without NVML (the k8s device
//! plugin's default names MIG devices so). Only NVML knows these UUIDs, so
//! the UUID is looked up in the CDI specs on disk, of kind `nvidia.com/gpu`
//! or `runtime.nvidia.com/gpu` (`vessel gpu cdi` records them there, as
//! `nvidia-ctk cdi generate` does), and that device's nodes, the parent
//! GPU's `/dev/nvidiaN` and its instances' two `nvidia-cap` nodes, say
//! which of the driver's MIG devices it is: it becomes `<gpu>:<mig>` and
//! gets what any GPU request gets. No spec naming it is an error that says
//! how to record it.

use super::cdi::Registry;
use super::discover::{Driver, Gpu};
use super::request::{DeviceRef, Devices};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// The kinds whose specs may name a MIG UUID.
pub const KINDS: [&str; 2] = ["nvidia.com/gpu", "runtime.nvidia.com/gpu"];

/// `devices` with each `MIG-<uuid>` replaced by the `<gpu>:<mig>` the
/// specs in `cdi_dirs` say it is. The specs are read only when one is
/// asked for.
pub fn resolve(devices: &Devices, driver: &Driver, cdi_dirs: &[PathBuf]) -> Result<Devices> {
    let Devices::List(refs) = devices else {
        return Ok(devices.clone());
    };
    if !refs.iter().any(|r| matches!(r, DeviceRef::MigUuid(_))) {
        return Ok(devices.clone());
    }
    let reg = Registry::load(cdi_dirs);
    let mut out: Vec<DeviceRef> = Vec::new();
    for r in refs {
        let r = match r {
            DeviceRef::MigUuid(u) => locate(&reg, &driver.gpus, u, cdi_dirs)?,
            other => other.clone(),
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(Devices::List(out))
}

/// The `<gpu>:<mig>` of `uuid`, from the spec that names it.
fn locate(reg: &Registry, gpus: &[Gpu], uuid: &str, cdi_dirs: &[PathBuf]) -> Result<DeviceRef> {
    let Some((file, dev)) = reg.device_in(&KINDS, uuid) else {
        return Err(unknown(uuid, cdi_dirs, &reg.errors));
    };
    let paths: Vec<&str> = dev
        .container_edits
        .device_nodes
        .iter()
        .map(|n| n.path.as_str())
        .collect();
    match_nodes(gpus, &paths).ok_or_else(|| {
        Error::invalid(format!(
            "GPU device {uuid}: {} gives it the nodes {}, which are no MIG device of this host now (were MIG devices changed since the spec was written? run `vessel gpu cdi --output {}` again)",
            file.display(),
            paths.join(", "),
            file.display()
        ))
    })
}

/// The MIG device whose parent GPU node and both capability nodes are
/// among `paths`.
pub fn match_nodes(gpus: &[Gpu], paths: &[&str]) -> Option<DeviceRef> {
    let has = |p: String| paths.contains(&p.as_str());
    gpus.iter().find_map(|g| {
        if !has(format!("/dev/nvidia{}", g.minor)) {
            return None;
        }
        let cap = |minor: u32| format!("/dev/nvidia-caps/nvidia-cap{minor}");
        let m = g
            .migs
            .iter()
            .position(|m| has(cap(m.gi_minor)) && has(cap(m.ci_minor)))?;
        Some(DeviceRef::Mig(g.index, m))
    })
}

/// The error for a MIG UUID no spec names: what to run to record it.
pub fn unknown(uuid: &str, cdi_dirs: &[PathBuf], unreadable: &[String]) -> Error {
    let dirs: Vec<String> = cdi_dirs.iter().map(|d| d.display().to_string()).collect();
    let mut msg = format!(
        "GPU device {uuid}: no CDI spec of kind {} in {} names it. MIG UUIDs are known only to NVML, which vessel does not load when a container starts: record them by running `vessel gpu cdi --output /var/run/cdi/nvidia.yaml` on this node (it asks NVML through vessel-nvml, installed beside vessel), or name the device <gpu>:<mig> (`vessel gpu info` lists them)",
        KINDS.join(" or "),
        if dirs.is_empty() { "the spec directories".into() } else { dirs.join(", ") }
    );
    if !unreadable.is_empty() {
        msg.push_str(&format!("; unreadable specs: {}", unreadable.join("; ")));
    }
    Error::invalid(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::discover::Mig;

    fn gpu(index: usize, minor: u32, migs: &[(u32, u32)]) -> Gpu {
        Gpu {
            index,
            bus_id: String::new(),
            minor,
            uuid: String::new(),
            model: String::new(),
            proc_dir: PathBuf::new(),
            migs: migs
                .iter()
                .map(|&(gi_minor, ci_minor)| Mig {
                    gi: 0,
                    ci: 0,
                    gi_minor,
                    ci_minor,
                })
                .collect(),
        }
    }

    #[test]
    fn a_specs_nodes_name_one_mig_device() {
        let gpus = [gpu(0, 1, &[(12, 13), (21, 22)]), gpu(1, 0, &[(30, 31)])];
        let nodes = |v: &[&'static str]| v.to_vec();
        let caps = |a: u32, b: u32| {
            [
                format!("/dev/nvidia-caps/nvidia-cap{a}"),
                format!("/dev/nvidia-caps/nvidia-cap{b}"),
            ]
        };
        let [a, b] = caps(21, 22);
        assert_eq!(
            match_nodes(&gpus, &["/dev/nvidia1", &a, &b]),
            Some(DeviceRef::Mig(0, 1))
        );
        let [a, b] = caps(30, 31);
        assert_eq!(
            match_nodes(&gpus, &[&b, "/dev/nvidia0", &a]),
            Some(DeviceRef::Mig(1, 0))
        );
        // The caps of GPU 1's MIG device with GPU 0's node: none.
        assert_eq!(match_nodes(&gpus, &["/dev/nvidia1", &a, &b]), None);
        // A whole GPU, or one cap missing: none.
        assert_eq!(match_nodes(&gpus, &nodes(&["/dev/nvidia1"])), None);
        let [a, _] = caps(12, 13);
        assert_eq!(match_nodes(&gpus, &["/dev/nvidia1", &a]), None);
    }

    #[test]
    fn the_error_says_how_to_record_mig_uuids() {
        let e = unknown(
            "MIG-x",
            &[PathBuf::from("/etc/cdi")],
            &["/etc/cdi/b.yaml: bad".into()],
        )
        .to_string();
        for want in [
            "MIG-x",
            "/etc/cdi",
            "vessel gpu cdi --output /var/run/cdi/nvidia.yaml",
            "<gpu>:<mig>",
            "b.yaml: bad",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
