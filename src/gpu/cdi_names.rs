//! The CDI names vessel answers itself from discovery when no spec on disk
//! defines their kind: `nvidia.com/gpu=<id>` and the toolkit's jit-cdi
//! kind `runtime.nvidia.com/gpu=<id>` (ids as `NVIDIA_VISIBLE_DEVICES`
//! takes them: `all`, an index, `GPU-<uuid>`, `MIG-<uuid>`, `<gpu>:<mig>`,
//! a bus id), and `nvidia.com/imex-channel=<N>` (or `channel<N>`, `all`).
//! Any other name, and these where a spec defines the kind, are the
//! specs' to resolve.

use super::cdi::Registry;
use super::request::{self, Devices, ImexChannels};
use crate::error::{Error, Result};

/// Kinds whose names are GPUs: the spec's own and NVIDIA's jit-cdi kind.
pub const GPU_KINDS: [&str; 2] = ["nvidia.com/gpu", "runtime.nvidia.com/gpu"];
/// The kind of IMEX channels.
pub const IMEX_KIND: &str = super::cdi_gen::IMEX_KIND;

/// CDI names split into what specs resolve and what vessel answers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Names for the specs on disk.
    pub on_disk: Vec<String>,
    /// GPUs named by the kinds vessel answers.
    pub devices: Option<Devices>,
    /// IMEX channels named by their kind.
    pub imex: Option<ImexChannels>,
}

/// Splits fully qualified CDI names (`kind=name`).
pub fn split(reg: &Registry, names: &[String]) -> Result<Split> {
    let mut out = Split::default();
    for full in names {
        let (kind, name) = full.split_once('=').unwrap_or((full, ""));
        if reg.has_kind(kind) {
            out.on_disk.push(full.clone());
        } else if GPU_KINDS.contains(&kind) {
            let devices = match name {
                "all" => Some(Devices::All),
                _ => request::device_list(name, full)?,
            };
            out.devices = merge_devices(out.devices.take(), devices);
        } else if kind == IMEX_KIND {
            out.imex = merge_imex(out.imex.take(), Some(imex_channel(name, full)?));
        } else {
            out.on_disk.push(full.clone());
        }
    }
    Ok(out)
}

/// One IMEX channel's CDI name: `N`, `channelN` or `all`.
fn imex_channel(name: &str, full: &str) -> Result<ImexChannels> {
    if name == "all" {
        return Ok(ImexChannels::All);
    }
    let number = name.strip_prefix("channel").unwrap_or(name);
    number
        .parse()
        .map(|n| ImexChannels::List(vec![n]))
        .map_err(|_| {
            Error::invalid(format!(
                "CDI device {full:?}: {name:?} is not an IMEX channel (use all or a channel number, like {IMEX_KIND}=0)"
            ))
        })
}

/// Both requests' devices: `all` wins, lists are joined.
pub fn merge_devices(a: Option<Devices>, b: Option<Devices>) -> Option<Devices> {
    use Devices::*;
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(All), _) | (_, Some(All)) => Some(All),
        (Some(List(mut x)), Some(List(y))) => {
            x.extend(y.into_iter().filter(|r| !x.contains(r)).collect::<Vec<_>>());
            Some(List(x))
        }
        (Some(List(x)), Some(NoGpu)) | (Some(NoGpu), Some(List(x))) => Some(List(x)),
        (Some(NoGpu), Some(NoGpu)) => Some(NoGpu),
    }
}

/// Both requests' IMEX channels: `all` wins, lists are joined.
pub fn merge_imex(a: Option<ImexChannels>, b: Option<ImexChannels>) -> Option<ImexChannels> {
    use ImexChannels::*;
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(All), _) | (_, Some(All)) => Some(All),
        (Some(List(mut x)), Some(List(y))) => {
            x.extend(y.into_iter().filter(|n| !x.contains(n)).collect::<Vec<_>>());
            Some(List(x))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::request::DeviceRef;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn both_gpu_kinds_and_imex_channels_are_answered_without_a_spec() {
        let reg = Registry::default();
        let s = split(
            &reg,
            &names(&[
                "runtime.nvidia.com/gpu=0",
                "nvidia.com/gpu=GPU-abc",
                "runtime.nvidia.com/gpu=MIG-x",
                "nvidia.com/gpu=1:0",
                "nvidia.com/gpu=0",
                "nvidia.com/imex-channel=1",
                "nvidia.com/imex-channel=channel3",
                "vendor.com/x=y",
            ]),
        )
        .unwrap();
        assert_eq!(s.on_disk, ["vendor.com/x=y"]);
        assert_eq!(
            s.devices,
            Some(Devices::List(vec![
                DeviceRef::Index(0),
                DeviceRef::Uuid("GPU-abc".into()),
                DeviceRef::MigUuid("MIG-x".into()),
                DeviceRef::Mig(1, 0),
            ]))
        );
        assert_eq!(s.imex, Some(ImexChannels::List(vec![1, 3])));
        let all = split(
            &reg,
            &names(&[
                "runtime.nvidia.com/gpu=all",
                "nvidia.com/gpu=1",
                "nvidia.com/imex-channel=all",
            ]),
        )
        .unwrap();
        assert_eq!(
            (all.devices, all.imex),
            (Some(Devices::All), Some(ImexChannels::All))
        );
        let e = split(&reg, &names(&["nvidia.com/imex-channel=x"])).unwrap_err();
        assert!(e.to_string().contains("not an IMEX channel"), "{e}");
        let e = split(&reg, &names(&["runtime.nvidia.com/gpu=gpu0"])).unwrap_err();
        assert!(e.to_string().contains("runtime.nvidia.com/gpu=gpu0"), "{e}");
    }

    #[test]
    fn a_spec_on_disk_takes_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rt.yaml"),
            "cdiVersion: 0.5.0\nkind: runtime.nvidia.com/gpu\ndevices:\n  - name: \"0\"\n    containerEdits:\n      env: [X=1]\n",
        )
        .unwrap();
        let reg = Registry::load(&[dir.path().into()]);
        let s = split(
            &reg,
            &names(&["runtime.nvidia.com/gpu=0", "nvidia.com/gpu=1"]),
        )
        .unwrap();
        assert_eq!(s.on_disk, ["runtime.nvidia.com/gpu=0"]);
        assert_eq!(s.devices, Some(Devices::List(vec![DeviceRef::Index(1)])));
    }
}
