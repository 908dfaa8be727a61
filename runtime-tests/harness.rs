//! The shared harness of the integration tests.
//!
//! Every test drives a runtime *binary* (never the vessel library), chosen by
//! `RUNTIME=` (default: the vessel built by this cargo invocation), so the
//! whole suite can be pointed at runc as an oracle (`make test-oracle`).
//!
//! Needs: root, a kernel with namespaces and cgroups, and busybox-static
//! (`bundles/busybox/build-rootfs.sh` builds the rootfs from it). Run from a
//! private mount namespace (`make test` does `unshare -m --propagation private`).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The runtime binary under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_vessel")),
    }
}

/// True when the binary under test is vessel (tests of vessel-only features
/// call this and return early under the runc oracle).
pub fn is_vessel() -> bool {
    let out = Command::new(runtime_bin()).arg("--version").output();
    matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("vessel"))
}

/// Returns false, after printing why, when the tests cannot run here.
/// Every test starts with `if !harness::can_run() { return; }`.
pub fn can_run() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: runtime tests need root");
            return false;
        }
        if !Path::new("/bin/busybox").exists() {
            eprintln!("SKIPPED: runtime tests need busybox-static (/bin/busybox)");
            return false;
        }
        true
    })
}

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A busybox rootfs built once per test process, copied into each bundle.
fn template_rootfs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // A prebuilt one (the cgroup VMs, where every fork is ~100x slower).
        if let Some(dir) = std::env::var_os("VESSEL_TEST_ROOTFS").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        // Under cargo's per-target scratch dir, so runs do not litter /tmp.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("rootfs-{}", std::process::id()));
        let status = Command::new("sh")
            .arg(repo_dir().join("bundles/busybox/build-rootfs.sh"))
            .arg(&dir)
            .status()
            .expect("run build-rootfs.sh");
        assert!(status.success(), "build-rootfs.sh failed");
        dir
    })
}

/// A unique name for containers, cgroups and files of one test.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// One bundle (config.json + its own copy of the rootfs) and one state root,
/// both in a temporary directory removed on drop, after every container
/// started under this state root has been force-deleted.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: Value,
    /// Environment given to every runtime command (e.g. VESSEL_GPU_ROOT).
    pub runtime_env: Vec<(String, String)>,
    /// Global flags given to every runtime command (e.g. --systemd-cgroup).
    pub runtime_args: Vec<String>,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Bundle {
    /// A bundle whose process runs `args` with runc's default-like config
    /// (the namespaces pid, mount, ipc, uts, network; proc, /dev tmpfs,
    /// devpts, shm, mqueue, sysfs; masked and read-only paths), terminal off.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("vessel-test-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template_rootfs())
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(status.success());
        let root = dir.path().join("state");
        std::fs::create_dir(&root).unwrap();
        Bundle {
            config: default_config(args),
            runtime_env: Vec::new(),
            runtime_args: Vec::new(),
            root,
            dir,
            ids: Default::default(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes config.json (call after editing `self.config`; `run`/`create` call it).
    pub fn write_config(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// A runtime command with `--root` set to this bundle's state root.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(&self.root);
        c.envs(self.runtime_env.iter().map(|(k, v)| (k, v)));
        c.args(&self.runtime_args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs the runtime with these arguments and collects its output.
    pub fn rt(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn remember(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_string());
    }

    /// `run --bundle DIR ID` in the foreground; returns the container's output.
    pub fn run(&self, id: &str) -> Output {
        self.write_config();
        self.remember(id);
        let out = self
            .cmd()
            .arg("run")
            .arg("--bundle")
            .arg(self.path())
            .arg(id)
            .output()
            .unwrap();
        let _ = self.rt(&["delete", "--force", id]);
        out
    }

    /// `run`, asserting it exited 0; returns stdout as a string.
    pub fn run_ok(&self, id: &str) -> String {
        let out = self.run(id);
        assert!(
            out.status.success(),
            "run {id} failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The parsed output of `state ID`, or None when the runtime says no.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.rt(&["state", id]);
        if !out.status.success() {
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("state prints JSON"))
    }

    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id)
            .map(|s| s["status"].as_str().unwrap().to_string())
    }

    /// Waits up to `secs` for `status` of ID to become `want`.
    pub fn wait_status(&self, id: &str, want: &str, secs: u64) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if self.status(id).as_deref() == Some(want) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.rt(&["delete", "--force", id]);
        }
    }
}

/// runc-like default config (as `runc spec` writes it, without terminal, and
/// with the rootfs writable so tests can create files).
pub fn default_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "vessel-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            // Always absolute and ours: a runtime's default could land under
            // the machine's own cgroups.
            "cgroupsPath": format!("/{}", unique("vessel-test-cg")),
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Stdout of a finished command as a string, with stderr in the panic message
/// when it failed.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// Additions for the lifecycle, hooks, cgroups and bad-input tests.

impl Bundle {
    /// `ARGS... --bundle DIR [EXTRA...] ID` (ARGS e.g. `["create"]` or
    /// `["run", "--detach"]`) with the runtime's stdout and stderr sent to
    /// files in the bundle directory, not pipes: with `terminal: false` the
    /// container inherits the runtime's stdio, so a piped `create` (as
    /// `create()` does) only sees EOF when the container exits. Returns the
    /// exit status and what had been written to those files by then.
    pub fn launch(&self, args: &[&str], id: &str, extra: &[&str]) -> Output {
        self.write_config();
        self.remember(id);
        let n = unique("out");
        let out_path = self.path().join(format!("{n}.stdout"));
        let err_path = self.path().join(format!("{n}.stderr"));
        let status = self
            .cmd()
            .args(args)
            .arg("--bundle")
            .arg(self.path())
            .args(extra)
            .arg(id)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    }

    /// `create` that returns as soon as the runtime does (see `launch`).
    pub fn create_detached(&self, id: &str) -> Output {
        self.launch(&["create"], id, &[])
    }

    /// `create_detached`, asserting success; returns the container's pid.
    pub fn create_ok(&self, id: &str) -> i32 {
        let out = self.create_detached(id);
        assert!(
            out.status.success(),
            "create {id} failed: {:?}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let st = self.state(id).expect("state after create");
        st["pid"].as_i64().expect("pid in state") as i32
    }

    /// Sets `linux.cgroupsPath` to a fresh absolute `/vessel-test-...` path
    /// and returns it, so the runtime creates its cgroups there rather than
    /// under the test process's own cgroups.
    pub fn use_test_cgroup(&mut self) -> String {
        let path = format!("/{}", unique("vessel-test-cg"));
        self.config["linux"]["cgroupsPath"] = json!(path);
        path
    }

    /// Registers an ID for `delete --force` on drop (for hand-built commands).
    pub fn track(&self, id: &str) {
        self.remember(id);
    }
}

/// Polls `f` every 20 ms until it is true or `secs` seconds passed.
pub fn wait_for(secs: f64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// True while PID exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit(')')
                .next()
                .map(str::trim_start)
                .and_then(|r| r.chars().next()),
            Some('Z') | Some('X')
        ),
        Err(_) => false,
    }
}

/// One cgroup hierarchy the test process is in: `label` as in
/// /proc/self/cgroup ("memory", "cpu,cpuacct", "name=systemd"; "" for
/// cgroup2), where it is mounted, and the test process's own path in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub label: String,
    pub mount: PathBuf,
    pub own: String,
}

/// The cgroup hierarchies of /proc/self/cgroup that are mounted here.
pub fn cgroup_hierarchies() -> Vec<Hierarchy> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts = Vec::new(); // (fstype, superopts, root, mountpoint)
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 || !post[0].starts_with("cgroup") {
            continue;
        }
        mounts.push((
            post[0].to_string(),
            post[2].to_string(),
            pre[3].to_string(),
            PathBuf::from(pre[4]),
        ));
    }
    let mut out = Vec::new();
    for line in std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
    {
        let mut parts = line.splitn(3, ':');
        let (_, label, own) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let found = mounts.iter().find(|(fstype, opts, root, _)| {
            root == "/"
                && if label.is_empty() {
                    fstype == "cgroup2"
                } else {
                    fstype == "cgroup" && label.split(',').all(|c| opts.split(',').any(|o| o == c))
                }
        });
        if let Some((_, _, _, mount)) = found {
            out.push(Hierarchy {
                label: label.to_string(),
                mount: mount.clone(),
                own: own.to_string(),
            });
        }
    }
    out
}

/// True on cgroup v1 (or hybrid) hosts, where the devices controller exists.
pub fn cgroup_v1() -> bool {
    cgroup_hierarchies()
        .iter()
        .any(|h| h.label.split(',').any(|c| c == "devices"))
}

/// The directories of cgroup PATH (absolute, from each hierarchy's root) in
/// every mounted hierarchy.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    cgroup_hierarchies()
        .iter()
        .map(|h| h.mount.join(path.trim_start_matches('/')))
        .collect()
}

/// Removes, on drop, whatever empty directories of cgroup PATH remain in
/// every hierarchy (deepest first), so a failing test leaves nothing behind.
/// Declare it before the `Bundle` so it drops after the containers are gone.
pub struct CgroupGuard(pub Vec<PathBuf>);

impl CgroupGuard {
    pub fn new(path: &str) -> CgroupGuard {
        CgroupGuard(cgroup_dirs(path))
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for dir in &self.0 {
            if !dir.starts_with("/sys/fs/cgroup") || !dir.to_string_lossy().contains("vessel-test-")
            {
                continue;
            }
            let mut subdirs: Vec<PathBuf> = Vec::new();
            let mut stack = vec![dir.clone()];
            while let Some(d) = stack.pop() {
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            stack.push(e.path());
                        }
                    }
                    subdirs.push(d);
                }
            }
            subdirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for d in subdirs {
                let _ = std::fs::remove_dir(&d);
            }
        }
    }
}

// ---- Helpers for the namespaces, rootfs, devices, process and fds tests ----

impl Bundle {
    /// A `run [EXTRA...] --bundle DIR ID` command, config written and ID
    /// remembered for cleanup, for tests that wire stdio or fds themselves.
    pub fn run_cmd(&self, id: &str, extra: &[&str]) -> Command {
        self.write_config();
        self.remember(id);
        let mut c = self.cmd();
        c.arg("run")
            .args(extra)
            .arg("--bundle")
            .arg(self.path())
            .arg(id);
        c
    }

    /// `create_ok` then `start` ID (the container's stdio goes to files, see
    /// `launch`); returns the pid of its process.
    pub fn start_detached(&self, id: &str) -> i32 {
        let pid = self.create_ok(id);
        let out = self.rt(&["start", id]);
        assert!(
            out.status.success(),
            "start {id} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pid
    }
}

/// The namespace link (e.g. `net:[4026531840]`) of this test process, which
/// is the "host" the runtime under test starts from.
pub fn host_ns(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// True when this test process is in a mount namespace of its own (not pid
/// 1's), so a test may mount things under its temporary directories without
/// touching the host's mount table. Prints why not otherwise.
pub fn private_mount_ns() -> bool {
    let mine = std::fs::read_link("/proc/self/ns/mnt").ok();
    let init = std::fs::read_link("/proc/1/ns/mnt").ok();
    if mine.is_none() || mine == init {
        eprintln!("SKIPPED: this test mounts and needs a private mount namespace (unshare -m --propagation private)");
        return false;
    }
    true
}

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

/// Stderr of a finished command, for assertion messages.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A bundle for ARGS with its own `/vessel-test-...` cgroupsPath, the guard
/// that removes what is left of that cgroup (it drops after the bundle when
/// bound first: `let (_cg, b, path) = isolated_bundle(..)`), and the path.
pub fn isolated_bundle(args: &[&str]) -> (CgroupGuard, Bundle, String) {
    let mut b = Bundle::new(args);
    let path = b.use_test_cgroup();
    (CgroupGuard::new(&path), b, path)
}

/// True when no directory of cgroup PATH exists in any hierarchy.
pub fn cgroup_gone(path: &str) -> bool {
    cgroup_dirs(path).iter().all(|d| !d.exists())
}

/// `fixtures/maxrss.c` built once per test process (None without gcc): runs
/// a command and prints its peak RSS in KiB.
pub fn maxrss_helper() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("maxrss-{}", std::process::id()));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime-tests/fixtures/maxrss.c");
        let built = Command::new("gcc")
            .arg("-O2")
            .arg("-o")
            .arg(&bin)
            .arg(src)
            .status()
            .is_ok_and(|s| s.success());
        built.then_some(bin)
    })
    .as_deref()
}
