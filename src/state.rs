//! Container state on disk: `ROOT/ID/state.json`, written atomically
//! (temporary file + rename), and the status derived from the live process.
//!
//! Layout of `ROOT/ID/`: `state.json` (this module's `State`), `exec.fifo`
//! (present from create until start), `lock` (flock for mutating commands).

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What vessel remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat), so a recycled pid
    /// is never mistaken for the container.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Absolute cgroup directories made for the container (one per hierarchy).
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    /// The cgroup directories vessel made (parents first): delete removes these.
    #[serde(default)]
    pub cgroup_created: Vec<PathBuf>,
    /// The systemd scope of the container (`--systemd-cgroup`): delete stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// Who runs the cgroup (`cgroupfs`, `systemd`, `none`), decided at
    /// create. Absent in older states: worked out as before (`cgroup::Manager::recorded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_driver: Option<crate::cgroup::Driver>,
    /// The host's cgroup layout at create (`v1`, `hybrid`, `v2`), so later
    /// commands do not probe it. Absent in older states: probed as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_layout: Option<crate::cgroup::Layout>,
    /// True when the container has its own pid namespace (its processes all
    /// die with the init process).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// While `create` runs: its pid and start time. A state whose creator
    /// is gone without finishing is a failed create (status stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<(i32, u64)>,
    /// The config.json text the container was created from (hooks for
    /// start/delete, process for exec), kept as text: parsing it again
    /// costs less than serialising a `Spec`.
    pub config: String,
}

/// The OCI state as `state` prints it (runc's field set and order).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

impl State {
    /// The JSON a hook reads on stdin for this container in `status`.
    pub fn hook_state(&self, status: Status) -> Vec<u8> {
        let pid = (status != Status::Stopped).then_some(self.pid);
        crate::hooks::state_json(
            &self.oci_version,
            &self.id,
            &status.to_string(),
            pid,
            &self.bundle,
            &self.annotations,
        )
    }

    /// The spec the container was created from.
    pub fn spec(&self) -> Result<oci_spec::runtime::Spec> {
        crate::bundle::parse_spec(self.config.as_bytes())
            .map_err(|e| Error::invalid(format!("container {}: stored config: {e}", self.id)))
    }

    /// The container's cgroup, as create recorded it.
    pub fn cgroup(&self) -> crate::cgroup::Manager {
        crate::cgroup::Manager::recorded(
            self.cgroup_driver,
            self.cgroup_layout,
            self.cgroup_dirs.clone(),
            self.cgroup_created.clone(),
            self.systemd_unit.clone(),
        )
    }

    /// Records a cgroup manager's driver, layout and directories.
    pub fn record_cgroup(&mut self, cg: &crate::cgroup::Manager) {
        self.cgroup_driver = Some(cg.driver);
        self.cgroup_layout = Some(cg.layout);
        self.cgroup_dirs = cg.dirs.clone();
        self.cgroup_created = cg.created.clone();
        self.systemd_unit = cg.unit.clone();
    }

    pub fn oci(&self, status: Status) -> OciState<'_> {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid,
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: "",
            annotations: &self.annotations,
        }
    }
}

/// The directory holding every container's state (`--root`).
#[derive(Debug, Clone)]
pub struct StateRoot {
    pub dir: PathBuf,
}

impl StateRoot {
    pub fn new(dir: impl Into<PathBuf>) -> StateRoot {
        StateRoot { dir: dir.into() }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Claims `id` by creating its directory; fails if it exists.
    pub fn claim(&self, id: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).ctx("creating state root", &self.dir)?;
        let dir = self.container_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(e) => Err(Error::io("creating state directory", dir, e)),
        }
    }

    pub fn load(&self, id: &str) -> Result<State> {
        crate::bundle::check_id(id)?;
        let path = self.container_dir(id).join("state.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        serde_json::from_slice(&text)
            .map_err(|e| Error::invalid(format!("{}: corrupt state: {e}", path.display())))
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let dir = self.container_dir(&state.id);
        let tmp = dir.join("state.json.tmp");
        let data = serde_json::to_vec(state)
            .map_err(|e| Error::invalid(format!("serialising state: {e}")))?;
        std::fs::write(&tmp, data).ctx("writing", &tmp)?;
        std::fs::rename(&tmp, dir.join("state.json")).ctx("renaming", &tmp)?;
        Ok(())
    }

    /// Takes the container's exclusive lock (released when dropped).
    pub fn lock(&self, id: &str) -> Result<OwnedFd> {
        let path = self.container_dir(id);
        let dir = std::fs::File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(id.to_string())
            } else {
                Error::io("opening", &path, e)
            }
        })?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io("locking", path, std::io::Error::last_os_error()));
        }
        Ok(dir.into())
    }

    /// Ids of all containers under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(Error::io("reading", &self.dir, e)),
        };
        for entry in rd.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if let Some(name) = entry.file_name().to_str() {
                    ids.push(name.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub fn fifo_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("exec.fifo")
    }

    /// The live status of a loaded container.
    pub fn status(&self, state: &State) -> Status {
        if let Some((pid, start)) = state.creator {
            return if process_alive(pid, start) {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !process_alive(state.pid, state.pid_start_time) {
            return Status::Stopped;
        }
        if self.fifo_path(&state.id).exists() {
            Status::Created
        } else if state.cgroup().is_frozen() {
            Status::Paused
        } else {
            Status::Running
        }
    }
}

/// This process's pid and start time.
pub fn this_process() -> (i32, u64) {
    let pid = std::process::id() as i32;
    (pid, crate::util::proc::stat(pid).map_or(0, |(_, t)| t))
}

/// True if `pid` is the same process that was recorded and not a zombie.
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    match crate::util::proc::stat(pid) {
        Some((state, start)) => start == start_time && state != 'Z' && state != 'X',
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_stat_parses() {
        let pid = std::process::id() as i32;
        let (state, start) = crate::util::proc::stat(pid).unwrap();
        assert_ne!(state, 'Z');
        assert!(process_alive(pid, start));
        assert!(!process_alive(pid, start + 1));
    }

    #[test]
    fn old_states_without_the_cgroup_record_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path());
        root.claim("old").unwrap();
        let old = r#"{"oci_version":"1.2.0","id":"old","pid":1,"pid_start_time":2,"bundle":"/b","rootfs":"/b/rootfs",
            "created":"2026-01-01T00:00:00.000000000Z","cgroup_dirs":[],"cgroup_created":[],"own_pid_ns":true,"config":"{}"}"#;
        std::fs::write(root.container_dir("old").join("state.json"), old).unwrap();
        let st = root.load("old").unwrap();
        assert_eq!((st.cgroup_driver, st.cgroup_layout), (None, None));
        assert_eq!(st.cgroup().driver, crate::cgroup::Driver::None);
        let mut new = st.clone();
        new.cgroup_driver = Some(crate::cgroup::Driver::Cgroupfs);
        new.cgroup_layout = Some(crate::cgroup::Layout::Hybrid);
        root.save(&new).unwrap();
        let text = std::fs::read_to_string(root.container_dir("old").join("state.json")).unwrap();
        assert!(
            text.contains(r#""cgroup_driver":"cgroupfs","cgroup_layout":"hybrid""#),
            "{text}"
        );
    }

    #[test]
    fn claim_twice_fails_with_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path());
        root.claim("a").unwrap();
        assert!(matches!(root.claim("a"), Err(Error::Exists(_))));
        assert!(matches!(root.load("a"), Err(Error::NotFound(_))));
        assert_eq!(root.ids().unwrap(), vec!["a".to_string()]);
    }
}
