//! Mounts a test makes in its private mount namespace, and the parsing of
//! /proc/PID/mountinfo.

use std::path::{Path, PathBuf};

/// Mounts a test makes in its own (private) mount namespace, lazily
/// unmounted in reverse order on drop. Declare it after the `Bundle` whose
/// directories it mounts on, so it drops first.
#[derive(Default)]
pub struct TestMounts(Vec<PathBuf>);

impl TestMounts {
    fn mount(
        src: Option<&Path>,
        dst: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
        let src = src.map(c);
        let dst_c = c(dst);
        let fstype = fstype.map(|s| CString::new(s).unwrap());
        let data = data.map(|s| CString::new(s).unwrap());
        let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let rc = unsafe {
            libc::mount(
                ptr(&src),
                dst_c.as_ptr(),
                ptr(&fstype),
                flags,
                ptr(&data) as *const libc::c_void,
            )
        };
        assert_eq!(
            rc,
            0,
            "mount on {}: {}",
            dst.display(),
            std::io::Error::last_os_error()
        );
    }

    /// Bind-mounts SRC on DST (`MS_BIND`).
    pub fn bind(&mut self, src: &Path, dst: &Path) {
        Self::mount(Some(src), dst, None, libc::MS_BIND, None);
        self.0.push(dst.to_path_buf());
    }

    /// Mounts a fresh tmpfs on DST.
    pub fn tmpfs(&mut self, dst: &Path) {
        Self::mount(
            Some(Path::new("tmpfs")),
            dst,
            Some("tmpfs"),
            0,
            Some("size=1m"),
        );
        self.0.push(dst.to_path_buf());
    }

    /// Makes the mount at DST shared (`MS_SHARED`, not recursive).
    pub fn make_shared(&self, dst: &Path) {
        Self::mount(None, dst, None, libc::MS_SHARED, None);
    }
}

impl Drop for TestMounts {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            use std::os::unix::ffi::OsStrExt;
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// One line of /proc/<pid>/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (`rw`, `nosuid`, ...).
    pub opts: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, `unbindable`, ...).
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options.
    pub super_opts: Vec<String>,
}

impl MountInfo {
    pub fn has_opt(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
    pub fn has_super_opt(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
    /// The value of an optional field like `shared` or `master`.
    pub fn tag(&self, name: &str) -> Option<String> {
        self.optional
            .iter()
            .find_map(|f| f.strip_prefix(&format!("{name}:")).map(str::to_string))
    }
}

/// Parses mountinfo text (lines that don't look like mountinfo are skipped,
/// so container output may mix in other lines).
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let mut v = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if dash < 6 || f.len() < dash + 4 || !f[2].contains(':') {
            continue;
        }
        v.push(MountInfo {
            root: f[3].to_string(),
            mount_point: f[4].to_string(),
            opts: f[5].split(',').map(str::to_string).collect(),
            optional: f[6..dash].iter().map(|s| s.to_string()).collect(),
            fstype: f[dash + 1].to_string(),
            source: f[dash + 2].to_string(),
            super_opts: f[dash + 3].split(',').map(str::to_string).collect(),
        });
    }
    v
}

/// The last (topmost) mount at MOUNT_POINT, panicking with the table if none.
pub fn mount_at(mounts: &[MountInfo], mount_point: &str) -> MountInfo {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == mount_point)
        .cloned()
        .unwrap_or_else(|| panic!("no mount at {mount_point} in {mounts:#?}"))
}
