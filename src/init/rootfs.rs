//! The container's filesystem, built by the init process in its new mount
//! namespace: root propagation, the rootfs bind, `mounts` in order, /dev,
//! pivot_root (or MS_MOVE + chroot), then masked and read-only paths.

use super::InitConfig;
use crate::error::{Error, Result, SysContext};
use crate::plan::{DeviceNode, Plan};
use crate::util::fs::{ensure_in_root, open_dir_path, open_in_root, Leaf};
use crate::util::mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

const NONE: Option<&str> = None;

/// Everything before pivot_root: propagation, the rootfs bind, the mounts
/// and /dev. Returns the rootfs fd used for later lookups.
pub fn prepare(cfg: &InitConfig) -> Result<OwnedFd> {
    let plan = &cfg.plan;
    let root = bind_rootfs(plan)?;
    for (i, m) in plan.mounts.iter().enumerate() {
        super::mounts::mount_one(cfg, root.as_raw_fd(), m)
            .map_err(|e| e.within(format!("mounts[{i}] ({})", m.destination.display())))?;
    }
    if !plan.dev_is_bind {
        super::devnodes::default_devices(root.as_raw_fd(), plan.process.terminal)?;
    }
    for (i, d) in plan.devices.iter().enumerate() {
        make_device(root.as_raw_fd(), d, plan.namespaces.new_user)
            .map_err(|e| e.within(format!("linux.devices[{i}] ({})", d.path.display())))?;
    }
    // runc creates the working directory when the image lacks it.
    ensure_in_root(root.as_raw_fd(), &plan.process.cwd, Leaf::Dir)
        .map_err(|e| Error::os("process.cwd", e))?;
    Ok(root)
}

/// The root's propagation, then the rootfs bound onto itself (private in
/// the runtime's namespace when the container has none of its own).
fn bind_rootfs(plan: &Plan) -> Result<OwnedFd> {
    let rootfs = &plan.rootfs;
    let own_mount_ns = plan.namespaces.has_mount;
    if own_mount_ns {
        mount(NONE, "/", NONE, plan.root_propagation, NONE)
            .sys(|| "setting the propagation of /".into())?;
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
    if !own_mount_ns {
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
    Ok(root.into())
}

/// One `linux.devices` node; its owner set unless it was bound from the
/// host in a user namespace (which keeps the host's).
fn make_device(root: i32, d: &DeviceNode, new_user: bool) -> Result<()> {
    super::devnodes::make_node(root, &d.path, d.kind, d.mode, d.major, d.minor)?;
    if (d.uid.is_some() || d.gid.is_some()) && !new_user {
        let fd = open_in_root(root, &crate::util::fs::relative(&d.path), libc::O_PATH)
            .map_err(|e| Error::invalid(e.to_string()))?;
        nix::unistd::fchownat(
            Some(fd.as_raw_fd()),
            "",
            d.uid.map(Into::into),
            d.gid.map(Into::into),
            nix::fcntl::AtFlags::AT_EMPTY_PATH,
        )
        .sys(|| format!("chown {}", d.path.display()))?;
    }
    Ok(())
}

/// pivot_root needs the rootfs's parent mount not to be shared.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let mounts = crate::util::proc::mountinfo()
        .map_err(|e| Error::io("reading", "/proc/self/mountinfo", e))?;
    // The longest mount point above the rootfs; of several there, the last
    // (topmost): max_by_key keeps the last of equal keys.
    let parent = mounts
        .iter()
        .filter(|m| rootfs.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len());
    if let Some(m) = parent.filter(|m| m.is_shared()) {
        mount(NONE, &m.mount_point, NONE, MsFlags::MS_PRIVATE, NONE)
            .sys(|| format!("making {} private", m.mount_point.display()))?;
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
pub fn finish(plan: &Plan) -> Result<()> {
    let root = open_dir_path(Path::new("/")).map_err(|e| Error::io("opening", "/", e))?;
    for p in &plan.readonly_paths {
        readonly(&root, p).map_err(|e| e.within(format!("linux.readonlyPaths {}", p.display())))?;
    }
    let mut null = None;
    for p in &plan.masked_paths {
        mask(&root, p, &mut null)
            .map_err(|e| e.within(format!("linux.maskedPaths {}", p.display())))?;
    }
    if plan.readonly_root {
        let flags = super::mounts::existing_flags(Path::new("/"));
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

/// `path` (resolved inside the root; absent is fine) opened for a mount on
/// top of it.
fn target_in_root(root: &OwnedFd, path: &Path) -> Result<Option<OwnedFd>> {
    match open_in_root(
        root.as_raw_fd(),
        &crate::util::fs::relative(path),
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
    let tree = mount::clone_tree(target.as_raw_fd(), true)
        .map_err(|e| Error::os("binding onto itself", e))?;
    mount::set_attrs(tree.as_raw_fd(), mount::MOUNT_ATTR_RDONLY, 0, false)
        .map_err(|e| Error::os("making the bind read-only", e))?;
    mount::attach(&tree, target.as_raw_fd())
        .map_err(|e| Error::os("mounting the read-only bind", e))
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
    let st = mount::stat(target.as_raw_fd()).map_err(|e| Error::invalid(e.to_string()))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let tmpfs = mount::new_fs(c"tmpfs", &[("source", "tmpfs")], mount::MOUNT_ATTR_RDONLY)
            .map_err(|e| Error::os("making an empty tmpfs", e))?;
        return mount::attach(&tmpfs, target.as_raw_fd())
            .map_err(|e| Error::os("mounting an empty tmpfs", e));
    }
    if null.is_none() {
        *null = Some(verified_null(root)?);
    }
    let null = null.as_ref().map(|fd| fd.as_raw_fd()).unwrap_or(-1);
    mount::bind(null, target.as_raw_fd(), false)
        .map_err(|e| Error::os("binding /dev/null over it", e))
}

/// The container's `/dev/null`, opened without following any symlink and
/// checked to be the character device 1:3.
fn verified_null(root: &OwnedFd) -> Result<OwnedFd> {
    let fd = crate::util::fs::open_no_symlinks(root.as_raw_fd(), Path::new("dev/null"), libc::O_PATH)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::invalid(
                "the container's /dev/null is not the null device (it is a symlink, or under one): refusing to mask with it",
            ),
            _ => Error::os("the container's /dev/null", e),
        })?;
    let st = mount::stat(fd.as_raw_fd()).map_err(|e| Error::os("the container's /dev/null", e))?;
    if !mount::is_char_device(&st, 1, 3) {
        return Err(Error::invalid(
            "the container's /dev/null is not the null device (character device 1:3): refusing to mask with it",
        ));
    }
    Ok(fd)
}
