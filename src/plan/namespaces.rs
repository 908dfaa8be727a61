//! Namespaces: the one table from the spec's type to its clone flag and
//! `/proc/PID/ns` name (used by create, exec, init and delete), and what a
//! spec asks of them, split by who acts on it.

use crate::error::{Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::PathBuf;

/// One kind of namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub typ: LinuxNamespaceType,
    /// The clone(2)/setns(2) flag.
    pub flag: CloneFlags,
    /// The entry under `/proc/PID/ns/`.
    pub proc_name: &'static str,
    /// Applies only to children of the process that joins it (pid, time):
    /// the parent joins these around the clone.
    pub for_children: bool,
}

const fn kind(typ: LinuxNamespaceType, flag: i32, proc_name: &'static str) -> Kind {
    Kind {
        typ,
        flag: CloneFlags::from_bits_retain(flag),
        proc_name,
        for_children: matches!(typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time),
    }
}

/// Every namespace type the spec knows.
pub const KINDS: [Kind; 8] = [
    kind(LinuxNamespaceType::User, libc::CLONE_NEWUSER, "user"),
    kind(LinuxNamespaceType::Mount, libc::CLONE_NEWNS, "mnt"),
    kind(LinuxNamespaceType::Uts, libc::CLONE_NEWUTS, "uts"),
    kind(LinuxNamespaceType::Ipc, libc::CLONE_NEWIPC, "ipc"),
    kind(LinuxNamespaceType::Network, libc::CLONE_NEWNET, "net"),
    kind(LinuxNamespaceType::Pid, libc::CLONE_NEWPID, "pid"),
    kind(LinuxNamespaceType::Cgroup, libc::CLONE_NEWCGROUP, "cgroup"),
    kind(LinuxNamespaceType::Time, libc::CLONE_NEWTIME, "time"),
];

/// The table's row for `typ`.
pub fn of(typ: LinuxNamespaceType) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.typ == typ)
        .expect("every namespace type is in the table")
}

/// What the spec asks of namespaces, split by who acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// New namespaces made by clone itself.
    pub clone_flags: CloneFlags,
    /// Joined by the parent before clone: they only apply to children (pid, time).
    pub join_for_children: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Joined by init with setns, in the order of the table (user excluded).
    pub join_in_child: Vec<(LinuxNamespaceType, PathBuf)>,
    pub new_time: bool,
    /// `linux.timeOffsets` as lines for `/proc/self/timens_offsets`:
    /// (clock, "clock secs nanosecs").
    pub time_offsets: Vec<(String, String)>,
    /// New cgroup namespace, made by the child once it is in its cgroup.
    pub new_cgroup: bool,
    /// The container has a mount namespace (new or joined). Without one
    /// (the spec's "inherit") its rootfs is set up in the runtime's.
    pub has_mount: bool,
    pub has_uts: bool,
    pub own_pid: bool,
    pub new_network: bool,
    /// A new user namespace: the parent writes its id maps after clone.
    pub new_user: bool,
    /// A user namespace joined by path: init enters it last, just before
    /// the process's credentials are set, so everything vessel sets up is
    /// set up as the host's root.
    pub join_user: Option<PathBuf>,
}

impl Namespaces {
    pub fn of_spec(spec: &Spec) -> Result<Namespaces> {
        let mut plan = Namespaces {
            clone_flags: CloneFlags::empty(),
            join_for_children: Vec::new(),
            join_in_child: Vec::new(),
            new_time: false,
            time_offsets: Vec::new(),
            new_cgroup: false,
            has_mount: false,
            has_uts: false,
            own_pid: false,
            new_network: false,
            new_user: false,
            join_user: None,
        };
        let mut seen = Vec::new();
        for ns in crate::bundle::namespaces(spec) {
            let k = of(ns.typ());
            if seen.contains(&k.typ) {
                return Err(Error::invalid(format!(
                    "linux.namespaces: {:?} namespace listed twice",
                    k.typ
                )));
            }
            seen.push(k.typ);
            plan.add(k, ns.path().clone());
        }
        plan.check_spec(spec)?;
        let offsets = spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref());
        let mut offsets: Vec<_> = offsets.into_iter().flatten().collect();
        offsets.sort_by(|a, b| a.0.cmp(b.0));
        plan.time_offsets = offsets
            .into_iter()
            .map(|(clock, off)| {
                let line = format!(
                    "{clock} {} {}",
                    off.secs().unwrap_or(0),
                    off.nanosecs().unwrap_or(0)
                );
                (clock.clone(), line)
            })
            .collect();
        Ok(plan)
    }

    fn add(&mut self, k: &Kind, path: Option<PathBuf>) {
        use LinuxNamespaceType as T;
        match k.typ {
            T::Mount => self.has_mount = true,
            T::Uts => self.has_uts = true,
            T::Pid => self.own_pid = path.is_none(),
            T::Network => self.new_network = path.is_none(),
            _ => {}
        }
        match (path, k.typ) {
            (Some(p), T::User) => self.join_user = Some(p),
            (Some(p), _) if k.for_children => self.join_for_children.push((k.typ, p)),
            (Some(p), _) => self.join_in_child.push((k.typ, p)),
            (None, T::Cgroup) => self.new_cgroup = true,
            (None, T::Time) => self.new_time = true,
            (None, typ) => {
                self.clone_flags |= k.flag;
                self.new_user |= typ == T::User;
            }
        }
    }

    /// What the namespaces imply for the rest of the spec.
    fn check_spec(&self, spec: &Spec) -> Result<()> {
        let linux = spec.linux().as_ref();
        if self.new_user {
            let empty = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
                m.map_or(true, |v| v.is_empty())
            };
            if empty(linux.and_then(|l| l.uid_mappings().as_ref()))
                || empty(linux.and_then(|l| l.gid_mappings().as_ref()))
            {
                return Err(Error::invalid(
                    "linux.namespaces: a user namespace needs linux.uidMappings and linux.gidMappings",
                ));
            }
        }
        let offsets = linux
            .and_then(|l| l.time_offsets().as_ref())
            .is_some_and(|o| !o.is_empty());
        if offsets && !self.new_time {
            return Err(Error::invalid(
                "linux.timeOffsets need a new time namespace in linux.namespaces",
            ));
        }
        let names = [spec.hostname(), spec.domainname()];
        if names
            .iter()
            .any(|n| n.as_deref().is_some_and(|n| !n.is_empty()))
            && !self.has_uts
        {
            return Err(Error::invalid(
                "hostname/domainname need a uts namespace in linux.namespaces",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: &str) -> Spec {
        crate::bundle::parse_spec(
            format!(r#"{{"ociVersion":"1.0.0","linux":{{"namespaces":{ns}}}}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_table_has_every_type_once() {
        for k in KINDS {
            assert_eq!(of(k.typ), &k);
            assert_eq!(KINDS.iter().filter(|o| o.flag == k.flag).count(), 1);
        }
        assert_eq!(of(LinuxNamespaceType::Mount).proc_name, "mnt");
    }

    #[test]
    fn namespaces_split_between_clone_child_and_parent() {
        let p = Namespaces::of_spec(&spec(r#"[{"type":"mount"},{"type":"pid"},{"type":"cgroup"},{"type":"network","path":"/proc/1/ns/net"}]"#)).unwrap();
        assert_eq!(
            p.clone_flags,
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID
        );
        assert!(p.new_cgroup && p.own_pid && p.join_for_children.is_empty());
        assert_eq!(p.join_in_child.len(), 1);
        assert!(!p.new_network);
        let p = Namespaces::of_spec(&spec(
            r#"[{"type":"mount"},{"type":"pid","path":"/proc/1/ns/pid"}]"#,
        ))
        .unwrap();
        assert_eq!(p.join_for_children.len(), 1);
        assert!(!p.own_pid);
    }

    #[test]
    fn missing_id_maps_are_refused_and_no_mount_namespace_is_inherited() {
        let p = Namespaces::of_spec(&spec(r#"[{"type":"pid"}]"#)).unwrap();
        assert!(!p.has_mount && !p.clone_flags.contains(CloneFlags::CLONE_NEWNS));
        let e = Namespaces::of_spec(&spec(r#"[{"type":"mount"},{"type":"user"}]"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("uidMappings"), "{e}");
        let p = Namespaces::of_spec(&spec(
            r#"[{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"}]"#,
        ))
        .unwrap();
        assert_eq!(
            p.join_user.as_deref(),
            Some(std::path::Path::new("/proc/1/ns/user"))
        );
        assert!(!p.new_user && !p.clone_flags.contains(CloneFlags::CLONE_NEWUSER));
    }

    #[test]
    fn a_hostname_without_a_uts_namespace_and_a_repeated_type_are_refused() {
        let s = crate::bundle::parse_spec(
            br#"{"ociVersion":"1.0.0","hostname":"h","linux":{"namespaces":[{"type":"pid"}]}}"#,
        )
        .unwrap();
        let e = Namespaces::of_spec(&s).unwrap_err().to_string();
        assert!(e.contains("uts namespace"), "{e}");
        let e = Namespaces::of_spec(&spec(r#"[{"type":"pid"},{"type":"pid"}]"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
