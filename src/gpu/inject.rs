//! From a discovered driver and a request to container edits (pure): which
//! GPUs, which nodes, which files where, and the linker cache entries that
//! make the libraries resolve by soname. `vessel gpu cdi` (`cdi_gen`)
//! shares the parts.

use super::discover::{Driver, FileKind, Gpu, Mig, Node};
use super::edits::{ro_bind_options, CdiMount, ContainerEdits, DeviceNode};
use super::ldcache::{Entry, FLAG_LIBC6, FLAG_X86_64};
use super::libraries::Library;
use super::request::{Caps, DeviceRef, Devices};
use crate::error::{Error, Result};

/// One selected GPU, or one MIG device of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub gpu: Gpu,
    pub mig: Option<Mig>,
}

fn known(driver: &Driver) -> String {
    if driver.gpus.is_empty() {
        return "this host has no GPU".into();
    }
    let list: Vec<String> = driver
        .gpus
        .iter()
        .map(|g| format!("{} ({})", g.index, g.uuid))
        .collect();
    format!("this host has {}", list.join(", "))
}

/// Resolves the device list against the driver; an unknown device is an
/// error that lists what exists.
pub fn select(driver: &Driver, devices: &Devices) -> Result<Vec<Selected>> {
    let whole = |g: &Gpu| Selected {
        gpu: g.clone(),
        mig: None,
    };
    let refs = match devices {
        Devices::All => return Ok(driver.gpus.iter().map(whole).collect()),
        Devices::NoGpu => return Ok(Vec::new()),
        Devices::List(refs) => refs,
    };
    let mut out: Vec<Selected> = Vec::new();
    for r in refs {
        let sel = match r {
            DeviceRef::Index(i) => driver.gpus.get(*i).map(whole),
            DeviceRef::Uuid(u) => driver
                .gpus
                .iter()
                .find(|g| g.uuid.eq_ignore_ascii_case(u))
                .map(whole),
            DeviceRef::BusId(b) => {
                let b = super::proc_files::normalize_bus_id(b);
                driver
                    .gpus
                    .iter()
                    .find(|g| super::proc_files::normalize_bus_id(&g.bus_id) == b)
                    .map(whole)
            }
            DeviceRef::Mig(g, m) => {
                let gpu = driver.gpus.get(*g).ok_or_else(|| {
                    Error::invalid(format!(
                        "GPU device {g}:{m}: no GPU with index {g} ({})",
                        known(driver)
                    ))
                })?;
                let mig = gpu.migs.get(*m).ok_or_else(|| {
                    Error::invalid(format!(
                        "GPU device {g}:{m}: GPU {g} has {} MIG devices (is MIG mode enabled and are instances created?)",
                        gpu.migs.len()
                    ))
                })?;
                Some(Selected {
                    gpu: gpu.clone(),
                    mig: Some(mig.clone()),
                })
            }
            // `mig_uuid::resolve` has turned each into `<gpu>:<mig>`.
            DeviceRef::MigUuid(u) => return Err(super::mig_uuid::unknown(u, &[], &[])),
        };
        let sel = sel.ok_or_else(|| {
            Error::invalid(format!(
                "GPU device {}: not found ({})",
                match r {
                    DeviceRef::Index(i) => i.to_string(),
                    DeviceRef::Uuid(s) | DeviceRef::BusId(s) => s.clone(),
                    _ => format!("{r:?}"),
                },
                known(driver)
            ))
        })?;
        if !out.contains(&sel) {
            out.push(sel);
        }
    }
    Ok(out)
}

/// A spec's device node for `n`; `host_path` where the host has it.
pub(super) fn device_node(n: &Node, host_path: Option<String>) -> DeviceNode {
    DeviceNode {
        path: n.path.clone(),
        host_path,
        typ: Some("c".into()),
        major: Some(n.major as i64),
        minor: Some(n.minor as i64),
        file_mode: Some(n.mode),
        ..Default::default()
    }
}

/// The device nodes of a request, control nodes first.
pub fn nodes(driver: &Driver, selected: &[Selected], caps: Caps) -> Vec<Node> {
    let mut out = driver.control_nodes(caps);
    for s in selected {
        let mut add = vec![driver.gpu_node(&s.gpu)];
        if let Some(m) = &s.mig {
            add.extend(driver.mig_nodes(m));
        }
        for n in add {
            if !out.iter().any(|o| o.path == n.path) {
                out.push(n);
            }
        }
    }
    out
}

/// The names a library is mounted under in `dir`: its file, its soname,
/// and its development name (`libcuda.so`).
pub fn library_names(lib: &Library) -> Vec<String> {
    let mut names = vec![lib.file_name.clone()];
    for n in [lib.soname.clone(), format!("{}.so", lib.name)] {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// How a driver file other than a library is bound.
pub(super) fn file_options(kind: FileKind) -> Vec<String> {
    let mut o = ro_bind_options();
    if matches!(
        kind,
        FileKind::Socket | FileKind::Firmware | FileKind::Config
    ) {
        o.insert(3, "noexec".into());
    }
    o
}

/// Edits for a container: nodes, and files put where the image keeps its
/// libraries (`lib64`/`lib32`), plus the cache entries naming them.
pub fn runtime_edits(
    driver: &Driver,
    selected: &[Selected],
    caps: Caps,
    lib64: &str,
    lib32: &str,
) -> (ContainerEdits, Vec<Entry>) {
    let mut edits = ContainerEdits::default();
    for n in nodes(driver, selected, caps) {
        edits.device_nodes.push(device_node(&n, None));
    }
    let mut cache = Vec::new();
    for lib in driver.libraries_for(caps) {
        let (dir, flags) = if lib.bits32 {
            (lib32, FLAG_LIBC6)
        } else {
            (lib64, FLAG_X86_64)
        };
        for name in library_names(lib) {
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            edits.mounts.push(CdiMount {
                host_path: lib.host_path.to_string_lossy().into_owned(),
                container_path: path.clone(),
                options: ro_bind_options(),
                typ: Some("bind".into()),
            });
            if name != lib.file_name {
                cache.push(Entry::new(flags, &name, &path));
            }
        }
    }
    for f in driver.files_for(caps) {
        edits.mounts.push(CdiMount {
            host_path: f.host_path.to_string_lossy().into_owned(),
            container_path: f.container_path.to_string_lossy().into_owned(),
            options: file_options(f.kind),
            typ: Some("bind".into()),
        });
    }
    (edits, cache)
}
