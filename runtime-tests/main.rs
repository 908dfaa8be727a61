//! Integration tests run as root against a runtime binary (`RUNTIME=`,
//! default the freshly built vessel). See `harness.rs` for what they need.

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
mod security;
mod systemd;
mod userns;
