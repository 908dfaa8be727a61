//! Turning an OCI mount's `options` into mount(2) flags, propagation changes
//! and the filesystem data string. Pure: unit-tested without root.

use nix::mount::MsFlags;

/// A mount as mount(2) will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount itself (and for the read-only/nosuid remount of binds).
    pub flags: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, ...), so a bind remount drops them.
    pub cleared: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Whatever mount(2) does not know as a flag, comma-joined (`size=64k,mode=755`).
    pub data: String,
    pub bind: bool,
    pub recursive: bool,
    /// Recursive attributes (`rro`, `rnosuid`, ...) for mount_setattr(2):
    /// (set, clear) MOUNT_ATTR_* bits.
    pub rec_attr: (u64, u64),
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

fn rec_attr_of(opt: &str) -> Option<(u64, u64)> {
    Some(match opt {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME_MASK),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK),
        "rrelatime" => (0, MOUNT_ATTR_ATIME_MASK),
        "ratime" => (0, MOUNT_ATTR_ATIME_MASK),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

impl MountOptions {
    pub fn parse<S: AsRef<str>>(typ: Option<&str>, options: &[S]) -> MountOptions {
        let mut o = MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            bind: typ == Some("bind"),
            recursive: false,
            rec_attr: (0, 0),
        };
        let mut data = Vec::new();
        for opt in options {
            let opt = opt.as_ref();
            if let Some((set, flag)) = flag_of(opt) {
                if set {
                    o.flags |= flag;
                    o.cleared &= !flag;
                } else {
                    o.flags &= !flag;
                    o.cleared |= flag;
                }
                continue;
            }
            if let Some((set, clr)) = rec_attr_of(opt) {
                o.rec_attr.0 = (o.rec_attr.0 & !clr) | set;
                o.rec_attr.1 = (o.rec_attr.1 & !set) | clr;
                continue;
            }
            if let Some(p) = propagation_of(opt) {
                o.propagation.push(p);
                continue;
            }
            match opt {
                "bind" => o.bind = true,
                "rbind" => {
                    o.bind = true;
                    o.recursive = true;
                }
                // runc extensions that have no mount(2) meaning here.
                "tmpcopyup" | "idmap" | "ridmap" => {}
                "" => {}
                _ => data.push(opt),
            }
        }
        o.data = data.join(",");
        o
    }

    /// Flags that need a remount after a bind mount (a bind ignores them).
    pub fn bind_remount_flags(&self) -> MsFlags {
        self.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }
}

fn flag_of(opt: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    Some(match opt {
        "ro" => (true, F::MS_RDONLY),
        "rw" => (false, F::MS_RDONLY),
        "nosuid" => (true, F::MS_NOSUID),
        "suid" => (false, F::MS_NOSUID),
        "nodev" => (true, F::MS_NODEV),
        "dev" => (false, F::MS_NODEV),
        "noexec" => (true, F::MS_NOEXEC),
        "exec" => (false, F::MS_NOEXEC),
        "sync" => (true, F::MS_SYNCHRONOUS),
        "async" => (false, F::MS_SYNCHRONOUS),
        "dirsync" => (true, F::MS_DIRSYNC),
        "remount" => (true, F::MS_REMOUNT),
        "mand" => (true, F::MS_MANDLOCK),
        "nomand" => (false, F::MS_MANDLOCK),
        "atime" => (false, F::MS_NOATIME),
        "noatime" => (true, F::MS_NOATIME),
        "diratime" => (false, F::MS_NODIRATIME),
        "nodiratime" => (true, F::MS_NODIRATIME),
        "relatime" => (true, F::MS_RELATIME),
        "norelatime" => (false, F::MS_RELATIME),
        "strictatime" => (true, F::MS_STRICTATIME),
        "nostrictatime" => (false, F::MS_STRICTATIME),
        "silent" => (true, F::MS_SILENT),
        "loud" => (false, F::MS_SILENT),
        "nosymfollow" => (true, F::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "symfollow" => (false, F::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        _ => return None,
    })
}

/// Parses a propagation name (`rprivate`, `shared`, ...), also used for
/// `linux.rootfsPropagation`.
pub fn propagation_of(opt: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match opt {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use MsFlags as F;

    #[test]
    fn tmpfs_options_split_into_flags_and_data() {
        let o = MountOptions::parse(
            Some("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        );
        assert_eq!(o.flags, F::MS_NOSUID | F::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.bind);
    }

    #[test]
    fn rbind_with_propagation_and_ro() {
        let o = MountOptions::parse(Some("none"), &["rbind", "rprivate", "ro", "nodev"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.propagation, vec![F::MS_PRIVATE | F::MS_REC]);
        assert_eq!(o.bind_remount_flags(), F::MS_RDONLY | F::MS_NODEV);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = MountOptions::parse(Some("bind"), &["ro", "rw"]);
        assert!(o.bind && !o.recursive);
        assert!(!o.flags.contains(F::MS_RDONLY));
        assert!(o.cleared.contains(F::MS_RDONLY));
    }

    #[test]
    fn recursive_attributes() {
        let o = MountOptions::parse(Some("bind"), &["rbind", "rro", "rnosuid"]);
        assert_eq!(o.rec_attr, (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0));
        assert!(o.data.is_empty());
    }

    #[test]
    fn devpts_data_kept_in_order() {
        let o = MountOptions::parse(
            Some("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        );
        assert_eq!(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert_eq!(o.flags, F::MS_NOSUID | F::MS_NOEXEC);
    }
}
