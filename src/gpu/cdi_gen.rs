//! The CDI specs `vessel gpu cdi` writes (pure, from a discovered driver),
//! shaped as NVIDIA's `nvidia-ctk cdi generate` shapes them:
//!
//! - kind `nvidia.com/gpu`: a device per GPU index (`0`) and UUID
//!   (`GPU-...`); per MIG device `<gpu>:<mig>` (vessel's numbering, as
//!   `vessel gpu info` lists them) and, when NVML named it, `MIG-<uuid>`,
//!   each with the parent GPU's node and its GPU and compute instances'
//!   `/dev/nvidia-caps/nvidia-cap<N>` nodes (the toolkit's MIG device has
//!   those three nodes and no mounts); and `all`, every device's nodes.
//!   The driver's files at the host's own paths and
//!   `NVIDIA_VISIBLE_DEVICES=void` are common to all; no hooks.
//! - kind `nvidia.com/imex-channel` (`nvidia-ctk cdi generate --mode
//!   imex`): a device per channel number, and `all`.

use super::cdi::{CdiDevice, CdiSpec};
use super::discover::{Driver, Node};
use super::edits::{ro_bind_options, CdiMount, ContainerEdits};
use super::hostfs::HostRoot;
use super::inject::{device_node, file_options, library_names};
use super::nvml::MigUuid;
use super::request::{Caps, ImexChannels};
use crate::error::{Error, Result};
use std::path::Path;

/// The kind of GPUs and MIG devices.
pub const GPU_KIND: &str = "nvidia.com/gpu";
/// The kind of IMEX channels (the device plugin's `cdi-annotations` use it).
pub const IMEX_KIND: &str = "nvidia.com/imex-channel";

/// Where a host file appears in the container when the host layout is
/// kept: its path below the driver's root.
fn in_host_layout(driver: &Driver, p: &Path) -> String {
    let rel = p.strip_prefix(&driver.root).unwrap_or(p);
    Path::new("/").join(rel).to_string_lossy().into_owned()
}

/// The host's node for a spec's `hostPath`, under the dev root; None when
/// the host has none (the spec's numbers make it).
fn host_node_path(driver: &Driver, n: &Node) -> Option<String> {
    n.on_host.then(|| {
        driver
            .host_node_path(&n.path)
            .to_string_lossy()
            .into_owned()
    })
}

fn device(name: String, edits: ContainerEdits) -> CdiDevice {
    CdiDevice {
        name,
        annotations: Default::default(),
        container_edits: edits,
    }
}

/// A spec of `kind` at the default version (`cdi_version::choose` sets
/// the one written).
fn spec(kind: &str, devices: Vec<CdiDevice>, common: ContainerEdits) -> CdiSpec {
    CdiSpec {
        cdi_version: super::cdi_version::DEFAULT.into(),
        kind: kind.into(),
        annotations: Default::default(),
        devices,
        container_edits: common,
    }
}

/// The `nvidia.com/gpu` spec of this host; `mig_uuids` from NVML, if any.
pub fn gpu_spec(driver: &Driver, mig_uuids: &[MigUuid]) -> CdiSpec {
    let nodes_edits = |nodes: &[Node]| ContainerEdits {
        device_nodes: nodes
            .iter()
            .map(|n| device_node(n, host_node_path(driver, n)))
            .collect(),
        ..Default::default()
    };
    let mut devices = Vec::new();
    let mut every: Vec<Node> = Vec::new();
    let mut add = |names: Vec<String>, nodes: Vec<Node>| {
        for name in names {
            devices.push(device(name, nodes_edits(&nodes)));
        }
        for n in nodes {
            if !every.iter().any(|e| e.path == n.path) {
                every.push(n);
            }
        }
    };
    for g in &driver.gpus {
        let names = [g.index.to_string(), g.uuid.clone()];
        let names = names.into_iter().filter(|n| !n.is_empty()).collect();
        add(names, vec![driver.gpu_node(g)]);
    }
    for g in &driver.gpus {
        for (m, mig) in g.migs.iter().enumerate() {
            let mut names = vec![format!("{}:{m}", g.index)];
            names.extend(
                mig_uuids
                    .iter()
                    .filter(|u| (u.gpu, u.mig) == (g.index, m))
                    .map(|u| u.uuid.clone()),
            );
            let mut nodes = vec![driver.gpu_node(g)];
            nodes.extend(driver.mig_nodes(mig));
            add(names, nodes);
        }
    }
    devices.push(device("all".into(), nodes_edits(&every)));
    spec(GPU_KIND, devices, common_edits(driver))
}

/// What every GPU device brings: control nodes, the driver's libraries
/// (under their file, soname and `.so` names, in the host's directory),
/// binaries, firmware and sockets; every capability's.
fn common_edits(driver: &Driver) -> ContainerEdits {
    let caps = Caps::all();
    let mut common = ContainerEdits {
        env: vec!["NVIDIA_VISIBLE_DEVICES=void".into()],
        ..Default::default()
    };
    for n in driver.control_nodes(caps) {
        common
            .device_nodes
            .push(device_node(&n, host_node_path(driver, &n)));
    }
    for lib in driver.libraries_for(caps) {
        let container = in_host_layout(driver, &lib.host_path);
        let dir = Path::new(&container).parent().unwrap_or(Path::new("/"));
        for name in library_names(lib) {
            common.mounts.push(CdiMount {
                host_path: lib.host_path.to_string_lossy().into_owned(),
                container_path: dir.join(name).to_string_lossy().into_owned(),
                options: ro_bind_options(),
                typ: Some("bind".into()),
            });
        }
    }
    for f in driver.files_for(caps) {
        common.mounts.push(CdiMount {
            host_path: f.host_path.to_string_lossy().into_owned(),
            container_path: f.container_path.to_string_lossy().into_owned(),
            options: file_options(f.kind),
            typ: Some("bind".into()),
        });
    }
    common
}

/// The `nvidia.com/imex-channel` spec of the channels the host has under
/// the dev root `dev`; an error when it has none (a spec needs a device).
pub fn imex_spec(dev: &HostRoot) -> Result<CdiSpec> {
    let numbers = super::imex::host_channels(dev)?;
    if numbers.is_empty() {
        return Err(Error::invalid(format!(
            "no IMEX channels: {} has no channel nodes (an IMEX domain's daemon makes them; without a spec vessel still answers {IMEX_KIND}=N itself)",
            dev.path().join(super::imex::CHANNEL_DIR).display()
        )));
    }
    let nodes = super::imex::channel_nodes(dev, &ImexChannels::List(numbers.clone()))?;
    let with_host = |mut n: super::edits::DeviceNode| {
        n.host_path = Some(
            dev.path()
                .join(n.path.trim_start_matches('/'))
                .to_string_lossy()
                .into_owned(),
        );
        n
    };
    let mut devices: Vec<CdiDevice> = numbers
        .iter()
        .zip(&nodes)
        .map(|(n, node)| {
            let edits = ContainerEdits {
                device_nodes: vec![with_host(node.clone())],
                ..Default::default()
            };
            device(n.to_string(), edits)
        })
        .collect();
    let all = ContainerEdits {
        device_nodes: nodes.into_iter().map(with_host).collect(),
        ..Default::default()
    };
    devices.push(device("all".into(), all));
    Ok(spec(IMEX_KIND, devices, ContainerEdits::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver root with one GPU (minor 1) holding one MIG device whose
    /// instances have the capability minors 12 and 13; no nodes (the
    /// spec's numbers come from /proc/devices then).
    fn mig_root() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let gpu = r.join("proc/driver/nvidia/gpus/0000:3b:00.0");
        std::fs::create_dir_all(&gpu).unwrap();
        std::fs::write(
            r.join("proc/driver/nvidia/version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.1  Thu Jan  1 2026\n",
        )
        .unwrap();
        std::fs::write(
            gpu.join("information"),
            "Model: \t X\nGPU UUID: \t GPU-1\nBus Location: \t 0000:3b:00.0\nDevice Minor: \t 1\n",
        )
        .unwrap();
        std::fs::write(
            r.join("proc/devices"),
            "Character devices:\n195 nvidia\n511 nvidia-caps\n",
        )
        .unwrap();
        let gi = r.join("proc/driver/nvidia/capabilities/gpu1/mig/gi1");
        std::fs::create_dir_all(gi.join("ci0")).unwrap();
        std::fs::write(gi.join("access"), "DeviceFileMinor: 12\n").unwrap();
        std::fs::write(gi.join("ci0/access"), "DeviceFileMinor: 13\n").unwrap();
        tmp
    }

    fn paths(d: &CdiDevice) -> Vec<&str> {
        d.container_edits
            .device_nodes
            .iter()
            .map(|n| n.path.as_str())
            .collect()
    }

    #[test]
    fn mig_devices_have_the_parent_node_and_both_capability_nodes() {
        let root = mig_root();
        let driver = Driver::discover(root.path(), root.path()).unwrap();
        let uuid = MigUuid {
            gpu: 0,
            mig: 0,
            uuid: "MIG-x".into(),
        };
        let spec = gpu_spec(&driver, &[uuid]);
        let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["0", "GPU-1", "0:0", "MIG-x", "all"]);
        let mig = [
            "/dev/nvidia1",
            "/dev/nvidia-caps/nvidia-cap12",
            "/dev/nvidia-caps/nvidia-cap13",
        ];
        assert_eq!(paths(&spec.devices[2]), mig);
        assert_eq!(paths(&spec.devices[3]), mig);
        assert_eq!(paths(&spec.devices[4]), mig, "all: every node once");
        let cap = &spec.devices[3].container_edits.device_nodes[2];
        assert_eq!((cap.major, cap.minor), (Some(511), Some(13)));
        assert!(spec.devices[2].container_edits.mounts.is_empty());
        assert_eq!(spec.cdi_version, "0.7.0");
        assert_eq!(crate::gpu::cdi_version::minimum_required(&spec).0, "0.5.0");
        // What it writes, vessel's reader reads back.
        let text = serde_json::to_string(&spec).unwrap();
        let back = crate::gpu::cdi::parse_spec(Path::new("x.json"), &text).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn imex_channels_need_nodes_on_the_host() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = HostRoot::open(tmp.path()).unwrap();
        let e = imex_spec(&dev).unwrap_err().to_string();
        assert!(e.contains("no IMEX channels"), "{e}");
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tmp.path().join(crate::gpu::imex::CHANNEL_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        for n in [0, 3] {
            nix::sys::stat::mknod(
                &dir.join(format!("channel{n}")),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                libc::makedev(509, n),
            )
            .unwrap();
        }
        let spec = imex_spec(&dev).unwrap();
        assert_eq!(spec.kind, IMEX_KIND);
        let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["0", "3", "all"]);
        let node = &spec.devices[1].container_edits.device_nodes[0];
        assert_eq!(node.path, "/dev/nvidia-caps-imex-channels/channel3");
        assert_eq!(
            node.host_path.as_deref(),
            Some(dir.join("channel3").to_str().unwrap())
        );
        assert_eq!(spec.devices[2].container_edits.device_nodes.len(), 2);
    }
}
