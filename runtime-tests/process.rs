//! The container process (config.md "Process"): args, env, cwd, user,
//! umask, rlimits, capabilities, noNewPrivileges, oomScoreAdj, observed in
//! the process's own output and /proc/self/status|limits.

use crate::harness::{self, sh, Bundle, TestResult};
use serde_json::json;
use std::collections::HashMap;

/// `Key:\tvalue` lines of /proc/self/status text.
fn status_fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// /proc/self/status of the container's process itself (`cat` is exec'd as
/// the container process, no shell in between).
fn own_status(b: &mut Bundle, prefix: &str) -> HashMap<String, String> {
    b.config["process"]["args"] = json!(["cat", "/proc/self/status"]);
    status_fields(&b.run_ok(&harness::unique(prefix)))
}

/// The /proc/self/status hex form of a capability set.
fn caps_hex(caps: &[u32]) -> String {
    format!("{:016x}", caps.iter().fold(0u64, |m, c| m | 1 << c))
}

const CAP_CHOWN: u32 = 0;
const CAP_KILL: u32 = 5;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_AUDIT_WRITE: u32 = 29;

fn args_are_passed_verbatim() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&[
        "sh",
        "-c",
        "printf '%s|' \"$0\" \"$@\"",
        "zero",
        "a b",
        "",
        "c'd",
        "$HOME",
    ]);
    let out = b.run_ok(&harness::unique("proc-args"));
    assert_eq!(out, "zero|a b||c'd|$HOME|");
    Ok(())
}

fn args_zero_is_resolved_in_path() -> TestResult {
    harness::can_run()?;
    // A bare name is looked up in the process's PATH (env), as execvp does.
    let mut b = Bundle::new(&["mytool"]);
    std::fs::create_dir_all(b.rootfs().join("opt/tools")).unwrap();
    std::fs::write(
        b.rootfs().join("opt/tools/mytool"),
        "#!/bin/sh\necho tool-ran \"$0\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        b.rootfs().join("opt/tools/mytool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    b.config["process"]["env"] = json!(["PATH=/opt/tools:/bin"]);
    let out = b.run_ok(&harness::unique("proc-path"));
    assert_eq!(out, "tool-ran /opt/tools/mytool\n");
    Ok(())
}

fn env_is_exactly_the_config_env_plus_home() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["env"]);
    // A later duplicate wins (at the first one's position); HOME, when
    // absent, is added from the user's /etc/passwd entry (root: /root).
    b.config["process"]["env"] = json!([
        "PATH=/bin:/usr/bin",
        "FOO=bar baz",
        "EMPTY=",
        "DUP=1",
        "EQ=a=b",
        "DUP=2"
    ]);
    let out = b.run_ok(&harness::unique("proc-env"));
    assert_eq!(
        out,
        "PATH=/bin:/usr/bin\nFOO=bar baz\nEMPTY=\nDUP=2\nEQ=a=b\nHOME=/root\n"
    );
    Ok(())
}

fn env_home_is_kept_when_set() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["env"]);
    b.config["process"]["env"] = json!(["HOME=/custom", "PATH=/bin:/usr/bin"]);
    let out = b.run_ok(&harness::unique("proc-envhome"));
    assert_eq!(out, "HOME=/custom\nPATH=/bin:/usr/bin\n");
    Ok(())
}

fn env_home_comes_from_passwd_of_the_user() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["env"]);
    b.config["process"]["env"] = json!(["PATH=/bin:/usr/bin"]);
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    let out = b.run_ok(&harness::unique("proc-envnobody"));
    assert_eq!(out, "PATH=/bin:/usr/bin\nHOME=/nonexistent\n");
    // A uid without a passwd entry gets HOME=/.
    b.config["process"]["user"] = json!({"uid": 4242, "gid": 4242});
    let out = b.run_ok(&harness::unique("proc-envnouser"));
    assert_eq!(out, "PATH=/bin:/usr/bin\nHOME=/\n");
    Ok(())
}

fn cwd_is_set() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["pwd"]);
    b.config["process"]["cwd"] = json!("/tmp");
    assert_eq!(b.run_ok(&harness::unique("proc-cwd")), "/tmp\n");
    Ok(())
}

/// runc creates a missing cwd (mode 0755, root-owned) in the rootfs.
fn missing_cwd_is_created() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["cwd"] = json!("/does/not/exist");
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = sh(&mut b, "proc-cwdmk", "pwd; stat -c '%a %u:%g' . /does");
    assert_eq!(out, "/does/not/exist\n755 0:0\n755 0:0\n");
    assert!(b.rootfs().join("does/not/exist").is_dir());
    Ok(())
}

fn user_uid_and_gid() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1001});
    let out = sh(
        &mut b,
        "proc-user",
        "id -u; id -g; grep -E '^(Uid|Gid):' /proc/self/status",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "1001"]);
    let st = status_fields(&out);
    assert_eq!(
        st["Uid"].split_whitespace().collect::<Vec<_>>(),
        ["1000"; 4]
    );
    assert_eq!(
        st["Gid"].split_whitespace().collect::<Vec<_>>(),
        ["1001"; 4]
    );
    Ok(())
}

fn additional_gids_are_the_supplementary_groups() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 2000]});
    let st = own_status(&mut b, "proc-groups");
    assert_eq!(st["Groups"], "5 2000");
    assert_eq!(st["Gid"].split_whitespace().next(), Some("1001"));
    Ok(())
}

fn no_additional_gids_means_no_supplementary_groups() -> TestResult {
    harness::can_run()?;
    // The test runs as root with its own groups; none may leak in (the
    // image's /etc/group lists no members).
    let mut b = Bundle::new(&[]);
    let st = own_status(&mut b, "proc-nogroups");
    assert_eq!(st["Groups"], "");
    Ok(())
}

fn umask_is_set() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["user"]["umask"] = json!(0o077);
    let out = sh(&mut b, "proc-umask", "umask; grep ^Umask: /proc/self/status; touch /tmp/f; mkdir /tmp/d; stat -c %a /tmp/f /tmp/d");
    assert_eq!(out, "0077\nUmask:\t0077\n600\n700\n");
    Ok(())
}

fn umask_defaults_to_0022() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let out = sh(
        &mut b,
        "proc-umask-def",
        "umask; touch /tmp/f; stat -c %a /tmp/f",
    );
    assert_eq!(out, "0022\n644\n");
    Ok(())
}

/// /proc/self/limits row for a resource: (soft, hard).
fn limit(text: &str, name: &str) -> (String, String) {
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    let f: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (f[0].to_string(), f[1].to_string())
}

fn rlimits_are_set() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/limits; echo nofile=$(ulimit -n)",
    ]);
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
        {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
        {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608},
        {"type": "RLIMIT_CPU", "soft": 3600, "hard": 18446744073709551615u64}
    ]);
    let out = b.run_ok(&harness::unique("proc-rlimits"));
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(limit(&out, "Max open files"), s("512", "2048"));
    assert_eq!(limit(&out, "Max core file size"), s("0", "4096"));
    assert_eq!(limit(&out, "Max processes"), s("100", "200"));
    assert_eq!(limit(&out, "Max stack size"), s("4194304", "8388608"));
    assert_eq!(limit(&out, "Max cpu time"), s("3600", "unlimited"));
    assert!(out.ends_with("nofile=512\n"), "{out}");
    Ok(())
}

fn capabilities_all_five_sets_for_non_root_user() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
        "effective": ["CAP_KILL", "CAP_CHOWN"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL", "CAP_SYS_ADMIN"],
        "ambient": ["CAP_KILL"]
    });
    let st = own_status(&mut b, "proc-caps-user");
    assert_eq!(
        st["CapBnd"],
        caps_hex(&[CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN])
    );
    assert_eq!(st["CapInh"], caps_hex(&[CAP_KILL, CAP_SYS_ADMIN]));
    assert_eq!(st["CapAmb"], caps_hex(&[CAP_KILL]));
    // Across execve of a plain file by a non-root user, P' = E' = ambient.
    assert_eq!(st["CapPrm"], caps_hex(&[CAP_KILL]));
    assert_eq!(st["CapEff"], caps_hex(&[CAP_KILL]));
    Ok(())
}

fn capabilities_for_root_with_no_new_privileges() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]
    });
    let st = own_status(&mut b, "proc-caps-root-nnp");
    assert_eq!(
        st["CapBnd"],
        caps_hex(&[CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN])
    );
    assert_eq!(st["CapInh"], caps_hex(&[CAP_KILL]));
    assert_eq!(st["CapAmb"], caps_hex(&[CAP_KILL]));
    // Root's execve would grant bounding|inheritable, but no_new_privs caps
    // it at the permitted set runc applied; effective follows permitted.
    assert_eq!(st["CapPrm"], caps_hex(&[CAP_CHOWN, CAP_KILL]));
    assert_eq!(st["CapEff"], caps_hex(&[CAP_CHOWN, CAP_KILL]));
    assert_eq!(st["NoNewPrivs"], "1");
    Ok(())
}

fn capabilities_for_root_without_no_new_privileges() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]
    });
    let st = own_status(&mut b, "proc-caps-root");
    assert_eq!(
        st["CapBnd"],
        caps_hex(&[CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN])
    );
    assert_eq!(st["CapInh"], caps_hex(&[CAP_KILL]));
    assert_eq!(st["CapAmb"], caps_hex(&[CAP_KILL]));
    // Root's execve: P' = bounding | inheritable, E' = P'.
    assert_eq!(
        st["CapPrm"],
        caps_hex(&[CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN])
    );
    assert_eq!(
        st["CapEff"],
        caps_hex(&[CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN])
    );
    assert_eq!(st["NoNewPrivs"], "0");
    Ok(())
}

/// The default config (as `runc spec`): ambient without inheritable can't
/// be raised; runc ignores that and the ambient set stays empty.
fn capabilities_of_default_config() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    let st = own_status(&mut b, "proc-caps-default");
    let three = caps_hex(&[CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE]);
    assert_eq!(st["CapBnd"], three);
    assert_eq!(st["CapPrm"], three);
    assert_eq!(st["CapEff"], three);
    assert_eq!(st["CapInh"], caps_hex(&[]));
    assert_eq!(st["CapAmb"], caps_hex(&[]));
    Ok(())
}

fn capability_effect_chown_needs_cap_chown() -> TestResult {
    harness::can_run()?;
    let run = |caps: &[&str], prefix: &str| {
        let mut b = Bundle::new(&[]);
        b.config["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
        sh(
            &mut b,
            prefix,
            "touch /tmp/f; (chown 1234 /tmp/f) 2>&1 && stat -c %u /tmp/f; true",
        )
    };
    assert_eq!(run(&["CAP_CHOWN"], "proc-chown-yes"), "1234\n");
    let out = run(&["CAP_KILL"], "proc-chown-no");
    assert!(out.contains("Operation not permitted"), "{out}");
    Ok(())
}

fn no_new_privileges_true() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["noNewPrivileges"] = json!(true);
    assert_eq!(own_status(&mut b, "proc-nnp1")["NoNewPrivs"], "1");
    Ok(())
}

fn no_new_privileges_false() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&[]);
    b.config["process"]["noNewPrivileges"] = json!(false);
    assert_eq!(own_status(&mut b, "proc-nnp0")["NoNewPrivs"], "0");
    Ok(())
}

fn oom_score_adj_is_set() -> TestResult {
    harness::can_run()?;
    let mut b = Bundle::new(&["cat", "/proc/self/oom_score_adj"]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    assert_eq!(b.run_ok(&harness::unique("proc-oom")), "500\n");
    Ok(())
}

fn oom_score_adj_unset_is_inherited() -> TestResult {
    harness::can_run()?;
    let mine = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    let b = Bundle::new(&["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(b.run_ok(&harness::unique("proc-oom-inh")), mine);
    Ok(())
}

fn process_is_pid_1_with_parent_0() -> TestResult {
    harness::can_run()?;
    let b = Bundle::new(&["cat", "/proc/self/stat"]);
    let out = b.run_ok(&harness::unique("proc-pid1"));
    let (pid, rest) = out.split_once(' ').unwrap();
    assert_eq!(pid, "1", "{out}");
    let after_comm = rest.rsplit_once(')').unwrap().1;
    let ppid = after_comm.split_whitespace().nth(1).unwrap();
    assert_eq!(ppid, "0", "{out}");
    Ok(())
}

harness::tests![
    args_are_passed_verbatim,
    args_zero_is_resolved_in_path,
    env_is_exactly_the_config_env_plus_home,
    env_home_is_kept_when_set,
    env_home_comes_from_passwd_of_the_user,
    cwd_is_set,
    missing_cwd_is_created,
    user_uid_and_gid,
    additional_gids_are_the_supplementary_groups,
    no_additional_gids_means_no_supplementary_groups,
    umask_is_set,
    umask_defaults_to_0022,
    rlimits_are_set,
    capabilities_all_five_sets_for_non_root_user,
    capabilities_for_root_with_no_new_privileges,
    capabilities_for_root_without_no_new_privileges,
    capabilities_of_default_config,
    capability_effect_chown_needs_cap_chown,
    no_new_privileges_true,
    no_new_privileges_false,
    oom_score_adj_is_set,
    oom_score_adj_unset_is_inherited,
    process_is_pid_1_with_parent_0,
];
