//! The prestart hooks Docker (`--gpus`) and ctr (`--gpus`) add, read as a
//! GPU request and taken out of the spec so they never run.

use super::Caps;
use oci_spec::runtime::{Hook, Spec};

/// A Docker or ctr GPU hook, translated: (device list, caps, requires).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HookRequest {
    pub devices: Option<String>,
    pub caps: Option<Caps>,
    pub requires: Vec<String>,
    pub what: &'static str,
}

fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Recognises the GPU hooks engines add; None for any other hook.
pub fn gpu_hook(hook: &Hook) -> Option<HookRequest> {
    let path = hook.path().to_string_lossy();
    let args: &[String] = hook.args().as_deref().unwrap_or(&[]);
    if is_docker_hook(&path, args) {
        return Some(HookRequest {
            what: "Docker's --gpus hook (nvidia-container-runtime-hook)",
            ..Default::default()
        });
    }
    ctr_hook(args)
}

/// Docker's hook: the toolkit's hook binary, run for `prestart`. It asks
/// for nothing itself: the request is in the container's env.
fn is_docker_hook(path: &str, args: &[String]) -> bool {
    matches!(
        base_name(path),
        "nvidia-container-runtime-hook" | "nvidia-container-toolkit"
    ) && args.iter().any(|a| a == "prestart")
}

/// ctr's hook, `containerd oci-hook -- nvidia-container-cli [..] configure
/// [flags] {{rootfs}}`: the request is in configure's flags.
fn ctr_hook(args: &[String]) -> Option<HookRequest> {
    let cli = args
        .iter()
        .position(|a| base_name(a) == "nvidia-container-cli")?;
    let rest = &args[cli + 1..];
    let configure = rest.iter().position(|a| a == "configure")?;
    Some(configure_flags(&rest[configure + 1..]))
}

/// `nvidia-container-cli configure`'s `--device=`, `--require=` and
/// `--<capability>` flags; the others (`--pid=`, the rootfs) are not ours.
fn configure_flags(flags: &[String]) -> HookRequest {
    let mut req = HookRequest {
        what: "ctr's --gpus hook (nvidia-container-cli configure)",
        ..Default::default()
    };
    let mut caps = Caps::default();
    let mut any_cap = false;
    for a in flags {
        if let Some(d) = a.strip_prefix("--device=") {
            req.devices = Some(d.to_string());
        } else if let Some(r) = a.strip_prefix("--require=") {
            req.requires.push(r.to_string());
        } else if let Some(c) = a.strip_prefix("--").and_then(Caps::named) {
            caps = caps | c;
            any_cap = true;
        }
    }
    req.caps = any_cap.then_some(caps);
    req
}

/// True when a prestart hook of `spec` is an engine's GPU hook; reads the
/// spec in place, without allocating (every container start asks).
pub(super) fn has_gpu_hook(spec: &Spec) -> bool {
    spec.hooks()
        .as_ref()
        .and_then(|h| h.prestart().as_ref())
        .is_some_and(|l| l.iter().any(|h| gpu_hook(h).is_some()))
}

/// Removes the engines' GPU hooks from `spec` and returns what they asked.
pub fn take_gpu_hooks(spec: &mut Spec) -> Vec<HookRequest> {
    let mut found = Vec::new();
    // Every container start comes here: copy the hooks only to edit them.
    let has_gpu_hook = has_gpu_hook(spec);
    let Some(mut hooks) = spec.hooks().clone().filter(|_| has_gpu_hook) else {
        return found;
    };
    if let Some(list) = hooks.prestart().clone() {
        let mut keep = Vec::new();
        for h in list {
            match gpu_hook(&h) {
                Some(r) => found.push(r),
                None => keep.push(h),
            }
        }
        hooks.set_prestart(Some(keep));
        spec.set_hooks(Some(hooks));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::request::{parse, DeviceRef, Devices, Inputs, Policy};

    #[test]
    fn engine_hooks_are_recognised() {
        let docker: Hook = serde_json::from_str(
            r#"{"path":"/usr/bin/nvidia-container-runtime-hook","args":["nvidia-container-runtime-hook","prestart"]}"#,
        )
        .unwrap();
        assert!(gpu_hook(&docker).is_some());
        let ctr: Hook = serde_json::from_str(
            r#"{"path":"/usr/bin/containerd","args":["containerd","oci-hook","--","/usr/bin/nvidia-container-cli","--load-kmods","configure","--device=1","--compute","--utility","--require=cuda>=11","--pid={{pid}}","{{rootfs}}"]}"#,
        )
        .unwrap();
        let h = gpu_hook(&ctr).unwrap();
        assert_eq!(h.devices.as_deref(), Some("1"));
        assert_eq!(h.caps, Some(Caps::COMPUTE | Caps::UTILITY));
        assert_eq!(h.requires, vec!["cuda>=11"]);
        let hooks = [h];
        let inputs = Inputs {
            hooks: &hooks,
            ..Default::default()
        };
        let r = parse(&inputs, &Policy::default()).unwrap().request.unwrap();
        assert_eq!(r.devices, Some(Devices::List(vec![DeviceRef::Index(1)])));
        let other: Hook = serde_json::from_str(r#"{"path":"/usr/bin/true"}"#).unwrap();
        assert!(gpu_hook(&other).is_none());
    }
}
