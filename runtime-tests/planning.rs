//! Bundles whose mistakes used to surface only inside the container's init
//! (after the state directory, the cgroup and the mounts existed): each is
//! refused by `create` with a message that names the field, and nothing
//! appears: no state directory, no cgroup, no mount.

use crate::harness::{self, Bundle, TestResult};
use serde_json::json;

fn mounts_under(dir: &std::path::Path) -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_string_lossy();
    harness::parse_mountinfo(&info)
        .iter()
        .filter(|m| m.mount_point.starts_with(dir.as_ref()))
        .count()
}

/// Makes one field of a bundle's config wrong.
type Spoil = fn(&mut Bundle);

fn bad_fields_are_refused_before_anything_is_created() -> TestResult {
    harness::can_run()?;
    harness::vessel_only(
        "runc 1.1.5 accepts the sysctl net..ipv4.ip_forward and checks the others after claiming the state",
    )?;
    let cases: [(&str, Spoil); 4] = [
        ("hostname", |b| {
            let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "uts");
        }),
        ("linux.sysctl", |b| {
            b.config["linux"]["sysctl"] = json!({"net..ipv4.ip_forward": "1"});
        }),
        ("linux.devices", |b| {
            b.config["linux"]["devices"] =
                json!([{"path": "/dev/x", "type": "a", "major": 1, "minor": 3}]);
        }),
        ("linux.rootfsPropagation", |b| {
            b.config["linux"]["rootfsPropagation"] = json!("sideways");
        }),
    ];
    for (field, spoil) in cases {
        let mut b = Bundle::new(&["true"]);
        spoil(&mut b);
        let cgroup = b.config["linux"]["cgroupsPath"]
            .as_str()
            .unwrap()
            .to_string();
        let _guard = harness::CgroupGuard::new(&cgroup);
        let id = harness::unique("plan");
        // Output to files, not pipes: a create that succeeds would leave its
        // init holding them open.
        let out = b.launch(&["create"], &id, &[]);
        let _ = b.rt(&["delete", "--force", &id]);
        assert!(!out.status.success(), "{field}: a bad value was accepted");
        if harness::is_vessel() {
            assert!(
                harness::stderr_of(&out).contains(field),
                "{field}: {}",
                harness::stderr_of(&out)
            );
            // With a state root that cannot exist, the field is still what
            // fails: it was checked before the id was claimed (runc 1.1.5
            // claims first, then makes the cgroup, and undoes both).
            let blocker = b.path().join("not-a-directory");
            std::fs::write(&blocker, "").unwrap();
            let out = std::process::Command::new(harness::runtime_bin())
                .arg("--root")
                .arg(blocker.join("state"))
                .args(["create", "--bundle"])
                .arg(b.path())
                .arg(&id)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(
                harness::stderr_of(&out).contains(field),
                "{field} was not checked before the state was claimed: {}",
                harness::stderr_of(&out)
            );
        }
        assert!(b.state(&id).is_none(), "{field}: state left behind");
        assert!(harness::cgroup_gone(&cgroup), "{field}: a cgroup was left");
        assert_eq!(mounts_under(b.path()), 0, "{field}: a mount was left");
    }
    Ok(())
}

harness::tests![bad_fields_are_refused_before_anything_is_created,];
