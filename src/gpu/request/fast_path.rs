//! The check every container start makes first: does the spec ask for a
//! GPU at all? Most do not, and they should pay nothing for GPU support.

use super::env::{env_value, spec_env};
use super::hooks::has_gpu_hook;
use super::policy::is_device_mount;
use super::Caps;
use crate::error::Result;
use oci_spec::runtime::Spec;

/// True when the spec asks for no GPU at all, whatever the node's policy,
/// decided without allocating and without touching the host (the config
/// file included): `NVIDIA_VISIBLE_DEVICES` unset, empty or `void` (its
/// last definition, as `parse` reads it), no `cdi.k8s.io/` annotation, no
/// device plugin mount and no engine GPU hook. False means "maybe":
/// `take_gpu_hooks` and `from_spec` decide. The errors are those
/// `from_spec` gives such a spec (an unknown `NVIDIA_DRIVER_CAPABILITIES`
/// name), so skipping the rest changes nothing.
pub fn nothing_asked(spec: &Spec) -> Result<bool> {
    let env = spec_env(spec);
    if env_value(env, "NVIDIA_VISIBLE_DEVICES").is_some_and(|v| !matches!(v.trim(), "" | "void")) {
        return Ok(false);
    }
    if spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.keys().any(|k| k.starts_with("cdi.k8s.io/")))
    {
        return Ok(false);
    }
    if has_gpu_hook(spec) {
        return Ok(false);
    }
    if spec
        .mounts()
        .as_ref()
        .is_some_and(|m| m.iter().any(is_device_mount))
    {
        return Ok(false);
    }
    if let Some(v) = env_value(env, "NVIDIA_DRIVER_CAPABILITIES").filter(|v| !v.trim().is_empty()) {
        Caps::parse(v)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::request::{from_spec, take_gpu_hooks, Policy, VOLUME_MOUNTS_ROOT};

    const ENVS: &[&[&str]] = &[
        &[],
        &["PATH=/bin"],
        &["NVIDIA_VISIBLE_DEVICES="],
        &["NVIDIA_VISIBLE_DEVICES=void"],
        &["NVIDIA_VISIBLE_DEVICES= void "],
        &["NVIDIA_VISIBLE_DEVICES=void,void"],
        &["NVIDIA_VISIBLE_DEVICES=all"],
        &["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=void"],
        &["NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_VISIBLE_DEVICES=0"],
        &["NVIDIA_VISIBLE_DEVICES=none"],
        &["NVIDIA_VISIBLE_DEVICES=gpu0"],
        &["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"],
        &["NVIDIA_DRIVER_CAPABILITIES=compute"],
        &["NVIDIA_DRIVER_CAPABILITIES=warp"],
        &["NVIDIA_DRIVER_CAPABILITIES="],
        &[
            "NVIDIA_VISIBLE_DEVICES=void",
            "NVIDIA_DRIVER_CAPABILITIES=warp",
        ],
        &["CUDA_VERSION=12.2.0", "NVIDIA_REQUIRE_CUDA=cuda>=12"],
        &["NVIDIA_IMEX_CHANNELS=0"],
        &["NVIDIA_IMEX_CHANNELS=bad"],
        &["NVIDIA_VISIBLE_DEVICES=/var/run/nvidia-container-devices"],
        // Read with a GPU request only: nothing without one.
        &["NVIDIA_MIG_CONFIG_DEVICES=all", "NVIDIA_GDS=enabled"],
        &["NVIDIA_MIG_MONITOR_DEVICES=0"],
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_CONFIG_DEVICES=all"],
    ];

    const ANNOTATIONS: &[&[(&str, &str)]] = &[
        &[],
        &[("org.example", "x")],
        &[("cdi.k8s.io/gpu", "nvidia.com/gpu=0")],
        &[("cdi.k8s.io/empty", "")],
        &[("cdi.k8s.io/bad", "gpu0")],
    ];

    const HOOKS: &[Option<&str>] = &[
        None,
        Some(r#"{"prestart":[{"path":"/usr/bin/true"}]}"#),
        Some(
            r#"{"prestart":[{"path":"/usr/bin/nvidia-container-runtime-hook","args":["nvidia-container-runtime-hook","prestart"]}]}"#,
        ),
    ];

    /// No mount, a device plugin's GPU mount, its IMEX mount.
    fn mounts() -> [Option<String>; 3] {
        let bind = |id: &str| {
            format!(
                r#"[{{"destination":"{VOLUME_MOUNTS_ROOT}/{id}","source":"/dev/null","type":"bind"}}]"#
            )
        };
        [None, Some(bind("0")), Some(bind("imex/0"))]
    }

    /// A spec of these parts; `privileged`: CAP_SYS_ADMIN in its bounding set.
    fn spec_of(
        env: &[&str],
        annotations: &[(&str, &str)],
        hook: Option<&str>,
        mounts: Option<&str>,
        privileged: bool,
    ) -> Spec {
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_env(Some(env.iter().map(|s| s.to_string()).collect()));
        if privileged {
            let mut caps = process.capabilities().clone().unwrap_or_default();
            caps.set_bounding(Some([oci_spec::runtime::Capability::SysAdmin].into()));
            process.set_capabilities(Some(caps));
        }
        spec.set_process(Some(process));
        spec.set_annotations(Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        spec.set_hooks(hook.map(|h| serde_json::from_str(h).unwrap()));
        if let Some(m) = mounts {
            spec.set_mounts(Some(serde_json::from_str(m).unwrap()));
        }
        spec
    }

    /// The shortcut agrees with the full parse, under every policy:
    /// whenever it says "nothing", take_gpu_hooks finds no hook and
    /// from_spec gives None, and it fails exactly where from_spec fails.
    #[test]
    fn nothing_asked_agrees_with_the_full_parse() {
        let policies = [
            Policy::default(),
            Policy {
                envvar_when_unprivileged: false,
                volume_mounts: true,
                ..Policy::default()
            },
        ];
        let mounts = mounts();
        for env in ENVS {
            for ann in ANNOTATIONS {
                for hook in HOOKS {
                    for mount in &mounts {
                        for privileged in [false, true] {
                            let spec = spec_of(env, ann, *hook, mount.as_deref(), privileged);
                            for policy in &policies {
                                let what = format!(
                                    "{env:?} {ann:?} {hook:?} {mount:?} {privileged} {policy:?}"
                                );
                                agrees(&spec, policy, &what);
                            }
                        }
                    }
                }
            }
        }
        // It does say "nothing" for the plain cases.
        assert!(nothing_asked(&Spec::default()).unwrap());
        let void = spec_of(&["NVIDIA_VISIBLE_DEVICES=void"], &[], None, None, false);
        assert!(nothing_asked(&void).unwrap());
    }

    /// One case of the test above.
    fn agrees(spec: &Spec, policy: &Policy, what: &str) {
        let quick = nothing_asked(spec);
        let mut full_spec = spec.clone();
        let taken = take_gpu_hooks(&mut full_spec);
        let full = from_spec(&full_spec, &taken, policy);
        match quick {
            Ok(true) => {
                assert!(taken.is_empty(), "{what}");
                assert_eq!(full.unwrap().request, None, "{what}");
            }
            Ok(false) => {}
            Err(e) => assert_eq!(full.unwrap_err().to_string(), e.to_string(), "{what}"),
        }
    }
}
