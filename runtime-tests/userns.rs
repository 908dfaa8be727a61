//! User namespaces: ids mapped by the runtime, files created inside owned
//! by the mapped host ids, devices bound from the host, exec joining it.

use crate::harness::{self, Bundle, TestResult};
use serde_json::json;
use std::os::unix::fs::MetadataExt;

fn userns_bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b
}

fn user_namespace_maps_ids_and_files_belong_to_the_mapped_ids() -> TestResult {
    harness::can_run()?;
    let b = userns_bundle(&["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/made-inside; head -c1 /dev/zero | wc -c"]);
    let out = b.run_ok(&harness::unique("userns"));
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        ["0", "0 100000 65536", "0 100000 65536", "1"],
        "{out}"
    );
    let meta = std::fs::metadata(b.rootfs().join("tmp/made-inside")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (100000, 100000),
        "the container's root is host uid 100000"
    );
    Ok(())
}

fn exec_joins_the_user_namespace() -> TestResult {
    harness::can_run()?;
    let b = userns_bundle(&["sleep", "100"]);
    let id = harness::unique("userns-exec");
    let pid = b.start_detached(&id);
    let out = b.rt(&["exec", &id, "cat", "/proc/self/uid_map"]);
    let text = harness::stdout_ok(&out);
    assert_eq!(
        text.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_ne!(init_ns, std::fs::read_link("/proc/self/ns/user").unwrap());
    Ok(())
}

fn user_namespace_without_mappings_is_refused() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let id = harness::unique("userns-nomap");
    let out = b.run(&id);
    assert!(!out.status.success());
    assert!(b.state(&id).is_none());
    Ok(())
}

/// A user namespace joined by path (a pod's shared one, say): the process
/// gets that namespace's ids and its files belong to the mapped host ids;
/// exec joins it too.
fn a_user_namespace_joined_by_path() -> TestResult {
    harness::can_run()?;
    let holder = userns_bundle(&["sleep", "100"]);
    let hid = harness::unique("userns-holder");
    let hpid = holder.start_detached(&hid);
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /tmp/joined; sleep 100",
    ]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": format!("/proc/{hpid}/ns/user")}));
    // The joined namespace's own maps (runc insists on being told them).
    b.config["linux"]["uidMappings"] = holder.config["linux"]["uidMappings"].clone();
    b.config["linux"]["gidMappings"] = holder.config["linux"]["gidMappings"].clone();
    let id = harness::unique("userns-join");
    let pid = b.start_detached(&id);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(),
        std::fs::read_link(format!("/proc/{hpid}/ns/user")).unwrap()
    );
    assert!(harness::wait_for(10.0, || b
        .rootfs()
        .join("tmp/joined")
        .exists()));
    let meta = std::fs::metadata(b.rootfs().join("tmp/joined")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100000, 100000));
    let out =
        harness::stdout_ok(&b.rt(&["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"]));
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "100000", "65536"],
        "{out}"
    );
    Ok(())
}

harness::tests![
    user_namespace_maps_ids_and_files_belong_to_the_mapped_ids,
    exec_joins_the_user_namespace,
    user_namespace_without_mappings_is_refused,
    a_user_namespace_joined_by_path,
];
