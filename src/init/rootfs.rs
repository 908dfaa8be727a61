//! The container's filesystem, built by the init process in its new mount
//! namespace: root propagation, the rootfs bind, `mounts` in order, /dev,
//! pivot_root (or MS_MOVE + chroot), then masked and read-only paths.

use super::fsutil::{ensure_in_root, fd_path, open_dir_path, open_in_root, Leaf};
use super::mountfd;
use super::InitConfig;
use crate::cgroup::Hierarchy;
use crate::error::{Error, Result, SysContext};
use crate::mountopts::{propagation_of, MountOptions};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDeviceType, Mount};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

/// Everything before pivot_root: propagation, the rootfs bind, the mounts
/// and /dev. Returns the rootfs fd used for later lookups.
pub fn prepare(cfg: &InitConfig) -> Result<OwnedFd> {
    let spec = &cfg.bundle.spec;
    let rootfs = &cfg.bundle.rootfs;
    let linux = spec.linux().as_ref();
    let root_prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some(p) => propagation_of(p).ok_or_else(|| {
            Error::invalid(format!(
                "linux.rootfsPropagation {p:?}: unknown propagation"
            ))
        })?,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    if cfg.own_mount_ns {
        mount(NONE, "/", NONE, root_prop, NONE).sys(|| "setting the propagation of /".into())?;
        make_parent_private(rootfs)?;
    }
    mount(
        Some(rootfs),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .sys(|| format!("bind-mounting rootfs {}", rootfs.display()))?;
    if !cfg.own_mount_ns {
        // In the runtime's own namespace: nothing mounted below the rootfs
        // may propagate to the host's other mounts (`delete` unmounts it).
        mount(
            NONE,
            rootfs,
            NONE,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            NONE,
        )
        .sys(|| format!("making rootfs {} private", rootfs.display()))?;
    }
    let root = std::fs::File::open(rootfs).map_err(|e| Error::io("opening rootfs", rootfs, e))?;
    let root: OwnedFd = root.into();
    let mut dev_is_bind = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mount_one(cfg, root.as_raw_fd(), m).map_err(|e| {
            Error::invalid(format!("mounts[{i}] ({}): {e}", m.destination().display()))
        })?;
        if m.destination() == Path::new("/dev")
            && MountOptions::parse(m.typ().as_deref(), m.options().as_deref().unwrap_or(&[])).bind
        {
            dev_is_bind = true;
        }
    }
    if !dev_is_bind {
        super::devnodes::default_devices(root.as_raw_fd(), cfg.terminal)?;
    }
    for (i, d) in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let typ = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::invalid(format!(
                    "linux.devices[{i}]: type \"a\" is not a device type"
                )))
            }
        };
        super::devnodes::make_node(
            root.as_raw_fd(),
            d.path(),
            typ,
            d.file_mode().unwrap_or(0o666),
            d.major() as u64,
            d.minor() as u64,
        )
        .map_err(|e| Error::invalid(format!("linux.devices[{i}] ({}): {e}", d.path().display())))?;
        // A node bound from the host in a user namespace keeps the host's owner.
        if (d.uid().is_some() || d.gid().is_some()) && !cfg.new_user {
            let fd = open_in_root(
                root.as_raw_fd(),
                &super::fsutil::relative(d.path()),
                libc::O_PATH,
            )
            .map_err(|e| Error::invalid(format!("linux.devices[{i}]: {e}")))?;
            nix::unistd::fchownat(
                Some(fd.as_raw_fd()),
                "",
                d.uid().map(Into::into),
                d.gid().map(Into::into),
                nix::fcntl::AtFlags::AT_EMPTY_PATH,
            )
            .sys(|| format!("linux.devices[{i}]: chown {}", d.path().display()))?;
        }
    }
    // runc creates the working directory when the image lacks it.
    let cwd = spec
        .process()
        .as_ref()
        .map(|p| p.cwd().clone())
        .unwrap_or_else(|| "/".into());
    ensure_in_root(root.as_raw_fd(), &cwd, Leaf::Dir)
        .map_err(|e| Error::invalid(format!("process.cwd: {e}")))?;
    Ok(root)
}

/// pivot_root needs the rootfs's parent mount not to be shared.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("reading", "/proc/self/mountinfo", e))?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 7 {
            continue;
        }
        let mp = PathBuf::from(fields[4]);
        if rootfs.starts_with(&mp)
            && best
                .as_ref()
                .map_or(true, |(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            let shared = fields[6..]
                .iter()
                .take_while(|f| **f != "-")
                .any(|f| f.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        mount(NONE, &mp, NONE, MsFlags::MS_PRIVATE, NONE)
            .sys(|| format!("making {} private", mp.display()))?;
    }
    Ok(())
}

fn mount_one(cfg: &InitConfig, root: i32, m: &Mount) -> Result<()> {
    let typ = m.typ().as_deref();
    let opts = MountOptions::parse(typ, m.options().as_deref().unwrap_or(&[]));
    let dest = m.destination();
    if typ == Some("cgroup") || typ == Some("cgroup2") {
        return mount_cgroup(cfg, root, dest, &opts);
    }
    // procfs and sysfs only on a real directory (CVE-2019-16884): an image
    // whose /proc is a symlink would move the kernel's files elsewhere.
    if matches!(typ, Some("proc") | Some("sysfs")) {
        let rel = super::fsutil::relative(dest);
        if let Some(parent) = rel.parent() {
            let dir = open_in_root(root, parent, libc::O_PATH | libc::O_DIRECTORY).ok();
            if let (Some(dir), Some(name)) = (dir, rel.file_name()) {
                if let Ok(st) = nix::sys::stat::fstatat(
                    Some(dir.as_raw_fd()),
                    name,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                        return Err(Error::invalid(format!(
                            "{} must be a directory in the image, not a symlink or file",
                            dest.display()
                        )));
                    }
                }
            }
        }
    }
    if opts.bind {
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            cfg.bundle.dir.join(src)
        };
        let meta = std::fs::metadata(&src)
            .map_err(|e| Error::invalid(format!("bind source {}: {e}", src.display())))?;
        let target = ensure_in_root(
            root,
            dest,
            if meta.is_dir() { Leaf::Dir } else { Leaf::File },
        )?;
        let mut flags = MsFlags::MS_BIND;
        if opts.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(Some(&src), &fd_path(&target), NONE, flags, NONE)
            .sys(|| format!("bind-mounting {}", src.display()))?;
        let mut extra = opts.bind_remount_flags();
        if !extra.is_empty() {
            let target = reopen(root, dest)?;
            // In a user namespace the flags the bind inherited are locked: a
            // remount must repeat them.
            if cfg.new_user {
                extra |= existing_flags(&fd_path(&target)) & !opts.cleared;
            }
            mount(
                NONE,
                &fd_path(&target),
                NONE,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
                NONE,
            )
            .sys(|| "remounting the bind mount with its options".into())?;
        }
    } else {
        let target = ensure_in_root(root, dest, Leaf::Dir)?;
        let source = m
            .source()
            .clone()
            .unwrap_or_else(|| PathBuf::from(typ.unwrap_or("none")));
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        let flags = opts.flags & !MsFlags::MS_REMOUNT;
        let result = mount(Some(&source), &fd_path(&target), typ, flags, data);
        // mqueue/sysfs may refuse in some setups; a readonly sysfs without a
        // new network namespace is the case runc handles by binding /sys.
        if let Err(e) = result {
            if typ == Some("sysfs") && e == nix::errno::Errno::EPERM {
                mount(
                    Some("/sys"),
                    &fd_path(&target),
                    NONE,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    NONE,
                )
                .sys(|| "binding /sys".into())?;
                let target = reopen(root, dest)?;
                mount(
                    NONE,
                    &fd_path(&target),
                    NONE,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                    NONE,
                )
                .sys(|| "remounting /sys".into())?;
            } else {
                return Err(Error::sys(
                    format!("mounting {} ({})", source.display(), typ.unwrap_or("?")),
                    e,
                ));
            }
        }
    }
    if opts.rec_attr != (0, 0) {
        let target = reopen(root, dest)?;
        mountfd::set_attrs(target.as_raw_fd(), opts.rec_attr.0, opts.rec_attr.1, true)
            .map_err(|e| Error::invalid(format!("recursive mount options: {e}")))?;
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

fn reopen(root: i32, dest: &Path) -> Result<OwnedFd> {
    open_in_root(root, &super::fsutil::relative(dest), libc::O_PATH)
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
        if cfg.cgroup_ns {
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
        if cfg.cgroup_ns {
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
                let link = super::fsutil::relative(&dest.join(c.trim_start_matches("name=")));
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
        let target = reopen(root, dest)?;
        mount(
            NONE,
            &fd_path(&target),
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
            NONE,
        )
        .sys(|| format!("remounting {}", src.display()))?;
    }
    Ok(())
}

/// Enters the rootfs of a container without its own mount namespace: a
/// chroot (pivot_root or MS_MOVE would change the runtime's own `/`).
pub fn chroot(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).sys(|| format!("chdir {}", rootfs.display()))?;
    nix::unistd::chroot(".").sys(|| "chroot".into())?;
    nix::unistd::chdir("/").sys(|| "chdir /".into())
}

/// Makes the rootfs `/`: pivot_root with the old root detached, or with
/// `--no-pivot` MS_MOVE + chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        nix::unistd::chdir(rootfs).sys(|| format!("chdir {}", rootfs.display()))?;
        mount(Some(rootfs), "/", NONE, MsFlags::MS_MOVE, NONE)
            .sys(|| "moving the rootfs to /".into())?;
        nix::unistd::chroot(".").sys(|| "chroot".into())?;
        nix::unistd::chdir("/").sys(|| "chdir /".into())?;
        return Ok(());
    }
    let old = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .sys(|| "opening /".into())?;
    let new = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .sys(|| format!("opening {}", rootfs.display()))?;
    nix::unistd::fchdir(new).sys(|| "fchdir rootfs".into())?;
    nix::unistd::pivot_root(".", ".").sys(|| format!("pivot_root into {}", rootfs.display()))?;
    nix::unistd::fchdir(old).sys(|| "fchdir old root".into())?;
    // The old root must not propagate its unmount to the host.
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .sys(|| "making the old root a slave".into())?;
    umount2(".", MntFlags::MNT_DETACH).sys(|| "detaching the old root".into())?;
    nix::unistd::chdir("/").sys(|| "chdir /".into())?;
    let _ = nix::unistd::close(old);
    let _ = nix::unistd::close(new);
    Ok(())
}

/// After pivot: read-only and masked paths, and a read-only root.
pub fn finish(cfg: &InitConfig) -> Result<()> {
    let spec = &cfg.bundle.spec;
    if let Some(linux) = spec.linux() {
        let root = open_dir_path(Path::new("/")).map_err(|e| Error::io("opening", "/", e))?;
        for p in linux.readonly_paths().iter().flatten() {
            readonly(&root, Path::new(p))
                .map_err(|e| Error::invalid(format!("linux.readonlyPaths {p}: {e}")))?;
        }
        let mut null = None;
        for p in linux.masked_paths().iter().flatten() {
            mask(&root, Path::new(p), &mut null)
                .map_err(|e| Error::invalid(format!("linux.maskedPaths {p}: {e}")))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let flags = existing_flags(Path::new("/"));
        mount(
            NONE,
            "/",
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
            NONE,
        )
        .sys(|| "remounting / read-only".into())?;
    }
    Ok(())
}

/// The mount flags the kernel locks or that the mount already has, so a
/// remount keeps them.
fn existing_flags(path: &Path) -> MsFlags {
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

/// `path` (resolved inside the root; absent is fine) opened for a mount on
/// top of it.
fn target_in_root(root: &OwnedFd, path: &Path) -> Result<Option<OwnedFd>> {
    match open_in_root(
        root.as_raw_fd(),
        &super::fsutil::relative(path),
        libc::O_PATH,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Error::invalid(e.to_string())),
    }
}

/// A recursive bind of the path onto itself whose top mount is read-only
/// (runc's bind + remount), made between fds: every other flag, locked
/// ones in a user namespace included, stays as it was.
fn readonly(root: &OwnedFd, path: &Path) -> Result<()> {
    let Some(target) = target_in_root(root, path)? else {
        return Ok(());
    };
    let tree = mountfd::clone_tree(target.as_raw_fd(), true)
        .map_err(|e| Error::invalid(format!("binding onto itself: {e}")))?;
    mountfd::set_attrs(tree.as_raw_fd(), mountfd::MOUNT_ATTR_RDONLY, 0, false)
        .map_err(|e| Error::invalid(format!("making the bind read-only: {e}")))?;
    mountfd::attach(&tree, target.as_raw_fd())
        .map_err(|e| Error::invalid(format!("mounting the read-only bind: {e}")))
}

/// A directory is covered by an empty read-only tmpfs; anything else by
/// the container's null device, which must really be the null device:
/// a `/dev/null` that is a symlink (or a plain file) in a `/dev` the
/// bundle binds in would otherwise put its target, writable, over every
/// masked file (runc's CVE-2025-31133).
fn mask(root: &OwnedFd, path: &Path, null: &mut Option<OwnedFd>) -> Result<()> {
    let Some(target) = target_in_root(root, path)? else {
        return Ok(());
    };
    let st = mountfd::stat(target.as_raw_fd()).map_err(|e| Error::invalid(e.to_string()))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let tmpfs = mountfd::new_fs(c"tmpfs", &[("source", "tmpfs")], mountfd::MOUNT_ATTR_RDONLY)
            .map_err(|e| Error::invalid(format!("making an empty tmpfs: {e}")))?;
        return mountfd::attach(&tmpfs, target.as_raw_fd())
            .map_err(|e| Error::invalid(format!("mounting an empty tmpfs: {e}")));
    }
    if null.is_none() {
        *null = Some(verified_null(root)?);
    }
    let null = null.as_ref().map(|fd| fd.as_raw_fd()).unwrap_or(-1);
    mountfd::bind(null, target.as_raw_fd(), false)
        .map_err(|e| Error::invalid(format!("binding /dev/null over it: {e}")))
}

/// The container's `/dev/null`, opened without following any symlink and
/// checked to be the character device 1:3.
fn verified_null(root: &OwnedFd) -> Result<OwnedFd> {
    let fd = super::fsutil::open_no_symlinks(root.as_raw_fd(), Path::new("dev/null"), libc::O_PATH)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::invalid(
                "the container's /dev/null is not the null device (it is a symlink, or under one): refusing to mask with it",
            ),
            _ => Error::invalid(format!("the container's /dev/null: {e}")),
        })?;
    let st = mountfd::stat(fd.as_raw_fd())
        .map_err(|e| Error::invalid(format!("the container's /dev/null: {e}")))?;
    if !mountfd::is_char_device(&st, 1, 3) {
        return Err(Error::invalid(
            "the container's /dev/null is not the null device (character device 1:3): refusing to mask with it",
        ));
    }
    Ok(fd)
}
