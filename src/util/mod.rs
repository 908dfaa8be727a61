//! Small helpers that depend on nothing else in the crate: path-safe
//! filesystem access, fd-to-fd mounts, `/proc` parsing, time formatting.

pub mod fs;
pub mod mount;
pub mod proc;
pub mod time;
