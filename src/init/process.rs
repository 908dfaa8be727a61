//! The process half of init: rlimits, user and groups, capabilities,
//! no_new_privs, and finding the program to exec.

use super::procfs::ProcFs;
use crate::error::{Error, Result, SysContext};
use crate::plan::ProcessPlan;
use caps::{CapSet, Capability, CapsHashSet};
use std::ffi::CString;
use std::path::{Path, PathBuf};

pub fn set_oom_score_adj(proc: &ProcFs, process: &ProcessPlan) -> Result<()> {
    if let Some(adj) = process.oom_score_adj {
        proc.write("self/oom_score_adj", &adj.to_string())
            .map_err(|e| Error::os(format!("process.oomScoreAdj {adj}"), e))?;
    }
    Ok(())
}

pub fn set_rlimits(process: &ProcessPlan) -> Result<()> {
    for r in &process.rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: a valid rlimit struct.
        if unsafe { libc::setrlimit(r.resource as _, &lim) } != 0 {
            let e = nix::Error::last();
            let hint = if e == nix::Error::EPERM {
                " (raising a hard limit needs CAP_SYS_RESOURCE, which this host does not grant: lower it in the bundle)"
            } else {
                ""
            };
            return Err(Error::sys(
                format!(
                    "process.rlimits {} (soft {}, hard {}){hint}",
                    r.name, r.soft, r.hard
                ),
                e,
            ));
        }
    }
    Ok(())
}

fn cap_set(list: &[Capability]) -> CapsHashSet {
    list.iter().copied().collect()
}

/// AppArmor profile and SELinux label for the coming execve. Like runc, a
/// label the host cannot apply is an error, never silently dropped.
pub fn set_lsm_labels(proc: &ProcFs, process: &ProcessPlan) -> Result<()> {
    if let Some(profile) = &process.apparmor_profile {
        let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'));
        if !enabled {
            return Err(Error::invalid(format!(
                "process.apparmorProfile {profile:?}: AppArmor is not enabled on this host"
            )));
        }
        let attr = if proc.exists("self/attr/apparmor/exec") {
            "self/attr/apparmor/exec"
        } else {
            "self/attr/exec"
        };
        proc.write(attr, &format!("exec {profile}")).map_err(|e| {
            Error::invalid(format!(
                "process.apparmorProfile {profile:?}: {e} (is the profile loaded?)"
            ))
        })?;
    }
    if let Some(label) = &process.selinux_label {
        if !Path::new("/sys/fs/selinux/enforce").exists() {
            return Err(Error::invalid(format!(
                "process.selinuxLabel {label:?}: SELinux is not enabled on this host"
            )));
        }
        proc.write("self/attr/exec", label)
            .map_err(|e| Error::os(format!("process.selinuxLabel {label:?}"), e))?;
    }
    Ok(())
}

/// Drops the bounding set; must run while still privileged.
pub fn drop_bounding(bounding: &[Capability]) -> Result<()> {
    let keep = cap_set(bounding);
    let supported = caps::runtime::thread_all_supported();
    for cap in supported {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                Error::invalid(format!("dropping {cap} from the bounding set: {e}"))
            })?;
        }
    }
    Ok(())
}

/// setgroups/setgid/setuid keeping capabilities, then the four other sets.
pub fn set_user_and_caps(process: &ProcessPlan) -> Result<()> {
    // SAFETY: plain prctl calls.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let groups: Vec<nix::unistd::Gid> = process.additional_gids.iter().map(|&g| g.into()).collect();
    // Rootless: setgroups is denied in the user namespace; nothing to drop.
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !(denied && groups.is_empty()) {
        nix::unistd::setgroups(&groups)
            .sys(|| format!("setgroups {:?}", process.additional_gids))?;
    }
    let gid = nix::unistd::Gid::from_raw(process.gid);
    nix::unistd::setresgid(gid, gid, gid).sys(|| format!("setgid {}", process.gid))?;
    let uid = nix::unistd::Uid::from_raw(process.uid);
    nix::unistd::setresuid(uid, uid, uid).sys(|| format!("setuid {}", process.uid))?;
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    let sets = &process.caps;
    let effective = cap_set(&sets.effective);
    let permitted = cap_set(&sets.permitted);
    let inheritable = cap_set(&sets.inheritable);
    let ambient = cap_set(&sets.ambient);
    // Effective first (still within the old permitted set), permitted last.
    caps::set(None, CapSet::Effective, &effective)
        .map_err(|e| Error::invalid(format!("process.capabilities.effective: {e}")))?;
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| Error::invalid(format!("process.capabilities.inheritable: {e}")))?;
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(|e| Error::invalid(format!("process.capabilities.permitted: {e}")))?;
    for cap in ambient {
        // Ambient needs the cap in permitted and inheritable; runc ignores failures.
        let _ = caps::raise(None, CapSet::Ambient, cap);
    }
    if process.no_new_privileges {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(Error::invalid(format!(
                "no_new_privs: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// Finds `args[0]` the way execvp would, in the container, with its PATH.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let is_exec =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match std::fs::metadata(&p) {
            Ok(_) if is_exec(&p) => Ok(p),
            Ok(_) => Err(Error::invalid(format!("exec {arg0:?}: permission denied"))),
            Err(e) => Err(Error::invalid(format!("exec {arg0:?}: {e}"))),
        };
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(arg0);
        if is_exec(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::invalid(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// CVE-2019-5736: the init process is vessel's own image until execve, so
/// an image whose program (or a `#!` interpreter, as the kernel follows
/// them) resolves to `/proc/self/exe` would run vessel inside the
/// container, where it could be reopened for writing. Refuse any program
/// that is vessel's own executable (`exe` = its device and inode). Other
/// container processes cannot reach vessel meanwhile: init is non-dumpable
/// until execve, and at create time no other container process exists.
pub fn refuse_own_binary(program: &Path, exe: (u64, u64)) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut path = program.to_path_buf();
    // The kernel follows at most 4 levels of interpreters (BINPRM_MAX_RECURSION).
    for _ in 0..5 {
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => return Ok(()), // execve reports what is wrong with it
        };
        let meta = f.metadata().map_err(|e| Error::io("stat", &path, e))?;
        if (meta.dev(), meta.ino()) == exe {
            return Err(Error::invalid(format!(
                "exec {}: refusing to run the runtime's own binary inside the container (CVE-2019-5736)",
                program.display()
            )));
        }
        let mut head = [0u8; 256];
        let n = f.read(&mut head).unwrap_or(0);
        if n < 2 || &head[..2] != b"#!" {
            return Ok(());
        }
        let line = head[2..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = String::from_utf8_lossy(line);
        let Some(interp) = line.split_whitespace().next() else {
            return Ok(());
        };
        path = PathBuf::from(interp);
    }
    Ok(())
}

/// The environment for exec: the spec's, plus HOME from /etc/passwd when
/// the spec sets none (as runc does).
pub fn exec_env(process: &ProcessPlan) -> Vec<String> {
    // A repeated variable keeps its first position and its last value (runc).
    let mut env: Vec<String> = Vec::new();
    for kv in &process.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = kv.clone(),
            None => env.push(kv.clone()),
        }
    }
    if !env.iter().any(|kv| kv.starts_with("HOME=")) {
        let uid = process.uid;
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid))
                        .then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

pub fn to_cstrings(items: &[String]) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::invalid(format!("{s:?}: contains a NUL byte")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_lookup_uses_path_and_reports_missing() {
        let p = find_program("sh", &["PATH=/nonexistent:/bin".into()]).unwrap();
        assert_eq!(p, Path::new("/bin/sh"));
        let e = find_program("no-such-program-xyz", &["PATH=/bin".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found in $PATH"), "{e}");
        assert!(find_program("/nope/x", &[]).is_err());
    }
}
