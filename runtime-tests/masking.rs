//! Masked paths, the console and procfs writes when the bundle lays traps
//! for them: a `/dev/null` or `/dev/console` that is a symlink or a plain
//! file (runc's CVE-2025-31133 and CVE-2025-52565), a procfs file bound
//! over a sysctl (CVE-2025-52881). Each must leave every file unchanged
//! and never mask with something writable.
//!
//! vessel only: Debian's runc 1.1.5 predates the fixes (runc 1.2.8) and
//! binds whatever these names point at.

use crate::harness::{self, Bundle, TestResult};
use serde_json::json;
use std::path::{Path, PathBuf};

const ORIGINAL: &str = "ORIGINAL CONTENT\n";
const MASKED: &str = "MASK ME\n";

/// A bundle whose `/dev` is a bind of a host directory (as with
/// `-v /some/dir:/dev`) that holds `entries`, with `/etc/masked` masked.
fn bundle_with_bound_dev(args: &[&str]) -> (Bundle, PathBuf) {
    let mut b = Bundle::new(args);
    let dev = b.path().join("bound-dev");
    std::fs::create_dir(&dev).unwrap();
    std::fs::write(b.rootfs().join("etc/target"), ORIGINAL).unwrap();
    std::fs::write(b.rootfs().join("etc/masked"), MASKED).unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    for m in mounts.iter_mut() {
        if m["destination"] == "/dev" {
            *m =
                json!({"destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]});
        }
    }
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/etc/masked"));
    (b, dev)
}

fn real_null(path: &Path) {
    let made = nix::sys::stat::mknod(
        path,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    );
    assert!(made.is_ok(), "mknod {}: {made:?}", path.display());
}

fn file(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<{e}>"))
}

/// Puts a bad `null` into a bound `/dev`.
type LayNull = fn(&Path);

/// The shapes of a bad `/dev/null`: each is refused by `create`, names
/// the problem, shows the container nothing and changes no file.
fn a_dev_null_that_is_not_the_null_device_is_refused() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("Debian's runc 1.1.5 predates the CVE-2025-31133/52565/52881 fixes")?;
    let ostype = std::fs::read_to_string("/proc/sys/kernel/ostype").unwrap_or_default();
    let shapes: [(&str, LayNull); 3] = [
        ("a symlink to a file in the rootfs", |dev| {
            std::os::unix::fs::symlink("/etc/target", dev.join("null")).unwrap()
        }),
        ("a symlink into /proc/sys", |dev| {
            std::os::unix::fs::symlink("/proc/sys/kernel/ostype", dev.join("null")).unwrap()
        }),
        ("a plain file", |dev| {
            std::fs::write(dev.join("null"), ORIGINAL).unwrap()
        }),
    ];
    for (what, lay) in shapes {
        let (b, dev) = bundle_with_bound_dev(&[
            "sh",
            "-c",
            "echo LEAK:$(cat /etc/masked); echo pwned > /etc/masked",
        ]);
        lay(&dev);
        let id = harness::unique("devnull");
        let out = b.run(&id);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success(),
            "/dev/null as {what} was accepted: {stdout}"
        );
        assert!(
            harness::stderr_of(&out).contains("/dev/null is not the null device"),
            "{what}: {}",
            harness::stderr_of(&out)
        );
        assert!(
            !stdout.contains("LEAK"),
            "{what}: the process ran: {stdout}"
        );
        assert!(
            ostype.is_empty() || !stdout.contains(ostype.trim()),
            "{stdout}"
        );
        assert_eq!(file(&b.rootfs().join("etc/target")), ORIGINAL, "{what}");
        assert_eq!(file(&b.rootfs().join("etc/masked")), MASKED, "{what}");
        if what == "a plain file" {
            assert_eq!(file(&dev.join("null")), ORIGINAL, "{what}");
        }
        assert!(b.state(&id).is_none(), "{what}: state left behind");
    }
    Ok(())
}

/// A `/dev` bound from a directory whose `null` is the real device masks
/// as usual: the masked file reads empty and cannot be written.
fn a_bound_dev_with_the_real_null_device_masks_as_usual() -> TestResult {
    harness::can_run()?;
    let (b, dev) = bundle_with_bound_dev(&[
        "sh",
        "-c",
        "echo bytes=$(cat /etc/masked | wc -c); echo pwned > /etc/masked; echo bytes=$(cat /etc/masked | wc -c)",
    ]);
    real_null(&dev.join("null"));
    let out = b.run_ok(&harness::unique("realnull"));
    assert_eq!(out, "bytes=0\nbytes=0\n");
    assert_eq!(file(&b.rootfs().join("etc/masked")), MASKED);
    Ok(())
}

/// The image's own `/dev/null` a symlink, with no `/dev` mount: the runtime
/// makes its own device nodes, so the mask is the real null device.
fn a_symlinked_dev_null_in_the_image_is_replaced_by_the_real_device() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("Debian's runc 1.1.5 predates the CVE-2025-31133/52565/52881 fixes")?;
    let (mut b, _) = bundle_with_bound_dev(&[
        "sh",
        "-c",
        "echo bytes=$(cat /etc/masked | wc -c); echo pwned > /etc/masked; echo bytes=$(cat /etc/masked | wc -c)",
    ]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["destination"] != "/dev");
    let null = b.rootfs().join("dev/null");
    let _ = std::fs::remove_file(&null);
    std::os::unix::fs::symlink("/etc/target", &null).unwrap();
    let out = b.run_ok(&harness::unique("imgnull"));
    assert_eq!(out, "bytes=0\nbytes=0\n");
    assert_eq!(file(&b.rootfs().join("etc/target")), ORIGINAL);
    assert_eq!(file(&b.rootfs().join("etc/masked")), MASKED);
    Ok(())
}

/// `/dev/console` a symlink in a bound `/dev`: the pty is not bound
/// through it (the target stays unchanged) and `create` says why.
fn a_symlinked_dev_console_is_refused() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("Debian's runc 1.1.5 predates the CVE-2025-31133/52565/52881 fixes")?;
    let (mut b, dev) = bundle_with_bound_dev(&["true"]);
    std::os::unix::fs::symlink("/etc/target", dev.join("console")).unwrap();
    std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx")).unwrap();
    real_null(&dev.join("null"));
    b.config["process"]["terminal"] = json!(true);
    let sock = b.path().join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let id = harness::unique("console");
    let out = b.launch(
        &["create"],
        &id,
        &["--console-socket", sock.to_str().unwrap()],
    );
    let _ = b.rt(&["delete", "--force", &id]);
    assert!(
        !out.status.success(),
        "a symlinked /dev/console was accepted"
    );
    assert!(
        harness::stderr_of(&out).contains("/dev/console"),
        "{}",
        harness::stderr_of(&out)
    );
    assert_eq!(file(&b.rootfs().join("etc/target")), ORIGINAL);
    let target = std::fs::symlink_metadata(b.rootfs().join("etc/target")).unwrap();
    assert!(target.file_type().is_file());
    Ok(())
}

/// A procfs file of another process bound over the sysctl the bundle sets
/// (CVE-2025-52881's shape: a write redirected by a mount over its
/// target): the write goes to the real sysctl, never to the bound file.
fn a_sysctl_is_not_written_through_a_procfs_file_mounted_over_it() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("Debian's runc 1.1.5 predates the CVE-2025-31133/52565/52881 fixes")?;
    let mut decoy = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let decoy_file = PathBuf::from(format!("/proc/{}/oom_score_adj", decoy.id()));
    let before = file(&decoy_file);
    let mut b = Bundle::new(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/net/ipv4/ip_forward",
        "type": "bind",
        "source": decoy_file,
        "options": ["bind"]
    }));
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let out = b.run(&harness::unique("sysctl-redirect"));
    let after = file(&decoy_file);
    let _ = decoy.kill();
    let _ = decoy.wait();
    assert_eq!(
        after, before,
        "the sysctl was written into the bound procfs file"
    );
    assert!(
        out.status.success(),
        "the sysctl should reach the namespace's real file: {}",
        harness::stderr_of(&out)
    );
    Ok(())
}

harness::tests![
    a_dev_null_that_is_not_the_null_device_is_refused,
    a_bound_dev_with_the_real_null_device_masks_as_usual,
    a_symlinked_dev_null_in_the_image_is_replaced_by_the_real_device,
    a_symlinked_dev_console_is_refused,
    a_sysctl_is_not_written_through_a_procfs_file_mounted_over_it,
];
