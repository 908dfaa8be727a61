//! Native NVIDIA GPU passthrough, as an edit of the spec before it is
//! applied: request (pure) → discovery (host files) → edits (pure) →
//! spec. Afterwards GPU nodes are ordinary `linux.devices` with allow
//! rules and driver files are ordinary read-only bind mounts.

pub mod aliases;
pub mod cdi;
pub mod cdi_cmd;
pub mod cdi_gen;
pub mod cdi_hooks;
pub mod cdi_libs;
pub mod cdi_names;
pub mod cdi_version;
pub mod compat;
pub mod discover;
pub mod doctor;
pub mod edits;
pub mod elf;
pub mod fabric;
pub mod hostfs;
pub mod image;
pub mod imex;
pub mod inject;
pub mod ldcache;
pub mod ldcache_index;
pub mod ldcache_memo;
pub mod libraries;
pub mod mig_admin;
pub mod mig_uuid;
pub mod nvml;
pub mod options;
pub mod proc_files;
pub mod request;
pub mod require;

use crate::error::{Error, Result};
use oci_spec::runtime::Spec;
use options::{GpuOptions, GpuSettings};
use std::path::{Path, PathBuf};

/// What `prepare` did, for the debug log and `gpu doctor`.
#[derive(Debug, Default)]
pub struct Injected {
    pub request: Option<request::GpuRequest>,
    pub gpus: Vec<String>,
    /// The IMEX channels' nodes.
    pub imex_channels: Vec<String>,
    pub nodes: usize,
    pub mounts: usize,
    /// The version of the image's CUDA compat libcuda, when it is used.
    pub cuda_compat: Option<String>,
    pub notes: Vec<String>,
}

/// Turns the container's GPU request into spec edits. `rootfs` is the
/// image (its linker cache gets the driver libraries), `state_dir` holds
/// files the container's mounts read. None when nothing was asked for.
pub fn prepare(
    spec: &mut Spec,
    rootfs: &Path,
    state_dir: &Path,
    opts: &GpuOptions,
) -> Result<Option<Injected>> {
    // Every container comes here; most ask for nothing: a scan of the
    // spec's env, annotations, mounts and hooks, no allocation, no host
    // file, not even the config file.
    if request::nothing_asked(spec)? {
        return Ok(None);
    }
    let settings = opts.resolve()?;
    let hooks = request::take_gpu_hooks(spec);
    let parsed = request::from_spec(spec, &hooks, &settings.policy)?;
    for why in &parsed.ignored {
        crate::log::warn(&format!("gpu: {why}"));
    }
    let Some(req) = parsed.request else {
        return Ok((!hooks.is_empty()).then(Injected::default));
    };
    let mut plan = Plan::default();
    let (devices, imex) = plan.add_cdi_devices(&req, &settings, rootfs)?;
    if let Some(devices) = &devices {
        plan.add_driver(devices, &req, &settings, (rootfs, state_dir))?;
    } else if req.mig_admin.any() {
        plan.report.notes.push(format!(
            "{}: the container has no GPU from the driver (only CDI devices): nothing given",
            req.mig_admin.named()
        ));
    }
    if let Some(channels) = &imex {
        plan.add_imex(channels, &settings)?;
    }
    if !req.features.is_empty() {
        plan.add_fabric(&req.features, &settings)?;
    }
    plan.write_ld_cache((rootfs, state_dir))?;
    plan.add_params_overlay(&settings, state_dir)?;
    let Plan {
        edits, mut report, ..
    } = plan;
    report.nodes = edits.device_nodes.len();
    report.mounts = edits.mounts.len();
    edits::apply(spec, &edits)?;
    for n in &report.notes {
        crate::log::warn(&format!("gpu: {n}"));
    }
    report.request = Some(req);
    Ok(Some(report))
}

/// The edits `prepare` collects before applying them, and its report.
#[derive(Default)]
struct Plan {
    edits: edits::ContainerEdits,
    report: Injected,
    /// The image, inspected once when something needs it.
    image: Option<image::Image>,
    /// The linker cache entries of the driver and the CDI libraries,
    /// written once at the end (the expensive part of a GPU start).
    cache: Vec<ldcache::Entry>,
    /// The host driver version CUDA compat is decided against, when
    /// compute libraries are given.
    compat_host: Option<String>,
    /// A CDI spec's hook asked that the driver library create no nodes.
    no_node_modification: bool,
}

impl Plan {
    /// Adds the edits of the CDI devices a spec on disk defines, NVIDIA's
    /// hooks among them done natively (`cdi_hooks`) and its libraries
    /// listed in the image's cache; returns the driver devices and IMEX
    /// channels, with those of the CDI names vessel answers itself
    /// (`cdi_names`) added to those the request names.
    fn add_cdi_devices(
        &mut self,
        req: &request::GpuRequest,
        settings: &GpuSettings,
        rootfs: &Path,
    ) -> Result<(Option<request::Devices>, Option<request::ImexChannels>)> {
        if req.cdi.is_empty() {
            return Ok((req.devices.clone(), req.imex.clone()));
        }
        let reg = cdi::Registry::load(&settings.cdi_dirs);
        let split = cdi_names::split(&reg, &req.cdi)?;
        if !split.on_disk.is_empty() {
            let mut edits = reg.resolve(&split.on_disk)?;
            let native = cdi_hooks::take_native(&mut edits)?;
            self.no_node_modification |= native.no_node_modification;
            self.add_cdi_libraries(&edits.mounts, &native, rootfs)?;
            self.edits.extend(&edits);
        }
        self.report.gpus.extend(split.on_disk);
        Ok((
            cdi_names::merge_devices(req.devices.clone(), split.devices),
            cdi_names::merge_imex(req.imex.clone(), split.imex),
        ))
    }

    /// The CDI library mounts' cache entries (a glibc image only), and the
    /// links NVIDIA's hooks would have made.
    fn add_cdi_libraries(
        &mut self,
        mounts: &[edits::CdiMount],
        native: &cdi_hooks::NativeHooks,
        rootfs: &Path,
    ) -> Result<()> {
        let libs = cdi_libs::mounted_libraries(mounts);
        let mut links = native.links.clone();
        if !libs.is_empty() && self.image(rootfs)?.libc == image::Libc::Glibc {
            self.cache.extend(cdi_libs::cache_entries(&libs));
            links.extend(cdi_libs::soname_links(
                &libs,
                &native.ldcache_folders,
                mounts,
            ));
            if native.cuda_compat.is_some() {
                self.compat_host.clone_from(&native.cuda_compat);
            }
        }
        self.report
            .notes
            .extend(cdi_libs::create_links(rootfs, &links));
        Ok(())
    }

    /// What NVIDIA's `disable-device-node-modification` hook does: the
    /// container's `/proc/driver/nvidia/params` with `ModifyDeviceFiles: 0`
    /// (a copy bound over it). Not needed when the driver path already
    /// binds its own copy of `/proc/driver/nvidia`; only where the dev root
    /// is `/` (the container's procfs is that kernel's), as that copy.
    fn add_params_overlay(&mut self, settings: &GpuSettings, state_dir: &Path) -> Result<()> {
        let has_overlay = |m: &edits::CdiMount| m.container_path == "/proc/driver/nvidia";
        if !self.no_node_modification
            || settings.dev_root != Path::new("/")
            || self.edits.mounts.iter().any(has_overlay)
        {
            return Ok(());
        }
        let host = hostfs::HostRoot::open(&settings.dev_root)
            .map_err(|e| Error::io("opening the GPU dev root", &settings.dev_root, e))?;
        self.edits.mounts.extend(params_overlay(&host, state_dir)?);
        Ok(())
    }

    /// The image, inspected on first use.
    fn image(&mut self, rootfs: &Path) -> Result<&image::Image> {
        if self.image.is_none() {
            self.image = Some(image::inspect(rootfs, true)?);
        }
        Ok(self.image.as_ref().expect("set above"))
    }

    /// Adds what the host's driver gives these devices: nodes, files, the
    /// image's linker cache and `/proc/driver/nvidia`, after checking the
    /// request's requirements against the driver and GPUs.
    fn add_driver(
        &mut self,
        devices: &request::Devices,
        req: &request::GpuRequest,
        settings: &GpuSettings,
        (rootfs, state_dir): (&Path, &Path),
    ) -> Result<()> {
        let driver = discover::Driver::discover(&settings.driver_root, &settings.dev_root)?;
        let devices = mig_uuid::resolve(devices, &driver, &settings.cdi_dirs)?;
        let selected = inject::select(&driver, &devices)?;
        let models: Vec<&str> = selected.iter().map(|s| s.gpu.model.as_str()).collect();
        require::check(
            &req.requires,
            &require::Facts::new(&driver.version, &models),
        )?;
        let img = self.image(rootfs)?;
        let libc = img.libc;
        let inject::RuntimeEdits {
            edits: mut ours,
            cache,
            aliases,
        } = inject::runtime_edits(&driver, &selected, req.caps, &img.lib64, &img.lib32);
        ours.mounts.extend(aliases::place(rootfs, &aliases));
        self.edits.extend(&ours);
        self.report.gpus.extend(selected.iter().map(gpu_label));
        if req.caps.contains(request::Caps::COMPUTE) {
            self.report.notes.extend(compute_missing(&driver, &ours));
        }
        self.report.notes.extend(libc_note(libc).map(String::from));
        if !cache.is_empty() && libc == image::Libc::Glibc {
            if req.caps.contains(request::Caps::COMPUTE) && has_libcuda(&driver) {
                self.compat_host = Some(driver.version.clone());
            }
            // The driver's entries go first: they win over a CDI spec's.
            self.cache.splice(0..0, cache);
        }
        let overlay = proc_driver_overlay(&driver, &selected, state_dir)?;
        let overlay_dir = overlay.as_ref().map(|m| PathBuf::from(&m.host_path));
        self.edits.mounts.extend(overlay);
        let mig = mig_admin::edits(&driver, &selected, req.mig_admin, overlay_dir.as_deref())?;
        self.edits.extend(&mig.edits);
        self.report.notes.extend(mig.notes);
        Ok(())
    }

    /// Adds the IMEX channels' nodes, from the host under the dev root.
    fn add_imex(&mut self, channels: &request::ImexChannels, settings: &GpuSettings) -> Result<()> {
        let dev = hostfs::HostRoot::open(&settings.dev_root)
            .map_err(|e| Error::io("opening the GPU dev root", &settings.dev_root, e))?;
        let nodes = imex::channel_nodes(&dev, channels)?;
        self.report
            .imex_channels
            .extend(nodes.iter().map(|n| n.path.clone()));
        self.edits.device_nodes.extend(nodes);
        Ok(())
    }

    /// Adds the feature-gated devices turned on (GPUDirect Storage, RDMA,
    /// NVSwitch, GDRCopy): the host's nodes under the dev root.
    fn add_fabric(&mut self, features: &[request::Feature], settings: &GpuSettings) -> Result<()> {
        let dev = hostfs::HostRoot::open(&settings.dev_root)
            .map_err(|e| Error::io("opening the GPU dev root", &settings.dev_root, e))?;
        let given = fabric::edits(&dev, &settings.driver_root, features)?;
        self.edits.extend(&given.edits);
        self.report.notes.extend(given.notes);
        Ok(())
    }

    /// The cache entries with the image's CUDA compat libraries ahead of
    /// the driver's, when those are of a newer driver branch.
    fn cuda_compat_ahead(
        &mut self,
        rootfs: &Path,
        host_version: &str,
        cache: Vec<ldcache::Entry>,
    ) -> Vec<ldcache::Entry> {
        match compat::find(rootfs, host_version) {
            Ok(Some(found)) => {
                self.report.cuda_compat = Some(found.version);
                ldcache::ahead(found.entries, cache)
            }
            Ok(None) => cache,
            Err(note) => {
                self.report.notes.push(note);
                cache
            }
        }
    }

    /// Writes the image's linker cache once, with the driver's and the CDI
    /// libraries added (the image's newer CUDA compat libraries ahead of
    /// them); a read-only image gets its own copy, bound over
    /// `/etc/ld.so.cache`. Entries are only collected for a glibc image.
    fn write_ld_cache(&mut self, (rootfs, state_dir): (&Path, &Path)) -> Result<()> {
        if self.cache.is_empty() {
            return Ok(());
        }
        let mut cache = std::mem::take(&mut self.cache);
        if let Some(host) = self.compat_host.take() {
            cache = self.cuda_compat_ahead(rootfs, &host, cache);
        }
        let digest = ldcache_memo::digest(&cache);
        let img = self.image(rootfs)?;
        if img.held == Some(digest) {
            // The memo says the cache holds these entries: not even read.
            return Ok(());
        }
        if img.held.is_some() {
            // A memo of other entries (another driver): read it after all.
            self.image = Some(image::inspect(rootfs, false)?);
        }
        let img = self.image(rootfs)?;
        let memo = img.memo(digest);
        let bytes = image::merged_cache(img, &cache);
        if img.cache.as_ref().is_some_and(|c| c.bytes == bytes) {
            // Already this cache (a bundle run again, or an image committed
            // from such a container): nothing to write.
            image::remember(rootfs, img, &memo);
            return Ok(());
        }
        if let Err(e) = image::write_cache(rootfs, &bytes, &memo) {
            let path = state_dir.join("ld.so.cache");
            std::fs::write(&path, &bytes).map_err(|e| Error::io("writing", &path, e))?;
            self.edits.mounts.push(edits::CdiMount {
                host_path: path.to_string_lossy().into_owned(),
                container_path: "/etc/ld.so.cache".into(),
                options: edits::ro_bind_options(),
                typ: Some("bind".into()),
            });
            self.report
                .notes
                .push(format!("{e}; bound a copy over /etc/ld.so.cache"));
        }
        Ok(())
    }
}

/// How the report names a selected GPU or MIG device.
fn gpu_label(s: &inject::Selected) -> String {
    match &s.mig {
        Some(m) => {
            // The MIG device's place among its GPU's, as `<gpu>:<mig>` names it.
            let at = s.gpu.migs.iter().position(|x| x == m).unwrap_or(0);
            format!("{}:{at} (gi {} ci {})", s.gpu.index, m.gi, m.ci)
        }
        None => format!("{} {} ({})", s.gpu.index, s.gpu.uuid, s.gpu.bus_id),
    }
}

/// True when the driver has a 64-bit libcuda for the container.
fn has_libcuda(driver: &discover::Driver) -> bool {
    driver
        .libraries
        .iter()
        .any(|d| d.name == "libcuda" && !d.bits32)
}

/// A note when compute was asked for but the driver lacks what CUDA needs:
/// decided from the edits just made, nothing is looked up again.
fn compute_missing(driver: &discover::Driver, ours: &edits::ContainerEdits) -> Option<String> {
    let no_lib = !has_libcuda(driver);
    let no_uvm = !ours
        .device_nodes
        .iter()
        .any(|n| n.path == "/dev/nvidia-uvm");
    let missing: Vec<&str> = [(no_lib, "libcuda"), (no_uvm, "/dev/nvidia-uvm")]
        .into_iter()
        .filter_map(|(gone, what)| gone.then_some(what))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the compute capability was asked for but the driver has no {} (libraries from {}): CUDA will not work; `vessel gpu doctor` says more",
            missing.join(" and no "),
            driver.library_source
        )
    })
}

/// A note when the image's libc cannot load NVIDIA's driver libraries.
fn libc_note(libc: image::Libc) -> Option<&'static str> {
    match libc {
        image::Libc::Glibc => None,
        image::Libc::Musl => Some(
            "the image uses musl libc: NVIDIA's driver libraries need glibc and will not load (use a glibc-based image)",
        ),
        image::Libc::Missing => Some(
            "the image has no dynamic loader: only static programs run, and NVIDIA's driver libraries cannot be loaded",
        ),
    }
}

/// `/proc/driver/nvidia` as the container should see it: only the selected
/// GPUs, and `ModifyDeviceFiles: 0` so the driver library does not try to
/// create nodes. Only when the real host's procfs has the driver (the
/// container's /proc is the same kernel's): the dev root is `/`, wherever
/// the driver's files are. Read through the dev root.
fn proc_driver_overlay(
    driver: &discover::Driver,
    selected: &[inject::Selected],
    state_dir: &Path,
) -> Result<Option<edits::CdiMount>> {
    let host = driver.dev_host();
    let proc_dir = Path::new("proc/driver/nvidia");
    if driver.dev_root != Path::new("/") || host.open_path(&proc_dir.join("version")).is_err() {
        return Ok(None);
    }
    let dir = state_dir.join("proc-driver-nvidia");
    let io = |p: &Path, e| Error::io("preparing", p, e);
    std::fs::create_dir_all(dir.join("gpus")).map_err(|e| io(&dir, e))?;
    for f in ["version", "registry", "params"] {
        if let Ok(text) = host.read_to_string(&proc_dir.join(f)) {
            let text = if f == "params" {
                proc_files::without_node_modification(&text)
            } else {
                text
            };
            std::fs::write(dir.join(f), text).map_err(|e| io(&dir.join(f), e))?;
        }
    }
    for s in selected {
        let Some(bus) = s.gpu.proc_dir.file_name() else {
            continue;
        };
        let to = dir.join("gpus").join(bus);
        std::fs::create_dir_all(&to).map_err(|e| io(&to, e))?;
        let Ok(listing) = host.read_dir(&proc_dir.join("gpus").join(bus)) else {
            continue;
        };
        for e in listing.entries() {
            if e.kind == hostfs::Kind::File {
                if let Ok(bytes) = listing.read(&e.name) {
                    let _ = std::fs::write(to.join(&e.name), bytes);
                }
            }
        }
    }
    Ok(Some(edits::proc_bind(&dir, "/proc/driver/nvidia")))
}

/// A copy of the host's `/proc/driver/nvidia/params` with
/// `ModifyDeviceFiles: 0`, to bind over the container's; None when the
/// host has no such file (no driver loaded: nothing to turn off).
fn params_overlay(host: &hostfs::HostRoot, state_dir: &Path) -> Result<Option<edits::CdiMount>> {
    let Ok(text) = host.read_to_string(Path::new("proc/driver/nvidia/params")) else {
        return Ok(None);
    };
    let path = state_dir.join("proc-driver-nvidia-params");
    std::fs::write(&path, proc_files::without_node_modification(&text))
        .map_err(|e| Error::io("writing", &path, e))?;
    Ok(Some(edits::proc_bind(&path, "/proc/driver/nvidia/params")))
}

#[cfg(test)]
mod params_tests {
    use super::*;

    #[test]
    fn the_params_copy_turns_node_modification_off() {
        let host = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = hostfs::HostRoot::open(host.path()).unwrap();
        assert!(params_overlay(&root, state.path()).unwrap().is_none());
        std::fs::create_dir_all(host.path().join("proc/driver/nvidia")).unwrap();
        std::fs::write(
            host.path().join("proc/driver/nvidia/params"),
            "ModifyDeviceFiles: 1\n",
        )
        .unwrap();
        let m = params_overlay(&root, state.path()).unwrap().unwrap();
        assert_eq!(m.container_path, "/proc/driver/nvidia/params");
        assert_eq!(
            std::fs::read_to_string(&m.host_path).unwrap(),
            "ModifyDeviceFiles: 0\n"
        );
    }
}
