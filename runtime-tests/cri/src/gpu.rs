//! NVIDIA's k8s-device-plugin inputs, with no NVIDIA toolkit on the node,
//! on the fake driver (runtime-tests/gpu/make-fake-driver.sh: index 0 is
//! /dev/nvidia1, GPU-1111…; index 1 is /dev/nvidia0, GPU-aaaa…). Each
//! device-list strategy of the plugin, the CDI edits containerd applies
//! itself (cdi-cri), IMEX channels, and the toolkit's rule that an
//! unprivileged pod's own NVIDIA_VISIBLE_DEVICES is not trusted.

use crate::cri::{self, Cri, Res};
use crate::lifecycle::Pod;
use crate::Report;
use k8s_cri::v1::*;

pub struct Ctx {
    /// The fake driver's root (the config file's driver-root).
    pub root: String,
    /// A second handler: vessel with a config file that refuses the env
    /// var from unprivileged containers.
    pub strict_handler: Option<String>,
}

const UUID0: &str = "GPU-11111111-2222-3333-4444-555555555555";
const UUID1: &str = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const VOLUME_ROOT: &str = "/var/run/nvidia-container-devices";
const GPUS: &str = "ls /dev | grep -E '^nvidia[0-9]+$' | sort | tr '\\n' ' '";

fn env(cfg: &mut ContainerConfig, key: &str, value: &str) {
    cfg.envs.push(KeyValue {
        key: key.into(),
        value: value.into(),
    });
}

/// The plugin's `volume-mounts` strategy: /dev/null bound at a path that
/// names the device.
fn volume_mount(cfg: &mut ContainerConfig, id: &str) {
    cfg.mounts.push(Mount {
        container_path: format!("{VOLUME_ROOT}/{id}"),
        host_path: "/dev/null".into(),
        readonly: true,
        ..Default::default()
    });
}

/// What containerd (1.7+, `enable_cdi`) leaves in the spec after applying
/// the CDI spec of `nvidia.com/gpu=0` itself: the nodes and the spec's env.
fn cdi_applied(cfg: &mut ContainerConfig, root: &str) {
    for n in ["nvidia1", "nvidiactl"] {
        cfg.devices.push(Device {
            container_path: format!("/dev/{n}"),
            host_path: format!("{root}/dev/{n}"),
            permissions: "rwm".into(),
        });
    }
    env(cfg, "NVIDIA_VISIBLE_DEVICES", "void");
}

struct Case {
    name: &'static str,
    edit: Box<dyn Fn(&mut ContainerConfig)>,
    privileged: bool,
    /// The GPU nodes the container must see, space-separated, sorted.
    want: &'static str,
    /// An extra check inside the container.
    also: Option<&'static str>,
}

fn cases(ctx: &Ctx) -> Vec<Case> {
    let root = ctx.root.clone();
    let root2 = ctx.root.clone();
    vec![
        Case {
            name: "envvar strategy, by UUID: only that GPU",
            edit: Box::new(|c| env(c, "NVIDIA_VISIBLE_DEVICES", UUID1)),
            privileged: false,
            want: "nvidia0 ",
            also: None,
        },
        Case {
            name: "envvar strategy, by index: only that GPU",
            edit: Box::new(|c| env(c, "NVIDIA_VISIBLE_DEVICES", "0")),
            privileged: false,
            want: "nvidia1 ",
            also: Some("test -c /dev/nvidiactl && test -c /dev/nvidia-uvm"),
        },
        Case {
            name: "volume-mounts strategy: the GPU named by the mount",
            edit: Box::new(|c| {
                env(c, "NVIDIA_VISIBLE_DEVICES", VOLUME_ROOT);
                volume_mount(c, UUID0);
            }),
            privileged: false,
            want: "nvidia1 ",
            also: None,
        },
        Case {
            name: "cdi-annotations strategy: resolved through the CDI spec",
            edit: Box::new(|c| {
                c.annotations.insert(
                    "cdi.k8s.io/nvidia-device-plugin_0a1b".into(),
                    "k8s.device-plugin.nvidia.com/gpu=1".into(),
                );
            }),
            privileged: false,
            want: "nvidia0 ",
            also: None,
        },
        Case {
            name: "cdi-cri strategy: containerd's CDI edits kept, nothing added",
            edit: Box::new(move |c| cdi_applied(c, &root)),
            privileged: false,
            want: "nvidia1 ",
            // Opening a fake node the device cgroup allows fails with
            // ENXIO (no driver), one it denies with EPERM.
            also: Some("cat /dev/nvidia1 2>&1 | grep -q 'No such device or address'"),
        },
        Case {
            name: "cdi-cri and envvar together: the same GPU once, allowed",
            edit: Box::new(move |c| {
                cdi_applied(c, &root2);
                env(c, "NVIDIA_VISIBLE_DEVICES", UUID0);
            }),
            privileged: false,
            want: "nvidia1 ",
            also: Some("cat /dev/nvidia1 2>&1 | grep -q 'No such device or address'"),
        },
        Case {
            name: "NVIDIA_IMEX_CHANNELS: the channel asked for",
            edit: Box::new(|c| {
                env(c, "NVIDIA_VISIBLE_DEVICES", "0");
                env(c, "NVIDIA_IMEX_CHANNELS", "1");
            }),
            privileged: false,
            want: "nvidia1 ",
            also: Some("test -c /dev/nvidia-caps-imex-channels/channel1 && ! test -e /dev/nvidia-caps-imex-channels/channel0"),
        },
    ]
}

fn strict_cases() -> Vec<Case> {
    vec![
        Case {
            name: "strict policy: an unprivileged pod's NVIDIA_VISIBLE_DEVICES=all gets no GPU",
            edit: Box::new(|c| env(c, "NVIDIA_VISIBLE_DEVICES", "all")),
            privileged: false,
            want: "",
            also: None,
        },
        Case {
            name: "strict policy: a privileged pod keeps NVIDIA_VISIBLE_DEVICES=all",
            edit: Box::new(|c| env(c, "NVIDIA_VISIBLE_DEVICES", "all")),
            privileged: true,
            want: "nvidia0 nvidia1 ",
            also: None,
        },
        Case {
            name: "strict policy: no CDI name through an unprivileged pod's env",
            edit: Box::new(|c| env(c, "NVIDIA_VISIBLE_DEVICES", "nvidia.com/gpu=all")),
            privileged: false,
            want: "",
            also: None,
        },
        Case {
            name: "strict policy: the volume-mounts strategy still works",
            edit: Box::new(|c| {
                env(c, "NVIDIA_VISIBLE_DEVICES", VOLUME_ROOT);
                volume_mount(c, UUID1);
            }),
            privileged: false,
            want: "nvidia0 ",
            also: None,
        },
    ]
}

pub async fn run(c: &mut Cri, r: &mut Report, ctx: &Ctx) {
    for case in cases(ctx) {
        r.check(&format!("GPU: {}", case.name), one(c, &case).await);
    }
    let Some(strict) = &ctx.strict_handler else {
        r.skip("GPU: strict policy", "no strict handler registered");
        return;
    };
    let mut node = c.node.clone();
    node.runtime_root = node
        .runtime_root
        .replace(&format!("/{}/", node.handler), &format!("/{strict}/"));
    node.handler = strict.clone();
    let mut sc = match Cri::connect(node).await {
        Ok(sc) => sc,
        Err(e) => {
            r.check("GPU: strict handler", Err(e));
            return;
        }
    };
    for case in strict_cases() {
        r.check(&format!("GPU: {}", case.name), one(&mut sc, &case).await);
    }
}

async fn one(c: &mut Cri, case: &Case) -> Res<()> {
    let mut pod = if case.privileged {
        privileged_pod(c).await?
    } else {
        Pod::start(c, "gpu", false, None).await?
    };
    let res = async {
        let mut cfg = cri::container(&c.node, "cuda", "exec sleep 1000", false);
        (case.edit)(&mut cfg);
        if case.privileged {
            if let Some(sc) = cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
                sc.privileged = true;
            }
        }
        let id = pod.start_container(c, cfg).await?;
        let gpus = c.sh(&id, GPUS).await?;
        if gpus.trim() != case.want.trim() {
            return Err(format!("GPU nodes {gpus:?}, want {:?}", case.want));
        }
        if let Some(check) = case.also {
            c.sh(&id, check).await?;
        }
        Ok(())
    }
    .await;
    let end = pod.end(c).await;
    res.and(end)
}

async fn privileged_pod(c: &mut Cri) -> Res<Pod> {
    let uid = cri::new_uid("gpu-priv");
    let mut config = cri::pod_config(&c.node, "gpu-priv", &uid, false);
    if let Some(sc) = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
    {
        sc.privileged = true;
    }
    crate::host::make_pod_cgroup(&cri::cgroup_parent(&c.node.cgroup_driver, &uid), None)?;
    std::fs::create_dir_all(&config.log_directory).map_err(|e| e.to_string())?;
    let id = c.run_pod(&config).await?;
    Ok(Pod {
        id,
        uid,
        config,
        containers: Vec::new(),
    })
}
