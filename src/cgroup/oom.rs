//! How often the OOM killer struck in a container's cgroup: so a
//! container killed for memory while `create` sets it up, or before
//! `start`, says so instead of "init exited".

use std::path::{Path, PathBuf};

/// The `oom_kill` count of the container's memory cgroup: `memory.events`
/// on v2, `memory.oom_control` on v1 (kernel 4.13+); 0 when unknown.
pub fn oom_kills(dirs: &[PathBuf]) -> u64 {
    dirs.iter()
        .flat_map(|d| [d.join("memory.events"), d.join("memory.oom_control")])
        .map(|f| count_in(&f))
        .max()
        .unwrap_or(0)
}

fn count_in(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .map(str::trim)
                    .map(str::to_string)
            })
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `err` with the OOM killer named, when it struck in the cgroup.
pub fn explain(err: crate::error::Error, dirs: &[PathBuf], when: &str) -> crate::error::Error {
    if oom_kills(dirs) == 0 {
        return err;
    }
    err.within(format!(
        "the container was killed by the OOM killer {when} (is linux.resources.memory.limit too low?)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_v1_and_v2_files() {
        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(
            v2.path().join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
        )
        .unwrap();
        let v1 = tempfile::tempdir().unwrap();
        std::fs::write(
            v1.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        assert_eq!(oom_kills(&[v2.path().into()]), 2);
        assert_eq!(oom_kills(&[v1.path().into()]), 0);
        assert_eq!(oom_kills(&[]), 0);
        let e = explain(
            crate::error::Error::invalid("init exited"),
            &[v2.path().into()],
            "during create",
        );
        assert!(
            e.to_string()
                .starts_with("the container was killed by the OOM killer during create"),
            "{e}"
        );
    }
}
