//! OCI hooks (config.md "POSIX-platform Hooks") as runc 1.1.5 runs them:
//! when each kind runs, the state it gets on stdin, its args and env, the
//! namespaces it runs in, and what a failing or hanging hook does.
//!
//! runc 1.1.5 facts these tests pin (found by running it):
//! - state on stdin: {"ociVersion","id","status","pid","bundle"} plus
//!   "annotations" when the config has some; status is "creating" for
//!   prestart, createRuntime and createContainer, "created" for
//!   startContainer and poststart, "stopped" (and no pid) for poststop.
//! - createContainer and startContainer get pid 1 (the container's own view).
//! - poststart runs while `create` runs (fixed in runc 1.2 to run in `start`);
//!   the tests accept either as long as it has run when `start` returns.
//! - host hooks run with the bundle as their working directory, and with
//!   exactly the `env` of the hook when it has one.

mod failures;
mod invocation;
mod kinds;

use crate::harness::{self, Bundle, CgroupGuard};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The recording hook: `rec.sh OUTDIR NAME MARKER [ARGS...]` saves its stdin
/// to OUTDIR/NAME.json, its ARGS, env, cwd, mount and pid namespaces, and
/// whether MARKER (made by the user process) existed, then appends NAME to
/// OUTDIR/order.
const REC_SH: &str = r#"#!/bin/sh
d=$1 n=$2 m=$3
shift 3
cat > "$d/$n.json"
printf '%s\n' "$@" > "$d/$n.args"
env > "$d/$n.env"
pwd > "$d/$n.cwd"
readlink /proc/self/ns/mnt > "$d/$n.mntns"
readlink /proc/self/ns/pid > "$d/$n.pidns"
if [ -e "$m" ]; then echo yes; else echo no; fi > "$d/$n.userstarted"
echo "$n" >> "$d/order"
"#;

/// The user process: marks /started, then sleeps.
const USER_ARGS: &[&str] = &["sh", "-c", "touch /started; exec sleep 30"];

struct HookBundle {
    b: Bundle,
    cgroup: String,
    /// rec.sh on the host (in the bundle dir), recording into the bundle dir.
    host_rec: PathBuf,
}

impl HookBundle {
    /// The bundle dir, where host hooks record.
    fn out(&self) -> PathBuf {
        self.b.path().to_path_buf()
    }

    /// Where the startContainer hook (which runs in the container) records,
    /// as seen from the host.
    fn in_out(&self) -> PathBuf {
        self.b.rootfs().join("hookout")
    }

    fn marker(&self) -> PathBuf {
        self.b.rootfs().join("started")
    }

    /// A hook entry for KIND recording as NAME, with EXTRA args.
    fn rec(&self, kind: &str, name: &str, extra: &[&str]) -> Value {
        let mut args: Vec<String> = if kind == "startContainer" {
            vec![
                "rec.sh".into(),
                "/hookout".into(),
                name.into(),
                "/started".into(),
            ]
        } else {
            vec![
                "rec.sh".into(),
                self.out().display().to_string(),
                name.into(),
                self.marker().display().to_string(),
            ]
        };
        args.extend(extra.iter().map(|s| s.to_string()));
        let path = if kind == "startContainer" {
            "/rec.sh".to_string()
        } else {
            self.host_rec.display().to_string()
        };
        json!({"path": path, "args": args})
    }

    fn add(&mut self, kind: &str, hook: Value) {
        let hooks = &mut self.b.config["hooks"];
        if hooks.is_null() {
            *hooks = json!({});
        }
        if hooks[kind].is_null() {
            hooks[kind] = json!([]);
        }
        hooks[kind].as_array_mut().unwrap().push(hook);
    }

    /// Adds a recording hook of KIND named after the kind.
    fn add_rec(&mut self, kind: &str) {
        let h = self.rec(kind, kind, &[]);
        self.add(kind, h);
    }

    /// A host script in the bundle dir with BODY, made executable; its path.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.b.path().join(name);
        write_exec(&p, body);
        p
    }

    /// What hook NAME recorded with extension EXT (host hooks).
    fn got(&self, name: &str, ext: &str) -> Option<String> {
        std::fs::read_to_string(self.out().join(format!("{name}.{ext}"))).ok()
    }

    fn state_json(&self, name: &str) -> Value {
        let text = self
            .got(name, "json")
            .unwrap_or_else(|| panic!("hook {name} did not run"));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("hook {name} got no JSON state on stdin ({e}): {text:?}"))
    }

    fn order(&self) -> Vec<String> {
        std::fs::read_to_string(self.out().join("order"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn write_exec(p: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn hook_bundle(args: &[&str]) -> (CgroupGuard, HookBundle) {
    let (cg, b, cgroup) = harness::isolated_bundle(args);
    let host_rec = b.path().join("rec.sh");
    write_exec(&host_rec, REC_SH);
    write_exec(&b.rootfs().join("rec.sh"), REC_SH);
    std::fs::create_dir(b.rootfs().join("hookout")).unwrap();
    (
        cg,
        HookBundle {
            b,
            cgroup,
            host_rec,
        },
    )
}
