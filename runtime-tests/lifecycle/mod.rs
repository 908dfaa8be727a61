//! The container lifecycle as runc 1.1.5 drives it: create / start / state /
//! kill / delete / run / list / spec / --version, exit codes included.
//!
//! Every container gets its own `/vessel-test-...` cgroupsPath so that the
//! runtime never creates cgroups under the test process's own ones.

mod create_start;
mod delete;
mod kill;
mod list_spec_version;
mod run;

use crate::harness::{self, Bundle, CgroupGuard};

/// A bundle for ARGS with a private test cgroup, removed by the guard.
fn bundle(args: &[&str]) -> (CgroupGuard, Bundle) {
    let (cg, b, _) = harness::isolated_bundle(args);
    (cg, b)
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}
