//! The check every container start makes first: does the spec ask for a
//! GPU at all? Most do not, and they should pay nothing for GPU support.

use super::env::{env_value, spec_env};
use super::hooks::has_gpu_hook;
use super::Caps;
use crate::error::Result;
use oci_spec::runtime::Spec;

/// True when the spec asks for no GPU at all, decided without allocating
/// and without touching the host: `NVIDIA_VISIBLE_DEVICES` unset, empty or
/// `void` (its last definition, as `parse` reads it), no `cdi.k8s.io/`
/// annotation and no engine GPU hook. False means "maybe": `take_gpu_hooks`
/// and `from_spec` decide. The errors are those `from_spec` gives such a
/// spec (an unknown `NVIDIA_DRIVER_CAPABILITIES` name), so skipping the
/// rest changes nothing.
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
    if let Some(v) = env_value(env, "NVIDIA_DRIVER_CAPABILITIES").filter(|v| !v.trim().is_empty()) {
        Caps::parse(v)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::request::{from_spec, take_gpu_hooks};

    /// The shortcut agrees with the full parse: whenever it says "nothing",
    /// take_gpu_hooks finds no hook and from_spec gives None, and it fails
    /// exactly where from_spec fails.
    #[test]
    fn nothing_asked_agrees_with_the_full_parse() {
        let envs: &[&[&str]] = &[
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
        ];
        let annotations: &[&[(&str, &str)]] = &[
            &[],
            &[("org.example", "x")],
            &[("cdi.k8s.io/gpu", "nvidia.com/gpu=0")],
            &[("cdi.k8s.io/empty", "")],
            &[("cdi.k8s.io/bad", "gpu0")],
        ];
        let hooks = [
            None,
            Some(r#"{"prestart":[{"path":"/usr/bin/true"}]}"#),
            Some(
                r#"{"prestart":[{"path":"/usr/bin/nvidia-container-runtime-hook","args":["nvidia-container-runtime-hook","prestart"]}]}"#,
            ),
        ];
        for env in envs {
            for ann in annotations {
                for hook in &hooks {
                    let mut spec = Spec::default();
                    let mut process = spec.process().clone().unwrap_or_default();
                    process.set_env(Some(env.iter().map(|s| s.to_string()).collect()));
                    spec.set_process(Some(process));
                    spec.set_annotations(Some(
                        ann.iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ));
                    spec.set_hooks(hook.map(|h| serde_json::from_str(h).unwrap()));
                    let what = format!("{env:?} {ann:?} {hook:?}");
                    let quick = nothing_asked(&spec);
                    let mut full_spec = spec.clone();
                    let taken = take_gpu_hooks(&mut full_spec);
                    let full = from_spec(&full_spec, &taken);
                    match quick {
                        Ok(true) => {
                            assert!(taken.is_empty(), "{what}");
                            assert_eq!(full.unwrap(), None, "{what}");
                        }
                        Ok(false) => {}
                        Err(e) => {
                            assert_eq!(full.unwrap_err().to_string(), e.to_string(), "{what}")
                        }
                    }
                }
            }
        }
        // It does say "nothing" for the plain cases.
        let mut spec = Spec::default();
        assert!(nothing_asked(&spec).unwrap());
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_env(Some(vec!["NVIDIA_VISIBLE_DEVICES=void".into()]));
        spec.set_process(Some(process));
        assert!(nothing_asked(&spec).unwrap());
    }
}
