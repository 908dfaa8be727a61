//! One entry of the spec's `mounts`, made by init before pivot_root onto
//! the fd of its destination resolved inside the rootfs: binds (with their
//! remount for flags), filesystems, and cgroup mounts as runc shows them.

use super::InitConfig;
use crate::cgroup::Hierarchy;
use crate::error::{Error, Result, SysContext};
use crate::plan::mountopts::MountOptions;
use crate::plan::{MountKind, MountPlan};
use crate::util::fs::{ensure_in_root, fd_path, open_in_root, Leaf};
use crate::util::mount;
use nix::mount::{mount, MsFlags};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

pub(super) fn mount_one(cfg: &InitConfig, root: i32, m: &MountPlan) -> Result<()> {
    let opts = &m.options;
    let dest = m.destination.as_path();
    if m.kind == MountKind::Cgroup {
        return mount_cgroup(cfg, root, dest, opts);
    }
    if m.real_dir_only {
        refuse_unless_directory(root, dest)?;
    }
    match m.kind {
        MountKind::Bind => mount_bind(root, m, cfg.plan.namespaces.new_user)?,
        _ => mount_filesystem(root, m)?,
    }
    if opts.rec_attr != (0, 0) {
        let target = reopen(root, dest)?;
        mount::set_attrs(target.as_raw_fd(), opts.rec_attr.0, opts.rec_attr.1, true)
            .map_err(|e| Error::os("recursive mount options", e))?;
    }
    if !opts.propagation.is_empty() {
        let target = reopen(root, dest)?;
        for p in &opts.propagation {
            mount(NONE, &fd_path(&target), NONE, *p, NONE)
                .sys(|| "setting mount propagation".into())?;
        }
    }
    Ok(())
}

/// procfs and sysfs only on a real directory (CVE-2019-16884).
fn refuse_unless_directory(root: i32, dest: &Path) -> Result<()> {
    let rel = crate::util::fs::relative(dest);
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(());
    };
    let Ok(dir) = open_in_root(root, parent, libc::O_PATH | libc::O_DIRECTORY) else {
        return Ok(());
    };
    let st = nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    match st {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => Err(Error::invalid(format!(
            "{} must be a directory in the image, not a symlink or file",
            dest.display()
        ))),
        _ => Ok(()),
    }
}

/// A bind mount, then a remount for the flags a bind does not take.
fn mount_bind(root: i32, m: &MountPlan, new_user: bool) -> Result<()> {
    let (opts, dest, src) = (&m.options, m.destination.as_path(), &m.source);
    let meta = std::fs::metadata(src)
        .map_err(|e| Error::invalid(format!("bind source {}: {e}", src.display())))?;
    let leaf = if meta.is_dir() { Leaf::Dir } else { Leaf::File };
    let target = ensure_in_root(root, dest, leaf)?;
    let mut flags = MsFlags::MS_BIND;
    if opts.recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(src), &fd_path(&target), NONE, flags, NONE)
        .sys(|| format!("bind-mounting {}", src.display()))?;
    let mut extra = opts.bind_remount_flags();
    if extra.is_empty() {
        return Ok(());
    }
    // In a user namespace the flags the bind inherited are locked: a
    // remount must repeat them.
    if new_user {
        let target = reopen(root, dest)?;
        extra |= existing_flags(&fd_path(&target)) & !opts.cleared;
    }
    remount_bind(root, dest, extra, "the bind mount with its options")
}

/// Remounts the bind now at `dest` (looked up again: it is a new mount)
/// with `flags`.
fn remount_bind(root: i32, dest: &Path, flags: MsFlags, what: &str) -> Result<()> {
    let target = reopen(root, dest)?;
    mount(
        NONE,
        &fd_path(&target),
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        NONE,
    )
    .sys(|| format!("remounting {what}"))
}

/// A filesystem mount (tmpfs, proc, devpts, ...); a sysfs the kernel
/// refuses (read-only, no new network namespace) becomes a bind of /sys,
/// as runc does.
fn mount_filesystem(root: i32, m: &MountPlan) -> Result<()> {
    let (opts, dest, source) = (&m.options, m.destination.as_path(), &m.source);
    let typ = m.typ.as_deref();
    let target = ensure_in_root(root, dest, Leaf::Dir)?;
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    match mount(Some(source), &fd_path(&target), typ, flags, data) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) if typ == Some("sysfs") => {
            crate::log::debug(&format!(
                "init: sysfs at {} refused (EPERM, no network namespace of its own?): binding the host's /sys",
                dest.display()
            ));
            mount(
                Some("/sys"),
                &fd_path(&target),
                NONE,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                NONE,
            )
            .sys(|| "binding /sys".into())?;
            remount_bind(root, dest, flags, "/sys")
        }
        Err(e) => Err(Error::sys(
            format!("mounting {} ({})", source.display(), typ.unwrap_or("?")),
            e,
        )),
    }
}

fn reopen(root: i32, dest: &Path) -> Result<OwnedFd> {
    open_in_root(root, &crate::util::fs::relative(dest), libc::O_PATH)
        .map_err(|e| Error::invalid(format!("{}: {e}", dest.display())))
}

/// A cgroup mount: on v2 the cgroup2 filesystem (inside a cgroup namespace)
/// or the container's own directory; on v1 a tmpfs with one directory per
/// hierarchy, each showing only the container's cgroup.
fn mount_cgroup(cfg: &InitConfig, root: i32, dest: &Path, opts: &MountOptions) -> Result<()> {
    let target = ensure_in_root(root, dest, Leaf::Dir)?;
    let flags = opts.flags & !(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY);
    let hs: Vec<(&Hierarchy, &PathBuf)> =
        cfg.hierarchies.iter().zip(cfg.cgroup_dirs.iter()).collect();
    let v1: Vec<_> = hs.iter().filter(|(h, _)| !h.unified).collect();
    if v1.is_empty() {
        let Some((_, dir)) = hs.iter().find(|(h, _)| h.unified) else {
            return Ok(());
        };
        if cfg.plan.namespaces.new_cgroup {
            mount(
                Some("cgroup2"),
                &fd_path(&target),
                Some("cgroup2"),
                opts.flags,
                NONE,
            )
            .sys(|| "mounting cgroup2".into())?;
        } else {
            bind_ro(dir, root, dest, opts.flags)?;
        }
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .sys(|| "mounting the cgroup tmpfs".into())?;
    let target = reopen(root, dest)?;
    for (h, dir) in v1 {
        let name = h
            .controllers
            .iter()
            .map(|c| c.trim_start_matches("name="))
            .collect::<Vec<_>>()
            .join(",");
        let sub = dest.join(&name);
        let subfd = ensure_in_root(root, &sub, Leaf::Dir)?;
        if cfg.plan.namespaces.new_cgroup {
            let data = h.controllers.join(",");
            mount(
                Some("cgroup"),
                &fd_path(&subfd),
                Some("cgroup"),
                opts.flags,
                Some(data.as_str()),
            )
            .sys(|| format!("mounting cgroup {name}"))?;
        } else {
            bind_ro(dir, root, &sub, opts.flags)?;
        }
        // co-mounted controllers (cpu,cpuacct) also get one link per name, as on hosts.
        if h.controllers.len() > 1 {
            for c in &h.controllers {
                let link = crate::util::fs::relative(&dest.join(c.trim_start_matches("name=")));
                let _ = nix::unistd::symlinkat(
                    name.as_str(),
                    Some(target.as_raw_fd()),
                    link.file_name().unwrap_or_default(),
                );
            }
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let target = reopen(root, dest)?;
        mount(
            NONE,
            &fd_path(&target),
            NONE,
            MsFlags::MS_REMOUNT | flags | MsFlags::MS_RDONLY,
            Some("mode=755"),
        )
        .sys(|| "remounting the cgroup tmpfs read-only".into())?;
    }
    Ok(())
}

fn bind_ro(src: &Path, root: i32, dest: &Path, flags: MsFlags) -> Result<()> {
    let target = ensure_in_root(root, dest, Leaf::Dir)?;
    mount(Some(src), &fd_path(&target), NONE, MsFlags::MS_BIND, NONE)
        .sys(|| format!("binding {}", src.display()))?;
    let extra = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount_bind(root, dest, extra, &src.display().to_string())?;
    }
    Ok(())
}

/// The mount flags the kernel locks or that the mount already has, so a
/// remount keeps them.
pub(super) fn existing_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}
