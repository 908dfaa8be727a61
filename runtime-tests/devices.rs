//! /dev (runc's default devices and links, `linux.devices`), masked and
//! read-only paths, sysctl, hostname and domainname, observed inside.

use crate::harness::{self, sh, Bundle, TestResult};
use serde_json::json;

/// `stat` line format used below: name, type, major:minor (hex), mode, owner.
const STAT: &str = "stat -c '%n %F %t:%T %a %u:%g'";

fn default_devices_are_char_devices_with_runc_numbers() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let out = sh(
        &mut b,
        "dev-default",
        &format!("{STAT} /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty"),
    );
    let want = [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), want.len(), "{out}");
    for (line, (name, num)) in lines.iter().zip(want) {
        assert_eq!(
            *line,
            format!("/dev/{name} character special file {num} 666 0:0")
        );
    }
    Ok(())
}

fn default_dev_symlinks() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let out = sh(&mut b, "dev-links", "for l in ptmx fd stdin stdout stderr; do echo \"$l $(stat -c %F /dev/$l) $(readlink /dev/$l)\"; done");
    assert_eq!(
        out,
        "ptmx symbolic link pts/ptmx\nfd symbolic link /proc/self/fd\nstdin symbolic link /proc/self/fd/0\nstdout symbolic link /proc/self/fd/1\nstderr symbolic link /proc/self/fd/2\n"
    );
    Ok(())
}

/// Exactly runc's /dev without a terminal: the default nodes and links, the
/// configured mounts, and no /dev/console.
fn dev_holds_only_runc_defaults_without_terminal() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["ls", "-A", "/dev"]);
    let out = b.run_ok(&harness::unique("dev-ls"));
    let mut got: Vec<&str> = out.split_whitespace().collect();
    // runc also links /dev/core to /proc/kcore where the kernel has one.
    if std::path::Path::new("/proc/kcore").exists() {
        got.retain(|n| *n != "core");
    }
    got.sort();
    assert_eq!(
        got,
        [
            "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
            "stdout", "tty", "urandom", "zero"
        ]
    );
    Ok(())
}

fn default_devices_are_usable() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    // Never read /dev/full or /dev/zero without a bound.
    let out = sh(&mut b, "dev-use", "echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | od -An -tx1; head -c 16 /dev/urandom | wc -c; (echo x > /dev/full) 2>&1; true");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "null-ok");
    assert_eq!(lines[1].trim(), "00 00 00");
    assert_eq!(lines[2].trim(), "16");
    assert!(lines[3].contains("No space left on device"), "{out}");
    Ok(())
}

fn linux_devices_creates_nodes_with_type_numbers_mode_and_owner() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 7, "fileMode": 0o660, "uid": 1000, "gid": 5},
        {"path": "/dev/sub/myblk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600, "uid": 0, "gid": 0},
        {"path": "/dev/myfifo", "type": "p"}
    ]);
    let out = sh(
        &mut b,
        "dev-linux",
        &format!("{STAT} /dev/mydev /dev/sub/myblk /dev/myfifo; stat -c '%F %a' /dev/sub"),
    );
    assert_eq!(
        out,
        "/dev/mydev character special file 1:7 660 1000:5\n\
         /dev/sub/myblk block special file 7:0 600 0:0\n\
         /dev/myfifo fifo 0:0 666 0:0\n\
         directory 755\n"
    );
    Ok(())
}

fn linux_device_with_allow_rule_is_usable() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 7, "fileMode": 438, "uid": 0, "gid": 0}]);
    b.config["linux"]["resources"]["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"}));
    // 1:7 is the "full" driver: reads zeros, writes fail with ENOSPC.
    let out = sh(&mut b, "dev-allow", &format!("{STAT} /dev/mydev; head -c 4 /dev/mydev | od -An -tx1; (echo x > /dev/mydev) 2>&1; true"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/dev/mydev character special file 1:7 666 0:0");
    assert_eq!(lines[1].trim(), "00 00 00 00");
    assert!(lines[2].contains("No space left on device"), "{out}");
    Ok(())
}

fn linux_device_without_allow_rule_is_denied() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    // A block device not in runc's default allow list: the device cgroup
    // refuses the open before any driver is reached.
    b.config["linux"]["devices"] = json!([{"path": "/dev/denied", "type": "b", "major": 7, "minor": 0, "fileMode": 438, "uid": 0, "gid": 0}]);
    let out = sh(
        &mut b,
        "dev-deny",
        "stat -c %F /dev/denied; (true < /dev/denied) 2>&1 && echo OPENED; true",
    );
    assert!(out.starts_with("block special file\n"), "{out}");
    assert!(
        out.contains("Operation not permitted") && !out.contains("OPENED"),
        "{out}"
    );
    Ok(())
}

fn masked_file_reads_empty() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    std::fs::write(b.rootfs().join("etc/secret"), "top-secret\n").unwrap();
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/etc/secret"));
    let mut script = String::from("echo secret=$(cat /etc/secret | wc -c); ");
    // /proc/timer_list is in the default maskedPaths and non-empty on the host.
    let timer_list = std::fs::read_to_string("/proc/timer_list")
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    if timer_list {
        script.push_str("echo timer_list=$(cat /proc/timer_list | wc -c); ");
    }
    script.push_str(&format!("{STAT} /etc/secret"));
    let out = sh(&mut b, "dev-mask", &script);
    assert!(out.starts_with("secret=0\n"), "{out}");
    if timer_list {
        assert!(out.contains("timer_list=0\n"), "{out}");
    }
    // Masked with /dev/null bound over it.
    assert!(
        out.ends_with("/etc/secret character special file 1:3 666 0:0\n"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("etc/secret")).unwrap(),
        "top-secret\n"
    );
    Ok(())
}

fn masked_directory_is_empty_readonly_tmpfs() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    std::fs::create_dir(b.rootfs().join("secretdir")).unwrap();
    std::fs::write(b.rootfs().join("secretdir/f"), "x").unwrap();
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/secretdir"));
    // /sys/firmware is in the default maskedPaths; it has entries on the host.
    let host_fw = std::fs::read_dir("/sys/firmware")
        .map(|d| d.count())
        .unwrap_or(0);
    let out = sh(&mut b, "dev-maskdir", "echo fw=$(ls -A /sys/firmware | wc -l) sd=$(ls -A /secretdir | wc -l); (touch /secretdir/new) 2>&1; echo ==MI; cat /proc/self/mountinfo");
    assert!(
        out.starts_with("fw=0 sd=0\n"),
        "{out} (host /sys/firmware has {host_fw} entries)"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    let mounts = harness::parse_mountinfo(out.split("==MI").nth(1).unwrap());
    for mp in ["/secretdir", "/sys/firmware"] {
        let m = harness::mount_at(&mounts, mp);
        assert_eq!(m.fstype, "tmpfs", "{m:?}");
        assert!(m.has_opt("ro"), "{m:?}");
    }
    Ok(())
}

fn readonly_paths_are_readonly() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    std::fs::create_dir(b.rootfs().join("rodir")).unwrap();
    b.config["linux"]["readonlyPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/rodir"));
    let sysrq = std::path::Path::new("/proc/sysrq-trigger").exists();
    let mut script =
        String::from("(echo x > /proc/sys/kernel/hostname) 2>&1; (touch /rodir/f) 2>&1; ");
    if sysrq {
        // An empty write: read-only refuses it before the kernel's handler.
        script.push_str("(printf '' > /proc/sysrq-trigger) 2>&1; ");
    }
    script.push_str("hostname; echo ==MI; cat /proc/self/mountinfo");
    let out = sh(&mut b, "dev-ro", &script);
    let before = out.split("==MI").next().unwrap();
    let n = before.matches("Read-only file system").count();
    assert_eq!(n, if sysrq { 3 } else { 2 }, "{out}");
    assert!(before.ends_with("vessel-test\n"), "hostname changed: {out}");
    let mounts = harness::parse_mountinfo(out.split("==MI").nth(1).unwrap());
    for mp in ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", "/rodir"] {
        assert!(harness::mount_at(&mounts, mp).has_opt("ro"), "{mp} not ro");
    }
    // A read-only path stays what it was (a bind of itself), not a tmpfs.
    assert_eq!(harness::mount_at(&mounts, "/proc/sys").fstype, "proc");
    Ok(())
}

fn sysctl_is_set_in_the_container_only() -> TestResult {
    harness::can_run()?;
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut b = Bundle::new(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    let want = if host.trim() == "1" { "0" } else { "1" };
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    let out = b.run_ok(&harness::unique("dev-sysctl"));
    assert_eq!(out.trim(), want);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host,
        "host sysctl changed"
    );
    Ok(())
}

fn sysctl_kernel_domainname_in_uts_namespace() -> TestResult {
    harness::can_run()?;
    let host = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let mut b = Bundle::new(&["cat", "/proc/sys/kernel/domainname"]);
    b.config["linux"]["sysctl"] = json!({"kernel.domainname": "sysctl.example"});
    let out = b.run_ok(&harness::unique("dev-sysctl-dom"));
    assert_eq!(out, "sysctl.example\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host
    );
    Ok(())
}

fn hostname_is_set() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["sh", "-c", "hostname; cat /proc/sys/kernel/hostname"]);
    b.config["hostname"] = json!("my-ctr-host");
    let out = b.run_ok(&harness::unique("dev-hostname"));
    assert_eq!(out, "my-ctr-host\nmy-ctr-host\n");
    Ok(())
}

/// runc 1.1.5 ignores `domainname` (support came in runc 1.2); vessel sets
/// it as the spec says.
fn domainname_is_set() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("runc 1.1.5 ignores domainname")?;
    let mut b = Bundle::new(&["cat", "/proc/sys/kernel/domainname"]);
    b.config["domainname"] = json!("my.domain");
    let out = b.run_ok(&harness::unique("dev-domainname"));
    assert_eq!(out, "my.domain\n");
    Ok(())
}

harness::tests![
    default_devices_are_char_devices_with_runc_numbers,
    default_dev_symlinks,
    dev_holds_only_runc_defaults_without_terminal,
    default_devices_are_usable,
    linux_devices_creates_nodes_with_type_numbers_mode_and_owner,
    linux_device_with_allow_rule_is_usable,
    linux_device_without_allow_rule_is_denied,
    masked_file_reads_empty,
    masked_directory_is_empty_readonly_tmpfs,
    readonly_paths_are_readonly,
    sysctl_is_set_in_the_container_only,
    sysctl_kernel_domainname_in_uts_namespace,
    hostname_is_set,
    domainname_is_set,
];
