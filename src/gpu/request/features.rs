//! The extras a GPU request may add, read only when there is a request (a
//! container without one pays nothing for them): MIG administration
//! (`NVIDIA_MIG_CONFIG_DEVICES`, `NVIDIA_MIG_MONITOR_DEVICES`) and the
//! feature-gated fabric devices (`NVIDIA_GDS`, `NVIDIA_MOFED`,
//! `NVIDIA_NVSWITCH`, `NVIDIA_GDRCOPY`), with NVIDIA's toolkit's rules.

use super::env::{
    comma_words, env_value, FEATURE_ENABLED, GDRCOPY_ENV, GDS_ENV, MIG_CONFIG_ENV, MIG_MONITOR_ENV,
    MOFED_ENV, NVSWITCH_ENV,
};
use crate::error::{Error, Result};

/// A set of host devices a container gets when it turns the feature on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// GPUDirect Storage: `/dev/nvidia-fs*`, with `/etc/cufile.json`.
    Gds,
    /// RDMA: `/dev/infiniband/uverbs*`, `/dev/infiniband/rdma_cm`.
    Mofed,
    /// `/dev/nvidia-nvswitchctl`, `/dev/nvidia-nvswitch*`.
    NvSwitch,
    /// `/dev/gdrdrv`.
    GdrCopy,
}

impl Feature {
    pub const ALL: [Feature; 4] = [
        Feature::Gds,
        Feature::Mofed,
        Feature::NvSwitch,
        Feature::GdrCopy,
    ];

    /// The variable that turns it on.
    pub fn env_key(self) -> &'static str {
        match self {
            Feature::Gds => GDS_ENV,
            Feature::Mofed => MOFED_ENV,
            Feature::NvSwitch => NVSWITCH_ENV,
            Feature::GdrCopy => GDRCOPY_ENV,
        }
    }
}

/// What the MIG administration variables ask for: the config and monitor
/// capabilities of every MIG-capable GPU the container is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigAdmin {
    /// `NVIDIA_MIG_CONFIG_DEVICES=all`: create and destroy MIG instances.
    pub config: bool,
    /// `NVIDIA_MIG_MONITOR_DEVICES=all`: watch all of a GPU's MIG devices.
    pub monitor: bool,
}

impl MigAdmin {
    pub fn any(self) -> bool {
        self.config || self.monitor
    }

    /// The variables set, as `KEY=all` (for messages).
    pub fn named(self) -> String {
        let mut names = Vec::new();
        if self.config {
            names.push(format!("{MIG_CONFIG_ENV}=all"));
        }
        if self.monitor {
            names.push(format!("{MIG_MONITOR_ENV}=all"));
        }
        names.join(" and ")
    }
}

/// The MIG administration a container asks for. As the toolkit: a value
/// with any word needs a privileged container (its hook refuses the rest),
/// and `all` (any case) is the only word (libnvidia-container knows no
/// other); an empty value asks for nothing.
pub(super) fn mig_admin(env: &[String], privileged: bool) -> Result<MigAdmin> {
    Ok(MigAdmin {
        config: mig_all(env, MIG_CONFIG_ENV, privileged)?,
        monitor: mig_all(env, MIG_MONITOR_ENV, privileged)?,
    })
}

fn mig_all(env: &[String], key: &str, privileged: bool) -> Result<bool> {
    let Some(value) = env_value(env, key) else {
        return Ok(false);
    };
    let mut words = comma_words(value).peekable();
    if words.peek().is_none() {
        return Ok(false);
    }
    if !privileged {
        return Err(Error::invalid(format!(
            "{key}={value}: MIG administration is for privileged containers only (CAP_SYS_ADMIN in the bounding set), as NVIDIA's toolkit requires; run the container privileged or unset {key}"
        )));
    }
    if let Some(bad) = words.find(|w| !w.eq_ignore_ascii_case("all")) {
        return Err(Error::invalid(format!(
            "{key}={value}: {bad:?} is not supported: the value is all (every MIG-capable GPU the container is given), as NVIDIA's toolkit takes it"
        )));
    }
    Ok(true)
}

/// The features turned on, in [`Feature::ALL`] order. Only the exact value
/// `enabled` turns one on, as in the toolkit; a value that looks meant to
/// (`true`, `Enabled`) is named in `ignored` so the log says why nothing
/// came.
pub(super) fn features(env: &[String], ignored: &mut Vec<String>) -> Vec<Feature> {
    let mut on = Vec::new();
    for f in Feature::ALL {
        let key = f.env_key();
        match env_value(env, key) {
            Some(FEATURE_ENABLED) => on.push(f),
            Some(v) if looks_meant_to_enable(v) => ignored.push(format!(
                "{key}={v} ignored: only the value {FEATURE_ENABLED:?} (exactly) turns it on, as in NVIDIA's toolkit"
            )),
            _ => {}
        }
    }
    on
}

fn looks_meant_to_enable(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    matches!(
        v.as_str(),
        "enabled" | "enable" | "true" | "yes" | "on" | "1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mig_admin_is_all_for_privileged_containers() {
        let both = env(&[
            "NVIDIA_MIG_CONFIG_DEVICES=all",
            "NVIDIA_MIG_MONITOR_DEVICES= ALL ,",
        ]);
        let got = mig_admin(&both, true).unwrap();
        assert_eq!(
            got,
            MigAdmin {
                config: true,
                monitor: true
            }
        );
        assert_eq!(
            got.named(),
            "NVIDIA_MIG_CONFIG_DEVICES=all and NVIDIA_MIG_MONITOR_DEVICES=all"
        );
        let e = mig_admin(&both, false).unwrap_err().to_string();
        assert!(
            e.contains("NVIDIA_MIG_CONFIG_DEVICES=all") && e.contains("CAP_SYS_ADMIN"),
            "{e}"
        );
        let monitor = env(&["NVIDIA_MIG_MONITOR_DEVICES=all"]);
        let e = mig_admin(&monitor, false).unwrap_err().to_string();
        assert!(e.contains("NVIDIA_MIG_MONITOR_DEVICES"), "{e}");
        // Unset or empty asks for nothing, privileged or not.
        for nothing in [
            &[][..],
            &["NVIDIA_MIG_CONFIG_DEVICES="],
            &["NVIDIA_MIG_CONFIG_DEVICES= , "],
        ] {
            for privileged in [false, true] {
                assert!(!mig_admin(&env(nothing), privileged).unwrap().any());
            }
        }
        // The last definition wins, as in the environment.
        let unset = env(&[
            "NVIDIA_MIG_CONFIG_DEVICES=all",
            "NVIDIA_MIG_CONFIG_DEVICES=",
        ]);
        assert!(!mig_admin(&unset, false).unwrap().any());
    }

    #[test]
    fn mig_admin_knows_no_device_list() {
        for bad in ["0", "0,1", "all,0", "GPU-abc", "none"] {
            let vars = env(&[&format!("NVIDIA_MIG_CONFIG_DEVICES={bad}")]);
            let e = mig_admin(&vars, true).unwrap_err().to_string();
            assert!(
                e.contains("not supported") && e.contains("all"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn features_are_on_only_when_exactly_enabled() {
        let mut ignored = Vec::new();
        let all = env(&[
            "NVIDIA_GDRCOPY=enabled",
            "NVIDIA_GDS=enabled",
            "NVIDIA_MOFED=enabled",
            "NVIDIA_NVSWITCH=enabled",
        ]);
        assert_eq!(features(&all, &mut ignored), Feature::ALL);
        assert!(ignored.is_empty());
        let near = env(&[
            "NVIDIA_GDS=Enabled",
            "NVIDIA_MOFED=true",
            "NVIDIA_NVSWITCH= enabled",
            "NVIDIA_GDRCOPY=disabled",
        ]);
        assert!(features(&near, &mut ignored).is_empty());
        assert_eq!(ignored.len(), 3, "{ignored:?}");
        assert!(
            ignored[0].starts_with("NVIDIA_GDS=Enabled ignored"),
            "{ignored:?}"
        );
        let later = env(&["NVIDIA_GDS=enabled", "NVIDIA_GDS=disabled"]);
        assert!(features(&later, &mut Vec::new()).is_empty());
    }

    /// Read from a GPU request only: without one, not even a refused
    /// value is an error.
    #[test]
    fn they_come_with_a_gpu_request_only() {
        use crate::gpu::request::{parse, Inputs, Policy};
        let read = |vars: &[&str], privileged: bool| {
            let vars = env(vars);
            let inputs = Inputs {
                env: &vars,
                privileged,
                ..Default::default()
            };
            parse(&inputs, &Policy::default()).map(|p| p.request)
        };
        let extras = ["NVIDIA_MIG_CONFIG_DEVICES=all", "NVIDIA_GDS=enabled"];
        assert_eq!(read(&extras, false).unwrap(), None);
        let with_gpu = [extras[0], extras[1], "NVIDIA_VISIBLE_DEVICES=none"];
        assert!(read(&with_gpu, false).is_err());
        let r = read(&with_gpu, true).unwrap().unwrap();
        assert!(r.mig_admin.config && !r.mig_admin.monitor);
        assert_eq!(r.features, [Feature::Gds]);
    }
}
