//! The init process's namespaces and what lives in them: joining by path,
//! becoming a new user namespace's root, `lo` up in a new network
//! namespace, the session keyring, hostname and domainname.

use crate::error::{Error, Result, SysContext};
use crate::plan::namespaces;
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub fn open_namespace(path: &Path) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::invalid(format!("namespace path {}: {e}", path.display())))
}

/// Joins namespaces by path: every path opened first (in the runtime's
/// mount namespace), then the user namespace first (it grants the
/// capabilities to join the others) and mount last. setns checks each
/// namespace is of the type named.
pub(crate) fn setns_all(joins: &[(LinuxNamespaceType, PathBuf)], user_last: bool) -> Result<()> {
    let mut fds: Vec<(OwnedFd, LinuxNamespaceType, &PathBuf)> = Vec::new();
    for (typ, path) in joins {
        fds.push((
            open_namespace(path).map_err(|e| e.within(format!("linux.namespaces {typ:?}")))?,
            *typ,
            path,
        ));
    }
    // A user namespace the container joined by path owns none of its other
    // namespaces: those are joined first, as the host's root.
    fds.sort_by_key(|(_, t, _)| match t {
        LinuxNamespaceType::User if user_last => 3,
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    for (fd, typ, path) in fds {
        nix::sched::setns(fd, namespaces::of(typ).flag).sys(|| {
            format!(
                "joining {typ:?} namespace {} (is it a {typ:?} namespace?)",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// Becomes the new user namespace's root, so what init creates belongs to
/// the mapped ids rather than to the host's root.
pub fn become_root() -> Result<()> {
    let root = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
    nix::unistd::setresgid(root.0, root.0, root.0)
        .sys(|| "user namespace: gid 0 must be mapped (linux.gidMappings)".into())?;
    nix::unistd::setresuid(root.1, root.1, root.1)
        .sys(|| "user namespace: uid 0 must be mapped (linux.uidMappings)".into())
}

/// A new network namespace starts with `lo` down; runc brings it up.
pub fn loopback_up() -> Result<()> {
    // SAFETY: a datagram socket used only for interface ioctls, closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(Error::invalid(format!(
            "bringing up lo: socket: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: ifreq is plain data; the name fits.
    let rc = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let e = std::io::Error::last_os_error();
        libc::close(sock);
        if rc == 0 {
            Ok(())
        } else {
            Err(e)
        }
    };
    rc.map_err(|e| Error::os("bringing up lo", e))
}

/// A fresh session keyring per container, so containers do not share the
/// host's keys (runc's behaviour; `--no-new-keyring` skips it).
pub fn join_session_keyring(id: &str) {
    let name = std::ffi::CString::new(format!("_ses.{id}")).unwrap_or_default();
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a valid name. Failure (no
    // keyring support) is not fatal, as in runc.
    unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            1, /* KEYCTL_JOIN_SESSION_KEYRING */
            name.as_ptr(),
        )
    };
}

/// Hostname and domainname (the plan checked there is a uts namespace).
pub fn set_names(hostname: Option<&str>, domainname: Option<&str>) -> Result<()> {
    if let Some(h) = hostname {
        nix::unistd::sethostname(h).sys(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = domainname {
        // SAFETY: a valid buffer and its length.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::invalid(format!(
                "domainname {d:?}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}
