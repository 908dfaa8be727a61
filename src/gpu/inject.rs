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

/// A library's other name (its soname, its development name) in the
/// image's library directory: a link to the library's file where the
/// image has nothing of that name, else a bind of the file over what is
/// there (`aliases::place`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The directory in the container, absolute.
    pub dir: String,
    pub name: String,
    /// The library's own file name in `dir` (the link's target).
    pub file_name: String,
    pub host_path: String,
}

impl Alias {
    pub fn container_path(&self) -> String {
        format!("{}/{}", self.dir, self.name)
    }

    /// The bind mount that gives this name when no link can.
    pub fn as_mount(&self) -> CdiMount {
        CdiMount {
            host_path: self.host_path.clone(),
            container_path: self.container_path(),
            options: ro_bind_options(),
            typ: Some("bind".into()),
        }
    }
}

/// What the driver gives a container: the edits (nodes, each library's
/// file and the other driver files bound where the image keeps its
/// libraries), the cache entries naming the libraries, and the
/// libraries' other names.
#[derive(Debug, Default)]
pub struct RuntimeEdits {
    pub edits: ContainerEdits,
    pub cache: Vec<Entry>,
    pub aliases: Vec<Alias>,
}

/// Edits for a container: nodes, and files put where the image keeps its
/// libraries (`lib64`/`lib32`), plus the cache entries naming them.
pub fn runtime_edits(
    driver: &Driver,
    selected: &[Selected],
    caps: Caps,
    lib64: &str,
    lib32: &str,
) -> RuntimeEdits {
    let mut out = RuntimeEdits::default();
    let edits = &mut out.edits;
    for n in nodes(driver, selected, caps) {
        edits.device_nodes.push(device_node(&n, None));
    }
    for lib in driver.libraries_for(caps) {
        let (dir, flags) = if lib.bits32 {
            (lib32, FLAG_LIBC6)
        } else {
            (lib64, FLAG_X86_64)
        };
        let dir = dir.trim_end_matches('/');
        let host_path = lib.host_path.to_string_lossy().into_owned();
        edits.mounts.push(CdiMount {
            host_path: host_path.clone(),
            container_path: format!("{dir}/{}", lib.file_name),
            options: ro_bind_options(),
            typ: Some("bind".into()),
        });
        for name in library_names(lib).into_iter().skip(1) {
            let alias = Alias {
                dir: dir.to_string(),
                name,
                file_name: lib.file_name.clone(),
                host_path: host_path.clone(),
            };
            out.cache
                .push(Entry::new(flags, &alias.name, &alias.container_path()));
            out.aliases.push(alias);
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
    out
}
