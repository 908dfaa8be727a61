//! The container's cgroup. One entry point, [`Manager`], picks the driver
//! (cgroupfs on v1, v2 or hybrid hosts; systemd with `--systemd-cgroup`;
//! none for a rootless container without a delegated cgroup) and does
//! create, apply, add, update, freeze, stats and destroy. The host's layout
//! is read once, from /proc/self/mountinfo, at create; the state records it
//! with the driver, and every later command rebuilds the manager from there.
//!
//! | module | what |
//! |---|---|
//! | `manager` | the entry point and the drivers' steps |
//! | `hierarchy` | the mounted hierarchies, the layout, where a cgroupsPath lands |
//! | `fs` | making, filling and removing cgroupfs directories |
//! | `resources` | `linux.resources` as cgroup file writes, v1 and v2 |
//! | `devices`, `bpf_devices` | device rules: v1 files, the v2 eBPF program |
//! | `freezer`, `stats` | pause/resume; `events --stats` |
//! | `systemd`, `dbus` | the systemd driver's scope, over D-Bus by hand |

pub mod bpf_devices;
pub mod dbus;
mod devices;
mod freezer;
mod fs;
mod hierarchy;
mod manager;
mod oom;
pub mod resources;
mod stats;
pub mod systemd;

pub use devices::{default_device_rules, v1_device_line};
pub use hierarchy::{clean, container_path, dir_in, Hierarchies, Hierarchy, Layout};
pub use manager::{Driver, Init, Manager, Request};
pub use oom::{explain as explain_oom, oom_kills};

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroup;

    #[test]
    fn device_rules_render_like_the_kernel_wants() {
        let rules = default_device_rules();
        assert_eq!(
            v1_device_line(&rules[0]).unwrap(),
            ("devices.allow", "c *:* m".to_string())
        );
        assert_eq!(
            v1_device_line(&rules[2]).unwrap(),
            ("devices.allow", "c 1:3 rwm".to_string())
        );
        let mut deny_all = LinuxDeviceCgroup::default();
        deny_all.set_allow(false);
        deny_all.set_access(Some("rwm".into()));
        assert_eq!(
            v1_device_line(&deny_all).unwrap(),
            ("devices.deny", "a *:* rwm".to_string())
        );
        deny_all.set_access(Some("rwx".into()));
        assert!(v1_device_line(&deny_all).is_err());
    }
}
