//! CDI (Container Device Interface) specs: read from the spec directories
//! (`/etc/cdi`, then `/var/run/cdi`, which wins), JSON or YAML, and resolved
//! for fully qualified device names into one set of container edits.

use super::edits::ContainerEdits;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The directories searched by default, in increasing priority.
pub const DEFAULT_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CdiSpec {
    pub cdi_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub devices: Vec<CdiDevice>,
    #[serde(default, skip_serializing_if = "ContainerEdits::is_empty")]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CdiDevice {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub container_edits: ContainerEdits,
}

/// The specs found, by kind; later directories replace earlier ones.
#[derive(Debug, Default)]
pub struct Registry {
    specs: Vec<(PathBuf, CdiSpec)>,
    /// Files that could not be read, with why (reported when they matter).
    pub errors: Vec<String>,
}

/// Parses one spec file's text (`.json`, else YAML).
pub fn parse_spec(path: &Path, text: &str) -> std::result::Result<CdiSpec, String> {
    let spec: CdiSpec = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
    };
    let (vendor, class) = spec
        .kind
        .split_once('/')
        .ok_or_else(|| format!("kind {:?} is not vendor/class", spec.kind))?;
    if vendor.is_empty() || class.is_empty() {
        return Err(format!("kind {:?} is not vendor/class", spec.kind));
    }
    if let Some(d) = spec
        .devices
        .iter()
        .find(|d| d.name.is_empty() || d.name.contains('='))
    {
        return Err(format!("device name {:?} is not valid", d.name));
    }
    Ok(spec)
}

impl Registry {
    /// Loads every `.json`, `.yaml` and `.yml` file of `dirs`.
    pub fn load(dirs: &[PathBuf]) -> Registry {
        let mut reg = Registry::default();
        for dir in dirs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "json" || e == "yaml" || e == "yml")
                })
                .collect();
            files.sort();
            for f in files {
                match std::fs::read_to_string(&f)
                    .map_err(|e| e.to_string())
                    .and_then(|t| parse_spec(&f, &t))
                {
                    Ok(spec) => reg.specs.push((f, spec)),
                    Err(e) => reg.errors.push(format!("{}: {e}", f.display())),
                }
            }
        }
        reg
    }

    pub fn has_kind(&self, kind: &str) -> bool {
        self.specs.iter().any(|(_, s)| s.kind == kind)
    }

    /// The last-loaded spec that defines `kind=name`.
    fn find(&self, kind: &str, name: &str) -> Option<(usize, &CdiDevice)> {
        self.specs
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, (_, s))| s.kind == kind)
            .find_map(|(i, (_, s))| s.devices.iter().find(|d| d.name == name).map(|d| (i, d)))
    }

    /// The device called `name` (in any case: UUIDs are hex) in a spec of
    /// one of `kinds`, the last-loaded one, with the file that has it.
    pub fn device_in(&self, kinds: &[&str], name: &str) -> Option<(&Path, &CdiDevice)> {
        self.specs
            .iter()
            .rev()
            .filter(|(_, s)| kinds.contains(&s.kind.as_str()))
            .find_map(|(p, s)| {
                s.devices
                    .iter()
                    .find(|d| d.name.eq_ignore_ascii_case(name))
                    .map(|d| (p.as_path(), d))
            })
    }

    /// Every device name, fully qualified.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .specs
            .iter()
            .flat_map(|(_, s)| {
                s.devices
                    .iter()
                    .map(move |d| format!("{}={}", s.kind, d.name))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The edits for these devices: each spec's common edits once, then
    /// each device's own.
    pub fn resolve(&self, names: &[String]) -> Result<ContainerEdits> {
        let mut edits = ContainerEdits::default();
        let mut used = Vec::new();
        for full in names {
            let (kind, name) = full.split_once('=').unwrap_or((full, ""));
            let Some((i, dev)) = self.find(kind, name) else {
                let mut msg = format!("CDI device {full:?} not found");
                if !self.has_kind(kind) {
                    msg.push_str(&format!(
                        " (no CDI spec of kind {kind:?} in the spec directories"
                    ));
                } else {
                    msg.push_str(&format!(" (known: {}", self.names().join(", ")));
                }
                if !self.errors.is_empty() {
                    msg.push_str(&format!("; unreadable specs: {}", self.errors.join("; ")));
                }
                msg.push(')');
                return Err(Error::invalid(msg));
            };
            if !used.contains(&i) {
                used.push(i);
                edits.extend(&self.specs[i].1.container_edits);
            }
            edits.extend(&dev.container_edits);
        }
        Ok(edits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_and_json_and_later_dirs_win() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(
            a.path().join("x.yaml"),
            "cdiVersion: \"0.6.0\"\nkind: example.com/dev\ncontainerEdits:\n  env: [COMMON=1]\ndevices:\n  - name: one\n    containerEdits:\n      env: [WHO=a]\n",
        )
        .unwrap();
        std::fs::write(
            b.path().join("y.json"),
            r#"{"cdiVersion":"0.6.0","kind":"example.com/dev","devices":[{"name":"one","containerEdits":{"env":["WHO=b"]}}]}"#,
        )
        .unwrap();
        std::fs::write(
            b.path().join("broken.yaml"),
            "cdiVersion: 1\nkind: x\nbogus: 2\n",
        )
        .unwrap();
        let reg = Registry::load(&[a.path().into(), b.path().into()]);
        assert_eq!(reg.errors.len(), 1, "{:?}", reg.errors);
        let e = reg.resolve(&["example.com/dev=one".into()]).unwrap();
        assert_eq!(e.env, vec!["WHO=b"]);
        let reg_a = Registry::load(&[a.path().into()]);
        let e = reg_a.resolve(&["example.com/dev=one".into()]).unwrap();
        assert_eq!(e.env, vec!["COMMON=1", "WHO=a"]);
        let err = reg
            .resolve(&["example.com/dev=two".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("example.com/dev=one") && err.contains("broken.yaml"),
            "{err}"
        );
    }
}
