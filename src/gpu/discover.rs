//! What the host's NVIDIA driver provides, read from files under two host
//! roots (both `/` on most hosts; a fake driver's root in tests): the
//! kernel side (version, GPUs, device majors, device nodes, MIG
//! capabilities) under the dev root, the user space (libraries from the
//! host's ld.so.cache, binaries, firmware, sockets) under the driver root.
//! NVIDIA's GPU Operator keeps the driver in `/run/nvidia/driver` while
//! its nodes are the host's `/dev`. Nothing is forked and nothing is
//! loaded. Every file is looked up inside its root and read through the
//! fd of that lookup (`hostfs`).

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
    /// Where the driver's files are: libraries, binaries, firmware.
    pub root: PathBuf,
    /// `root` opened once: every lookup of those resolves inside it.
    host: Arc<HostRoot>,
    /// Where the kernel side is: `dev/` nodes, `proc/driver/nvidia`,
    /// `proc/devices`.
    pub dev_root: PathBuf,
    /// `dev_root` opened once (the same as `host` when the roots are).
    dev: Arc<HostRoot>,
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
    /// Reads the driver: its files under `root`, its nodes and `/proc`
    /// files under `dev_root`. Fails, saying what is missing, when no
    /// NVIDIA driver is loaded there.
    pub fn discover(root: &Path, dev_root: &Path) -> Result<Driver> {
        let version_file = dev_root.join("proc/driver/nvidia/version");
        let no_driver = |e: std::io::Error| {
            Error::invalid(format!(
                "no NVIDIA driver: {}: {e} (is the nvidia kernel module loaded? try `modprobe nvidia`)",
                version_file.display()
            ))
        };
        // A root that is not there has no driver either (the same message).
        let dev = Arc::new(HostRoot::open(dev_root).map_err(no_driver)?);
        let text = dev
            .read_to_string(Path::new("proc/driver/nvidia/version"))
            .map_err(no_driver)?;
        let version = parse_version(&text).ok_or_else(|| {
            Error::invalid(format!(
                "{}: no driver version in it",
                version_file.display()
            ))
        })?;
        let host = if root == dev_root {
            dev.clone()
        } else {
            Arc::new(HostRoot::open(root).map_err(|e| {
                Error::invalid(format!("the NVIDIA driver's root {}: {e}", root.display()))
            })?)
        };
        let devices = dev
            .read_to_string(Path::new("proc/devices"))
            .unwrap_or_default();
        let majors = parse_char_majors(&devices);
        let major_of = |names: &[&str]| {
            majors
                .iter()
                .find(|(_, n)| names.contains(&n.as_str()))
                .map(|(m, _)| *m)
        };
        let mut gpus = read_gpus(&dev)?;
        read_migs(&dev, &mut gpus);
        let (libraries, library_source) = find_libraries(&host, &version);
        Ok(Driver {
            root: root.to_path_buf(),
            host,
            dev_root: dev_root.to_path_buf(),
            dev,
            version,
            gpus,
            nvidia_major: major_of(&["nvidia", "nvidia-frontend"]).unwrap_or(195),
            uvm_major: major_of(&["nvidia-uvm"]),
            caps_major: major_of(&["nvidia-caps"]),
            libraries,
            library_source,
        })
    }

    /// The driver root, for reads of other driver files inside it.
    pub fn host(&self) -> &HostRoot {
        &self.host
    }

    /// The dev root, for reads of other nodes and `/proc` files inside it.
    pub fn dev_host(&self) -> &HostRoot {
        &self.dev
    }

    /// Where the host has a node of the container's `path` (`/dev/...`).
    pub fn host_node_path(&self, path: &str) -> PathBuf {
        self.dev_root.join(path.trim_start_matches('/'))
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

    /// The host's character device at `path`, resolved inside the dev
    /// root (a fake root's absolute symlink must not reach the real `/dev`).
    fn host_node(&self, path: &str) -> Option<Node> {
        let m = self.dev.metadata(Path::new(path)).ok()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "580.1";

    /// A driver split as NVIDIA's GPU Operator lays it out: the kernel side
    /// under `dev`, the driver's files under `driver`; neither has the
    /// other's part, so a read from the wrong root finds nothing.
    fn split_roots() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().join("dev-root");
        let driver = tmp.path().join("driver-root");
        let gpu = dev.join("proc/driver/nvidia/gpus/0000:3b:00.0");
        std::fs::create_dir_all(&gpu).unwrap();
        std::fs::create_dir_all(dev.join("dev")).unwrap();
        std::fs::write(
            dev.join("proc/driver/nvidia/version"),
            format!("NVRM version: NVIDIA UNIX x86_64 Kernel Module  {V}  Thu Jan  1 2026\n"),
        )
        .unwrap();
        std::fs::write(
            gpu.join("information"),
            "Model: \t NVIDIA H100\nGPU UUID: \t GPU-1\nBus Location: \t 0000:3b:00.0\nDevice Minor: \t 3\n",
        )
        .unwrap();
        std::fs::write(
            dev.join("proc/devices"),
            "Character devices:\n195 nvidia\n510 nvidia-uvm\n",
        )
        .unwrap();
        let lib = driver.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join(format!("libcuda.so.{V}")), "").unwrap();
        std::fs::create_dir_all(driver.join("usr/bin")).unwrap();
        std::fs::write(driver.join("usr/bin/nvidia-smi"), "").unwrap();
        (tmp, driver, dev)
    }

    #[test]
    fn the_kernel_side_is_read_under_the_dev_root() {
        let (_tmp, driver_root, dev_root) = split_roots();
        let am_root = nix::unistd::geteuid().is_root();
        if am_root {
            let node = dev_root.join("dev/nvidia3");
            nix::sys::stat::mknod(
                &node,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                libc::makedev(195, 3),
            )
            .unwrap();
        }
        let d = Driver::discover(&driver_root, &dev_root).unwrap();
        assert_eq!(d.version, V);
        assert_eq!(d.gpus.len(), 1);
        assert!(d.gpus[0].proc_dir.starts_with(&dev_root));
        assert_eq!(d.uvm_major, Some(510));
        let node = d.gpu_node(&d.gpus[0]);
        assert_eq!((node.major, node.minor), (195, 3));
        assert_eq!(node.on_host, am_root);
        assert_eq!(d.host_node_path(&node.path), dev_root.join("dev/nvidia3"));
        let cdi = crate::gpu::cdi_gen::gpu_spec(&d, &[]);
        let host_paths: Vec<&str> = cdi
            .devices
            .iter()
            .flat_map(|dev| &dev.container_edits.device_nodes)
            .filter_map(|n| n.host_path.as_deref())
            .collect();
        assert_eq!(host_paths.is_empty(), !am_root, "{host_paths:?}");
        assert!(
            host_paths
                .iter()
                .all(|p| Path::new(p).starts_with(&dev_root)),
            "{host_paths:?}"
        );
        let canonical = std::fs::canonicalize(&driver_root).unwrap();
        assert!(
            d.libraries
                .iter()
                .any(|l| l.name == "libcuda" && l.host_path.starts_with(&canonical)),
            "{:?}",
            d.libraries
        );
        let files = d.files_for(Caps::UTILITY);
        assert!(
            files.iter().any(|f| f.host_path.starts_with(&canonical)),
            "{files:?}"
        );
        // One root for both, as before: the driver root has no /proc.
        let e = Driver::discover(&driver_root, &driver_root).unwrap_err();
        assert!(e.to_string().contains("no NVIDIA driver"), "{e}");
    }
}
