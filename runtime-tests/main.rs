//! Integration tests run as root against a runtime binary (`RUNTIME=`,
//! default the freshly built vessel). See `harness/mod.rs` for what they
//! need, `harness/runner.rs` for how they run and `harness/skip.rs` for the
//! tests that cannot run here.

// A test function missing from its module's `harness::tests![...]` would
// never run: dead code is an error here.
#![deny(dead_code)]

mod bad_input;
mod cgroups;
mod churn;
mod devices;
mod engines;
mod exec;
mod fds;
mod gpu;
mod harness;
mod hooks;
mod hostile;
mod lifecycle;
mod logging;
mod masking;
mod namespaces;
mod oom;
mod ops;
mod planning;
mod process;
mod resources;
mod rootfs;
mod rootless;
mod sched;
mod security;
mod systemd;
mod userns;

fn main() {
    harness::runner::main();
}
