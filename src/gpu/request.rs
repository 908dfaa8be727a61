//! What GPUs a container asks for, from its spec alone (pure): the
//! `NVIDIA_*` variables of `process.env`, `cdi.k8s.io/*` annotations, and
//! the prestart hooks Docker (`--gpus`) and ctr (`--gpus`) add, which are
//! translated into the same request and removed so they never run.

use crate::error::{Error, Result};
use oci_spec::runtime::{Hook, Spec};

/// Driver capabilities (`NVIDIA_DRIVER_CAPABILITIES`), a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps(u8);

impl Caps {
    pub const COMPUTE: Caps = Caps(1);
    pub const COMPAT32: Caps = Caps(2);
    pub const GRAPHICS: Caps = Caps(4);
    pub const UTILITY: Caps = Caps(8);
    pub const VIDEO: Caps = Caps(16);
    pub const DISPLAY: Caps = Caps(32);
    pub const NGX: Caps = Caps(64);
    const ALL_BITS: u8 = 127;
    const NAMES: [(&'static str, Caps); 7] = [
        ("compute", Caps::COMPUTE),
        ("compat32", Caps::COMPAT32),
        ("graphics", Caps::GRAPHICS),
        ("utility", Caps::UTILITY),
        ("video", Caps::VIDEO),
        ("display", Caps::DISPLAY),
        ("ngx", Caps::NGX),
    ];

    pub fn all() -> Caps {
        Caps(Self::ALL_BITS)
    }

    pub fn default_set() -> Caps {
        Caps::UTILITY | Caps::COMPUTE
    }

    pub fn is_all(self) -> bool {
        self.0 == Self::ALL_BITS
    }

    pub fn contains(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: Caps) -> bool {
        self.0 & other.0 != 0
    }

    /// Each single capability.
    pub fn each() -> impl Iterator<Item = Caps> {
        Self::NAMES.into_iter().map(|(_, c)| c)
    }

    /// Parses a comma list; an unknown name is an error naming it.
    pub fn parse(s: &str) -> Result<Caps> {
        let mut caps = Caps(0);
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                return Ok(Caps::all());
            }
            match Self::NAMES.iter().find(|(n, _)| *n == word) {
                Some((_, c)) => caps = caps | *c,
                None => {
                    return Err(Error::invalid(format!(
                        "NVIDIA_DRIVER_CAPABILITIES: unknown capability {word:?} (known: all, {})",
                        Self::NAMES.map(|(n, _)| n).join(", ")
                    )))
                }
            }
        }
        Ok(caps)
    }

    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }
}

impl std::ops::BitOr for Caps {
    type Output = Caps;
    fn bitor(self, o: Caps) -> Caps {
        Caps(self.0 | o.0)
    }
}

/// One entry of a device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    Index(usize),
    Uuid(String),
    BusId(String),
    /// `<gpu>:<mig>`: the mig-th MIG device of GPU index gpu.
    Mig(usize, usize),
    MigUuid(String),
}

/// Which GPUs, from the discovered driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    All,
    /// Driver files and control nodes, no GPU (`none`).
    NoGpu,
    List(Vec<DeviceRef>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    /// GPUs from the driver; None when only CDI devices were asked for.
    pub devices: Option<Devices>,
    /// Fully qualified CDI names (`vendor/class=name`).
    pub cdi: Vec<String>,
    pub caps: Caps,
    /// `NVIDIA_REQUIRE_*` expressions (already empty when disabled).
    pub requires: Vec<String>,
    /// Where the request came from, for messages and `gpu doctor`.
    pub source: String,
}

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    // The last definition wins, as in execve's environment.
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// True for `vendor/class=name`.
pub fn is_cdi_name(s: &str) -> bool {
    let Some((kind, name)) = s.split_once('=') else {
        return false;
    };
    let Some((vendor, class)) = kind.split_once('/') else {
        return false;
    };
    let ok = |p: &str, extra: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    ok(vendor, "-_.") && ok(class, "-_") && ok(name, "-_.:")
}

fn parse_device(s: &str) -> Result<DeviceRef> {
    let bad = || {
        Error::invalid(format!(
            "NVIDIA_VISIBLE_DEVICES: {s:?} is not a GPU (use all, none, void, indexes like 0,1, GPU-<uuid>, <gpu>:<mig>, MIG-<uuid>, a PCI bus id or a CDI name like nvidia.com/gpu=0)"
        ))
    };
    if let Ok(i) = s.parse() {
        return Ok(DeviceRef::Index(i));
    }
    if s.starts_with("GPU-") && s.len() > 4 {
        return Ok(DeviceRef::Uuid(s.to_string()));
    }
    if s.starts_with("MIG-") && s.len() > 4 {
        return Ok(DeviceRef::MigUuid(s.to_string()));
    }
    let parts: Vec<&str> = s.split(':').collect();
    if let [g, m] = parts[..] {
        if let (Ok(g), Ok(m)) = (g.parse(), m.parse()) {
            return Ok(DeviceRef::Mig(g, m));
        }
    }
    // A PCI bus id: [domain:]bus:device.function, hex.
    let hexish = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit() || c == '.');
    if (2..=3).contains(&parts.len()) && parts.iter().all(|p| hexish(p)) && s.contains('.') {
        return Ok(DeviceRef::BusId(s.to_lowercase()));
    }
    Err(bad())
}

/// Splits a device list into driver devices and CDI names.
fn parse_list(list: &str, cdi: &mut Vec<String>) -> Result<Option<Devices>> {
    let words: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    let mut refs = Vec::new();
    let mut any_gpu_word = false;
    for w in &words {
        match *w {
            "all" => return Ok(Some(Devices::All)),
            "none" => any_gpu_word = true,
            "void" => {}
            w if is_cdi_name(w) => cdi.push(w.to_string()),
            w => {
                any_gpu_word = true;
                let r = parse_device(w)?;
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
    }
    Ok(match (any_gpu_word, refs.is_empty()) {
        (false, _) => None,
        (true, true) => Some(Devices::NoGpu),
        (true, false) => Some(Devices::List(refs)),
    })
}

/// The requirement expressions to check, per NVIDIA's rules.
fn requirements(env: &[String]) -> Vec<String> {
    let disabled = env_value(env, "NVIDIA_DISABLE_REQUIRE")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
    if disabled {
        return Vec::new();
    }
    let mut out: Vec<String> = env
        .iter()
        .filter_map(|e| e.split_once('='))
        .filter(|(k, v)| k.starts_with("NVIDIA_REQUIRE_") && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_string())
        .collect();
    let has_cuda_require = env_value(env, "NVIDIA_REQUIRE_CUDA").is_some();
    if !has_cuda_require {
        // Legacy images: CUDA_VERSION=10.1.243 requires cuda>=10.1.
        if let Some(v) = env_value(env, "CUDA_VERSION") {
            let mm: Vec<&str> = v.split('.').take(2).collect();
            if mm.len() == 2 && mm.iter().all(|p| p.parse::<u32>().is_ok()) {
                out.push(format!("cuda>={}.{}", mm[0], mm[1]));
            }
        }
    }
    out
}

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
    let name = base_name(&path);
    if matches!(
        name,
        "nvidia-container-runtime-hook" | "nvidia-container-toolkit"
    ) && args.iter().any(|a| a == "prestart")
    {
        return Some(HookRequest {
            what: "Docker's --gpus hook (nvidia-container-runtime-hook)",
            ..Default::default()
        });
    }
    // ctr: containerd oci-hook -- nvidia-container-cli [..] configure [flags] {{rootfs}}
    let cli = args
        .iter()
        .position(|a| base_name(a) == "nvidia-container-cli")?;
    let rest = &args[cli + 1..];
    let configure = rest.iter().position(|a| a == "configure")?;
    let mut req = HookRequest {
        what: "ctr's --gpus hook (nvidia-container-cli configure)",
        ..Default::default()
    };
    let mut caps = Caps::default();
    let mut any_cap = false;
    for a in &rest[configure + 1..] {
        if let Some(d) = a.strip_prefix("--device=") {
            req.devices = Some(d.to_string());
        } else if let Some(r) = a.strip_prefix("--require=") {
            req.requires.push(r.to_string());
        } else if let Some(c) = a.strip_prefix("--").and_then(|c| Caps::parse(c).ok()) {
            if Caps::NAMES
                .iter()
                .any(|(n, _)| Some(*n) == a.strip_prefix("--"))
            {
                caps = caps | c;
                any_cap = true;
            }
        }
    }
    req.caps = any_cap.then_some(caps);
    Some(req)
}

/// Removes the engines' GPU hooks from `spec` and returns what they asked.
pub fn take_gpu_hooks(spec: &mut Spec) -> Vec<HookRequest> {
    let mut found = Vec::new();
    // Every container start comes here: copy the hooks only to edit them.
    let has_gpu_hook = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.prestart().as_ref())
        .is_some_and(|l| l.iter().any(|h| gpu_hook(h).is_some()));
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

/// True when the spec asks for no GPU at all, decided without allocating
/// and without touching the host: `NVIDIA_VISIBLE_DEVICES` unset, empty or
/// `void` (its last definition, as `parse` reads it), no `cdi.k8s.io/`
/// annotation and no engine GPU hook. False means "maybe": `take_gpu_hooks`
/// and `from_spec` decide. The errors are those `from_spec` gives such a
/// spec (an unknown `NVIDIA_DRIVER_CAPABILITIES` name), so skipping the
/// rest changes nothing.
pub fn nothing_asked(spec: &Spec) -> Result<bool> {
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().as_deref())
        .unwrap_or(&[]);
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
    if spec
        .hooks()
        .as_ref()
        .and_then(|h| h.prestart().as_ref())
        .is_some_and(|l| l.iter().any(|h| gpu_hook(h).is_some()))
    {
        return Ok(false);
    }
    if let Some(v) = env_value(env, "NVIDIA_DRIVER_CAPABILITIES").filter(|v| !v.trim().is_empty()) {
        Caps::parse(v)?;
    }
    Ok(true)
}

/// `parse` of a spec's `process.env` and annotations.
pub fn from_spec(spec: &Spec, hooks: &[HookRequest]) -> Result<Option<GpuRequest>> {
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().as_deref())
        .unwrap_or(&[]);
    let none = std::collections::HashMap::new();
    parse(env, spec.annotations().as_ref().unwrap_or(&none), hooks)
}

/// The container's GPU request; None means no GPU support at all.
pub fn parse(
    env: &[String],
    annotations: &std::collections::HashMap<String, String>,
    hooks: &[HookRequest],
) -> Result<Option<GpuRequest>> {
    let mut cdi = Vec::new();
    let mut sources = Vec::new();
    let mut devices = None;
    if let Some(v) = env_value(env, "NVIDIA_VISIBLE_DEVICES") {
        devices = parse_list(v, &mut cdi)?;
        sources.push(format!("NVIDIA_VISIBLE_DEVICES={v}"));
    }
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with("cdi.k8s.io/"))
        .collect();
    keys.sort();
    for k in keys {
        for name in annotations[k]
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !is_cdi_name(name) {
                return Err(Error::invalid(format!(
                    "annotation {k}: {name:?} is not a fully qualified CDI device name (vendor.com/class=name)"
                )));
            }
            cdi.push(name.to_string());
        }
        sources.push(format!("annotation {k}"));
    }
    let mut caps = match env_value(env, "NVIDIA_DRIVER_CAPABILITIES") {
        Some(v) if !v.trim().is_empty() => Caps::parse(v)?,
        _ => Caps::default_set(),
    };
    let mut requires = requirements(env);
    for h in hooks {
        sources.push(h.what.to_string());
        if let Some(list) = &h.devices {
            let mut ignored = Vec::new();
            if let Some(d) = parse_list(list, &mut ignored)? {
                devices = Some(d);
            }
            cdi.extend(ignored);
        }
        if let Some(c) = h.caps {
            if env_value(env, "NVIDIA_DRIVER_CAPABILITIES").is_none() {
                caps = c;
            }
        }
        requires.extend(h.requires.iter().cloned());
    }
    cdi.dedup();
    if devices.is_none() && cdi.is_empty() {
        return Ok(None);
    }
    Ok(Some(GpuRequest {
        devices,
        cdi,
        caps,
        requires,
        source: sources.join(", "),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req(env: &[&str]) -> Result<Option<GpuRequest>> {
        let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
        parse(&env, &HashMap::new(), &[])
    }

    #[test]
    fn unset_void_and_empty_mean_no_gpu_support() {
        assert_eq!(req(&["PATH=/bin"]).unwrap(), None);
        assert_eq!(req(&["NVIDIA_VISIBLE_DEVICES=void"]).unwrap(), None);
        assert_eq!(req(&["NVIDIA_VISIBLE_DEVICES="]).unwrap(), None);
    }

    #[test]
    fn device_lists_parse_every_form() {
        let r =
            req(&["NVIDIA_VISIBLE_DEVICES=0, GPU-abc,1:2,MIG-x,0000:3B:00.0,nvidia.com/gpu=1,0"])
                .unwrap()
                .unwrap();
        assert_eq!(
            r.devices,
            Some(Devices::List(vec![
                DeviceRef::Index(0),
                DeviceRef::Uuid("GPU-abc".into()),
                DeviceRef::Mig(1, 2),
                DeviceRef::MigUuid("MIG-x".into()),
                DeviceRef::BusId("0000:3b:00.0".into()),
            ]))
        );
        assert_eq!(r.cdi, vec!["nvidia.com/gpu=1".to_string()]);
        assert_eq!(r.caps, Caps::UTILITY | Caps::COMPUTE);
        let none = req(&["NVIDIA_VISIBLE_DEVICES=none"]).unwrap().unwrap();
        assert_eq!(none.devices, Some(Devices::NoGpu));
        let all = req(&["NVIDIA_VISIBLE_DEVICES=all"]).unwrap().unwrap();
        assert_eq!(all.devices, Some(Devices::All));
        let only_cdi = req(&["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=all"])
            .unwrap()
            .unwrap();
        assert_eq!(only_cdi.devices, None);
        assert!(req(&["NVIDIA_VISIBLE_DEVICES=gpu0"])
            .unwrap_err()
            .to_string()
            .contains("\"gpu0\""));
    }

    #[test]
    fn capabilities_parse_and_unknown_ones_are_errors() {
        let r = req(&[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=video,graphics",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(r.caps, Caps::VIDEO | Caps::GRAPHICS);
        let all = req(&["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=all"])
            .unwrap()
            .unwrap();
        assert!(all.caps.is_all());
        let e = req(&[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=compute,warp",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("\"warp\""), "{e}");
    }

    #[test]
    fn requirements_follow_nvidia_rules() {
        let r = req(&[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.0",
            "NVIDIA_REQUIRE_X=driver>=500",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(r.requires, vec!["cuda>=12.0", "driver>=500"]);
        let off = req(&[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_REQUIRE_CUDA=cuda>=99",
            "NVIDIA_DISABLE_REQUIRE=true",
        ])
        .unwrap()
        .unwrap();
        assert!(off.requires.is_empty());
        let legacy = req(&["NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=10.1.243"])
            .unwrap()
            .unwrap();
        assert_eq!(legacy.requires, vec!["cuda>=10.1"]);
    }

    #[test]
    fn annotations_name_cdi_devices() {
        let mut a = HashMap::new();
        a.insert(
            "cdi.k8s.io/gpu".to_string(),
            "nvidia.com/gpu=0,vendor.com/x=y".to_string(),
        );
        let r = parse(&[], &a, &[]).unwrap().unwrap();
        assert_eq!(r.cdi, vec!["nvidia.com/gpu=0", "vendor.com/x=y"]);
        a.insert("cdi.k8s.io/bad".to_string(), "gpu0".to_string());
        assert!(parse(&[], &a, &[]).is_err());
    }

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
        let r = parse(&[], &HashMap::new(), &[h]).unwrap().unwrap();
        assert_eq!(r.devices, Some(Devices::List(vec![DeviceRef::Index(1)])));
        let other: Hook = serde_json::from_str(r#"{"path":"/usr/bin/true"}"#).unwrap();
        assert!(gpu_hook(&other).is_none());
    }
}
