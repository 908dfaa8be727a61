//! Cgroups on a cgroup v1 (or hybrid) host, as runc 1.1.5 sets them up:
//! cgroupsPath placement in every hierarchy, removal on delete, the devices
//! controller (rules, runc's default allow list, enforcement) and the cgroup
//! namespace.
//!
//! Every cgroup a test makes is named `/vessel-test-...` and removed by a
//! `CgroupGuard` whatever happens; the tests assert the runtime removed it.
//! Device tests use major 42 ("demo/sample use" in the kernel's devices.txt,
//! never a real driver), so a node the cgroup lets through fails with ENXIO
//! ("No such device or address") and one it blocks with EPERM.

use crate::harness::{self, stderr_of, Bundle, CgroupGuard, Hierarchy, TestResult};
use serde_json::json;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// /proc/PID/cgroup-style text as (label, path) pairs.
fn parse_cgroup(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ':');
            let _ = p.next()?;
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect()
}

fn path_for<'a>(lines: &'a [(String, String)], label: &str) -> Option<&'a str> {
    lines
        .iter()
        .find(|(l, _)| l == label)
        .map(|(_, p)| p.as_str())
}

fn read_when_present(path: &Path) -> String {
    harness::read_when_present(path, 5.0)
        .unwrap_or_else(|| panic!("{} never appeared", path.display()))
}

fn procs_of(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn devices_dir(cgroup: &str) -> PathBuf {
    let h = harness::cgroup_hierarchies()
        .into_iter()
        .find(|h| h.label.split(',').any(|c| c == "devices"))
        .expect("devices hierarchy");
    h.mount.join(cgroup.trim_start_matches('/'))
}

/// Creates, starts and waits for a container that saved its
/// /proc/self/cgroup in /cg; returns (pid, parsed /cg).
fn start_and_read_cgroup(b: &Bundle, id: &str) -> (i32, Vec<(String, String)>) {
    let pid = b.create_ok(id);
    harness::stdout_ok(&b.rt(&["start", id]));
    let text = read_when_present(&b.rootfs().join("cg"));
    (pid, parse_cgroup(&text))
}

const SAVE_CGROUP: &[&str] = &[
    "sh",
    "-c",
    "cat /proc/self/cgroup > /cg.tmp; mv /cg.tmp /cg; exec sleep 30",
];

fn absolute_cgroups_path_used_in_every_hierarchy() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let (_cg, b, cgroup) = harness::isolated_bundle(SAVE_CGROUP);
    let id = harness::unique("cg-abs");
    let (pid, inside) = start_and_read_cgroup(&b, &id);
    let hierarchies = harness::cgroup_hierarchies();
    for want in [
        "memory", "pids", "devices", "cpu", "cpuacct", "cpuset", "freezer", "blkio",
    ] {
        if hierarchies.iter().any(|h| h.label == want) {
            assert_eq!(
                path_for(&inside, want),
                Some(cgroup.as_str()),
                "{want} in the container's /proc/self/cgroup: {inside:?}"
            );
        }
    }
    for h in &hierarchies {
        assert_eq!(
            path_for(&inside, &h.label),
            Some(cgroup.as_str()),
            "hierarchy {:?}: {inside:?}",
            h.label
        );
        let dir = h.mount.join(cgroup.trim_start_matches('/'));
        assert!(
            procs_of(&dir).contains(&pid),
            "{} lacks the container pid {pid}",
            dir.display()
        );
    }
    let out = b.rt(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        harness::wait_for(5.0, || harness::cgroup_gone(&cgroup)),
        "cgroup {cgroup} left after delete --force: {:?}",
        harness::cgroup_dirs(&cgroup)
            .iter()
            .filter(|d| d.exists())
            .collect::<Vec<_>>()
    );
    Ok(())
}

fn cgroup_kept_while_stopped_and_removed_on_delete() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let (_cg, b, cgroup) = harness::isolated_bundle(&["true"]);
    let id = harness::unique("cg-stopped");
    b.create_ok(&id);
    assert!(
        harness::cgroup_dirs(&cgroup).iter().all(|d| d.is_dir()),
        "create makes the cgroup in every hierarchy"
    );
    harness::stdout_ok(&b.rt(&["start", &id]));
    assert!(b.wait_status(&id, "stopped", 5));
    assert!(
        harness::cgroup_dirs(&cgroup).iter().all(|d| d.is_dir()),
        "the cgroup stays until delete"
    );
    harness::stdout_ok(&b.rt(&["delete", &id]));
    assert!(
        harness::cgroup_gone(&cgroup),
        "cgroup {cgroup} left after delete"
    );
    Ok(())
}

fn cgroup_removed_when_run_returns() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let (_cg, b, cgroup) = harness::isolated_bundle(&["sh", "-c", "cat /proc/self/cgroup"]);
    let out = b.run_ok(&harness::unique("cg-run"));
    let inside = parse_cgroup(&out);
    assert_eq!(path_for(&inside, "memory"), Some(cgroup.as_str()), "{out}");
    assert!(
        harness::cgroup_gone(&cgroup),
        "cgroup {cgroup} left after run"
    );
    Ok(())
}

/// Directories `/PARENT` made by a test in every hierarchy, removed on drop.
struct ParentCgroup {
    name: String,
    _guard: CgroupGuard,
    procs: Vec<CString>,
}

impl ParentCgroup {
    fn new(hierarchies: &[Hierarchy]) -> ParentCgroup {
        let name = harness::unique("vessel-test-parent");
        let guard = CgroupGuard::new(&name);
        let mut procs = Vec::new();
        for h in hierarchies {
            let dir = h.mount.join(&name);
            std::fs::create_dir(&dir).unwrap();
            if h.label.split(',').any(|c| c == "cpuset") {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(h.mount.join(f)).unwrap();
                    std::fs::write(dir.join(f), v.trim()).unwrap();
                }
            }
            procs.push(
                CString::new(
                    dir.join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .unwrap(),
            );
        }
        ParentCgroup {
            name,
            _guard: guard,
            procs,
        }
    }

    /// Makes CMD join this cgroup in every hierarchy before it execs.
    fn enter(&self, cmd: &mut std::process::Command) {
        let procs = self.procs.clone();
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    let err = std::io::Error::last_os_error();
                    libc::close(fd);
                    if n != 1 {
                        return Err(err);
                    }
                }
                Ok(())
            });
        }
    }
}

fn relative_cgroups_path_nests_under_runtime_cgroup() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    // The runtime is started inside a parent cgroup of our own (never under
    // the test process's cgroups); a relative cgroupsPath lands below the
    // runtime's own cgroup in each v1 hierarchy. (runc 1.1.5 puts the cgroup2
    // part of a hybrid host at /REL instead, so that one is not checked.)
    let hierarchies = harness::cgroup_hierarchies();
    let parent = ParentCgroup::new(&hierarchies);
    let rel = harness::unique("vessel-test-rel");
    let _rel_guard = CgroupGuard::new(&rel); // should the runtime use /REL anywhere
    let mut b = Bundle::new(SAVE_CGROUP);
    b.config["linux"]["cgroupsPath"] = json!(rel);
    let id = harness::unique("cg-rel");
    b.write_config();
    b.track(&id);
    let err_path = b.path().join("create.stderr");
    let mut cmd = b.cmd();
    cmd.args(["create", "--bundle"]).arg(b.path()).arg(&id);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    parent.enter(&mut cmd);
    let status = cmd.status().unwrap();
    assert!(
        status.success(),
        "create: {}",
        std::fs::read_to_string(&err_path).unwrap()
    );
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    harness::stdout_ok(&b.rt(&["start", &id]));
    let inside = parse_cgroup(&read_when_present(&b.rootfs().join("cg")));
    let want = format!("/{}/{}", parent.name, rel);
    for h in hierarchies.iter().filter(|h| !h.label.is_empty()) {
        assert_eq!(
            path_for(&inside, &h.label),
            Some(want.as_str()),
            "hierarchy {}: {inside:?}",
            h.label
        );
        let dir = h.mount.join(&parent.name).join(&rel);
        assert!(
            procs_of(&dir).contains(&pid),
            "{} lacks the container pid",
            dir.display()
        );
    }
    harness::stdout_ok(&b.rt(&["delete", "--force", &id]));
    for h in &hierarchies {
        let dir = h.mount.join(&parent.name).join(&rel);
        assert!(!dir.exists(), "{} left after delete", dir.display());
    }
    assert!(harness::cgroup_gone(&rel), "/{rel} left after delete");
    // Only the runtime moved: the test process is where it was.
    let now = harness::cgroup_hierarchies();
    for (a, b) in hierarchies.iter().zip(now.iter()) {
        assert_eq!(
            a.own, b.own,
            "the test process changed cgroup in {}",
            a.label
        );
    }
    Ok(())
}

fn default_devices_allowed_in_devices_list() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    // The harness config has only a deny-all rule; runc adds its default
    // allow list: mknod of anything, and the standard /dev nodes.
    let (_cg, b, cgroup) = harness::isolated_bundle(&["sleep", "30"]);
    let id = harness::unique("cg-devdefault");
    b.create_ok(&id);
    let list = std::fs::read_to_string(devices_dir(&cgroup).join("devices.list")).unwrap();
    let rules: Vec<&str> = list.lines().collect();
    assert!(
        !rules.contains(&"a *:* rwm"),
        "the cgroup allows every device: {list}"
    );
    for want in [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c 10:200 rwm",
    ] {
        assert!(
            rules.contains(&want),
            "devices.list lacks {want:?}:\n{list}"
        );
    }
    assert!(!list.contains("42:"), "{list}");
    Ok(())
}

fn device_rules_reflected_in_devices_list() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let (_cg, mut b, cgroup) = harness::isolated_bundle(&["sleep", "30"]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 42, "minor": 0, "access": "r"},
        {"allow": true, "type": "b", "major": 42, "minor": 1, "access": "rw"},
        {"allow": true, "type": "c", "major": 42, "access": "m"}
    ]);
    let id = harness::unique("cg-devlist");
    b.create_ok(&id);
    let list = std::fs::read_to_string(devices_dir(&cgroup).join("devices.list")).unwrap();
    let rules: Vec<&str> = list.lines().collect();
    for want in ["c 42:0 r", "b 42:1 rw", "c 42:* m"] {
        assert!(
            rules.contains(&want),
            "devices.list lacks {want:?}:\n{list}"
        );
    }
    assert!(!rules.contains(&"a *:* rwm"), "{list}");
    Ok(())
}

fn device_node_without_allow_rule_cannot_be_opened() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let script = "echo x > /dev/null && echo null-ok; \
                  head -c 1 /dev/test-full | od -An -c | tr -d ' \\n'; echo ' full-read'; \
                  cat /dev/test-nodrv 2>&1; echo nodrv-exit=$?";
    let (_cg, mut b, cgroup) = harness::isolated_bundle(&["sh", "-c", script]);
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/test-nodrv", "type": "c", "major": 42, "minor": 0, "fileMode": 438, "uid": 0, "gid": 0},
        {"path": "/dev/test-full", "type": "c", "major": 1, "minor": 7, "fileMode": 438, "uid": 0, "gid": 0}
    ]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]);
    let out = b.run_ok(&harness::unique("cg-devdeny"));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"null-ok"), "/dev/null unusable: {out}");
    // c 1:7 is on runc's default allow list, so a second node for it works.
    assert!(
        lines.contains(&"\\0 full-read"),
        "/dev/test-full (c 1:7) unreadable: {out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/dev/test-nodrv") && l.ends_with("Operation not permitted")),
        "opening a device no rule allows must fail with EPERM: {out}"
    );
    assert!(lines.contains(&"nodrv-exit=1"), "{out}");
    assert!(harness::cgroup_gone(&cgroup));
    Ok(())
}

fn device_allowed_by_rule_can_be_opened() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let (_cg, mut b, _) =
        harness::isolated_bundle(&["sh", "-c", "cat /dev/test-nodrv 2>&1; echo exit=$?"]);
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/test-nodrv", "type": "c", "major": 42, "minor": 0, "fileMode": 438, "uid": 0, "gid": 0}
    ]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 42, "minor": 0, "access": "rw"}
    ]);
    let out = b.run_ok(&harness::unique("cg-devallow"));
    // Past the cgroup check the open reaches the (absent) driver: ENXIO.
    assert!(
        out.lines()
            .any(|l| l.ends_with("No such device or address")),
        "{out}"
    );
    assert!(!out.contains("Operation not permitted"), "{out}");
    Ok(())
}

fn cgroup_namespace_shows_root_paths() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let (_cg, mut b, cgroup) = harness::isolated_bundle(SAVE_CGROUP);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    let id = harness::unique("cg-ns");
    let (pid, inside) = start_and_read_cgroup(&b, &id);
    assert!(!inside.is_empty());
    for (label, path) in &inside {
        assert_eq!(
            path, "/",
            "hierarchy {label:?} inside a cgroup namespace: {inside:?}"
        );
    }
    let host_view = parse_cgroup(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap());
    assert_eq!(
        path_for(&host_view, "memory"),
        Some(cgroup.as_str()),
        "seen from the host: {host_view:?}"
    );
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/cgroup")).unwrap(),
        std::fs::read_link("/proc/self/ns/cgroup").unwrap()
    );
    harness::stdout_ok(&b.rt(&["delete", "--force", &id]));
    assert!(harness::wait_for(5.0, || harness::cgroup_gone(&cgroup)));
    Ok(())
}

fn without_cgroup_namespace_container_shares_host_cgroup_ns() -> TestResult {
    harness::can_run()?;
    harness::needs_cgroup_v1()?;
    let (_cg, b, _) = harness::isolated_bundle(&["sleep", "30"]);
    let id = harness::unique("cg-nons");
    let pid = b.create_ok(&id);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/cgroup")).unwrap(),
        std::fs::read_link("/proc/self/ns/cgroup").unwrap()
    );
    Ok(())
}

harness::tests![
    absolute_cgroups_path_used_in_every_hierarchy,
    cgroup_kept_while_stopped_and_removed_on_delete,
    cgroup_removed_when_run_returns,
    relative_cgroups_path_nests_under_runtime_cgroup,
    default_devices_allowed_in_devices_list,
    device_rules_reflected_in_devices_list,
    device_node_without_allow_rule_cannot_be_opened,
    device_allowed_by_rule_can_be_opened,
    cgroup_namespace_shows_root_paths,
    without_cgroup_namespace_container_shares_host_cgroup_ns,
];
