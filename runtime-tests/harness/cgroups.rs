//! The cgroup hierarchies of the test process, and the test cgroups the
//! runtime makes for a bundle (removed by `CgroupGuard`).

use super::Bundle;
use std::path::PathBuf;

/// One cgroup hierarchy the test process is in: `label` as in
/// /proc/self/cgroup ("memory", "cpu,cpuacct", "name=systemd"; "" for
/// cgroup2), where it is mounted, and the test process's own path in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub label: String,
    pub mount: PathBuf,
    pub own: String,
}

/// The cgroup hierarchies of /proc/self/cgroup that are mounted here.
pub fn cgroup_hierarchies() -> Vec<Hierarchy> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts = Vec::new(); // (fstype, superopts, root, mountpoint)
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 || !post[0].starts_with("cgroup") {
            continue;
        }
        mounts.push((
            post[0].to_string(),
            post[2].to_string(),
            pre[3].to_string(),
            PathBuf::from(pre[4]),
        ));
    }
    let mut out = Vec::new();
    for line in std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
    {
        let mut parts = line.splitn(3, ':');
        let (_, label, own) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let found = mounts.iter().find(|(fstype, opts, root, _)| {
            root == "/"
                && if label.is_empty() {
                    fstype == "cgroup2"
                } else {
                    fstype == "cgroup" && label.split(',').all(|c| opts.split(',').any(|o| o == c))
                }
        });
        if let Some((_, _, _, mount)) = found {
            out.push(Hierarchy {
                label: label.to_string(),
                mount: mount.clone(),
                own: own.to_string(),
            });
        }
    }
    out
}

/// True on cgroup v1 (or hybrid) hosts, where the devices controller exists.
pub fn cgroup_v1() -> bool {
    cgroup_hierarchies()
        .iter()
        .any(|h| h.label.split(',').any(|c| c == "devices"))
}

/// The directories of cgroup PATH (absolute, from each hierarchy's root) in
/// every mounted hierarchy.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    cgroup_hierarchies()
        .iter()
        .map(|h| h.mount.join(path.trim_start_matches('/')))
        .collect()
}

/// Removes, on drop, whatever empty directories of cgroup PATH remain in
/// every hierarchy (deepest first), so a failing test leaves nothing behind.
/// Declare it before the `Bundle` so it drops after the containers are gone.
pub struct CgroupGuard(pub Vec<PathBuf>);

impl CgroupGuard {
    pub fn new(path: &str) -> CgroupGuard {
        CgroupGuard(cgroup_dirs(path))
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for dir in &self.0 {
            if !dir.starts_with("/sys/fs/cgroup") || !dir.to_string_lossy().contains("vessel-test-")
            {
                continue;
            }
            let mut subdirs: Vec<PathBuf> = Vec::new();
            let mut stack = vec![dir.clone()];
            while let Some(d) = stack.pop() {
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            stack.push(e.path());
                        }
                    }
                    subdirs.push(d);
                }
            }
            subdirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for d in subdirs {
                let _ = std::fs::remove_dir(&d);
            }
        }
    }
}

/// A bundle for ARGS with its own `/vessel-test-...` cgroupsPath, the guard
/// that removes what is left of that cgroup (it drops after the bundle when
/// bound first: `let (_cg, b, path) = isolated_bundle(..)`), and the path.
pub fn isolated_bundle(args: &[&str]) -> (CgroupGuard, Bundle, String) {
    let mut b = Bundle::new(args);
    let path = b.use_test_cgroup();
    (CgroupGuard::new(&path), b, path)
}

/// True when no directory of cgroup PATH exists in any hierarchy.
pub fn cgroup_gone(path: &str) -> bool {
    cgroup_dirs(path).iter().all(|d| !d.exists())
}
