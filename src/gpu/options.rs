//! Where the GPU step looks and what it lets a container ask for. Each
//! setting comes from the first that gives it: a flag (`--gpu-root`), the
//! environment (`VESSEL_GPU_ROOT`, `VESSEL_GPU_DEV_ROOT`,
//! `VESSEL_CDI_SPEC_DIRS`), the `[gpu]` table of the config file, the
//! default. Flags and environment are taken when vessel starts; the file
//! is read by `resolve`, which only a container that asks for a GPU (and
//! the `vessel gpu` commands) gets to.

use super::cdi;
use super::request::Policy;
use crate::config::{self, GpuConfig};
use crate::error::Result;
use std::path::{Path, PathBuf};

/// The flag and environment values, before the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOptions {
    /// `--gpu-root`, else `VESSEL_GPU_ROOT`.
    pub driver_root: Option<PathBuf>,
    /// `VESSEL_GPU_DEV_ROOT`.
    pub dev_root: Option<PathBuf>,
    /// `VESSEL_CDI_SPEC_DIRS` (colon-separated).
    pub cdi_dirs: Option<Vec<PathBuf>>,
    /// `VESSEL_CONFIG`, else `/etc/vessel/config.toml`.
    pub config_path: PathBuf,
}

/// What the GPU step uses, every source applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSettings {
    /// Libraries, binaries, firmware, the host's ld.so.cache.
    pub driver_root: PathBuf,
    /// `/dev` nodes and the driver's `/proc` files (GPU Operator: `/`
    /// while the driver is at `/run/nvidia/driver`).
    pub dev_root: PathBuf,
    /// CDI spec directories, in increasing priority.
    pub cdi_dirs: Vec<PathBuf>,
    pub policy: Policy,
    /// The config file, and whether it was there.
    pub config_path: PathBuf,
    pub config_found: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions::new(None)
    }
}

/// A variable's value when it is set and not empty.
fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl GpuOptions {
    /// `flag` (`--gpu-root`) and the environment.
    pub fn new(flag: Option<PathBuf>) -> GpuOptions {
        let cdi_dirs = std::env::var("VESSEL_CDI_SPEC_DIRS")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.split(':')
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .collect()
            });
        GpuOptions {
            driver_root: flag.or_else(|| env_path("VESSEL_GPU_ROOT")),
            dev_root: env_path("VESSEL_GPU_DEV_ROOT"),
            cdi_dirs,
            config_path: config::path_from_env(),
        }
    }

    /// The settings, with the config file read now; a file that cannot be
    /// read or parsed is an error naming it.
    pub fn resolve(&self) -> Result<GpuSettings> {
        let file = config::load(&self.config_path)?;
        let found = file.is_some();
        let mut settings = self.over(&file.unwrap_or_default().gpu);
        settings.config_found = found;
        Ok(settings)
    }

    /// These values over the file's `[gpu]`, over the defaults. The driver
    /// root defaults to `/`, the dev root to the driver root (and a driver
    /// root from the flag or the environment ignores the file's dev root:
    /// only `VESSEL_GPU_DEV_ROOT` splits it); the CDI
    /// directories to `/etc/cdi` and `/var/run/cdi`, followed (when the
    /// driver root is not `/`) by the same two under it.
    pub fn over(&self, file: &GpuConfig) -> GpuSettings {
        let driver_root = self
            .driver_root
            .clone()
            .or_else(|| file.driver_root.clone())
            .unwrap_or_else(|| PathBuf::from("/"));
        // A driver root from a flag or the environment (a fake driver, a
        // test) brings its own devices: the file's dev root would point
        // back at the real host's.
        let file_dev_root = self
            .driver_root
            .is_none()
            .then(|| file.dev_root.clone())
            .flatten();
        let dev_root = self
            .dev_root
            .clone()
            .or(file_dev_root)
            .unwrap_or_else(|| driver_root.clone());
        let cdi_dirs = self
            .cdi_dirs
            .clone()
            .or_else(|| file.cdi_spec_dirs.clone())
            .unwrap_or_else(|| default_cdi_dirs(&driver_root));
        let defaults = Policy::default();
        GpuSettings {
            driver_root,
            dev_root,
            cdi_dirs,
            policy: Policy {
                envvar_when_unprivileged: file
                    .accept_nvidia_visible_devices_envvar_when_unprivileged,
                volume_mounts: file.accept_nvidia_visible_devices_as_volume_mounts,
                default_caps: file.default_capabilities.unwrap_or(defaults.default_caps),
            },
            config_path: self.config_path.clone(),
            config_found: false,
        }
    }
}

fn default_cdi_dirs(driver_root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = cdi::DEFAULT_DIRS.iter().map(PathBuf::from).collect();
    if driver_root != Path::new("/") {
        dirs.extend(
            cdi::DEFAULT_DIRS
                .iter()
                .map(|d| driver_root.join(d.trim_start_matches('/'))),
        );
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::request::Caps;

    fn options() -> GpuOptions {
        GpuOptions {
            driver_root: None,
            dev_root: None,
            cdi_dirs: None,
            config_path: PathBuf::from("/nonexistent/vessel.toml"),
        }
    }

    #[test]
    fn without_a_file_or_flags_the_defaults_apply() {
        let s = options().resolve().unwrap();
        assert_eq!(s.driver_root, Path::new("/"));
        assert_eq!(s.dev_root, Path::new("/"));
        assert_eq!(
            s.cdi_dirs,
            [Path::new("/etc/cdi"), Path::new("/var/run/cdi")]
        );
        assert_eq!(s.policy, Policy::default());
        assert!(!s.config_found);
    }

    #[test]
    fn flags_and_environment_win_over_the_file() {
        let file = config::parse(
            Path::new("f.toml"),
            "[gpu]\ndriver-root = \"/run/nvidia/driver\"\ndev-root = \"/host\"\ncdi-spec-dirs = [\"/cdi\"]\ndefault-capabilities = \"video\"\n",
        )
        .unwrap()
        .gpu;
        // The file alone.
        let s = options().over(&file);
        assert_eq!(s.driver_root, Path::new("/run/nvidia/driver"));
        assert_eq!(s.dev_root, Path::new("/host"));
        assert_eq!(s.cdi_dirs, [Path::new("/cdi")]);
        assert_eq!(s.policy.default_caps, Caps::VIDEO);
        // Flag and environment over it.
        let o = GpuOptions {
            driver_root: Some("/fake".into()),
            dev_root: Some("/devs".into()),
            cdi_dirs: Some(vec!["/mine".into()]),
            ..options()
        };
        let s = o.over(&file);
        assert_eq!(s.driver_root, Path::new("/fake"));
        assert_eq!(s.dev_root, Path::new("/devs"));
        assert_eq!(s.cdi_dirs, [Path::new("/mine")]);
        // The dev root follows the driver root when nothing names it.
        let s = GpuOptions {
            driver_root: Some("/fake".into()),
            ..options()
        }
        .over(&GpuConfig::default());
        assert_eq!(s.dev_root, Path::new("/fake"));
        assert_eq!(s.cdi_dirs.len(), 4);
        assert!(s.cdi_dirs[3].starts_with("/fake"));
        // ... also over a file's dev root, which names the real host's.
        let s = GpuOptions {
            driver_root: Some("/fake".into()),
            ..options()
        }
        .over(&file);
        assert_eq!(s.dev_root, Path::new("/fake"));
    }

    #[test]
    fn a_bad_file_is_an_error_and_a_good_one_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.toml");
        let o = GpuOptions {
            config_path: path.clone(),
            ..options()
        };
        std::fs::write(
            &path,
            "[gpu]\naccept-nvidia-visible-devices-as-volume-mounts = true\n",
        )
        .unwrap();
        let s = o.resolve().unwrap();
        assert!(s.config_found && s.policy.volume_mounts);
        std::fs::write(&path, "[gpu]\ndev-rot = \"/\"\n").unwrap();
        let e = o.resolve().unwrap_err().to_string();
        assert!(e.contains("dev-rot") && e.contains("line 2"), "{e}");
    }
}
