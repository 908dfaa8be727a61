//! Integration tests run as root against a runtime binary (`RUNTIME=`,
//! default the freshly built vessel). See `harness.rs` for what they need.

mod harness;
mod lifecycle;
mod namespaces;
mod rootfs;
mod devices;
mod process;
mod fds;
mod hooks;
mod cgroups;
mod bad_input;
