//! NVIDIA's CDI hooks (`nvidia-cdi-hook SUBCOMMAND` or `nvidia-ctk hook
//! SUBCOMMAND`, as `nvidia-ctk cdi generate` writes them), done by vessel
//! itself and taken out of the spec's edits: nothing of the image or the
//! toolkit runs. `update-ldcache` runs the image's ldconfig over the
//! library folders; vessel lists the spec's library mounts in the image's
//! cache instead (`cdi_libs`), with the soname links ldconfig would make
//! in those folders. `create-symlinks` links are made inside the rootfs
//! (`cdi_libs::create_links`). `enable-cuda-compat` is vessel's own CUDA
//! forward compatibility (`super::compat`). Any other subcommand, or a
//! flag vessel does not know, stays an ordinary OCI hook.

use super::edits::{CdiHook, ContainerEdits};
use crate::error::{Error, Result};

/// A link to make in the container: `link` (a path in the container)
/// pointing at `target` (as given: relative to the link's directory, or
/// absolute in the container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    pub link: String,
}

/// One NVIDIA hook vessel does itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Native {
    /// `update-ldcache --folder DIR...`.
    UpdateLdcache { folders: Vec<String> },
    /// `create-symlinks --link TARGET::LINK...`.
    CreateSymlinks { links: Vec<Link> },
    /// `enable-cuda-compat --host-driver-version V` (`cuda-compat` before).
    CudaCompat { host_driver_version: String },
    /// `disable-device-node-modification`: the driver library must not
    /// create device nodes (`ModifyDeviceFiles: 0` in the container's
    /// `/proc/driver/nvidia/params`).
    NoNodeModification,
}

/// What the NVIDIA hooks taken out of a spec's edits ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeHooks {
    /// The folders whose libraries go into the cache (their soname links
    /// are made there too).
    pub ldcache_folders: Vec<String>,
    pub links: Vec<Link>,
    /// The host driver version CUDA compat is decided against.
    pub cuda_compat: Option<String>,
    /// The container's `/proc/driver/nvidia/params` says
    /// `ModifyDeviceFiles: 0`.
    pub no_node_modification: bool,
}

/// True for a hook whose program is NVIDIA's (`.../nvidia-cdi-hook`, or
/// `.../nvidia-ctk` with `hook` first).
fn subcommand_args(hook: &CdiHook) -> Option<&[String]> {
    let program = hook.path.rsplit('/').next().unwrap_or_default();
    // args[0] is the program's name, as in an OCI hook.
    let args = hook.args.get(1..).unwrap_or_default();
    match program {
        "nvidia-cdi-hook" => Some(args),
        "nvidia-ctk" => args
            .split_first()
            .and_then(|(first, rest)| (first == "hook").then_some(rest)),
        _ => None,
    }
}

/// Flags as urfave/cli takes them: `--name VALUE`, `--name=VALUE`, with
/// one or two dashes. Err names what is wrong; Ok(None): a flag `known`
/// does not have (the hook is then left to run).
fn flags<'a>(
    args: &'a [String],
    known: &[&str],
) -> std::result::Result<Option<Vec<(&'a str, &'a str)>>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, v),
            None => {
                i += 1;
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("flag {arg} has no value"))?;
                (flag, v.as_str())
            }
        };
        if !known.contains(&name) {
            return Ok(None);
        }
        out.push((name, value));
        i += 1;
    }
    Ok(Some(out))
}

fn values<'a>(flags: &[(&str, &'a str)], name: &str) -> Vec<&'a str> {
    flags
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .collect()
}

/// The hook as one vessel does itself; None when it is not NVIDIA's or
/// is a subcommand (or has a flag) vessel leaves to run. A malformed one
/// is an error naming it.
pub fn parse(hook: &CdiHook) -> Result<Option<Native>> {
    let Some(args) = subcommand_args(hook) else {
        return Ok(None);
    };
    let Some((sub, rest)) = args.split_first() else {
        return Ok(None);
    };
    let bad = |why: String| {
        Error::invalid(format!(
            "CDI hook {} {}: {why}",
            hook.path,
            hook.args.get(1..).unwrap_or_default().join(" ")
        ))
    };
    let known: &[&str] = match sub.as_str() {
        "update-ldcache" => &["folder", "ldconfig-path", "container-spec"],
        "create-symlinks" => &["link", "container-spec"],
        "enable-cuda-compat" | "cuda-compat" => &["host-driver-version", "container-spec"],
        "disable-device-node-modification" => &["container-spec"],
        _ => return Ok(None),
    };
    let Some(given) = flags(rest, known).map_err(bad)? else {
        return Ok(None);
    };
    Ok(Some(match sub.as_str() {
        "update-ldcache" => Native::UpdateLdcache {
            folders: values(&given, "folder")
                .into_iter()
                .map(|f| absolute(f).map_err(bad))
                .collect::<Result<_>>()?,
        },
        "disable-device-node-modification" => Native::NoNodeModification,
        "create-symlinks" => Native::CreateSymlinks {
            links: values(&given, "link")
                .into_iter()
                .map(|l| link(l).map_err(bad))
                .collect::<Result<_>>()?,
        },
        _ => match values(&given, "host-driver-version").last() {
            Some(v) if !v.is_empty() => Native::CudaCompat {
                host_driver_version: v.to_string(),
            },
            // Without the host's version the toolkit's hook decides from
            // nothing; leave it as written.
            _ => return Ok(None),
        },
    }))
}

fn absolute(folder: &str) -> std::result::Result<String, String> {
    if !folder.starts_with('/') {
        return Err(format!("--folder {folder:?} is not an absolute path"));
    }
    Ok(folder.trim_end_matches('/').to_string())
}

/// `TARGET::LINK`, both non-empty, the link naming a file (not `.`, `..`
/// or a directory with a trailing `/`).
fn link(spec: &str) -> std::result::Result<Link, String> {
    let parts: Vec<&str> = spec.split("::").collect();
    let [target, link] = parts[..] else {
        return Err(format!("--link {spec:?} is not TARGET::LINK"));
    };
    let last = link.rsplit('/').next().unwrap_or_default();
    if target.is_empty() || matches!(last, "" | "." | "..") {
        return Err(format!("--link {spec:?} is not TARGET::LINK"));
    }
    Ok(Link {
        target: target.to_string(),
        link: format!("/{}", link.trim_start_matches('/')),
    })
}

/// Takes the hooks vessel does itself out of `edits`, and says what they
/// ask for; every other hook stays.
pub fn take_native(edits: &mut ContainerEdits) -> Result<NativeHooks> {
    let mut out = NativeHooks::default();
    let mut kept = Vec::with_capacity(edits.hooks.len());
    for hook in std::mem::take(&mut edits.hooks) {
        match parse(&hook)? {
            None => kept.push(hook),
            Some(Native::UpdateLdcache { folders }) => {
                for f in folders {
                    if !out.ldcache_folders.contains(&f) {
                        out.ldcache_folders.push(f);
                    }
                }
            }
            Some(Native::CreateSymlinks { links }) => {
                for l in links {
                    if !out.links.contains(&l) {
                        out.links.push(l);
                    }
                }
            }
            Some(Native::CudaCompat {
                host_driver_version,
            }) => out.cuda_compat = Some(host_driver_version),
            Some(Native::NoNodeModification) => out.no_node_modification = true,
        }
    }
    edits.hooks = kept;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(path: &str, args: &[&str]) -> CdiHook {
        CdiHook {
            hook_name: "createContainer".into(),
            path: path.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_nvidia_ctk_generated_hooks() {
        let h = hook(
            "/usr/bin/nvidia-cdi-hook",
            &[
                "nvidia-cdi-hook",
                "update-ldcache",
                "--folder",
                "/usr/lib/x86_64-linux-gnu/nvidia/current/",
                "--folder=/usr/lib/i386-linux-gnu",
                "--ldconfig-path",
                "/sbin/ldconfig",
            ],
        );
        assert_eq!(
            parse(&h).unwrap(),
            Some(Native::UpdateLdcache {
                folders: vec![
                    "/usr/lib/x86_64-linux-gnu/nvidia/current".into(),
                    "/usr/lib/i386-linux-gnu".into()
                ]
            })
        );
        let h = hook(
            "/usr/bin/nvidia-ctk",
            &[
                "nvidia-ctk",
                "hook",
                "create-symlinks",
                "--link",
                "libcuda.so.1::/usr/lib/x86_64-linux-gnu/libcuda.so",
            ],
        );
        assert_eq!(
            parse(&h).unwrap(),
            Some(Native::CreateSymlinks {
                links: vec![Link {
                    target: "libcuda.so.1".into(),
                    link: "/usr/lib/x86_64-linux-gnu/libcuda.so".into()
                }]
            })
        );
        let h = hook(
            "/usr/bin/nvidia-cdi-hook",
            &[
                "nvidia-cdi-hook",
                "enable-cuda-compat",
                "--host-driver-version=580.159.04",
            ],
        );
        assert_eq!(
            parse(&h).unwrap(),
            Some(Native::CudaCompat {
                host_driver_version: "580.159.04".into()
            })
        );
    }

    #[test]
    fn other_hooks_stay_and_malformed_ones_are_errors() {
        for h in [
            hook("/usr/bin/true", &["true", "update-ldcache"]),
            hook("/usr/bin/nvidia-ctk", &["nvidia-ctk", "cdi", "list"]),
            hook(
                "/usr/bin/nvidia-cdi-hook",
                &[
                    "nvidia-cdi-hook",
                    "chmod",
                    "--mode",
                    "755",
                    "--path",
                    "/dev/dri",
                ],
            ),
            hook(
                "/usr/bin/nvidia-cdi-hook",
                &["nvidia-cdi-hook", "update-ldcache", "--new-flag", "x"],
            ),
            hook(
                "/usr/bin/nvidia-cdi-hook",
                &["nvidia-cdi-hook", "enable-cuda-compat"],
            ),
        ] {
            assert_eq!(parse(&h).unwrap(), None, "{h:?}");
        }
        for (args, why) in [
            (&["update-ldcache", "--folder"][..], "has no value"),
            (
                &["update-ldcache", "--folder", "lib"][..],
                "not an absolute",
            ),
            (
                &["create-symlinks", "--link", "libcuda.so"][..],
                "TARGET::LINK",
            ),
            (
                &["create-symlinks", "--link", "a::b::c"][..],
                "TARGET::LINK",
            ),
            (
                &["create-symlinks", "--link", "a::/usr/lib/"][..],
                "TARGET::LINK",
            ),
            (&["create-symlinks", "stray"][..], "unexpected argument"),
        ] {
            let mut all = vec!["nvidia-cdi-hook"];
            all.extend(args);
            let err = parse(&hook("/usr/bin/nvidia-cdi-hook", &all))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(why) && err.contains("/usr/bin/nvidia-cdi-hook"),
                "{err}"
            );
        }
    }

    #[test]
    fn takes_only_the_hooks_done_natively() {
        let mut edits = ContainerEdits {
            hooks: vec![
                hook(
                    "/usr/bin/nvidia-cdi-hook",
                    &["nvidia-cdi-hook", "disable-device-node-modification"],
                ),
                hook(
                    "/usr/bin/nvidia-cdi-hook",
                    &["nvidia-cdi-hook", "update-ldcache", "--folder", "/a"],
                ),
                hook("/usr/bin/other", &["other"]),
                hook(
                    "/usr/bin/nvidia-cdi-hook",
                    &[
                        "nvidia-cdi-hook",
                        "create-symlinks",
                        "--link",
                        "t::/l",
                        "--link",
                        "t::/l",
                    ],
                ),
                hook(
                    "/usr/bin/nvidia-cdi-hook",
                    &[
                        "nvidia-cdi-hook",
                        "update-ldcache",
                        "--folder",
                        "/a",
                        "--folder",
                        "/b",
                    ],
                ),
            ],
            ..Default::default()
        };
        let native = take_native(&mut edits).unwrap();
        assert_eq!(native.ldcache_folders, ["/a", "/b"]);
        assert_eq!(native.links.len(), 1);
        assert!(native.no_node_modification);
        assert_eq!(edits.hooks.len(), 1);
        assert_eq!(edits.hooks[0].path, "/usr/bin/other");
    }
}
