//! `vessel gpu info` (what vessel sees on this host) and `vessel gpu doctor
//! [ID]` (why a GPU would not be visible, step by step, with what to do).

use super::discover::{Driver, Node};
use super::options::{GpuOptions, GpuSettings};
use super::proc_files::parse_char_majors;
use super::request::{self, Caps};
use super::{cdi, ldcache, require};
use crate::state::State;
use oci_spec::runtime::{LinuxDeviceCgroup, Spec};
use std::fmt::Write;
use std::path::Path;

/// What vessel sees: driver, GPUs, nodes, libraries, files, CDI specs.
pub fn info(opts: &GpuSettings) -> crate::error::Result<String> {
    let d = Driver::discover(&opts.driver_root, &opts.dev_root)?;
    let mut o = String::new();
    write_driver(&mut o, opts, &d);
    write_gpus(&mut o, &d);
    write_nodes(&mut o, &d);
    write_libraries(&mut o, &d);
    write_files(&mut o, &d);
    write_cdi_specs(&mut o, opts);
    Ok(o)
}

/// What `info` adds to a node that is not on the host.
fn host_node_note(n: &Node) -> &'static str {
    if n.on_host {
        ""
    } else {
        " (no host node)"
    }
}

/// The config file, the roots, the driver's version and the majors it uses.
fn write_driver(o: &mut String, opts: &GpuSettings, d: &Driver) {
    let _ = writeln!(
        o,
        "config:      {}{}",
        opts.config_path.display(),
        if opts.config_found {
            ""
        } else {
            " (not found: the defaults)"
        }
    );
    let _ = writeln!(o, "driver root: {}", opts.driver_root.display());
    let _ = writeln!(o, "dev root:    {}", opts.dev_root.display());
    let _ = writeln!(
        o,
        "driver:      {} (CUDA {} by driver branch)",
        d.version,
        require::cuda_for_driver(&d.version)
            .as_deref()
            .unwrap_or("unknown")
    );
    let _ = writeln!(
        o,
        "majors:      nvidia {}, nvidia-uvm {}, nvidia-caps {}",
        d.nvidia_major,
        d.uvm_major.map_or("-".into(), |m| m.to_string()),
        d.caps_major.map_or("-".into(), |m| m.to_string())
    );
}

/// Each GPU with its node, then its MIG devices.
fn write_gpus(o: &mut String, d: &Driver) {
    let _ = writeln!(o, "GPUs:        {}", d.gpus.len());
    for g in &d.gpus {
        let n = d.gpu_node(g);
        let _ = writeln!(
            o,
            "  {}  {}  {}  {}  {} {}:{}{}",
            g.index,
            g.uuid,
            g.bus_id,
            g.model,
            n.path,
            n.major,
            n.minor,
            host_node_note(&n)
        );
        for (i, m) in g.migs.iter().enumerate() {
            let _ = writeln!(
                o,
                "     MIG {}:{i}  gi {} ci {}  caps {} {}",
                g.index, m.gi, m.ci, m.gi_minor, m.ci_minor
            );
        }
    }
}

/// The driver-wide nodes every capability would get.
fn write_nodes(o: &mut String, d: &Driver) {
    let _ = writeln!(o, "nodes:");
    for n in d.control_nodes(Caps::all()) {
        let _ = writeln!(
            o,
            "  {} {}:{}{}",
            n.path,
            n.major,
            n.minor,
            host_node_note(&n)
        );
    }
}

/// The driver's libraries and where they were found.
fn write_libraries(o: &mut String, d: &Driver) {
    let _ = writeln!(
        o,
        "libraries:   {} from {}",
        d.libraries.len(),
        d.library_source
    );
    for l in &d.libraries {
        let _ = writeln!(
            o,
            "  {}{}  {}",
            l.soname,
            if l.bits32 { " (32-bit)" } else { "" },
            l.host_path.display()
        );
    }
}

/// The other host files every capability would get, and where.
fn write_files(o: &mut String, d: &Driver) {
    let files = d.files_for(Caps::all());
    let _ = writeln!(o, "files:       {}", files.len());
    for f in files {
        let _ = writeln!(
            o,
            "  {} -> {}",
            f.host_path.display(),
            f.container_path.display()
        );
    }
}

/// The CDI directories, the devices their specs define and the specs
/// that could not be read.
fn write_cdi_specs(o: &mut String, opts: &GpuSettings) {
    let reg = cdi::Registry::load(&opts.cdi_dirs);
    let dirs: Vec<String> = opts
        .cdi_dirs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(o, "CDI specs:   {}", dirs.join(", "));
    for n in reg.names() {
        let _ = writeln!(o, "  {n}");
    }
    for e in &reg.errors {
        let _ = writeln!(o, "  unreadable: {e}");
    }
}

/// A doctor's report: lines and whether any check failed.
#[derive(Default)]
pub struct Report {
    pub text: String,
    pub failed: bool,
}

impl Report {
    fn ok(&mut self, what: &str) {
        let _ = writeln!(self.text, "ok    {what}");
    }
    fn warn(&mut self, what: &str, fix: &str) {
        let _ = writeln!(self.text, "warn  {what}\n      -> {fix}");
    }
    fn fail(&mut self, what: &str, fix: &str) {
        self.failed = true;
        let _ = writeln!(self.text, "FAIL  {what}\n      -> {fix}");
    }
}

fn check_node(r: &mut Report, d: &Driver, n: &Node, want: (u32, u32)) {
    let host = d.host_node_path(&n.path);
    if !n.on_host {
        r.warn(
            &format!("{} is missing on the host", host.display()),
            "vessel creates it inside containers from /proc/devices; host tools want it too: run `nvidia-modprobe -c 0 -u` or `nvidia-smi` once as root",
        );
    } else if (n.major, n.minor) != want {
        r.fail(
            &format!(
                "{} is {}:{} but the driver uses {}:{}",
                host.display(),
                n.major,
                n.minor,
                want.0,
                want.1
            ),
            &format!(
                "recreate it: rm {0} && mknod -m 666 {0} c {1} {2}",
                host.display(),
                want.0,
                want.1
            ),
        );
    } else {
        r.ok(&format!("{} is {}:{}", n.path, n.major, n.minor));
    }
}

/// Checks the host, then (with `state`) what one container really got.
pub fn doctor(opts: &GpuOptions, state: Option<&State>) -> Report {
    let mut r = Report::default();
    let opts = &check_config(&mut r, opts);
    let Some(d) = check_driver(&mut r, opts) else {
        return r;
    };
    check_gpus(&mut r, &d);
    check_host_nodes(&mut r, &d);
    check_libraries(&mut r, &d);
    check_cdi_specs(&mut r, opts);
    if let Some(s) = state {
        container(&mut r, &d, s, &opts.policy);
    }
    r
}

/// The config file, when there is one, can be read; the settings it
/// gives, or (a failure said) those without it.
fn check_config(r: &mut Report, opts: &GpuOptions) -> GpuSettings {
    match opts.resolve() {
        Ok(settings) => {
            if settings.config_found {
                r.ok(&format!(
                    "config file {} read",
                    settings.config_path.display()
                ));
            }
            settings
        }
        Err(e) => {
            r.fail(
                &e.to_string(),
                "fix the file (docs/gpu.md, \"The config file\"): until then every container that asks for a GPU fails to create; the checks below use the defaults",
            );
            opts.over(&Default::default())
        }
    }
}

/// The driver is loaded; None (a failure said) when it is not, which
/// leaves nothing else to check.
fn check_driver(r: &mut Report, opts: &GpuSettings) -> Option<Driver> {
    match Driver::discover(&opts.driver_root, &opts.dev_root) {
        Ok(d) => {
            r.ok(&format!("NVIDIA driver {} is loaded", d.version));
            Some(d)
        }
        Err(e) => {
            r.fail(
                &e.to_string(),
                "install the NVIDIA driver and load it (`modprobe nvidia`); `dmesg | grep NVRM` tells why it did not load",
            );
            None
        }
    }
}

/// The driver lists at least one GPU.
fn check_gpus(r: &mut Report, d: &Driver) {
    if d.gpus.is_empty() {
        r.fail(
            "the driver lists no GPU (proc/driver/nvidia/gpus is empty)",
            "check `lspci | grep -i nvidia` and `dmesg | grep NVRM` (GPU fallen off the bus, or excluded)",
        );
    } else {
        r.ok(&format!(
            "{} GPU(s): {}",
            d.gpus.len(),
            d.gpus
                .iter()
                .map(|g| g.model.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// The driver's major is registered, and the host's GPU, control and uvm
/// nodes have the numbers the driver uses.
fn check_host_nodes(r: &mut Report, d: &Driver) {
    let devices = d
        .dev_host()
        .read_to_string(Path::new("proc/devices"))
        .unwrap_or_default();
    let majors = parse_char_majors(&devices);
    if !majors
        .iter()
        .any(|(_, n)| n == "nvidia" || n == "nvidia-frontend")
    {
        r.warn(
            "proc/devices names no nvidia major; assuming 195",
            "the nvidia module looks half-loaded: reload it",
        );
    }
    for g in &d.gpus {
        check_node(r, d, &d.gpu_node(g), (d.nvidia_major, g.minor));
    }
    check_node(
        r,
        d,
        &d.node("/dev/nvidiactl", d.nvidia_major, 255),
        (d.nvidia_major, 255),
    );
    match d.uvm_major {
        Some(m) => check_node(r, d, &d.node("/dev/nvidia-uvm", m, 0), (m, 0)),
        None => r.warn(
            "nvidia-uvm is not loaded: CUDA programs will fail to initialise",
            "`modprobe nvidia-uvm` (or `nvidia-modprobe -u -c 0`)",
        ),
    }
}

/// libcuda and libnvidia-ml of the kernel module's version are there, and
/// no library of another version is in the host's cache.
fn check_libraries(r: &mut Report, d: &Driver) {
    let has = |name: &str| d.libraries.iter().any(|l| l.name == name && !l.bits32);
    for (lib, cap) in [("libcuda", "compute"), ("libnvidia-ml", "utility")] {
        if has(lib) {
            r.ok(&format!(
                "{lib}.so.{} found ({})",
                d.version, d.library_source
            ));
        } else {
            r.fail(
                &format!("{lib}.so.{} not found ({}): containers with {cap} get no {lib}", d.version, d.library_source),
                "install the driver's user-space libraries of the same version as the kernel module, then run `ldconfig`",
            );
        }
    }
    let stale = stale_libraries(d);
    if !stale.is_empty() {
        r.warn(
            &format!("libraries of another driver version are installed: {}", stale.join(", ")),
            "the kernel module and the libraries must match: reboot after a driver upgrade, or reinstall one version",
        );
    }
}

/// Every CDI spec on disk can be read.
fn check_cdi_specs(r: &mut Report, opts: &GpuSettings) {
    let reg = cdi::Registry::load(&opts.cdi_dirs);
    for e in &reg.errors {
        r.warn(
            &format!("CDI spec unreadable: {e}"),
            "fix or remove that file (`vessel gpu cdi` writes a valid one)",
        );
    }
}

fn stale_libraries(d: &Driver) -> Vec<String> {
    let Ok(bytes) = d.host().read(Path::new("etc/ld.so.cache")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = ldcache::parse(&bytes)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.key.starts_with("libcuda.so") || e.key.starts_with("libnvidia-ml.so"))
        .filter_map(|e| {
            // Resolved inside the root, as discovery does (not canonicalize,
            // which follows an absolute link out of a fake root).
            let target = d.host().real_path(Path::new(&e.value))?;
            let name = target.file_name()?.to_string_lossy().into_owned();
            let version = name.split(".so.").nth(1)?.to_string();
            (version.contains('.') && version != d.version).then_some(name)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What a container asked for and what it really has.
fn container(r: &mut Report, d: &Driver, s: &State, policy: &request::Policy) {
    let spec = match s.spec() {
        Ok(spec) => spec,
        Err(e) => {
            r.fail(
                &format!("container {}: {e}", s.id),
                "the state is unreadable: delete and recreate the container",
            );
            return;
        }
    };
    if !check_request(r, s, &spec, policy) {
        return;
    }
    check_container_nodes(r, s, &spec);
    check_libcuda_mounts(r, d, &spec);
}

/// What the container's spec asks for, read with this node's policy.
/// False (a failure said) when it asks for no GPU and has no GPU node:
/// there is nothing more to check.
fn check_request(r: &mut Report, s: &State, spec: &Spec, policy: &request::Policy) -> bool {
    let parsed = match request::from_spec(spec, &[], policy) {
        Ok(p) => p,
        Err(e) => {
            r.fail(&format!("container {}: {e}", s.id), "fix the request");
            return true;
        }
    };
    for why in &parsed.ignored {
        r.fail(
            &format!("container {}: {why}", s.id),
            &format!("run it privileged, pass its GPUs as the device plugin's volume mounts or CDI annotations, or set {} = true", request::ENVVAR_SETTING),
        );
    }
    if let Some(req) = parsed.request {
        r.ok(&format!(
            "container {} asked for GPUs: {}",
            s.id, req.source
        ));
        return true;
    }
    let has_nodes = nvidia_nodes(spec)
        .iter()
        .any(|(path, _, _)| path.starts_with("/dev/nvidia"));
    if !has_nodes && parsed.ignored.is_empty() {
        r.fail(
            &format!("container {} asked for no GPU (NVIDIA_VISIBLE_DEVICES unset or void, no CDI device)", s.id),
            "run it with NVIDIA_VISIBLE_DEVICES=all (docker run --gpus all; podman --device nvidia.com/gpu=all)",
        );
    }
    has_nodes
}

/// Each NVIDIA node of the spec is allowed by its device rules and, while
/// the container runs, is in its `/dev`.
fn check_container_nodes(r: &mut Report, s: &State, spec: &Spec) {
    let rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    // The container's own root: its /dev is looked up inside it.
    let croot = (s.pid > 0)
        .then(|| crate::util::fs::open_dir_path(Path::new(&format!("/proc/{}/root", s.pid))).ok())
        .flatten();
    for (path, major, minor) in nvidia_nodes(spec) {
        let allowed = allowed_by(&rules, major, minor);
        let inside = croot.as_ref().is_some_and(|r| {
            crate::util::fs::open_in_root(
                std::os::fd::AsRawFd::as_raw_fd(r),
                Path::new(path.trim_start_matches('/')),
                libc::O_PATH,
            )
            .is_ok()
        });
        let what = format!("{path} {major}:{minor}");
        match (allowed, inside || s.pid <= 0) {
            (true, true) => r.ok(&format!("{what}: in the container, allowed by the device cgroup")),
            (false, _) => r.fail(
                &format!("{what}: denied by linux.resources.devices"),
                "a later deny rule in the spec overrides vessel's allow rule: remove it",
            ),
            (true, false) => r.fail(
                &format!("{what}: not present in the container's /dev"),
                "something replaced /dev after create (a mount over /dev?): check the spec's mounts",
            ),
        }
    }
}

/// (path, major, minor) of the spec's devices with `nvidia` in the path.
fn nvidia_nodes(spec: &Spec) -> Vec<(String, i64, i64)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
        .iter()
        .filter(|n| n.path().to_string_lossy().contains("nvidia"))
        .map(|n| (n.path().display().to_string(), n.major(), n.minor()))
        .collect()
}

/// Whether the device rules let a node of these numbers be opened: the
/// last matching rule wins, as the kernel applies them.
fn allowed_by(rules: &[LinuxDeviceCgroup], major: i64, minor: i64) -> bool {
    rules
        .iter()
        .rev()
        .find(|rule| {
            rule.major().map_or(true, |m| m == major) && rule.minor().map_or(true, |m| m == minor)
        })
        .is_some_and(|rule| rule.allow())
}

/// The spec mounts libcuda (under any of its names).
fn check_libcuda_mounts(r: &mut Report, d: &Driver, spec: &Spec) {
    let libs = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .iter()
        .filter(|m| m.destination().to_string_lossy().contains("libcuda.so"))
        .count();
    if libs > 0 {
        r.ok(&format!(
            "libcuda is mounted ({libs} names), driver {}",
            d.version
        ));
    } else {
        r.warn(
            "no libcuda in the container",
            "add compute to NVIDIA_DRIVER_CAPABILITIES (default utility,compute) if it runs CUDA",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::ldcache::{Entry, FLAG_X86_64};

    /// The libraries the host cache names are looked up inside the root: an
    /// entry whose absolute link leads out of a fake root is not followed
    /// there (it was, through canonicalize).
    #[test]
    fn stale_libraries_are_looked_up_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        let lib = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(root.join("proc/driver/nvidia")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(
            root.join("proc/driver/nvidia/version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.1  Thu Jan  1 2026\n",
        )
        .unwrap();
        std::fs::write(outside.join("libcuda.so.999.1"), "").unwrap();
        std::os::unix::fs::symlink(outside.join("libcuda.so.999.1"), lib.join("libcuda.so.1"))
            .unwrap();
        std::fs::write(lib.join("libnvidia-ml.so.570.1"), "").unwrap();
        std::os::unix::fs::symlink("libnvidia-ml.so.570.1", lib.join("libnvidia-ml.so.1")).unwrap();
        let cache = ldcache::write(&[
            Entry::new(
                FLAG_X86_64,
                "libcuda.so.1",
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
            ),
            Entry::new(
                FLAG_X86_64,
                "libnvidia-ml.so.1",
                "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
            ),
        ]);
        std::fs::write(root.join("etc/ld.so.cache"), cache).unwrap();
        let d = Driver::discover(&root, &root).unwrap();
        assert_eq!(d.version, "580.1");
        assert_eq!(stale_libraries(&d), ["libnvidia-ml.so.570.1"]);
    }
}
