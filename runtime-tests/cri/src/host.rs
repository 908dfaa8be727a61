//! The node's side: pod cgroups as the kubelet makes them, and what must be
//! gone once a pod is removed (cgroups, mounts, processes, runtime state).

use crate::cri::{Cri, Res};
use std::fs;
use std::path::{Path, PathBuf};

/// Every cgroup hierarchy root: the v1 controllers' (and the unified one
/// of a hybrid host), or the single v2 root.
pub fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.is_symlink() && p.join("cgroup.procs").exists())
        .collect();
    out.sort();
    out
}

pub fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Makes the pod's cgroup in every hierarchy, as the kubelet does before
/// RunPodSandbox (cpuset's cpus and mems copied down, which a v1 child
/// needs before it can hold a task); `pids_max` limits the whole pod.
pub fn make_pod_cgroup(parent: &str, pids_max: Option<u32>) -> Res<()> {
    for h in hierarchies() {
        let mut dir = h.clone();
        let mut made_up = false;
        for part in parent.trim_start_matches('/').split('/') {
            let up = dir.clone();
            dir.push(part);
            let made = !dir.exists();
            if made {
                fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    if let Ok(v) = fs::read_to_string(up.join(f)) {
                        let _ = fs::write(dir.join(f), v.trim());
                    }
                }
            }
            if is_v2() && made_up {
                // v2: each level made here hands the controllers down;
                // the levels that were there (the root) are the host's.
                let _ = fs::write(up.join("cgroup.subtree_control"), "+cpu +memory +pids");
            }
            made_up = made;
        }
        if let Some(n) = pids_max {
            if dir.join("pids.max").exists() {
                fs::write(dir.join("pids.max"), n.to_string())
                    .map_err(|e| format!("pids.max of {}: {e}", dir.display()))?;
            }
        }
        if is_v2() && made_up {
            let _ = fs::write(dir.join("cgroup.subtree_control"), "+cpu +memory +pids");
        }
    }
    Ok(())
}

/// Removes the pod's cgroup as the kubelet does after RemovePodSandbox:
/// an error (a leak) when a container's cgroup is still inside it.
pub fn remove_pod_cgroup(parent: &str) -> Res<()> {
    let mut left = Vec::new();
    for h in hierarchies() {
        let dir = h.join(parent.trim_start_matches('/'));
        if !dir.exists() {
            continue;
        }
        let children = child_cgroups(&dir);
        if !children.is_empty() {
            left.push(format!("{} has {}", dir.display(), children.join(",")));
            continue;
        }
        if let Err(e) = remove_with_retry(&dir) {
            left.push(format!("rmdir {}: {e}", dir.display()));
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("cgroups left: {}", left.join("; ")))
    }
}

/// rmdir, retried briefly: a v1 cgroup whose last task just exited can
/// stay busy for a moment.
fn remove_with_retry(dir: &Path) -> std::io::Result<()> {
    let mut last = Ok(());
    for _ in 0..50 {
        last = fs::remove_dir(dir);
        if last.is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    last
}

/// What of these ids (a sandbox and its containers) is still on the node:
/// mounts naming them, runtime state directories, shims and processes in
/// the pod's cgroup.
pub fn leftovers(c: &Cri, uid: &str, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for id in ids {
        if let Some(l) = mountinfo.lines().find(|l| l.contains(id.as_str())) {
            out.push(format!("mount {}", l.split(' ').nth(4).unwrap_or(l)));
        }
        let state = Path::new(&c.node.runtime_root).join(id);
        if state.exists() {
            out.push(format!("state dir {}", state.display()));
        }
    }
    if c.node.cgroup_driver == "systemd" {
        for id in ids {
            let unit = format!("cri-containerd-{id}.scope");
            let listed = std::process::Command::new("systemctl")
                .args(["list-units", "--all", "--no-legend", "--plain", &unit])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&unit))
                .unwrap_or(false);
            if listed {
                out.push(format!("systemd unit {unit}"));
            }
        }
    }
    for (pid, cmd, cgroup) in processes() {
        if cgroup.contains(&format!("pod{uid}"))
            || cgroup.contains(&format!("pod{}", uid.replace('-', "_")))
        {
            out.push(format!("process {pid} ({cmd}) in the pod's cgroup"));
        } else if cmd.contains("containerd-shim") && ids.iter().any(|id| cmd.contains(id.as_str()))
        {
            out.push(format!("shim {pid} ({cmd})"));
        }
    }
    out
}

/// (pid, command line, /proc/pid/cgroup) of every process.
fn processes() -> Vec<(u32, String, String)> {
    let Ok(d) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    d.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            Some((pid, cmd.trim().to_string(), cg))
        })
        .collect()
}

/// The cgroup path of a process in the memory hierarchy (v1) or the
/// unified one (v2).
pub fn memory_cgroup_of(pid: u32) -> Res<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("/proc/{pid}/cgroup: {e}"))?;
    for l in text.lines() {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let is_memory = ctrls.split(',').any(|c| c == "memory");
        if is_memory || (is_v2() && ctrls.is_empty()) {
            return Ok(path.to_string());
        }
    }
    Err(format!("no memory cgroup in /proc/{pid}/cgroup: {text}"))
}

/// pids.current of a pod cgroup.
pub fn pids_current(parent: &str) -> Res<u32> {
    for h in hierarchies() {
        let f = h.join(parent.trim_start_matches('/')).join("pids.current");
        if let Ok(v) = fs::read_to_string(&f) {
            return v
                .trim()
                .parse()
                .map_err(|e| format!("{}: {e}", f.display()));
        }
    }
    Err(format!("no pids.current for {parent}"))
}

/// Stops the pod's slice as the kubelet does after RemovePodSandbox: an
/// error (a leak) when a container's scope is still in it.
pub fn stop_pod_slice(slice: &str) -> Res<()> {
    let uid = slice
        .trim_start_matches("kubepods-burstable-pod")
        .trim_end_matches(".slice");
    let dir = Path::new("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice").join(slice);
    let scopes = child_cgroups(&dir);
    let stopped = std::process::Command::new("systemctl")
        .args(["stop", slice])
        .status()
        .map_err(|e| format!("systemctl stop {slice}: {e}"))?;
    if !scopes.is_empty() {
        return Err(format!(
            "pod {uid}: {} still has {}",
            dir.display(),
            scopes.join(",")
        ));
    }
    if !stopped.success() {
        return Err(format!("systemctl stop {slice}: {stopped}"));
    }
    Ok(())
}

/// The names of the cgroups directly below `dir` (none if it is gone).
fn child_cgroups(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
