//! A container the OOM killer strikes while `create` sets it up says so.

use crate::harness::{self, TestResult};
use serde_json::json;

fn an_oom_kill_during_create_is_named() -> TestResult {
    harness::can_run()?;
    harness::vessel_only("naming the OOM killer in create's error is vessel's")?;
    let (_guard, mut b, _cg) = harness::isolated_bundle(&["true"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 16 << 20});
    // A createContainer hook runs in the container's cgroup and outgrows it.
    b.config["hooks"] = json!({"createContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", "a=$(head -c 64000000 /dev/zero | tr '\\0' x); echo ${#a}"]
    }]});
    let id = harness::unique("oom");
    let out = b.run(&id);
    assert!(!out.status.success(), "the hook should have been killed");
    let err = harness::stderr_of(&out);
    assert!(
        err.contains("killed by the OOM killer during create"),
        "{err}"
    );
    assert!(b.state(&id).is_none());
    Ok(())
}

harness::tests![an_oom_kill_during_create_is_named,];
