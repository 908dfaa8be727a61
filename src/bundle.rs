//! Loading a bundle: `config.json` into an OCI `Spec`, with the checks of
//! the bundle as a whole (version, root, process, hooks, sysctls); the
//! rest is checked by `plan`.

use crate::error::{Error, IoContext, Result};
pub use oci_spec::runtime::Spec;

use std::path::{Path, PathBuf};

/// A loaded bundle: its absolute directory, the spec, and the rootfs
/// resolved against the bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
    /// The config.json text as read.
    pub config: String,
}

/// The OCI runtime-spec major version vessel implements.
pub const SPEC_MAJOR: u64 = 1;

impl Bundle {
    /// Reads and checks `DIR/config.json`.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir).ctx("resolving bundle", dir)?;
        let path = dir.join("config.json");
        let text = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::invalid(format!("bundle {}: config.json not found", dir.display()))
            } else {
                Error::io("reading", &path, e)
            }
        })?;
        let spec =
            parse_spec(&text).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
        let rootfs = check_spec(&spec, &dir)?;
        let config = String::from_utf8(text)
            .map_err(|_| Error::invalid(format!("{}: not UTF-8", path.display())))?;
        Ok(Bundle {
            dir,
            spec,
            rootfs,
            config,
        })
    }
}

/// The spec's `linux.namespaces` (none when absent).
pub fn namespaces(spec: &Spec) -> impl Iterator<Item = &oci_spec::runtime::LinuxNamespace> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
}

/// Parses config.json text; the error names the JSON path of the bad field.
pub fn parse_spec(text: &[u8]) -> std::result::Result<Spec, String> {
    let spec = serde_json::from_slice(text).map_err(|e| crate::jsonpath::describe(text, &e));
    if spec.is_ok() || !crate::plan::sched::has_spec_flag_names(text) {
        return spec;
    }
    // The spec's flag name, which oci-spec spells otherwise (see plan::sched).
    let mut value: serde_json::Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if let Some(process) = value.get_mut("process") {
        crate::plan::sched::accept_spec_flag_names(process);
    }
    // Parsed again as text, so an error still names its JSON path.
    let fixed = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    serde_json::from_slice(&fixed).map_err(|e| crate::jsonpath::describe(&fixed, &e))
}

/// Parses a process object (`exec --process`), with the spec's scheduler
/// flag names accepted as in `parse_spec`.
pub fn parse_process(text: &[u8]) -> serde_json::Result<oci_spec::runtime::Process> {
    let mut value: serde_json::Value = serde_json::from_slice(text)?;
    crate::plan::sched::accept_spec_flag_names(&mut value);
    serde_json::from_value(value)
}

/// Checks what the spec requires and returns the absolute rootfs path.
pub fn check_spec(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    check_version(spec.version())?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json: field root is missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::invalid(format!(
                "root.path {}: not a directory",
                rootfs.display()
            )))
        }
        Err(e) => {
            return Err(Error::invalid(format!(
                "root.path {}: {e}",
                rootfs.display()
            )))
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json: field process is missing"))?;
    if process.args().as_ref().map_or(true, |a| a.is_empty()) {
        return Err(Error::invalid(
            "config.json: process.args must name the program to run",
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::invalid(format!(
            "process.cwd {:?}: must be an absolute path",
            process.cwd()
        )));
    }
    check_process(process)?;
    check_hooks(spec)?;
    check_sysctls(spec)?;
    Ok(rootfs)
}

/// Checks of a process that runc also makes (for `create` and `exec`).
pub fn check_process(process: &oci_spec::runtime::Process) -> Result<()> {
    let user = process.user();
    // -1 would mean "leave unchanged" to setresuid: the process would stay root.
    let ids = [user.uid(), user.gid()]
        .into_iter()
        .chain(user.additional_gids().iter().flatten().copied());
    if let Some(bad) = ids.into_iter().find(|&id| id > i32::MAX as u32) {
        return Err(Error::invalid(format!(
            "process.user: id {bad} is out of range (0-2147483647)"
        )));
    }
    for kv in process.env().iter().flatten() {
        match kv.split_once('=') {
            Some((k, _)) if !k.is_empty() => {}
            _ => {
                return Err(Error::invalid(format!(
                    "process.env: {kv:?} is not KEY=VALUE"
                )))
            }
        }
    }
    Ok(())
}

fn check_hooks(spec: &Spec) -> Result<()> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    let lists = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (kind, list) in lists {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(Error::invalid(format!(
                    "hooks.{kind}[{i}].path {:?}: must be an absolute path",
                    hook.path()
                )));
            }
        }
    }
    Ok(())
}

/// Only namespaced sysctls, and only with their namespace (runc's rules):
/// anything else would change the host.
fn check_sysctls(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let Some(sysctl) = linux.sysctl() else {
        return Ok(());
    };
    let has = |t: oci_spec::runtime::LinuxNamespaceType| {
        linux.namespaces().iter().flatten().any(|n| n.typ() == t)
    };
    use oci_spec::runtime::LinuxNamespaceType as N;
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    for key in sysctl.keys() {
        let (ok, ns) = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            (has(N::Ipc), "ipc")
        } else if key.starts_with("net.") {
            (has(N::Network), "network")
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            (has(N::Uts), "uts")
        } else {
            return Err(Error::invalid(format!("linux.sysctl {key:?}: not in a separate kernel namespace (it would change the host)")));
        };
        if !ok {
            return Err(Error::invalid(format!(
                "linux.sysctl {key:?}: needs a {ns} namespace in linux.namespaces"
            )));
        }
    }
    Ok(())
}

/// Accepts any 1.x version (and the `-dev`/`-rc` suffixes engines write).
pub fn check_version(version: &str) -> Result<()> {
    let major = version.split('.').next().unwrap_or("");
    match major.parse::<u64>() {
        Ok(SPEC_MAJOR) => Ok(()),
        Ok(_) => Err(Error::invalid(format!(
            "config.json: ociVersion {version:?} is not supported (vessel implements runtime-spec {SPEC_MAJOR}.x)"
        ))),
        Err(_) => Err(Error::invalid(format!("config.json: ociVersion {version:?} is not a version (expected 1.x.y)"))),
    }
}

/// Container ids: what runc accepts (letters, digits, `_+-.`), never `.`/`..`.
pub fn check_id(id: &str) -> Result<()> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if id.is_empty() || !ok_chars || id == "." || id == ".." || id.len() > 1024 {
        return Err(Error::invalid(format!(
            "invalid container id {id:?}: use letters, digits and _ + - . (not \".\" or \"..\")"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_scheduler_flag_names_parse() {
        let text = br#"{"ociVersion":"1.3.0","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},
            "scheduler":{"policy":"SCHED_DEADLINE","flags":["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN"],
            "runtime":1,"deadline":2}}}"#;
        let spec = parse_spec(text).unwrap();
        let s = spec
            .process()
            .as_ref()
            .unwrap()
            .scheduler()
            .as_ref()
            .unwrap();
        assert_eq!(s.flags().as_ref().unwrap().len(), 2);
        let e = parse_spec(br#"{"ociVersion":"1.3.0","process":{"scheduler":{"flags":["SCHED_FLAG_RESET_ON_FORK","NOPE"]}}}"#)
            .unwrap_err();
        assert!(e.contains("NOPE"), "{e}");
    }

    #[test]
    fn versions() {
        assert!(check_version("1.0.2-dev").is_ok());
        assert!(check_version("1.2.0").is_ok());
        let e = check_version("2.0.0").unwrap_err().to_string();
        assert!(e.contains("ociVersion") && e.contains("2.0.0"), "{e}");
        assert!(check_version("").is_err());
    }

    #[test]
    fn ids() {
        assert!(check_id("abc-1_2.x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", "a\n"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parse_errors_name_the_field() {
        let e = parse_spec(
            br#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":"x","gid":0}}}"#,
        )
        .unwrap_err();
        assert!(e.contains("process.user.uid"), "{e}");
        let e = parse_spec(b"{not json").unwrap_err();
        assert!(e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn missing_rootfs_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let spec = parse_spec(br#"{"ociVersion":"1.0.0","root":{"path":"nope"},"process":{"cwd":"/","args":["true"],"user":{"uid":0,"gid":0}}}"#).unwrap();
        let e = check_spec(&spec, dir.path()).unwrap_err().to_string();
        assert!(e.contains("root.path") && e.contains("nope"), "{e}");
    }
}
