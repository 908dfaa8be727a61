//! `Bundle`: one bundle (config.json and its own copy of the busybox rootfs)
//! with its state root, and the runtime commands run on it.

use super::{runtime_bin, unique};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

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
