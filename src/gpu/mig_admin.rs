//! MIG administration (`NVIDIA_MIG_CONFIG_DEVICES=all`,
//! `NVIDIA_MIG_MONITOR_DEVICES=all`, privileged containers only), as
//! libnvidia-container gives it. For the MIG-capable GPUs among the
//! container's (whole GPUs; MIG devices cannot be given with it):
//!
//! - the config and/or monitor capability node,
//!   `/dev/nvidia-caps/nvidia-cap<N>` with N the `DeviceFileMinor` of
//!   `proc/driver/nvidia/capabilities/mig/config` (`.../monitor`);
//! - every MIG capability minor the driver reserves for those GPUs
//!   (`proc/driver/nvidia-caps/mig-minors`), so the GPU and compute
//!   instances the container creates are usable in it;
//! - on a real host, the driver's `/proc/driver/nvidia/capabilities`,
//!   which the container's copy of `/proc/driver/nvidia` would hide.
//!
//! The nodes are allowed by the device cgroup, as the toolkit's rules
//! allow them. Without an `nvidia-caps` major in `/proc/devices` the driver
//! has no capability nodes and only the `/proc` files are given, as there.

use super::discover::{Driver, Gpu};
use super::edits::{CdiMount, ContainerEdits};
use super::inject::{device_node, Selected};
use super::proc_files::parse_information;
use super::request::MigAdmin;
use crate::error::{Error, Result};
use std::path::Path;

/// The driver's capability files, below the dev root.
const CAPS_DIR: &str = "proc/driver/nvidia/capabilities";
/// Every MIG capability minor the driver reserves, per GPU minor.
const MIG_MINORS: &str = "proc/driver/nvidia-caps/mig-minors";

/// What MIG administration adds, and what the log should say.
#[derive(Debug, Default)]
pub struct Given {
    pub edits: ContainerEdits,
    pub notes: Vec<String>,
}

/// The edits for `asked`, for the `selected` GPUs; `proc_overlay` is the
/// directory bound over `/proc/driver/nvidia`, when there is one.
pub fn edits(
    driver: &Driver,
    selected: &[Selected],
    asked: MigAdmin,
    proc_overlay: Option<&Path>,
) -> Result<Given> {
    let mut given = Given::default();
    if !asked.any() {
        return Ok(given);
    }
    if let Some(s) = selected.iter().find(|s| s.mig.is_some()) {
        let mig = s.mig.as_ref().map_or((0, 0), |m| (m.gi, m.ci));
        return Err(Error::invalid(format!(
            "{}: not with MIG devices (the container is given GPU {}'s gi {} ci {}): give it whole GPUs, as NVIDIA's toolkit requires",
            asked.named(),
            s.gpu.index,
            mig.0,
            mig.1
        )));
    }
    let gpus = mig_capable(driver, selected);
    if gpus.is_empty() {
        given.notes.push(format!(
            "{}: none of the container's GPUs is MIG-capable (no {}/gpu<minor>/mig): nothing given",
            asked.named(),
            driver.dev_root.join(CAPS_DIR).display()
        ));
        return Ok(given);
    }
    if let Some(major) = driver.caps_major {
        let wanted = [(asked.config, "config"), (asked.monitor, "monitor")];
        let mut minors = Vec::new();
        for (_, file) in wanted.iter().filter(|(on, _)| *on) {
            minors.push(global_minor(driver, file, asked)?);
        }
        minors.extend(gpu_minors(driver, &gpus, asked)?);
        for minor in minors {
            let path = format!("/dev/nvidia-caps/nvidia-cap{minor}");
            let node = driver.node(&path, major, minor);
            given.edits.device_nodes.push(device_node(&node, None));
        }
    }
    if let Some(m) = proc_caps_mount(driver, proc_overlay)? {
        given.edits.mounts.push(m);
    }
    Ok(given)
}

/// The whole GPUs of `selected` the driver has MIG capabilities for, once
/// each.
fn mig_capable<'a>(driver: &Driver, selected: &'a [Selected]) -> Vec<&'a Gpu> {
    let mut out: Vec<&Gpu> = Vec::new();
    for s in selected {
        let dir = format!("{CAPS_DIR}/gpu{}/mig", s.gpu.minor);
        let capable = driver
            .dev_host()
            .metadata(Path::new(&dir))
            .is_ok_and(|m| m.is_dir());
        if capable && !out.iter().any(|g| g.minor == s.gpu.minor) {
            out.push(&s.gpu);
        }
    }
    out
}

/// The minor of the driver-wide capability `file` (`config`, `monitor`).
fn global_minor(driver: &Driver, file: &str, asked: MigAdmin) -> Result<u32> {
    let rel = format!("{CAPS_DIR}/mig/{file}");
    let bad = |why: String| {
        Error::invalid(format!(
            "{}: {}: {why} (the driver writes it when its GPUs support MIG)",
            asked.named(),
            driver.dev_root.join(&rel).display()
        ))
    };
    let text = driver
        .dev_host()
        .read_to_string(Path::new(&rel))
        .map_err(|e| bad(e.to_string()))?;
    parse_information(&text)
        .into_iter()
        .find(|(k, _)| k == "DeviceFileMinor")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| bad("no DeviceFileMinor in it".into()))
}

/// Every MIG capability minor the driver reserves for these GPUs, in the
/// file's order.
fn gpu_minors(driver: &Driver, gpus: &[&Gpu], asked: MigAdmin) -> Result<Vec<u32>> {
    let text = driver
        .dev_host()
        .read_to_string(Path::new(MIG_MINORS))
        .map_err(|e| {
            Error::invalid(format!(
                "{}: {}: {e} (the driver lists its MIG capability minors there)",
                asked.named(),
                driver.dev_root.join(MIG_MINORS).display()
            ))
        })?;
    Ok(parse_mig_minors(&text)
        .into_iter()
        .filter(|(gpu, _)| gpus.iter().any(|g| g.minor == *gpu))
        .map(|(_, minor)| minor)
        .collect())
}

/// (GPU minor, capability minor) of the `gpu<N>/...  <minor>` lines of
/// `mig-minors`; the driver-wide lines (`config 1`) and anything else are
/// skipped.
pub fn parse_mig_minors(text: &str) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, minor) = (words.next()?, words.next()?);
            let rest = name.strip_prefix("gpu")?;
            let digits = rest.find(|c: char| !c.is_ascii_digit())?;
            if digits == 0 || !rest[digits..].starts_with('/') {
                return None;
            }
            Some((rest[..digits].parse().ok()?, minor.parse().ok()?))
        })
        .collect()
}

/// The driver's capability files at `/proc/driver/nvidia/capabilities`,
/// read-only, inside the copy bound over `/proc/driver/nvidia` (where it
/// gets a mount point). None without that copy: the container's `/proc`
/// then is not the driver's kernel's, or already shows the host's files.
fn proc_caps_mount(driver: &Driver, proc_overlay: Option<&Path>) -> Result<Option<CdiMount>> {
    let Some(overlay) = proc_overlay else {
        return Ok(None);
    };
    let Some(host_path) = driver.dev_host().real_path(Path::new(CAPS_DIR)) else {
        return Ok(None);
    };
    let point = overlay.join("capabilities");
    std::fs::create_dir_all(&point).map_err(|e| Error::io("preparing", &point, e))?;
    Ok(Some(super::edits::proc_bind(
        &host_path,
        "/proc/driver/nvidia/capabilities",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mig_minors_are_read_per_gpu() {
        let text = "config 1\nmonitor 2\ngpu0/gi0/access 3\ngpu0/gi0/ci0/access 4\ngpu12/gi1/access 1500\ngpux/gi0/access 9\ngpu/gi0/access 9\ngpu3 7\ngpu4/gi0/access\n\n";
        assert_eq!(parse_mig_minors(text), vec![(0, 3), (0, 4), (12, 1500)]);
    }

    /// A driver root with two GPUs (minors 0 and 1), only minor 1 with MIG.
    fn driver_root() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = tmp.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "proc/driver/nvidia/version",
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.1.2\n",
        );
        write(
            "proc/devices",
            "Character devices:\n195 nvidia\n511 nvidia-caps\n",
        );
        for (bus, minor) in [("0000:01:00.0", 0), ("0000:02:00.0", 1)] {
            write(
                &format!("proc/driver/nvidia/gpus/{bus}/information"),
                &format!("Device Minor: {minor}\nBus Location: {bus}\n"),
            );
        }
        std::fs::create_dir_all(tmp.path().join(CAPS_DIR).join("gpu1/mig")).unwrap();
        write(&format!("{CAPS_DIR}/mig/config"), "DeviceFileMinor: 1\n");
        write(
            MIG_MINORS,
            "config 1\nmonitor 2\ngpu0/gi0/access 3\ngpu1/gi0/access 138\n",
        );
        tmp
    }

    fn whole(driver: &Driver) -> Vec<Selected> {
        driver
            .gpus
            .iter()
            .map(|g| Selected {
                gpu: g.clone(),
                mig: None,
            })
            .collect()
    }

    #[test]
    fn the_capable_gpus_get_their_minors_and_the_proc_files() {
        let root = driver_root();
        let driver = Driver::discover(root.path(), root.path()).unwrap();
        let overlay = tempfile::tempdir().unwrap();
        let config = MigAdmin {
            config: true,
            monitor: false,
        };
        let g = edits(&driver, &whole(&driver), config, Some(overlay.path())).unwrap();
        let nodes: Vec<(&str, Option<i64>)> = g
            .edits
            .device_nodes
            .iter()
            .map(|n| (n.path.as_str(), n.major))
            .collect();
        assert_eq!(
            nodes,
            [
                ("/dev/nvidia-caps/nvidia-cap1", Some(511)),
                ("/dev/nvidia-caps/nvidia-cap138", Some(511)),
            ]
        );
        let m = &g.edits.mounts[0];
        assert_eq!(m.container_path, "/proc/driver/nvidia/capabilities");
        assert!(m.host_path.ends_with(CAPS_DIR), "{}", m.host_path);
        assert!(overlay.path().join("capabilities").is_dir());
        // The monitor capability the driver does not list: an error naming
        // its file.
        let monitor = MigAdmin {
            config: false,
            monitor: true,
        };
        let e = edits(&driver, &whole(&driver), monitor, None).unwrap_err();
        assert!(e.to_string().contains("capabilities/mig/monitor"), "{e}");
        // Only the GPU without MIG: nothing, and a note.
        let g = edits(&driver, &whole(&driver)[..1], config, None).unwrap();
        assert!(g.edits.is_empty());
        assert!(g.notes[0].contains("MIG-capable"), "{:?}", g.notes);
    }
}
