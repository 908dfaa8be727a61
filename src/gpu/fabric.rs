//! The feature-gated devices of NVIDIA's toolkit, for a container with a
//! GPU request that turns them on (`NVIDIA_GDS=enabled`, ...): GPUDirect
//! Storage, RDMA, NVSwitch and GDRCopy nodes. They are the host's own,
//! found under the dev root as IMEX channels are (character devices only,
//! the host's numbers and mode), given at the same path with an allow rule.
//! A feature the host has no node for adds nothing, with a warning (the
//! toolkit adds nothing, silently). GPUDirect Storage also brings
//! `/etc/cufile.json` and `/run/udev` from the driver root, read-only, when
//! the host has its nodes (cuFile's config, and where it finds them).

use super::edits::{ro_bind_options, CdiMount, ContainerEdits, DeviceNode};
use super::hostfs::HostRoot;
use super::request::Feature;
use crate::error::{Error, Result};
use std::path::Path;

/// What the features add, and what the log should say.
#[derive(Debug, Default)]
pub struct Given {
    pub edits: ContainerEdits,
    pub notes: Vec<String>,
}

/// Where a feature's nodes are below the dev root, and their names (a name
/// ending in `*` is a prefix), as the toolkit looks them up.
fn node_names(f: Feature) -> (&'static str, &'static [&'static str]) {
    match f {
        Feature::Gds => ("dev", &["nvidia-fs*"]),
        Feature::Mofed => ("dev/infiniband", &["uverbs*", "rdma_cm"]),
        Feature::NvSwitch => ("dev", &["nvidia-nvswitchctl", "nvidia-nvswitch*"]),
        Feature::GdrCopy => ("dev", &["gdrdrv"]),
    }
}

/// The files GPUDirect Storage brings from the driver root.
const GDS_FILES: &[&str] = &["etc/cufile.json", "run/udev"];

/// The edits of `features`: nodes from `dev`, files from `driver_root`.
pub fn edits(dev: &HostRoot, driver_root: &Path, features: &[Feature]) -> Result<Given> {
    let mut given = Given::default();
    for &f in features {
        let (dir, names) = node_names(f);
        let nodes = host_nodes(dev, dir, names)?;
        if nodes.is_empty() {
            let wanted: Vec<String> = names.iter().map(|n| format!("/{dir}/{n}")).collect();
            given.notes.push(format!(
                "{}=enabled: the host has no {} character device (under {}): nothing added",
                f.env_key(),
                wanted.join(" or "),
                dev.path().display()
            ));
            continue;
        }
        if f == Feature::Gds {
            given.edits.mounts.extend(gds_files(driver_root)?);
        }
        given.edits.device_nodes.extend(nodes);
    }
    Ok(given)
}

fn matches(name: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// The character devices in `dir` (below the dev root) whose name matches
/// one of `names`, in name order; none when there is no such directory.
fn host_nodes(dev: &HostRoot, dir: &str, names: &[&str]) -> Result<Vec<DeviceNode>> {
    let listing = match dev.read_dir(Path::new(dir)) {
        Ok(l) => l,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(Error::io("listing", dev.path().join(dir), e)),
    };
    let mut found: Vec<String> = listing
        .entries()
        .iter()
        .filter_map(|e| e.name.to_str())
        .filter(|n| names.iter().any(|p| matches(n, p)))
        .map(String::from)
        .collect();
    found.sort();
    let mut nodes = Vec::new();
    for name in found {
        let rel = format!("{dir}/{name}");
        // What is not a character device (a leftover file) is no node.
        let Ok(meta) = dev.metadata(Path::new(&rel)) else {
            continue;
        };
        nodes.extend(super::imex::host_char_node(&rel, &meta));
    }
    Ok(nodes)
}

/// GPUDirect Storage's files the driver root has, bound read-only at the
/// same paths.
fn gds_files(driver_root: &Path) -> Result<Vec<CdiMount>> {
    let host = HostRoot::open(driver_root)
        .map_err(|e| Error::io("opening the GPU driver root", driver_root, e))?;
    Ok(GDS_FILES
        .iter()
        .filter_map(|rel| {
            let host_path = host.real_path(Path::new(rel))?;
            Some(CdiMount {
                host_path: host_path.to_string_lossy().into_owned(),
                container_path: format!("/{rel}"),
                options: ro_bind_options(),
                typ: Some("bind".into()),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::{mknod, Mode, SFlag};

    fn node(root: &Path, rel: &str, major: u32, minor: u32) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            libc::makedev(major, minor),
        )
        .unwrap();
    }

    fn paths(g: &Given) -> Vec<&str> {
        g.edits
            .device_nodes
            .iter()
            .map(|n| n.path.as_str())
            .collect()
    }

    #[test]
    fn names_match_as_the_toolkit_globs_them() {
        assert!(matches("nvidia-fs0", "nvidia-fs*"));
        assert!(matches("nvidia-nvswitchctl", "nvidia-nvswitch*"));
        assert!(matches("rdma_cm", "rdma_cm"));
        assert!(!matches("rdma_cm0", "rdma_cm"));
        assert!(!matches("nvidia0", "nvidia-fs*"));
    }

    #[test]
    fn a_host_without_the_nodes_gets_a_note_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        // Plain files where nodes would be are not nodes.
        std::fs::create_dir_all(tmp.path().join("dev")).unwrap();
        std::fs::write(tmp.path().join("dev/gdrdrv"), "").unwrap();
        let dev = HostRoot::open(tmp.path()).unwrap();
        let g = edits(&dev, tmp.path(), &Feature::ALL).unwrap();
        assert!(g.edits.is_empty(), "{:?}", g.edits);
        assert_eq!(g.notes.len(), 4, "{:?}", g.notes);
        assert!(
            g.notes[1].starts_with("NVIDIA_MOFED=enabled: the host has no /dev/infiniband/uverbs* or /dev/infiniband/rdma_cm"),
            "{:?}",
            g.notes
        );
    }

    #[test]
    fn each_feature_gives_its_host_nodes() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        node(root, "dev/nvidia-fs0", 505, 0);
        node(root, "dev/nvidia-fs1", 505, 1);
        node(root, "dev/infiniband/uverbs0", 504, 192);
        node(root, "dev/infiniband/rdma_cm", 504, 255);
        node(root, "dev/nvidia-nvswitchctl", 506, 255);
        node(root, "dev/nvidia-nvswitch0", 506, 0);
        node(root, "dev/gdrdrv", 508, 0);
        node(root, "dev/nvidia0", 195, 0);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/cufile.json"), "{}").unwrap();
        let dev = HostRoot::open(root).unwrap();
        let one = |f| edits(&dev, root, &[f]).unwrap();
        let gds = one(Feature::Gds);
        assert_eq!(paths(&gds), ["/dev/nvidia-fs0", "/dev/nvidia-fs1"]);
        assert_eq!(gds.edits.device_nodes[1].minor, Some(1));
        let mounts: Vec<&str> = gds
            .edits
            .mounts
            .iter()
            .map(|m| m.container_path.as_str())
            .collect();
        assert_eq!(mounts, ["/etc/cufile.json"]);
        assert_eq!(
            paths(&one(Feature::Mofed)),
            ["/dev/infiniband/rdma_cm", "/dev/infiniband/uverbs0"]
        );
        let nvswitch = one(Feature::NvSwitch);
        assert_eq!(
            paths(&nvswitch),
            ["/dev/nvidia-nvswitch0", "/dev/nvidia-nvswitchctl"]
        );
        assert!(nvswitch.edits.mounts.is_empty() && nvswitch.notes.is_empty());
        let gdr = one(Feature::GdrCopy);
        assert_eq!(paths(&gdr), ["/dev/gdrdrv"]);
        assert_eq!(gdr.edits.device_nodes[0].major, Some(508));
    }
}
