//! vessel: an OCI container runtime, runc-compatible.
//!
//! The data flows one way: `bundle` loads the spec, `gpu` edits it, `plan`
//! checks and types it, `cgroup` places the container, `spawn` clones the
//! init process (`init`), which works from the plan alone, and `state`
//! records it. [`container::Runtime`] is the API the binary and test harnesses use.

pub mod bundle;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod console;
pub mod container;
pub mod error;
pub mod events;
pub mod exec;
pub mod gpu;
pub mod hooks;
pub mod init;
pub mod jsonpath;
pub mod log;
pub mod plan;
pub mod seccomp;
pub mod signals;
pub mod spawn;
pub mod specgen;
pub mod state;
pub mod sync;
pub mod update;
pub mod util;
