//! The filesystem part of a plan: mounts with their options parsed and
//! bind sources made absolute, device nodes typed, the root's propagation.

use super::mountopts::{propagation_of, MountOptions};
use crate::error::{Error, Result};
use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDeviceType, Spec};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// A bind of a host path (or one relative to the bundle).
    Bind,
    /// `cgroup`/`cgroup2`: the container's own cgroups, as runc shows them.
    Cgroup,
    /// Any other filesystem.
    Filesystem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub destination: PathBuf,
    pub kind: MountKind,
    pub typ: Option<String>,
    /// Binds: absolute. Others: the spec's source, or the type.
    pub source: PathBuf,
    pub options: MountOptions,
    /// procfs or sysfs: only onto a real directory of the image
    /// (CVE-2019-16884: an image whose /proc is a symlink would move the
    /// kernel's files elsewhere).
    pub real_dir_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: PathBuf,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub kind: SFlag,
    pub mode: u32,
    pub major: u64,
    pub minor: u64,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The mounts in order, each checked.
pub fn mounts(spec: &Spec, bundle_dir: &Path) -> Result<Vec<MountPlan>> {
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        if !dest.is_absolute() {
            return Err(Error::invalid(format!(
                "mounts[{i}].destination {dest:?}: must be an absolute path"
            )));
        }
        let typ = m.typ().clone();
        let options = MountOptions::parse(typ.as_deref(), m.options().as_deref().unwrap_or(&[]));
        let kind = match typ.as_deref() {
            Some("cgroup") | Some("cgroup2") => MountKind::Cgroup,
            _ if options.bind => MountKind::Bind,
            _ => MountKind::Filesystem,
        };
        let source = match (kind, m.source()) {
            (MountKind::Bind, Some(s)) if s.is_absolute() => s.clone(),
            (MountKind::Bind, Some(s)) => bundle_dir.join(s),
            (MountKind::Bind, None) => {
                return Err(Error::invalid(format!(
                    "mounts[{i}] ({}): a bind mount needs a source",
                    dest.display()
                )))
            }
            (_, Some(s)) => s.clone(),
            (_, None) => PathBuf::from(typ.as_deref().unwrap_or("none")),
        };
        out.push(MountPlan {
            destination: dest.clone(),
            kind,
            real_dir_only: matches!(typ.as_deref(), Some("proc") | Some("sysfs")),
            typ,
            source,
            options,
        });
    }
    Ok(out)
}

/// `linux.devices`, typed; type "a" is a cgroup rule, not a node.
pub fn devices(spec: &Spec) -> Result<Vec<DeviceNode>> {
    let mut out = Vec::new();
    let list = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
    for (i, d) in list.into_iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(Error::invalid(format!(
                "linux.devices[{i}].path {:?}: must be an absolute path",
                d.path()
            )));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::invalid(format!(
                    "linux.devices[{i}] ({}): type \"a\" is not a device type",
                    d.path().display()
                )))
            }
        };
        out.push(DeviceNode {
            path: d.path().clone(),
            kind,
            mode: d.file_mode().unwrap_or(0o666),
            major: d.major() as u64,
            minor: d.minor() as u64,
            uid: d.uid(),
            gid: d.gid(),
        });
    }
    Ok(out)
}

/// `linux.rootfsPropagation`, or runc's default (rslave).
pub fn root_propagation(spec: &Spec) -> Result<MsFlags> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        Some(p) => propagation_of(p).ok_or_else(|| {
            Error::invalid(format!(
                "linux.rootfsPropagation {p:?}: unknown propagation (shared, slave, private, unbindable, or r-prefixed)"
            ))
        }),
        None => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
    }
}
