//! The toolkit's opt-in extras of a GPU request: the feature-gated
//! GPUDirect and fabric devices (`NVIDIA_GDS`, `NVIDIA_MOFED`,
//! `NVIDIA_NVSWITCH`, `NVIDIA_GDRCOPY` = `enabled`) and MIG administration
//! (`NVIDIA_MIG_CONFIG_DEVICES`, `NVIDIA_MIG_MONITOR_DEVICES`), against the
//! fake driver's nodes: exactly what is asked, allowed by the device cgroup.

use super::{can_run, fake_root_copy, gpu_bundle, run_fail};
use crate::harness::{unique, Bundle, TestResult};
use serde_json::json;

/// The fabric nodes the container has, by name, sorted.
const FABRIC_NODES: &str = "ls /dev /dev/infiniband 2>/dev/null | grep -E '^(nvidia-fs|gdrdrv|nvidia-nvswitch|uverbs|rdma_cm)' | sort | tr '\\n' ' '; echo";

/// Lists the fabric nodes, then `ls -l` and opens each of `paths`.
fn fabric_script(paths: &[&str], extra: &str) -> String {
    let list = paths.join(" ");
    format!("{FABRIC_NODES}; ls -l {list}; for n in {list}; do cat $n 2>&1; done; {extra} true")
}

/// The output of a run that must succeed, with the runtime's stderr.
fn run_with_log(b: &Bundle) -> (String, String) {
    let out = b.run(&unique("gpu"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    (stdout, stderr)
}

/// Each feature alone: exactly its nodes, with the host's numbers, each
/// allowed (the open reaches the absent driver: ENXIO, not EPERM).
fn each_feature_gives_exactly_its_nodes() -> TestResult {
    can_run()?;
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "NVIDIA_GDS",
            &["/dev/nvidia-fs0", "/dev/nvidia-fs1"],
            "505,",
        ),
        (
            "NVIDIA_MOFED",
            &[
                "/dev/infiniband/rdma_cm",
                "/dev/infiniband/uverbs0",
                "/dev/infiniband/uverbs1",
            ],
            "504,",
        ),
        (
            "NVIDIA_NVSWITCH",
            &["/dev/nvidia-nvswitch0", "/dev/nvidia-nvswitchctl"],
            "506,",
        ),
        ("NVIDIA_GDRCOPY", &["/dev/gdrdrv"], "508,"),
    ];
    for (key, paths, major) in cases {
        let extra = "cat /etc/cufile.json 2>&1; ls /run/udev/data 2>&1;";
        let var = format!("{key}=enabled");
        let b = gpu_bundle(
            &fabric_script(paths, extra),
            "debian",
            &["NVIDIA_VISIBLE_DEVICES=0", &var],
        );
        let out = b.run_ok(&unique("gpu"));
        let names: Vec<&str> = paths
            .iter()
            .map(|p| p.rsplit('/').next().unwrap())
            .collect();
        let want = format!("{} \n", names.join(" "));
        assert!(out.starts_with(&want), "{key}: want {want:?}: {out}");
        assert_eq!(out.matches(major).count(), paths.len(), "{key}: {out}");
        for p in paths {
            let allowed = format!("{p}': No such device or address");
            assert!(out.contains(&allowed), "{key}: {p} not allowed: {out}");
        }
        // GPUDirect Storage brings cuFile's config and udev's database.
        let gds = key == "NVIDIA_GDS";
        assert_eq!(out.contains("\"logging\""), gds, "{key}: {out}");
        assert_eq!(out.contains("c505:0"), gds, "{key}: {out}");
    }
    Ok(())
}

/// Not enabled (or not exactly `enabled`), or no GPU request: none.
fn features_not_enabled_give_nothing() -> TestResult {
    can_run()?;
    let all = "/dev/nvidia-fs0 /dev/gdrdrv /dev/infiniband/rdma_cm /dev/nvidia-nvswitchctl";
    let script = format!("{FABRIC_NODES}; cat {all} 2>&1; true");
    let near = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_GDS=Enabled",
        "NVIDIA_MOFED=true",
        "NVIDIA_GDRCOPY=disabled",
    ];
    let (out, log) = run_with_log(&gpu_bundle(&script, "debian", &near));
    assert!(out.starts_with(" \n") || out.starts_with('\n'), "{out}");
    assert!(!out.contains("No such device or address"), "{out}");
    assert!(
        log.contains("NVIDIA_GDS=Enabled ignored") && log.contains("NVIDIA_MOFED=true ignored"),
        "{log}"
    );
    assert!(!log.contains("NVIDIA_GDRCOPY"), "{log}");
    // Without a GPU request nothing is read: not the features, and not a
    // MIG variable an unprivileged container may not set.
    let no_gpu = [
        "NVIDIA_GDS=enabled",
        "NVIDIA_MOFED=enabled",
        "NVIDIA_NVSWITCH=enabled",
        "NVIDIA_GDRCOPY=enabled",
        "NVIDIA_MIG_CONFIG_DEVICES=all",
    ];
    let out = gpu_bundle(&script, "debian", &no_gpu).run_ok(&unique("gpu"));
    assert!(
        !out.contains("nvidia-fs0 ") && !out.contains("gdrdrv "),
        "{out}"
    );
    assert!(!out.contains("No such device or address"), "{out}");
    Ok(())
}

/// A host without a feature's nodes: the container runs without them, and
/// the log says why.
fn a_host_without_the_nodes_gets_a_warning() -> TestResult {
    can_run()?;
    let root = fake_root_copy();
    std::fs::remove_file(root.path().join("dev/gdrdrv")).unwrap();
    std::fs::remove_dir_all(root.path().join("dev/infiniband")).unwrap();
    let vars = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_GDRCOPY=enabled",
        "NVIDIA_MOFED=enabled",
        "NVIDIA_NVSWITCH=enabled",
    ];
    let mut b = gpu_bundle(FABRIC_NODES, "debian", &vars);
    b.runtime_env.retain(|(k, _)| k != "VESSEL_GPU_ROOT");
    b.runtime_env
        .push(("VESSEL_GPU_ROOT".into(), root.path().display().to_string()));
    let (out, log) = run_with_log(&b);
    assert_eq!(out, "nvidia-nvswitch0 nvidia-nvswitchctl \n");
    assert!(
        log.contains("NVIDIA_GDRCOPY=enabled: the host has no /dev/gdrdrv character device"),
        "{log}"
    );
    assert!(log.contains("NVIDIA_MOFED=enabled"), "{log}");
    assert!(!log.contains("NVIDIA_NVSWITCH"), "{log}");
    Ok(())
}

/// CAP_SYS_ADMIN in the bounding set: what the toolkit calls privileged.
fn privileged(b: &mut Bundle) {
    b.config["process"]["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_SYS_ADMIN"));
}

const CAPS: &str = "ls /dev/nvidia-caps 2>/dev/null | tr '\\n' ' '; echo";

/// A privileged container gets the config or monitor capability and every
/// MIG minor of its MIG-capable GPUs (index 0 is GPU minor 1, the one with
/// MIG; cap14 has no host node and is made), each allowed.
fn mig_administration_goes_to_privileged_containers() -> TestResult {
    can_run()?;
    let opens = "for n in 1 2 14 150; do cat /dev/nvidia-caps/nvidia-cap$n 2>&1; done; true";
    let script = format!("{CAPS}; {opens}");
    let cases = [
        (
            "NVIDIA_MIG_CONFIG_DEVICES=all",
            "NVIDIA_VISIBLE_DEVICES=all",
            "nvidia-cap1 nvidia-cap12 nvidia-cap13 nvidia-cap14 \n",
            "nvidia-cap1'",
        ),
        (
            "NVIDIA_MIG_MONITOR_DEVICES=All",
            "NVIDIA_VISIBLE_DEVICES=0",
            "nvidia-cap12 nvidia-cap13 nvidia-cap14 nvidia-cap2 \n",
            "nvidia-cap2'",
        ),
    ];
    for (mig, gpus, want, global) in cases {
        let mut b = gpu_bundle(&script, "debian", &[gpus, mig]);
        privileged(&mut b);
        let out = b.run_ok(&unique("gpu"));
        assert!(out.starts_with(want), "{mig}: want {want:?}: {out}");
        for allowed in [global, "nvidia-cap14'"] {
            let line = format!("{allowed}: No such device or address");
            assert!(out.contains(&line), "{mig}: {allowed} not allowed: {out}");
        }
        // GPU minor 0 is not MIG-capable: its minors are not given.
        assert!(out.contains("nvidia-cap150': No such file"), "{mig}: {out}");
    }
    // A GPU without MIG: nothing, and the log says so.
    let mut b = gpu_bundle(
        CAPS,
        "debian",
        &["NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_MIG_CONFIG_DEVICES=all"],
    );
    privileged(&mut b);
    let (out, log) = run_with_log(&b);
    assert_eq!(out, "\n");
    assert!(
        log.contains("none of the container's GPUs is MIG-capable"),
        "{log}"
    );
    Ok(())
}

/// The toolkit's refusals: an unprivileged container, MIG devices, a
/// device list.
fn mig_administration_refusals_fail_create() -> TestResult {
    can_run()?;
    let cases: [(&[&str], bool, &str); 4] = [
        (
            &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_CONFIG_DEVICES=all"],
            false,
            "CAP_SYS_ADMIN",
        ),
        (
            &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_MONITOR_DEVICES=all"],
            false,
            "NVIDIA_MIG_MONITOR_DEVICES=all: MIG administration is for privileged containers",
        ),
        (
            &[
                "NVIDIA_VISIBLE_DEVICES=0:0",
                "NVIDIA_MIG_CONFIG_DEVICES=all",
            ],
            true,
            "not with MIG devices",
        ),
        (
            &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_MONITOR_DEVICES=0"],
            true,
            "\"0\" is not supported",
        ),
    ];
    for (vars, is_privileged, want) in cases {
        let mut b = gpu_bundle("true", "debian", vars);
        if is_privileged {
            privileged(&mut b);
        }
        let err = run_fail(&b);
        assert!(err.contains(want), "{vars:?}: {err}");
    }
    Ok(())
}

crate::harness::tests![
    each_feature_gives_exactly_its_nodes,
    features_not_enabled_give_nothing,
    a_host_without_the_nodes_gets_a_warning,
    mig_administration_goes_to_privileged_containers,
    mig_administration_refusals_fail_create,
];
