//! vessel's configuration file, for what a node needs set that no flag can
//! carry (containerd's runc options pass no extra flags to the runtime):
//! TOML at `$VESSEL_CONFIG`, else `/etc/vessel/config.toml`. A missing
//! file means the defaults; a file that cannot be read or parsed is an
//! error naming the file, the line and the key. It is read only by what
//! needs it (the GPU step, once a container asks for a GPU, and the
//! `vessel gpu` commands), never on the way of a container without one.

use crate::error::{Error, Result};
use crate::gpu::request::Caps;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

/// Where the file is when `VESSEL_CONFIG` does not say.
pub const DEFAULT_PATH: &str = "/etc/vessel/config.toml";

/// The whole file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    #[serde(default)]
    pub gpu: GpuConfig,
}

/// `[gpu]`: where the driver is, and what a container may ask for. The
/// two `accept-*` keys are NVIDIA container toolkit's, with its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GpuConfig {
    /// Libraries, binaries, firmware, config files (default `/`).
    #[serde(deserialize_with = "absolute_path")]
    pub driver_root: Option<PathBuf>,
    /// `/dev` nodes and the driver's `/proc` files (default: driver-root).
    #[serde(deserialize_with = "absolute_path")]
    pub dev_root: Option<PathBuf>,
    /// CDI spec directories, in increasing priority.
    #[serde(deserialize_with = "absolute_paths")]
    pub cdi_spec_dirs: Option<Vec<PathBuf>>,
    /// The capabilities of a request without `NVIDIA_DRIVER_CAPABILITIES`.
    #[serde(deserialize_with = "capabilities")]
    pub default_capabilities: Option<Caps>,
    pub accept_nvidia_visible_devices_envvar_when_unprivileged: bool,
    pub accept_nvidia_visible_devices_as_volume_mounts: bool,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            driver_root: None,
            dev_root: None,
            cdi_spec_dirs: None,
            default_capabilities: None,
            accept_nvidia_visible_devices_envvar_when_unprivileged: true,
            accept_nvidia_visible_devices_as_volume_mounts: false,
        }
    }
}

/// `$VESSEL_CONFIG` when set and not empty, else [`DEFAULT_PATH`].
pub fn path_from_env() -> PathBuf {
    std::env::var_os("VESSEL_CONFIG")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// The file at `path`; None when there is none (the defaults apply).
pub fn load(path: &Path) -> Result<Option<Config>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading the config file", path, e)),
    }
}

/// `text`, the contents of the file at `path` (named in errors).
pub fn parse(path: &Path, text: &str) -> Result<Config> {
    toml::from_str(text).map_err(|e| parse_error(path, text, &e))
}

/// One line saying where and what: the file, the line and column, the
/// line's text (which has the key, whatever toml's message says), and
/// toml's message.
fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    // toml's message can run over lines; a log line is one.
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let Some(span) = e.span() else {
        return Error::invalid(format!("config file {}: {message}", path.display()));
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let source = text.lines().nth(line - 1).unwrap_or("").trim();
    Error::invalid(format!(
        "config file {}: line {line}, column {column} (`{source}`): {message}",
        path.display()
    ))
}

/// An absolute path: a relative one would depend on the directory the
/// engine starts vessel in.
fn checked_absolute<E: serde::de::Error>(p: PathBuf) -> std::result::Result<PathBuf, E> {
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(E::custom(format!(
            "{:?} is not an absolute path",
            p.display()
        )))
    }
}

fn absolute_path<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<PathBuf>, D::Error> {
    checked_absolute(PathBuf::deserialize(d)?).map(Some)
}

fn absolute_paths<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<PathBuf>>, D::Error> {
    Vec::<PathBuf>::deserialize(d)?
        .into_iter()
        .map(checked_absolute)
        .collect::<std::result::Result<_, _>>()
        .map(Some)
}

fn capabilities<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Caps>, D::Error> {
    let text = String::deserialize(d)?;
    if text.split(',').all(|w| w.trim().is_empty()) {
        return Err(serde::de::Error::custom(
            "no capability named (for example \"utility,compute\")",
        ));
    }
    Caps::parse_named(&text, "default-capabilities")
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Config> {
        parse(Path::new("/etc/vessel/config.toml"), text)
    }

    #[test]
    fn an_empty_file_and_a_missing_one_mean_the_defaults() {
        assert_eq!(parsed("").unwrap(), Config::default());
        assert_eq!(parsed("[gpu]\n").unwrap(), Config::default());
        let gpu = Config::default().gpu;
        assert!(gpu.accept_nvidia_visible_devices_envvar_when_unprivileged);
        assert!(!gpu.accept_nvidia_visible_devices_as_volume_mounts);
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load(&tmp.path().join("none.toml")).unwrap(), None);
    }

    #[test]
    fn every_key_is_read() {
        let c = parsed(
            r#"
[gpu]
driver-root = "/run/nvidia/driver"
dev-root = "/"
cdi-spec-dirs = ["/etc/cdi", "/var/run/cdi"]
default-capabilities = "utility,compute,video"
accept-nvidia-visible-devices-envvar-when-unprivileged = false
accept-nvidia-visible-devices-as-volume-mounts = true
"#,
        )
        .unwrap();
        let g = c.gpu;
        assert_eq!(
            g.driver_root.as_deref(),
            Some(Path::new("/run/nvidia/driver"))
        );
        assert_eq!(g.dev_root.as_deref(), Some(Path::new("/")));
        assert_eq!(
            g.cdi_spec_dirs,
            Some(vec![
                PathBuf::from("/etc/cdi"),
                PathBuf::from("/var/run/cdi")
            ])
        );
        assert_eq!(
            g.default_capabilities,
            Some(Caps::UTILITY | Caps::COMPUTE | Caps::VIDEO)
        );
        assert!(!g.accept_nvidia_visible_devices_envvar_when_unprivileged);
        assert!(g.accept_nvidia_visible_devices_as_volume_mounts);
    }

    /// Each mistake names the file, the line and the key.
    #[test]
    fn mistakes_name_the_file_the_line_and_the_key() {
        let cases = [
            ("[gpu]\ndriver-rot = \"/x\"\n", "driver-rot", "line 2"),
            (
                "[gpu]\n\naccept-nvidia-visible-devices-as-volume-mounts = \"yes\"\n",
                "accept-nvidia-visible-devices-as-volume-mounts",
                "line 3",
            ),
            (
                "[gpu]\ndriver-root = \"run/nvidia\"\n",
                "driver-root",
                "line 2",
            ),
            (
                "[gpu]\ndefault-capabilities = \"compute,warp\"\n",
                "\"warp\"",
                "line 2",
            ),
            (
                "[gpu]\ndefault-capabilities = \"\"\n",
                "default-capabilities",
                "line 2",
            ),
            (
                "[gpu]\ndefault-capabilities = \" , \"\n",
                "default-capabilities",
                "line 2",
            ),
            ("[gpuu]\n", "gpuu", "line 1"),
            ("[gpu\n", "config.toml", "line 1"),
        ];
        for (text, key, line) in cases {
            let e = parsed(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text:?}: {e}");
            assert!(e.contains(line), "{text:?}: {e}");
            assert!(e.contains("/etc/vessel/config.toml"), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{text:?}: one line: {e}");
        }
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let e = load(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(&tmp.path().display().to_string()), "{e}");
    }
}
