//! The config.json files real engines write (recorded from docker 20.10 on
//! this kind of machine, `fixtures/`), run with only their host paths
//! pointed at this test's bundle.

use crate::harness::{self, Bundle, CgroupGuard, TestResult};
use serde_json::{json, Value};

/// Capabilities Docker grants by default: CHOWN(0) DAC_OVERRIDE(1)
/// FOWNER(3) FSETID(4) KILL(5) SETGID(6) SETUID(7) SETPCAP(8)
/// NET_BIND_SERVICE(10) NET_RAW(13) SYS_CHROOT(18) MKNOD(27)
/// AUDIT_WRITE(29) SETFCAP(31).
const DOCKER_CAPS: &str = "00000000a80425fb";

fn docker_config_runs_as_docker_expects() -> TestResult {
    harness::can_run()?;
    let cg = format!("/{}", harness::unique("vessel-test-docker"));
    let _guard = CgroupGuard::new(&cg);
    let mut b = Bundle::new(&["true"]);
    let mut config: Value =
        serde_json::from_str(include_str!("fixtures/docker-config.json")).unwrap();
    let dir = b.path().to_path_buf();
    config["root"]["path"] = json!(b.rootfs());
    config["linux"]["cgroupsPath"] = json!(cg);
    let script = format!(
        "echo hi; hostname; cat /etc/hostname /etc/hosts; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; \
         cat /proc/sys/net/ipv4/ip_unprivileged_port_start; id -G; grep -vc :{cg}$ /proc/self/cgroup; true"
    );
    config["process"]["args"] = json!(["sh", "-c", script]);
    // dockerd's libnetwork-setkey hook, replaced by one that records its stdin.
    let hook_out = dir.join("prestart.json");
    config["hooks"]["prestart"] =
        json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", hook_out.display())]}]);
    for (name, content) in [
        ("resolv.conf", "nameserver 127.0.0.1\n"),
        ("hostname", "88e35a37ec72\n"),
        ("hosts", "127.0.0.1 localhost\n"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        for m in config["mounts"].as_array_mut().unwrap() {
            if m["destination"] == format!("/etc/{name}") {
                m["source"] = json!(path);
            }
        }
    }
    b.config = config;
    let id = harness::unique("docker");
    let out = b.run_ok(&id);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hi", "{out}");
    assert_eq!(lines[1], "88e35a37ec72");
    assert_eq!(lines[2], "88e35a37ec72");
    assert_eq!(lines[3], "127.0.0.1 localhost");
    assert_eq!(lines[4], format!("CapEff:\t{DOCKER_CAPS}"));
    assert_eq!(lines[5], "NoNewPrivs:\t0");
    assert_eq!(lines[6], "0", "the sysctl from the config");
    assert_eq!(lines[7], "0", "additionalGids [0]");
    assert_eq!(
        lines[8], "0",
        "every hierarchy in the config's cgroup: {out}"
    );
    let hook: Value = serde_json::from_slice(&std::fs::read(&hook_out).unwrap())
        .expect("prestart hook got the state");
    assert_eq!(hook["id"], json!(id));
    assert!(hook["pid"].as_i64().unwrap() > 0);
    // The cgroup is gone with the container.
    for d in harness::cgroup_dirs(&cg) {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    Ok(())
}

/// Docker's default seccomp profile, exactly as dockerd sends it, blocks
/// what Docker blocks (here: `unshare`, which the same container can do
/// without the profile) and allows the rest.
fn docker_seccomp_profile_blocks_unshare() -> TestResult {
    harness::can_run()?;
    let docker: Value = serde_json::from_str(include_str!("fixtures/docker-config.json")).unwrap();
    let script = "unshare -U true 2>/dev/null; echo unshare=$?; echo still-works";
    let mut control = Bundle::new(&["sh", "-c", script]);
    control.config["process"]["noNewPrivileges"] = json!(false);
    let out = control.run_ok(&harness::unique("seccomp-off"));
    assert_eq!(
        out, "unshare=0\nstill-works\n",
        "without seccomp the probe must work"
    );
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["linux"]["seccomp"] = docker["linux"]["seccomp"].clone();
    let out = b.run_ok(&harness::unique("seccomp-docker"));
    assert_eq!(out, "unshare=1\nstill-works\n");
    Ok(())
}

harness::tests![
    docker_config_runs_as_docker_expects,
    docker_seccomp_profile_blocks_unshare,
];
