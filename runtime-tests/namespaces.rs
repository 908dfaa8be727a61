//! Namespaces (config-linux.md "Namespaces"): each listed type is created
//! new, an omitted one is shared with the runtime's caller, and one with a
//! `path` is joined. Observed from inside through /proc/self/ns/* links,
//! compared with this test process's own links (the runtime's "host").

use crate::harness::{self, Bundle, TestResult, Why};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Stdio;

const NS: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "uts"];

/// Sets the bundle's process to print `ns NAME LINK` for every namespace
/// of `NS`, then run the shell snippet `extra`; runs it and returns the
/// links and the rest of stdout.
fn run_ns(b: &mut Bundle, prefix: &str, extra: &str) -> (HashMap<String, String>, String) {
    let script = format!(
        "for n in {}; do echo \"ns $n $(readlink /proc/self/ns/$n)\"; done; {extra}",
        NS.join(" ")
    );
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    let out = b.run_ok(&harness::unique(prefix));
    let mut links = HashMap::new();
    let mut rest = String::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() == 3 && f[0] == "ns" {
            links.insert(f[1].to_string(), f[2].to_string());
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    for n in NS {
        assert!(
            links
                .get(*n)
                .is_some_and(|l| l.starts_with(&format!("{n}:["))),
            "no {n} link in output:\n{out}"
        );
    }
    (links, rest)
}

fn remove_ns(b: &mut Bundle, ty: &str) {
    let list = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    list.retain(|n| n["type"] != ty);
}

fn add_ns(b: &mut Bundle, ns: Value) {
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(ns);
}

/// A SysV shared memory segment created by the test, removed on drop.
struct Shm(i32);

impl Shm {
    fn new() -> Shm {
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        Shm(id)
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// The shmid column of /proc/sysvipc/shm text.
fn shm_ids(text: &str) -> Vec<i32> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn pid_namespace_is_new_and_process_is_pid_1() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let (links, rest) = run_ns(&mut b, "ns-pid", "echo pid=$$");
    assert_ne!(
        links["pid"],
        harness::host_ns("pid"),
        "pid namespace shared with the host"
    );
    assert!(
        rest.lines().any(|l| l == "pid=1"),
        "container shell is not pid 1:\n{rest}"
    );
    Ok(())
}

fn network_namespace_is_new_with_only_loopback() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let (links, rest) = run_ns(&mut b, "ns-net", "cat /proc/net/dev");
    assert_ne!(
        links["net"],
        harness::host_ns("net"),
        "network namespace shared with the host"
    );
    let ifaces: Vec<&str> = rest
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "/proc/net/dev inside:\n{rest}");
    Ok(())
}

fn network_namespace_loopback_is_up() -> TestResult {
    harness::can_run()?;
    // runc brings `lo` up in a new network namespace: IFF_UP|IFF_LOOPBACK.
    let b = Bundle::new(&["cat", "/sys/class/net/lo/flags"]);
    let out = b.run_ok(&harness::unique("ns-lo"));
    assert_eq!(out.trim(), "0x9", "lo flags inside");
    Ok(())
}

fn ipc_namespace_is_new_and_hides_host_segments() -> TestResult {
    harness::can_run()?;
    let shm = Shm::new();
    let mut b = Bundle::new(&[]);
    let (links, rest) = run_ns(&mut b, "ns-ipc", "cat /proc/sysvipc/shm");
    assert_ne!(
        links["ipc"],
        harness::host_ns("ipc"),
        "ipc namespace shared with the host"
    );
    assert!(
        rest.contains("shmid"),
        "no /proc/sysvipc/shm header:\n{rest}"
    );
    assert!(
        !shm_ids(&rest).contains(&shm.0),
        "host shm segment {} visible inside:\n{rest}",
        shm.0
    );
    Ok(())
}

fn uts_namespace_is_new_with_config_hostname() -> TestResult {
    harness::can_run()?;
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut b = Bundle::new(&[]);
    b.config["hostname"] = json!("uts-test-host");
    let (links, rest) = run_ns(&mut b, "ns-uts", "hostname");
    assert_ne!(
        links["uts"],
        harness::host_ns("uts"),
        "uts namespace shared with the host"
    );
    assert_eq!(rest.trim(), "uts-test-host");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name,
        "host hostname changed"
    );
    Ok(())
}

fn mount_namespace_is_new() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let (links, rest) = run_ns(&mut b, "ns-mnt", "cat /proc/self/mountinfo");
    assert_ne!(
        links["mnt"],
        harness::host_ns("mnt"),
        "mount namespace shared with the runtime's"
    );
    let mounts = harness::parse_mountinfo(&rest);
    let root = harness::mount_at(&mounts, "/");
    assert!(
        root.root.ends_with("/rootfs"),
        "container / is not the bundle rootfs: {root:?}"
    );
    Ok(())
}

fn cgroup_namespace_is_new_and_roots_cgroup_paths() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    add_ns(&mut b, json!({"type": "cgroup"}));
    let (links, rest) = run_ns(&mut b, "ns-cg", "cat /proc/self/cgroup");
    assert_ne!(
        links["cgroup"],
        harness::host_ns("cgroup"),
        "cgroup namespace shared with the host"
    );
    let lines: Vec<&str> = rest.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty());
    for l in lines {
        assert!(
            l.ends_with(":/"),
            "cgroup path not the namespace root: {l}\n{rest}"
        );
    }
    Ok(())
}

fn omitted_network_namespace_is_shared_with_host() -> TestResult {
    harness::can_run()?;
    let host_dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let host_ifaces: Vec<String> = host_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .collect();
    let mut b = Bundle::new(&[]);
    remove_ns(&mut b, "network");
    let (links, rest) = run_ns(&mut b, "ns-nonet", "cat /proc/net/dev");
    assert_eq!(links["net"], harness::host_ns("net"));
    for i in &host_ifaces {
        assert!(
            rest.lines()
                .any(|l| l.split(':').next().map(str::trim) == Some(i)),
            "host interface {i} not seen inside:\n{rest}"
        );
    }
    Ok(())
}

fn omitted_ipc_namespace_is_shared_with_host() -> TestResult {
    harness::can_run()?;
    let shm = Shm::new();
    let mut b = Bundle::new(&[]);
    remove_ns(&mut b, "ipc");
    let (links, rest) = run_ns(&mut b, "ns-noipc", "cat /proc/sysvipc/shm");
    assert_eq!(links["ipc"], harness::host_ns("ipc"));
    assert!(
        shm_ids(&rest).contains(&shm.0),
        "host shm segment {} not visible inside:\n{rest}",
        shm.0
    );
    Ok(())
}

fn omitted_uts_namespace_is_shared_with_host() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    remove_ns(&mut b, "uts");
    // A hostname needs a UTS namespace of its own (runc refuses it otherwise).
    b.config.as_object_mut().unwrap().remove("hostname");
    let (links, rest) = run_ns(&mut b, "ns-nouts", "hostname");
    assert_eq!(links["uts"], harness::host_ns("uts"));
    assert_eq!(
        rest.trim(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    Ok(())
}

fn hostname_without_uts_namespace_is_rejected() -> TestResult {
    harness::can_run()?;
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut b = Bundle::new(&["true"]);
    remove_ns(&mut b, "uts");
    b.config["hostname"] = json!("must-not-be-set");
    let out = b.run(&harness::unique("ns-nouts-host"));
    assert!(
        !out.status.success(),
        "hostname without a uts namespace accepted"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name,
        "host hostname changed"
    );
    Ok(())
}

fn omitted_pid_namespace_is_shared_with_host() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    remove_ns(&mut b, "pid");
    let (links, rest) = run_ns(&mut b, "ns-nopid", "echo pid=$$");
    assert_eq!(links["pid"], harness::host_ns("pid"));
    let pid: i64 = rest.trim().strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(pid > 1, "shell pid {pid} in the host pid namespace");
    Ok(())
}

fn omitted_cgroup_namespace_is_shared_with_host() -> TestResult {
    harness::can_run()?;
    // The default config (like `runc spec`) has no cgroup namespace.
    let mut b = Bundle::new(&[]);
    let (links, _) = run_ns(&mut b, "ns-nocg", "true");
    assert_eq!(links["cgroup"], harness::host_ns("cgroup"));
    Ok(())
}

fn namespaces_joined_by_path_are_shared_with_that_container() -> TestResult {
    harness::can_run()?;
    let mut a = Bundle::new(&["sleep", "60"]);
    a.config["hostname"] = json!("ns-join-a");
    let a_id = harness::unique("ns-join-a");
    let pid = a.start_detached(&a_id);
    let a_link = |n: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };

    let mut b = Bundle::new(&[]);
    b.config.as_object_mut().unwrap().remove("hostname");
    remove_ns(&mut b, "network");
    remove_ns(&mut b, "uts");
    remove_ns(&mut b, "ipc");
    for (ty, n) in [("network", "net"), ("uts", "uts"), ("ipc", "ipc")] {
        add_ns(
            &mut b,
            json!({"type": ty, "path": format!("/proc/{pid}/ns/{n}")}),
        );
    }
    let (links, rest) = run_ns(&mut b, "ns-join-b", "hostname");
    for n in ["net", "uts", "ipc"] {
        assert_eq!(links[n], a_link(n), "{n} namespace not joined");
        assert_ne!(links[n], harness::host_ns(n), "{n} namespace is the host's");
    }
    // Not joined: still new, and not A's.
    for n in ["pid", "mnt"] {
        assert_ne!(
            links[n],
            a_link(n),
            "{n} namespace of A joined although not asked"
        );
        assert_ne!(links[n], harness::host_ns(n));
    }
    assert_eq!(
        rest.trim(),
        "ns-join-a",
        "hostname of the joined uts namespace"
    );
    Ok(())
}

/// runc 1.1.5 does not know the time namespace ("namespace {"time" ""} does
/// not exist"); vessel implements it from the spec (`timeOffsets`).
fn time_namespace_is_new_with_offsets() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("runc 1.1.5 has no time namespace")?;
    harness::skip_unless(
        std::path::Path::new("/proc/self/ns/time").exists(),
        Why::HostFeature,
        "kernel without time namespaces",
    )?;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/time; cat /proc/self/timens_offsets",
    ]);
    add_ns(&mut b, json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 172800, "nanosecs": 0}
    });
    let out = b.run_ok(&harness::unique("ns-time"));
    let mut lines = out.lines();
    let link = lines.next().unwrap();
    assert!(link.starts_with("time:["), "{out}");
    assert_ne!(
        link,
        harness::host_ns("time"),
        "time namespace shared with the host"
    );
    let offsets: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(offsets.contains(&vec!["monotonic", "86400", "0"]), "{out}");
    assert!(offsets.contains(&vec!["boottime", "172800", "0"]), "{out}");
    Ok(())
}

/// No namespaces at all (runtime-tools' linux_ns_itype): the container
/// inherits every namespace of the runtime, as the spec says, and still
/// runs in its rootfs (a chroot); exec lands there too, and `delete` takes
/// the rootfs's mounts off the runtime's namespace (vessel; runc leaves them,
/// and cannot exec there).
fn no_namespaces_inherits_the_runtime_s_and_still_runs_in_the_rootfs() -> TestResult {
    harness::can_run()?;
    harness::needs_private_mount_ns()?;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "for n in mnt pid net ipc uts; do readlink /proc/self/ns/$n; done; ls /; exec sleep 30",
    ]);
    b.config["linux"]["namespaces"] = serde_json::json!([]);
    // runc refuses these without a mount namespace; vessel applies them.
    b.config["linux"]["maskedPaths"] = serde_json::json!([]);
    b.config["linux"]["readonlyPaths"] = serde_json::json!([]);
    b.config.as_object_mut().unwrap().remove("hostname");
    b.config["root"]["readonly"] = serde_json::json!(false);
    std::fs::write(b.rootfs().join("only-in-the-rootfs"), "").unwrap();
    let mounts = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(b.rootfs().to_str().unwrap()))
            .count()
    };
    let id = harness::unique("nons");
    b.write_config();
    let log = b.path().join("out");
    let out = b
        .cmd()
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    b.track(&id);
    assert!(out.success(), "run -d without namespaces failed");
    assert!(harness::wait_for(5.0, || std::fs::read_to_string(&log)
        .unwrap()
        .contains("only-in-the-rootfs")));
    let seen = std::fs::read_to_string(&log).unwrap();
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        assert!(
            seen.contains(&harness::host_ns(ns)),
            "{ns} not inherited: {seen}"
        );
    }
    // runc 1.1.5 cannot exec here ("nsexec: ns paths are empty").
    if harness::is_vessel() {
        let exec = b.rt(&["exec", &id, "ls", "/only-in-the-rootfs"]);
        assert!(exec.status.success(), "exec: {}", harness::stderr_of(&exec));
    }
    harness::stdout_ok(&b.rt(&["delete", "--force", &id]));
    if harness::is_vessel() {
        assert_eq!(
            mounts(),
            0,
            "the rootfs's mounts stayed in the runtime's namespace"
        );
    }
    // What runc left behind in this test process's namespace.
    let _ = nix::mount::umount2(&b.rootfs(), nix::mount::MntFlags::MNT_DETACH);
    Ok(())
}

harness::tests![
    pid_namespace_is_new_and_process_is_pid_1,
    network_namespace_is_new_with_only_loopback,
    network_namespace_loopback_is_up,
    ipc_namespace_is_new_and_hides_host_segments,
    uts_namespace_is_new_with_config_hostname,
    mount_namespace_is_new,
    cgroup_namespace_is_new_and_roots_cgroup_paths,
    omitted_network_namespace_is_shared_with_host,
    omitted_ipc_namespace_is_shared_with_host,
    omitted_uts_namespace_is_shared_with_host,
    hostname_without_uts_namespace_is_rejected,
    omitted_pid_namespace_is_shared_with_host,
    omitted_cgroup_namespace_is_shared_with_host,
    namespaces_joined_by_path_are_shared_with_that_container,
    time_namespace_is_new_with_offsets,
    no_namespaces_inherits_the_runtime_s_and_still_runs_in_the_rootfs,
];
