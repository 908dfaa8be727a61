//! CVE-2019-5736: a container process that reaches vessel's binary through
//! /proc/PID/exe could overwrite it on the host. Before making any
//! container process, vessel re-executes itself from a sealed memfd copy,
//! so every process it clones has a private, unwritable executable.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// True when this process already runs from a sealed memfd.
pub fn is_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else { return false };
    // SAFETY: F_GET_SEALS on an fd we own; -1 (EINVAL) for non-memfds.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-executes from a sealed copy unless already sealed (or disabled with
/// `VESSEL_UNSAFE_NO_EXE_CLONE=1` for measurements). Returns only on
/// failure to copy, with the reason; the caller decides whether to go on.
pub fn ensure_sealed() -> Result<(), String> {
    if is_sealed() || std::env::var_os("VESSEL_UNSAFE_NO_EXE_CLONE").is_some() {
        return Ok(());
    }
    let exe = std::fs::File::open("/proc/self/exe").map_err(|e| format!("opening /proc/self/exe: {e}"))?;
    let len = exe.metadata().map_err(|e| format!("stat /proc/self/exe: {e}"))?.len() as usize;
    let name = CString::new("vessel").unwrap_or_default();
    // SAFETY: memfd_create with a valid name.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut copied = 0usize;
    while copied < len {
        // SAFETY: sendfile between two fds we own.
        let n = unsafe { libc::sendfile(memfd.as_raw_fd(), exe.as_raw_fd(), std::ptr::null_mut(), len - copied) };
        if n <= 0 {
            return Err(format!("copying the vessel binary: {}", std::io::Error::last_os_error()));
        }
        copied += n as usize;
    }
    // SAFETY: sealing our own memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(format!("sealing the vessel copy: {}", std::io::Error::last_os_error()));
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut b = std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()).to_vec();
            b.push(b'=');
            b.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()));
            CString::new(b).unwrap_or_default()
        })
        .collect();
    let e = nix::unistd::fexecve(memfd.as_raw_fd(), &args, &env).unwrap_err();
    Err(format!("re-executing from the sealed copy: {e}"))
}
