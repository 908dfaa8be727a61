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
        let o = MountOptions::parse(Some("tmpfs"), &["nosuid", "strictatime", "mode=755", "size=65536k"]);
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
    fn devpts_data_kept_in_order() {
        let o = MountOptions::parse(Some("devpts"), &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]);
        assert_eq!(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert_eq!(o.flags, F::MS_NOSUID | F::MS_NOEXEC);
    }
}
