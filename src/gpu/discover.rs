//! What the host's NVIDIA driver provides, read from files under a host root
//! (`/`, or a fake driver's root in tests): version, GPUs, device majors,
//! device nodes, libraries (from the host's ld.so.cache), binaries,
//! firmware, sockets. Nothing is forked and nothing is loaded. Every file
//! is looked up inside the root and read through the fd of that lookup
//! (`hostfs`).

use super::hostfs::HostRoot;
use super::libraries::{capability_libraries, find_libraries, Library};
use super::proc_files::{normalize_bus_id, parse_char_majors, parse_information, parse_version};
use super::request::Caps;
use crate::error::{Error, Result};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One GPU, in PCI bus order (its position is its index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub index: usize,
    pub bus_id: String,
    pub minor: u32,
    pub uuid: String,
    pub model: String,
    /// The host's `proc/driver/nvidia/gpus/<bus>` directory.
    pub proc_dir: PathBuf,
    /// MIG devices: (gi, ci, gi access minor, ci access minor), in order.
    pub migs: Vec<Mig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mig {
    pub gi: u32,
    pub ci: u32,
    pub gi_minor: u32,
    pub ci_minor: u32,
}

/// A host file other than a library (binary, firmware, socket, ICD file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub kind: FileKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Binary,
    Firmware,
    Socket,
    Config,
}

/// A character device the driver provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    /// Whether the host has this node (else it is made from /proc/devices).
    pub on_host: bool,
}

#[derive(Debug, Clone)]
pub struct Driver {
    pub root: PathBuf,
    /// `root` opened once: every host lookup resolves inside it.
    host: Arc<HostRoot>,
    pub version: String,
    pub gpus: Vec<Gpu>,
    pub nvidia_major: u32,
    pub uvm_major: Option<u32>,
    pub caps_major: Option<u32>,
    pub libraries: Vec<Library>,
    /// Where the libraries were found: the host cache, or a directory scan.
    pub library_source: String,
}

impl Driver {
    /// Reads the driver under `root`. Fails, saying what is missing, when
    /// no NVIDIA driver is loaded there.
    pub fn discover(root: &Path) -> Result<Driver> {
        let version_file = root.join("proc/driver/nvidia/version");
        let no_driver = |e: std::io::Error| {
            Error::invalid(format!(
                "no NVIDIA driver: {}: {e} (is the nvidia kernel module loaded? try `modprobe nvidia`)",
                version_file.display()
            ))
        };
        // A root that is not there has no driver either (the same message).
        let host = HostRoot::open(root).map_err(no_driver)?;
        let text = host
            .read_to_string(Path::new("proc/driver/nvidia/version"))
            .map_err(no_driver)?;
        let version = parse_version(&text).ok_or_else(|| {
            Error::invalid(format!(
                "{}: no driver version in it",
                version_file.display()
            ))
        })?;
        let devices = host
            .read_to_string(Path::new("proc/devices"))
            .unwrap_or_default();
        let majors = parse_char_majors(&devices);
        let major_of = |names: &[&str]| {
            majors
                .iter()
                .find(|(_, n)| names.contains(&n.as_str()))
                .map(|(m, _)| *m)
        };
        let mut gpus = read_gpus(&host)?;
        read_migs(&host, &mut gpus);
        let (libraries, library_source) = find_libraries(&host, &version);
        Ok(Driver {
            root: root.to_path_buf(),
            host: Arc::new(host),
            version,
            gpus,
            nvidia_major: major_of(&["nvidia", "nvidia-frontend"]).unwrap_or(195),
            uvm_major: major_of(&["nvidia-uvm"]),
            caps_major: major_of(&["nvidia-caps"]),
            libraries,
            library_source,
        })
    }

    /// The root, for reads of other host files inside it.
    pub fn host(&self) -> &HostRoot {
        &self.host
    }

    /// `/dev/nvidiaN` for a GPU.
    pub fn gpu_node(&self, gpu: &Gpu) -> Node {
        self.node(
            &format!("/dev/nvidia{}", gpu.minor),
            self.nvidia_major,
            gpu.minor,
        )
    }

    /// The driver-wide nodes a request with these capabilities needs.
    pub fn control_nodes(&self, caps: Caps) -> Vec<Node> {
        let mut nodes = vec![self.node("/dev/nvidiactl", self.nvidia_major, 255)];
        if caps.contains(Caps::COMPUTE) {
            nodes.extend(self.node_of("/dev/nvidia-uvm", self.uvm_major, 0));
            nodes.extend(self.node_of("/dev/nvidia-uvm-tools", self.uvm_major, 1));
        }
        if caps.contains(Caps::DISPLAY) {
            nodes.push(self.node("/dev/nvidia-modeset", self.nvidia_major, 254));
        }
        nodes
    }

    /// The MIG capability nodes of one MIG device.
    pub fn mig_nodes(&self, mig: &Mig) -> Vec<Node> {
        [mig.gi_minor, mig.ci_minor]
            .iter()
            .filter_map(|&minor| {
                let path = format!("/dev/nvidia-caps/nvidia-cap{minor}");
                self.node_of(&path, self.caps_major, minor)
            })
            .collect()
    }

    /// The node at `path`: the host's own numbers and mode when it exists
    /// (it is what the kernel will check), else the driver's numbers.
    pub fn node(&self, path: &str, major: u32, minor: u32) -> Node {
        self.host_node(path).unwrap_or_else(|| Node {
            path: path.to_string(),
            major,
            minor,
            mode: 0o666,
            on_host: false,
        })
    }

    /// The host's character device at `path`, resolved inside the root (a
    /// fake root's absolute symlink must not reach the real `/dev`).
    fn host_node(&self, path: &str) -> Option<Node> {
        let m = self.host.metadata(Path::new(path)).ok()?;
        m.file_type().is_char_device().then(|| Node {
            path: path.to_string(),
            major: libc::major(m.rdev()),
            minor: libc::minor(m.rdev()),
            mode: m.mode() & 0o777,
            on_host: true,
        })
    }

    /// A node of a driver part whose major is not in /proc/devices: the
    /// host's node when there is one.
    fn node_of(&self, path: &str, major: Option<u32>, minor: u32) -> Option<Node> {
        match major {
            Some(m) => Some(self.node(path, m, minor)),
            None => self.host_node(path),
        }
    }

    /// The libraries for these capabilities (`all`: every driver library).
    pub fn libraries_for(&self, caps: Caps) -> Vec<&Library> {
        self.libraries
            .iter()
            .filter(|l| caps.contains(Caps::COMPAT32) || !l.bits32)
            .filter(|l| {
                caps.is_all()
                    || Caps::each()
                        .filter(|c| caps.contains(*c))
                        .any(|c| capability_libraries(c).contains(&l.name.as_str()))
            })
            .collect()
    }

    /// Binaries, firmware, sockets and ICD files for these capabilities.
    pub fn files_for(&self, caps: Caps) -> Vec<HostFile> {
        let host = &*self.host;
        let mut out: Vec<HostFile> = wanted_files(host, caps)
            .into_iter()
            .filter_map(|(rel, kind)| locate(host, &rel, kind))
            .collect();
        if caps.intersects(Caps::UTILITY | Caps::COMPUTE) {
            out.extend(self.firmware_files());
        }
        out
    }

    /// The `.bin` files of this driver version's firmware directory (under
    /// `lib/`, else `usr/lib/`), in name order.
    fn firmware_files(&self) -> Vec<HostFile> {
        let host = &*self.host;
        let fw = format!("lib/firmware/nvidia/{}", self.version);
        let dirs = [fw.clone(), format!("usr/{fw}")];
        let Some((fw, listing)) = dirs
            .iter()
            .find_map(|d| host.read_dir(Path::new(d)).ok().map(|l| (d, l)))
        else {
            return Vec::new();
        };
        let mut names: Vec<String> = listing
            .entries()
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".bin"))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| {
                let host_path = host.real_path(Path::new(&format!("{fw}/{n}")))?;
                Some(HostFile {
                    host_path,
                    container_path: Path::new("/lib/firmware/nvidia")
                        .join(&self.version)
                        .join(&n),
                    kind: FileKind::Firmware,
                })
            })
            .collect()
    }
}

/// Where a driver binary is looked for, in this order.
const BIN_DIRS: &[&str] = &[
    "usr/bin",
    "usr/sbin",
    "bin",
    "sbin",
    "usr/local/bin",
    "usr/local/sbin",
    "usr/local/nvidia/bin",
];

/// The ICD and layer files of graphics and display (EGL, Vulkan).
const GRAPHICS_CONFIGS: &[&str] = &[
    "usr/share/glvnd/egl_vendor.d/10_nvidia.json",
    "etc/vulkan/icd.d/nvidia_icd.json",
    "usr/share/vulkan/icd.d/nvidia_icd.json",
    "etc/vulkan/implicit_layer.d/nvidia_layers.json",
    "usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
    "usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json",
    "usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json",
];

/// The files (relative to the root) these capabilities want, before it is
/// known which exist: the binaries found, the sockets, the ICD files.
fn wanted_files(host: &HostRoot, caps: Caps) -> Vec<(String, FileKind)> {
    let mut want = Vec::new();
    if caps.contains(Caps::UTILITY) {
        want.extend(find_binaries(
            host,
            &["nvidia-smi", "nvidia-debugdump", "nvidia-persistenced"],
        ));
    }
    if caps.contains(Caps::COMPUTE) {
        want.extend(find_binaries(
            host,
            &["nvidia-cuda-mps-control", "nvidia-cuda-mps-server"],
        ));
        want.push(("run/nvidia-fabricmanager/socket".into(), FileKind::Socket));
    }
    if caps.intersects(Caps::UTILITY | Caps::COMPUTE) {
        want.push(("run/nvidia-persistenced/socket".into(), FileKind::Socket));
    }
    if caps.intersects(Caps::GRAPHICS | Caps::DISPLAY) {
        want.extend(
            GRAPHICS_CONFIGS
                .iter()
                .map(|p| (p.to_string(), FileKind::Config)),
        );
    }
    want
}

/// Each binary in the first of `BIN_DIRS` that has it; one that none has
/// is left out.
fn find_binaries(host: &HostRoot, names: &[&str]) -> Vec<(String, FileKind)> {
    names
        .iter()
        .filter_map(|n| {
            BIN_DIRS
                .iter()
                .map(|dir| format!("{dir}/{n}"))
                .find(|p| host.open_path(Path::new(p)).is_ok())
        })
        .map(|p| (p, FileKind::Binary))
        .collect()
}

/// The file at `rel` if the root has it, with where the container sees
/// it: a binary in `/usr/bin`, anything else at the same path.
fn locate(host: &HostRoot, rel: &str, kind: FileKind) -> Option<HostFile> {
    let host_path = match kind {
        // Sockets may be under /var/run where /run is not its link.
        FileKind::Socket => host
            .real_path(Path::new(rel))
            .or_else(|| host.real_path(&Path::new("var").join(rel))),
        _ => host.real_path(Path::new(rel)),
    }?;
    let container_path = match kind {
        FileKind::Binary => {
            Path::new("/usr/bin").join(Path::new(rel).file_name().unwrap_or_default())
        }
        _ => Path::new("/").join(rel),
    };
    Some(HostFile {
        host_path,
        container_path,
        kind,
    })
}

fn read_gpus(host: &HostRoot) -> Result<Vec<Gpu>> {
    let dir = Path::new("proc/driver/nvidia/gpus");
    let listing = match host.read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading", host.path().join(dir), e)),
    };
    let mut gpus = Vec::new();
    for entry in listing.entries() {
        let rel = dir.join(&entry.name);
        let Ok(text) = host.read_to_string(&rel.join("information")) else {
            continue;
        };
        let info = parse_information(&text);
        let get = |k: &str| {
            info.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let dir_name = entry.name.to_string_lossy().into_owned();
        let minor = get("Device Minor").and_then(|m| m.parse().ok());
        gpus.push(Gpu {
            index: 0,
            bus_id: get("Bus Location").unwrap_or(dir_name).to_lowercase(),
            minor: minor.unwrap_or(u32::MAX),
            uuid: get("GPU UUID").unwrap_or_default(),
            model: get("Model").unwrap_or_default(),
            proc_dir: host.path().join(&rel),
            migs: Vec::new(),
        });
    }
    gpus.sort_by_key(|g| normalize_bus_id(&g.bus_id));
    // Without a "Device Minor" line, the minor is the GPU's position (what
    // the driver assigns when no GPU is excluded) unless another GPU has it.
    let taken: Vec<u32> = gpus.iter().map(|g| g.minor).collect();
    let mut i = 0;
    gpus.retain_mut(|g| {
        if g.minor == u32::MAX {
            if taken.contains(&(i as u32)) {
                return false;
            }
            g.minor = i as u32;
        }
        g.index = i;
        i += 1;
        true
    });
    Ok(gpus)
}

/// MIG devices from `proc/driver/nvidia/capabilities/gpu<minor>/mig/gi*/ci*/access`.
fn read_migs(host: &HostRoot, gpus: &mut [Gpu]) {
    let access_minor = |p: &Path| -> Option<u32> {
        let text = host.read_to_string(&p.join("access")).ok()?;
        parse_information(&text)
            .into_iter()
            .find(|(k, _)| k == "DeviceFileMinor")?
            .1
            .parse()
            .ok()
    };
    let numbered = |dir: &Path, prefix: &str| -> Vec<(u32, PathBuf)> {
        let Ok(listing) = host.read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<(u32, PathBuf)> = listing
            .entries()
            .iter()
            .filter_map(|e| {
                let n = e
                    .name
                    .to_string_lossy()
                    .strip_prefix(prefix)?
                    .parse()
                    .ok()?;
                Some((n, dir.join(&e.name)))
            })
            .collect();
        v.sort();
        v
    };
    for gpu in gpus {
        let mig_dir = PathBuf::from(format!(
            "proc/driver/nvidia/capabilities/gpu{}/mig",
            gpu.minor
        ));
        for (gi, gi_path) in numbered(&mig_dir, "gi") {
            let Some(gi_minor) = access_minor(&gi_path) else {
                continue;
            };
            for (ci, ci_path) in numbered(&gi_path, "ci") {
                if let Some(ci_minor) = access_minor(&ci_path) {
                    gpu.migs.push(Mig {
                        gi,
                        ci,
                        gi_minor,
                        ci_minor,
                    });
                }
            }
        }
    }
}
