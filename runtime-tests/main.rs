//! Integration tests run as root against a runtime binary (`RUNTIME=`,
//! default the freshly built vessel). See `harness.rs` for what they need.

mod harness;
