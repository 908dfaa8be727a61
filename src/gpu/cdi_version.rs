//! CDI spec versions (pure): which version a spec's content needs, by the
//! CDI project's own rules (its `specs-go/version.go`: a field or name form
//! is valid only from the version that introduced it), and which version
//! `vessel gpu cdi` writes. A reader rejects a version newer than it knows
//! (Debian 12's podman 4.3 takes up to 0.5.0), and the CDI library rejects
//! a spec that uses a field its stated version lacks.

use super::cdi::CdiSpec;
use super::edits::ContainerEdits;
use crate::error::{Error, Result};

/// The released versions vessel can write, oldest first (0.1.0 and 0.2.0
/// predate the fields every GPU spec uses).
pub const RELEASED: [&str; 6] = ["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0"];

/// What `vessel gpu cdi` writes unless told otherwise.
pub const DEFAULT: &str = "0.7.0";

/// `--cdi-version minimum`: the oldest version the content allows (what
/// NVIDIA's `nvidia-ctk cdi generate` writes).
pub const MINIMUM: &str = "minimum";

fn parse(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.strip_prefix('v').unwrap_or(v).split('.');
    let out = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    it.next().is_none().then_some(out)
}

fn all_edits(spec: &CdiSpec) -> impl Iterator<Item = &ContainerEdits> {
    std::iter::once(&spec.container_edits).chain(spec.devices.iter().map(|d| &d.container_edits))
}

/// The oldest version with everything `spec` uses, and the feature that
/// needs it (None at the oldest).
pub fn minimum_required(spec: &CdiSpec) -> (&'static str, Option<&'static str>) {
    let any = |f: fn(&ContainerEdits) -> bool| all_edits(spec).any(f);
    if any(|e| e.intel_rdt.is_some() || !e.additional_gids.is_empty()) {
        return ("0.7.0", Some("intelRdt or additionalGIDs"));
    }
    let class = spec.kind.split_once('/').map_or("", |(_, c)| c);
    if !spec.annotations.is_empty()
        || spec.devices.iter().any(|d| !d.annotations.is_empty())
        || class.contains('.')
    {
        return ("0.6.0", Some("annotations, or a '.' in the class"));
    }
    let digit_name = spec
        .devices
        .iter()
        .any(|d| !d.name.starts_with(|c: char| c.is_ascii_alphabetic()));
    if digit_name || any(|e| e.device_nodes.iter().any(|n| n.host_path.is_some())) {
        return (
            "0.5.0",
            Some("device names that start with a digit, or device nodes' hostPath"),
        );
    }
    if any(|e| e.mounts.iter().any(|m| m.typ.is_some())) {
        return ("0.4.0", Some("mount types"));
    }
    ("0.3.0", None)
}

/// The version to write for `asked` (a released version or `minimum`): an
/// error names the problem when it is unknown or too old for the content.
pub fn choose(spec: &CdiSpec, asked: &str) -> Result<String> {
    let (min, why) = minimum_required(spec);
    if asked == MINIMUM {
        return Ok(min.to_string());
    }
    let released = RELEASED.join(", ");
    let want = parse(asked)
        .filter(|v| RELEASED.iter().any(|r| parse(r) == Some(*v)))
        .ok_or_else(|| {
            Error::invalid(format!(
                "--cdi-version {asked}: not a CDI version vessel writes (one of {released}, or {MINIMUM})"
            ))
        })?;
    if want < parse(min).unwrap_or_default() {
        return Err(Error::invalid(format!(
            "--cdi-version {asked}: this spec needs CDI {min} ({}); a reader that takes only {asked} cannot read it",
            why.unwrap_or_default()
        )));
    }
    Ok(format!("{}.{}.{}", want.0, want.1, want.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::cdi::CdiDevice;
    use crate::gpu::edits::{CdiMount, DeviceNode};

    fn spec(name: &str) -> CdiSpec {
        CdiSpec {
            cdi_version: String::new(),
            kind: "nvidia.com/gpu".into(),
            annotations: Default::default(),
            devices: vec![CdiDevice {
                name: name.into(),
                annotations: Default::default(),
                container_edits: ContainerEdits::default(),
            }],
            container_edits: ContainerEdits::default(),
        }
    }

    #[test]
    fn each_feature_raises_the_minimum_as_the_cdi_library_does() {
        let mut s = spec("gpu");
        assert_eq!(minimum_required(&s).0, "0.3.0");
        s.container_edits.mounts.push(CdiMount {
            host_path: "/a".into(),
            container_path: "/a".into(),
            options: vec![],
            typ: Some("bind".into()),
        });
        assert_eq!(minimum_required(&s).0, "0.4.0");
        s.devices[0].name = "0".into();
        assert_eq!(minimum_required(&s).0, "0.5.0");
        let mut host_path = spec("gpu");
        host_path.devices[0]
            .container_edits
            .device_nodes
            .push(DeviceNode {
                path: "/dev/x".into(),
                host_path: Some("/dev/x".into()),
                ..Default::default()
            });
        assert_eq!(minimum_required(&host_path).0, "0.5.0");
        s.kind = "nvidia.com/gpu.x".into();
        assert_eq!(minimum_required(&s).0, "0.6.0");
        s.devices[0].container_edits.additional_gids.push(44);
        assert_eq!(minimum_required(&s).0, "0.7.0");
    }

    #[test]
    fn the_version_asked_for_is_written_or_refused_with_the_reason() {
        let s = spec("0");
        assert_eq!(choose(&s, DEFAULT).unwrap(), "0.7.0");
        assert_eq!(choose(&s, "0.5.0").unwrap(), "0.5.0");
        assert_eq!(choose(&s, "v0.8.0").unwrap(), "0.8.0");
        assert_eq!(choose(&s, MINIMUM).unwrap(), "0.5.0");
        let e = choose(&s, "0.4.0").unwrap_err().to_string();
        assert!(e.contains("needs CDI 0.5.0") && e.contains("digit"), "{e}");
        for bad in ["0.9.0", "1", "0.5", "latest", "0.5.0.1"] {
            let e = choose(&s, bad).unwrap_err().to_string();
            assert!(
                e.contains("not a CDI version") && e.contains("0.8.0"),
                "{bad}: {e}"
            );
        }
    }
}
