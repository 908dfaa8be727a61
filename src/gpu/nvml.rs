//! MIG UUIDs for `vessel gpu cdi`, which only NVML knows, asked of the
//! `vessel-nvml` helper (`tools/vessel-nvml`): a program of its own because
//! the release vessel is static and cannot dlopen. The helper is given the
//! host driver's libnvidia-ml as an open file (found and opened inside the
//! driver root, passed as `/proc/self/fd/N`), so it loads that file and no
//! other. Never used when a container starts: a `MIG-<uuid>` is then looked
//! up in the CDI specs this wrote (`mig_uuid`).

use super::discover::{Driver, Gpu};
use super::proc_files::normalize_bus_id;
use serde::Deserialize;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Names the helper to run instead of the one next to vessel.
pub const HELPER_ENV: &str = "VESSEL_NVML";
/// The helper's file name, installed next to vessel.
pub const HELPER_NAME: &str = "vessel-nvml";
/// How long NVML may take (a GPU in a bad state can hang it).
const TIMEOUT: Duration = Duration::from_secs(30);

/// What the helper prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Report {
    pub gpus: Vec<NvmlGpu>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NvmlGpu {
    pub uuid: String,
    #[serde(default)]
    pub bus_id: String,
    #[serde(default)]
    pub migs: Vec<NvmlMig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NvmlMig {
    pub gi: u32,
    pub ci: u32,
    pub uuid: String,
}

/// One MIG device's UUID, placed among the discovered devices: the
/// `<gpu>:<mig>` (indexes into `Driver::gpus` and that GPU's `migs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigUuid {
    pub gpu: usize,
    pub mig: usize,
    pub uuid: String,
}

/// The helper: `VESSEL_NVML`, else `vessel-nvml` beside this executable.
pub fn helper() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(HELPER_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return match p.is_file() {
            true => Ok(p),
            false => Err(format!("{} ({HELPER_ENV}) not found", p.display())),
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding vessel's own path: {e}"))?;
    let beside = exe.with_file_name(HELPER_NAME);
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(format!(
            "{} not found (`make install` puts it beside vessel; {HELPER_ENV}=PATH names another)",
            beside.display()
        ))
    }
}

/// Runs the helper on the driver's NVML; the error says what failed.
pub fn query(driver: &Driver) -> Result<Report, String> {
    let lib = driver
        .libraries
        .iter()
        .find(|l| l.name == "libnvidia-ml" && !l.bits32)
        .ok_or_else(|| format!("the driver has no libnvidia-ml ({})", driver.library_source))?;
    let file = driver
        .host()
        .open_real(&lib.host_path)
        .map_err(|e| format!("opening {}: {e}", lib.host_path.display()))?;
    let helper = helper()?;
    // The child inherits this one fd (std opens everything close-on-exec).
    // SAFETY: fcntl on an fd this function owns.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFD, 0) } < 0 {
        return Err(format!(
            "passing {} on: {}",
            lib.host_path.display(),
            std::io::Error::last_os_error()
        ));
    }
    let out = run(&helper, &format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    serde_json::from_str(&out).map_err(|e| format!("{}: unreadable output: {e}", helper.display()))
}

/// The helper's stdout, or why it failed (its stderr, or the timeout).
fn run(helper: &Path, library: &str) -> Result<String, String> {
    let mut child = Command::new(helper)
        .arg(library)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", helper.display()))?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("NVML did not answer in {}s", TIMEOUT.as_secs()));
            }
            Err(e) => break Err(format!("waiting for {}: {e}", helper.display())),
        }
    };
    let (out, err) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    match status? {
        s if s.success() => Ok(out),
        s => Err(format!("{} ({s})", err.trim())),
    }
}

/// A pipe read to its end on a thread of its own, so a child that writes
/// much cannot block while it is waited for.
fn read_all<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut text);
        }
        text
    })
}

/// The MIG UUIDs of `report` placed on the discovered MIG devices (GPUs
/// matched by UUID, else bus id; MIG devices by GPU and compute instance),
/// and notes for those the driver's files do not show.
pub fn place(gpus: &[Gpu], report: &Report) -> (Vec<MigUuid>, Vec<String>) {
    let mut placed = Vec::new();
    let mut notes = Vec::new();
    for n in &report.gpus {
        let same_bus =
            |b: &str| !n.bus_id.is_empty() && normalize_bus_id(b) == normalize_bus_id(&n.bus_id);
        let Some(g) = gpus
            .iter()
            .find(|g| g.uuid.eq_ignore_ascii_case(&n.uuid) || same_bus(&g.bus_id))
        else {
            if !n.migs.is_empty() {
                notes.push(format!(
                    "NVML's GPU {} is not among the driver's GPUs: its MIG devices are left out",
                    n.uuid
                ));
            }
            continue;
        };
        for m in &n.migs {
            match g.migs.iter().position(|d| (d.gi, d.ci) == (m.gi, m.ci)) {
                Some(mig) => placed.push(MigUuid {
                    gpu: g.index,
                    mig,
                    uuid: m.uuid.clone(),
                }),
                None => notes.push(format!(
                    "{}: GPU {} has no gi {} ci {} in /proc/driver/nvidia/capabilities: left out",
                    m.uuid, g.index, m.gi, m.ci
                )),
            }
        }
    }
    (placed, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helpers_json_is_read_with_fields_it_may_add() {
        let r: Report = serde_json::from_str(
            r#"{"gpus":[{"index":0,"uuid":"GPU-1","bus_id":"00000000:3B:00.0","mig_enabled":true,
                "migs":[{"index":1,"gi":1,"ci":0,"uuid":"MIG-x"}]}],"extra":1}"#,
        )
        .unwrap();
        assert_eq!(r.gpus[0].migs[0].uuid, "MIG-x");
        assert_eq!(r.gpus[0].migs[0].gi, 1);
        assert!(serde_json::from_str::<Report>("{}").is_err());
    }

    fn gpu(index: usize, uuid: &str, bus: &str, migs: &[(u32, u32)]) -> Gpu {
        Gpu {
            index,
            bus_id: bus.into(),
            minor: index as u32,
            uuid: uuid.into(),
            model: String::new(),
            proc_dir: PathBuf::new(),
            migs: migs
                .iter()
                .map(|&(gi, ci)| crate::gpu::discover::Mig {
                    gi,
                    ci,
                    gi_minor: 10 + gi,
                    ci_minor: 20 + ci,
                })
                .collect(),
        }
    }

    fn mig(gi: u32, ci: u32, uuid: &str) -> NvmlMig {
        NvmlMig {
            gi,
            ci,
            uuid: uuid.into(),
        }
    }

    /// GPUs meet by UUID or bus id, MIG devices by gi/ci (NVML's own slot
    /// order is not vessel's `<gpu>:<mig>` order).
    #[test]
    fn mig_uuids_are_placed_on_the_discovered_devices() {
        let gpus = [
            gpu(0, "GPU-a", "0000:3b:00.0", &[(1, 0), (2, 0)]),
            gpu(1, "GPU-b", "0000:af:00.0", &[(3, 1)]),
        ];
        let report = Report {
            gpus: vec![
                NvmlGpu {
                    uuid: "GPU-A".into(),
                    bus_id: String::new(),
                    migs: vec![
                        mig(2, 0, "MIG-2"),
                        mig(1, 0, "MIG-1"),
                        mig(9, 9, "MIG-gone"),
                    ],
                },
                NvmlGpu {
                    uuid: "GPU-renamed".into(),
                    bus_id: "00000000:AF:00.0".into(),
                    migs: vec![mig(3, 1, "MIG-3")],
                },
                NvmlGpu {
                    uuid: "GPU-elsewhere".into(),
                    bus_id: String::new(),
                    migs: vec![mig(1, 0, "MIG-x")],
                },
            ],
        };
        let (placed, notes) = place(&gpus, &report);
        let at = |u: &str| placed.iter().find(|p| p.uuid == u).map(|p| (p.gpu, p.mig));
        assert_eq!(at("MIG-1"), Some((0, 0)));
        assert_eq!(at("MIG-2"), Some((0, 1)));
        assert_eq!(at("MIG-3"), Some((1, 0)));
        assert_eq!(placed.len(), 3);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("MIG-gone") && notes[1].contains("GPU-elsewhere"));
    }
}
