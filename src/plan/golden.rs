//! Golden tests of plans: a bundle's config becomes the plan in
//! `golden/NAME.txt` (`{:#?}`, no root needed). After an intended change,
//! `VESSEL_UPDATE_GOLDEN=1 cargo test --lib plan::` rewrites the files;
//! the diff is then part of the review.

use super::Plan;
use crate::bundle::{parse_spec, Bundle};
use std::path::{Path, PathBuf};

fn plan_of(config: &str) -> crate::error::Result<Plan> {
    let spec = parse_spec(config.as_bytes()).expect("the fixture parses");
    Plan::new(&Bundle {
        dir: PathBuf::from("/bundles/golden"),
        rootfs: PathBuf::from("/bundles/golden/rootfs"),
        spec,
        config: config.to_string(),
    })
}

fn check_golden(name: &str, config: &str) {
    let got = format!("{:#?}\n", plan_of(config).expect("the fixture plans"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/plan/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("VESSEL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "the plan of {name} differs from {} (VESSEL_UPDATE_GOLDEN=1 rewrites it):\n{got}",
        path.display()
    );
}

/// runc's `spec` default, with a bind, a device, sysctls, rlimits and hooks.
const RUNC_LIKE: &str = r#"{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": true, "consoleSize": {"height": 24, "width": 80},
    "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 10], "umask": 18},
    "args": ["sh", "-c", "echo hi"], "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/work",
    "capabilities": {"bounding": ["CAP_KILL", "CAP_AUDIT_WRITE"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
    "noNewPrivileges": true, "oomScoreAdj": 100
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "golden",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "rprivate"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "hooks": {"createContainer": [{"path": "/bin/true", "args": ["true", "create"]}]},
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
    "sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"},
    "rootfsPropagation": "rprivate",
    "maskedPaths": ["/proc/kcore"],
    "readonlyPaths": ["/proc/sys"]
  }
}"#;

#[test]
fn a_runc_like_bundle_plans_as_recorded() {
    check_golden("runc-like", RUNC_LIKE);
}

fn refused(config: &str, what: &str) {
    let e = plan_of(config).expect_err(what).to_string();
    assert!(e.contains(what), "{e}");
}

#[test]
fn checks_that_used_to_fail_in_the_child_fail_in_the_plan() {
    let with = |extra: &str| {
        format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
            "process":{{"cwd":"/","args":["true"],"user":{{"uid":0,"gid":0}}}},{extra}}}"#
        )
    };
    refused(
        &with(r#""hostname":"h","linux":{"namespaces":[{"type":"mount"}]}"#),
        "need a uts namespace",
    );
    refused(
        &with(r#""linux":{"namespaces":[{"type":"network"}],"sysctl":{"net..ipv4":"1"}}"#),
        "not a sysctl name",
    );
    refused(
        &with(r#""linux":{"devices":[{"path":"/dev/x","type":"a","major":1,"minor":1}]}"#),
        "type \"a\" is not a device type",
    );
    refused(
        &with(r#""linux":{"rootfsPropagation":"sideways"}"#),
        "unknown propagation",
    );
    refused(
        &with(r#""mounts":[{"destination":"tmp","type":"tmpfs","source":"tmpfs"}]"#),
        "mounts[0].destination",
    );
}
