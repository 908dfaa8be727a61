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
        let dir = std::env::temp_dir().join(format!("vessel-test-rootfs-{}", std::process::id()));
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
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// One bundle (config.json + its own copy of the rootfs) and one state root,
/// both in a temporary directory removed on drop, after every container
/// started under this state root has been force-deleted.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: Value,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Bundle {
    /// A bundle whose process runs `args` with runc's default-like config
    /// (the namespaces pid, mount, ipc, uts, network; proc, /dev tmpfs,
    /// devpts, shm, mqueue, sysfs; masked and read-only paths), terminal off.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new().prefix("vessel-test-").tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let status = Command::new("cp").arg("-a").arg(template_rootfs()).arg(&rootfs).status().unwrap();
        assert!(status.success());
        let root = dir.path().join("state");
        std::fs::create_dir(&root).unwrap();
        Bundle { config: default_config(args), root, dir, ids: Default::default() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes config.json (call after editing `self.config`; `run`/`create` call it).
    pub fn write_config(&self) {
        std::fs::write(self.path().join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }

    /// A runtime command with `--root` set to this bundle's state root.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(&self.root);
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
        let out = self.cmd().arg("run").arg("--bundle").arg(self.path()).arg(id).output().unwrap();
        let _ = self.rt(&["delete", "--force", id]);
        out
    }

    /// `run`, asserting it exited 0; returns stdout as a string.
    pub fn run_ok(&self, id: &str) -> String {
        let out = self.run(id);
        assert!(out.status.success(), "run {id} failed: {:?}\nstdout: {}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `create --bundle DIR ID` (stdio to /dev/null unless the caller wires it).
    pub fn create(&self, id: &str) -> Output {
        self.write_config();
        self.remember(id);
        self.cmd()
            .arg("create")
            .arg("--bundle")
            .arg(self.path())
            .arg(id)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
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
        self.state(id).map(|s| s["status"].as_str().unwrap().to_string())
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
    assert!(out.status.success(), "failed: {:?}\nstdout: {}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
