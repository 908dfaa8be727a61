//! A Kubernetes node's settings, from vessel's config file (`VESSEL_CONFIG`):
//! NVIDIA's device plugin strategies (`envvar`, `volume-mounts`), the
//! toolkit's policy on unprivileged containers, IMEX channels, and a
//! driver whose nodes are under another root (NVIDIA's GPU Operator).

use super::{can_run, fake_root_copy, gpu_bundle, run_fail, NODES};
use crate::harness::{unique, Bundle, TestResult};
use serde_json::json;

const MOUNTS_ROOT: &str = "/var/run/nvidia-container-devices";

/// Index 1 of the fake driver, whose node is /dev/nvidia0.
const SECOND_GPU: &str = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

/// Makes the runtime read `text` as its config file (kept in the bundle).
fn use_config(b: &mut Bundle, text: &str) {
    let path = b.path().join("vessel-config.toml");
    std::fs::write(&path, text).unwrap();
    b.runtime_env.retain(|(k, _)| k != "VESSEL_CONFIG");
    b.runtime_env
        .push(("VESSEL_CONFIG".into(), path.display().to_string()));
}

/// The device plugin's `/dev/null` bind for one device id.
fn mount_device(b: &mut Bundle, id: &str) {
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": format!("{MOUNTS_ROOT}/{id}"), "type": "bind",
        "source": "/dev/null", "options": ["bind"]
    }));
}

fn the_volume_mounts_strategy_gives_exactly_the_mounted_gpus() -> TestResult {
    can_run()?;
    let accept = "[gpu]\naccept-nvidia-visible-devices-as-volume-mounts = true\naccept-nvidia-visible-devices-envvar-when-unprivileged = false\n";
    let plugin_env = format!("NVIDIA_VISIBLE_DEVICES={MOUNTS_ROOT}");
    // (mounted id, the node it must give, the node it must not)
    for (id, want, not) in [
        (SECOND_GPU, "nvidia0 ", "nvidia1 "),
        ("0", "nvidia1 ", "nvidia0 "),
        ("cdi/nvidia.com/gpu=1", "nvidia0 ", "nvidia1 "),
    ] {
        let mut b = gpu_bundle(&format!("{NODES}; gpu-probe"), "debian", &[&plugin_env]);
        use_config(&mut b, accept);
        mount_device(&mut b, id);
        let out = b.run_ok(&unique("gpu"));
        assert!(out.contains("gpus=1"), "{id}: {out}");
        assert!(out.contains(want) && !out.contains(not), "{id}: {out}");
    }
    // The same pod on a node that does not read the mounts: an error that
    // says which setting, not "is not a GPU".
    let mut b = gpu_bundle("true", "debian", &[&plugin_env]);
    mount_device(&mut b, SECOND_GPU);
    let err = run_fail(&b);
    assert!(
        err.contains("accept-nvidia-visible-devices-as-volume-mounts"),
        "{err}"
    );
    assert!(!err.contains("is not a GPU"), "{err}");
    Ok(())
}

fn an_unprivileged_envvar_is_ignored_where_the_node_says_so() -> TestResult {
    can_run()?;
    let strict = "[gpu]\naccept-nvidia-visible-devices-envvar-when-unprivileged = false\n";
    let script = format!("{NODES}; gpu-probe; true");
    let mut b = gpu_bundle(&script, "debian", &["NVIDIA_VISIBLE_DEVICES=all"]);
    use_config(&mut b, strict);
    let out = b.run(&unique("gpu"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{err}");
    assert!(!stdout.contains("nvidia"), "{stdout}");
    assert!(
        err.contains("accept-nvidia-visible-devices-envvar-when-unprivileged"),
        "{err}"
    );
    // CAP_SYS_ADMIN in the bounding set: privileged, the variable is read.
    b.config["process"]["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_SYS_ADMIN"));
    let out = b.run_ok(&unique("gpu"));
    assert!(out.contains("gpus=2"), "{out}");
    assert!(
        out.contains("nvidia0 ") && out.contains("nvidia1 "),
        "{out}"
    );
    Ok(())
}

fn imex_channels_are_the_hosts_nodes() -> TestResult {
    can_run()?;
    let script = "ls /dev/nvidia-caps-imex-channels | tr '\\n' ' '; echo; cat /dev/nvidia-caps-imex-channels/channel1 2>&1; true";
    let gpu = "NVIDIA_VISIBLE_DEVICES=0";
    let out = gpu_bundle(script, "debian", &[gpu, "NVIDIA_IMEX_CHANNELS=1"]).run_ok(&unique("gpu"));
    assert!(out.starts_with("channel1 \n"), "{out}");
    // Allowed by the device cgroup: the open reaches the (absent) driver.
    assert!(out.contains("No such device or address"), "{out}");
    let all =
        gpu_bundle(script, "debian", &[gpu, "NVIDIA_IMEX_CHANNELS=all"]).run_ok(&unique("gpu"));
    assert!(all.starts_with("channel0 channel1 \n"), "{all}");
    // Without a GPU request the variable asks for nothing.
    let none = gpu_bundle("ls /dev", "debian", &["NVIDIA_IMEX_CHANNELS=1"]).run_ok(&unique("gpu"));
    assert!(!none.contains("nvidia"), "{none}");
    // A channel the host lacks: create fails naming its node.
    let err = run_fail(&gpu_bundle(
        "true",
        "debian",
        &[gpu, "NVIDIA_IMEX_CHANNELS=7"],
    ));
    assert!(
        err.contains("dev/nvidia-caps-imex-channels/channel7"),
        "{err}"
    );
    Ok(())
}

fn a_bad_config_file_fails_gpu_containers_only() -> TestResult {
    can_run()?;
    let bad = "[gpu]\ndriver-rot = \"/run/nvidia/driver\"\n";
    let mut gpu = gpu_bundle("true", "debian", &["NVIDIA_VISIBLE_DEVICES=0"]);
    use_config(&mut gpu, bad);
    let err = run_fail(&gpu);
    assert!(
        err.contains("driver-rot") && err.contains("line 2"),
        "{err}"
    );
    // gpu doctor says so, and checks the rest with the defaults.
    let out = gpu.rt(&["gpu", "doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  config file") && report.contains("driver-rot"),
        "{report}"
    );
    assert!(
        report.contains("ok    NVIDIA driver 580.159.04 is loaded"),
        "{report}"
    );
    let mut plain = gpu_bundle("echo ran", "debian", &[]);
    use_config(&mut plain, bad);
    assert_eq!(plain.run_ok(&unique("gpu")), "ran\n");
    Ok(())
}

/// The GPU Operator's layout: the driver's files in one root, its nodes
/// and /proc files in another (the host's), named by the config file.
fn a_driver_whose_nodes_are_under_another_root() -> TestResult {
    can_run()?;
    let driver = fake_root_copy();
    let dev = tempfile::tempdir().unwrap();
    for part in ["dev", "proc"] {
        std::fs::rename(driver.path().join(part), dev.path().join(part)).unwrap();
    }
    let mut b = gpu_bundle(
        &format!("{NODES}; gpu-probe"),
        "debian",
        &["NVIDIA_VISIBLE_DEVICES=all"],
    );
    b.runtime_env.retain(|(k, _)| k != "VESSEL_GPU_ROOT");
    let driver_root = format!("driver-root = {:?}\n", driver.path().display().to_string());
    let dev_root = format!("dev-root = {:?}\n", dev.path().display().to_string());
    use_config(&mut b, &format!("[gpu]\n{driver_root}{dev_root}"));
    let out = b.run_ok(&unique("gpu"));
    assert!(
        out.contains("gpus=2") && out.contains("nvidia-uvm"),
        "{out}"
    );
    // Without the dev root, the driver's root has no driver loaded.
    use_config(&mut b, &format!("[gpu]\n{driver_root}"));
    let err = run_fail(&b);
    assert!(err.contains("no NVIDIA driver"), "{err}");
    Ok(())
}

crate::harness::tests![
    the_volume_mounts_strategy_gives_exactly_the_mounted_gpus,
    an_unprivileged_envvar_is_ignored_where_the_node_says_so,
    imex_channels_are_the_hosts_nodes,
    a_bad_config_file_fails_gpu_containers_only,
    a_driver_whose_nodes_are_under_another_root,
];
