//! Churn and crash consistency: many containers, creates killed half-way,
//! and racing creates, leaving nothing behind.

use crate::harness::{self, Bundle, TestResult};
use std::process::Stdio;
use std::time::Duration;

/// Mounts of this test process's namespace under `dir` (other tests mount
/// and unmount elsewhere while the churn runs).
fn mounts_under(dir: &std::path::Path) -> usize {
    let dir = dir.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|mp| mp.starts_with(&*dir)))
        .count()
}

fn our_zombies() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|s| {
            let rest = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            let f: Vec<&str> = rest.split(' ').collect();
            f.first() == Some(&"Z") && f.get(1) == Some(&me.as_str())
        })
        .count()
}

/// Open fds of this (multi-threaded) test process that name something under
/// `dir`: other tests' fds come and go, these must not stay.
fn fds_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|l| l.starts_with(dir))
        .count()
}

/// Many create/start/delete cycles (VESSEL_CHURN, default 1000), one in ten
/// with a GPU from the fake driver (vessel only), leave no cgroups, mounts,
/// state, fds or zombies, and the peak RSS of `create` (measured through
/// fixtures/maxrss.c where gcc is present) is the same at the end as at the
/// start.
fn churn_leaves_nothing_behind() -> TestResult {
    harness::can_run()?;
    let n: usize = std::env::var("VESSEL_CHURN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (_guard, mut b, cg) = harness::isolated_bundle(&["true"]);
    b.config["linux"]["cgroupsPath"] = serde_json::json!(cg);
    b.write_config();
    let vessel = harness::is_vessel();
    let gpu = vessel.then(|| {
        let gpu_bundle = b.path().join("gpu");
        std::fs::create_dir(&gpu_bundle).unwrap();
        let mut config = b.config.clone();
        config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("NVIDIA_VISIBLE_DEVICES=all"));
        config["root"]["path"] = serde_json::json!(b.rootfs());
        std::fs::write(gpu_bundle.join("config.json"), config.to_string()).unwrap();
        gpu_bundle
    });
    let maxrss = harness::maxrss_helper();
    if maxrss.is_none() {
        eprintln!("churn: memory not measured (SKIPPED: no gcc for fixtures/maxrss.c)");
    }
    let mut peaks: Vec<(bool, u64)> = Vec::new();
    for i in 0..n {
        let id = format!("churn-{}-{i}", std::process::id());
        let mut create = match maxrss {
            Some(helper) => {
                let mut c = std::process::Command::new(helper);
                c.arg(harness::runtime_bin()).arg("--root").arg(&b.root);
                c
            }
            None => b.cmd(),
        };
        match (&gpu, i % 10) {
            (Some(g), 5) => create
                .arg("--gpu-root")
                .arg(crate::gpu::fake_root())
                .args(["create", "--bundle"])
                .arg(g),
            _ => create.args(["create", "--bundle"]).arg(b.path()),
        };
        create.arg(&id);
        // The container holds create's stdio until it runs: no pipes (the
        // helper gives the runtime /dev/null and prints only its own line).
        let out = create
            .stdin(Stdio::null())
            .stdout(if maxrss.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "create {i} failed");
        if maxrss.is_some() {
            let kib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            peaks.push((i % 10 == 5 && gpu.is_some(), kib));
        }
        let pid = b.state(&id).expect("state after create")["pid"]
            .as_i64()
            .unwrap() as i32;
        harness::stdout_ok(&b.rt(&["start", &id]));
        assert!(
            harness::wait_for(10.0, || !harness::pid_alive(pid)),
            "container {i} did not finish"
        );
        harness::stdout_ok(&b.rt(&["delete", &id]));
    }
    assert_eq!(mounts_under(b.path()), 0, "mounts leaked");
    assert!(harness::cgroup_gone(&cg), "cgroup left behind");
    assert_eq!(
        std::fs::read_dir(&b.root).unwrap().count(),
        0,
        "state left behind"
    );
    assert_eq!(our_zombies(), 0, "zombies of the test process");
    assert_eq!(
        fds_under(b.path()),
        0,
        "fds of the bundle or state left open"
    );
    eprintln!(
        "churn: {n} containers, {} with GPUs, nothing left",
        if gpu.is_some() { n / 10 } else { 0 }
    );
    for with_gpu in [false, true] {
        let kib: Vec<u64> = peaks
            .iter()
            .filter(|(g, _)| *g == with_gpu)
            .map(|(_, k)| *k)
            .collect();
        if kib.len() < 10 {
            continue;
        }
        let (first, last) = (
            median(&kib[..kib.len() / 5]),
            median(&kib[kib.len() * 4 / 5..]),
        );
        eprintln!(
            "churn: create's peak RSS{}: median {first} KiB in the first fifth, {last} KiB in the last",
            if with_gpu { " with a GPU" } else { "" }
        );
        // Single runs vary by ±300 KiB (address-space layout); the medians
        // by well under 256. Anything that grew per container (1 KiB each
        // is 1 MiB over the churn) would show.
        assert!(
            last <= first + 256,
            "create's peak RSS grew over the churn: {first} -> {last} KiB"
        );
    }
    Ok(())
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// `create` killed at many points leaves nothing `delete --force` cannot
/// clean, and `state`/`list` never show a corrupt entry.
fn create_killed_at_any_point_is_cleanable() -> TestResult {
    // Vessel-only: runc 1.1.5 leaves the cgroups of a killed create behind.
    harness::can_run()?;
    harness::vessel_only("runc 1.1.5 leaves the cgroups of a killed create behind")?;
    let (_guard, b, cg) = harness::isolated_bundle(&["sleep", "10"]);
    b.write_config();
    for delay_ms in [0u64, 1, 2, 3, 5, 8, 12, 20, 40] {
        let id = format!("killed-{}-{delay_ms}", std::process::id());
        b.track(&id);
        let mut child = b
            .cmd()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // state either fails cleanly or prints valid JSON; list never breaks.
        let st = b.rt(&["state", &id]);
        if st.status.success() {
            serde_json::from_slice::<serde_json::Value>(&st.stdout)
                .expect("state prints valid JSON");
        }
        harness::stdout_ok(&b.rt(&["list"]));
        harness::stdout_ok(&b.rt(&["delete", "--force", &id]));
        assert!(b.state(&id).is_none(), "delay {delay_ms} ms: still listed");
        assert!(
            harness::wait_for(5.0, || harness::cgroup_gone(&cg)),
            "delay {delay_ms} ms: cgroup left behind"
        );
    }
    Ok(())
}

/// Two creates of one id at once: exactly one wins, the other fails cleanly.
fn concurrent_creates_of_one_id_let_exactly_one_win() -> TestResult {
    // Vessel-only: with runc 1.1.5 both can fail (the loser's cleanup
    // removes the winner's state).
    harness::can_run()?;
    harness::vessel_only("with runc 1.1.5 both creates can fail")?;
    let b = Bundle::new(&["sleep", "10"]);
    b.write_config();
    let id = harness::unique("race");
    b.track(&id);
    let spawn = || {
        b.cmd()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut c) = (spawn(), spawn());
    let wins = [a.wait().unwrap().success(), c.wait().unwrap().success()]
        .iter()
        .filter(|w| **w)
        .count();
    assert_eq!(wins, 1);
    assert_eq!(b.status(&id).as_deref(), Some("created"));
    Ok(())
}

harness::tests![
    churn_leaves_nothing_behind,
    create_killed_at_any_point_is_cleanable,
    concurrent_creates_of_one_id_let_exactly_one_win,
];
