//! The plan stage: the GPU-edited spec becomes a `Plan`, the one input of
//! the init process (which never reads the spec). Every check that can
//! fail runs here, before the state directory is claimed and before any
//! cgroup, clone or mount exists. Pure: golden-tested without root.

pub mod mountopts;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod sched;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::Hook;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use mounts::{DeviceNode, MountKind, MountPlan};
pub use namespaces::Namespaces;
pub use process::ProcessPlan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub bundle_dir: PathBuf,
    pub rootfs: PathBuf,
    pub namespaces: Namespaces,
    pub root_propagation: MsFlags,
    pub mounts: Vec<MountPlan>,
    /// `/dev` is a bind mount: runc's default nodes are not made.
    pub dev_is_bind: bool,
    pub devices: Vec<DeviceNode>,
    pub readonly_paths: Vec<PathBuf>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_root: bool,
    /// (path below /proc/sys, value), in the spec's (sorted) order.
    pub sysctls: Vec<(String, String)>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub process: ProcessPlan,
    /// The hooks that run inside the container, with what their state needs.
    pub hooks: ContainerHooks,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerHooks {
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub oci_version: String,
    pub annotations: Option<std::collections::HashMap<String, String>>,
}

impl Plan {
    /// Plans a loaded (and GPU-edited) bundle.
    pub fn new(bundle: &Bundle) -> Result<Plan> {
        let spec = &bundle.spec;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::invalid("config.json: field process is missing"))?;
        let linux = spec.linux().as_ref();
        let mounts = mounts::mounts(spec, &bundle.dir)?;
        let dev_is_bind = mounts
            .iter()
            .any(|m| m.destination == std::path::Path::new("/dev") && m.kind == MountKind::Bind);
        let paths = |l: Option<&Vec<String>>| -> Vec<PathBuf> {
            l.into_iter().flatten().map(PathBuf::from).collect()
        };
        let hooks = spec.hooks().as_ref();
        Ok(Plan {
            bundle_dir: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            namespaces: Namespaces::of_spec(spec)?,
            root_propagation: mounts::root_propagation(spec)?,
            mounts,
            dev_is_bind,
            devices: mounts::devices(spec)?,
            readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
            masked_paths: paths(linux.and_then(|l| l.masked_paths().as_ref())),
            readonly_root: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            sysctls: sysctls(linux.and_then(|l| l.sysctl().as_ref()))?,
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
            process: ProcessPlan::new(process)?
                .with_memory_policy(linux.and_then(|l| l.memory_policy().as_ref()))?
                .without_exec_affinity(),
            hooks: ContainerHooks {
                create_container: hooks
                    .and_then(|h| h.create_container().clone())
                    .unwrap_or_default(),
                start_container: hooks
                    .and_then(|h| h.start_container().clone())
                    .unwrap_or_default(),
                oci_version: spec.version().clone(),
                annotations: spec.annotations().clone(),
            },
        })
    }
}

/// Sysctl names become paths below /proc/sys; a name that could leave it
/// is refused. (Which sysctls a container may set is `bundle`'s check.)
fn sysctls(
    map: Option<&std::collections::HashMap<String, String>>,
) -> Result<Vec<(String, String)>> {
    let sorted: BTreeMap<&String, &String> = map.into_iter().flatten().collect();
    let mut out = Vec::new();
    for (key, value) in sorted {
        let parts: Vec<&str> = key.split(['.', '/']).collect();
        if key.contains('.') && key.contains('/')
            || parts
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(Error::invalid(format!(
                "linux.sysctl {key:?}: not a sysctl name"
            )));
        }
        out.push((parts.join("/"), value.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod golden;
