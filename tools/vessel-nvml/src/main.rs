//! `vessel-nvml LIBRARY`: loads NVIDIA's NVML from LIBRARY, a full path
//! (`vessel gpu cdi` passes the host driver's libnvidia-ml, opened inside
//! the driver root, as `/proc/self/fd/N`; nothing is searched for, so no
//! other copy, an image's included, can be loaded), and prints as JSON the
//! GPUs NVML sees with their MIG devices:
//!
//! ```json
//! {"gpus": [{"index": 0, "uuid": "GPU-...", "bus_id": "00000000:3B:00.0",
//!            "mig_enabled": true,
//!            "migs": [{"index": 0, "gi": 1, "ci": 0, "uuid": "MIG-..."}]}]}
//! ```
//!
//! MIG UUIDs are known only to NVML, which is why this exists: the release
//! vessel binary is static and cannot dlopen. Exit status 1 with a message
//! on stderr when NVML cannot be loaded or answers with an error (no kernel
//! driver, for one); 2 for a wrong command line.

mod nvml;

use nvml::Nvml;
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [library] = args.as_slice() else {
        eprintln!("usage: vessel-nvml LIBNVIDIA-ML (a full path, e.g. /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1)");
        std::process::exit(2);
    };
    if !library.starts_with('/') {
        eprintln!("vessel-nvml: {library:?} is not a full path: the driver's library is loaded by path, never searched for");
        std::process::exit(2);
    }
    match report(library) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("vessel-nvml: {e}");
            std::process::exit(1);
        }
    }
}

/// NVML initialised, every GPU and MIG device read, NVML shut down.
fn report(library: &str) -> Result<Value, String> {
    let nvml = Nvml::load(library)?;
    nvml.init()?;
    let gpus = gpus(&nvml);
    nvml.shutdown();
    Ok(json!({ "gpus": gpus? }))
}

fn gpus(nvml: &Nvml) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for index in 0..nvml.device_count()? {
        let dev = nvml.device(index)?;
        let migs = if nvml.mig_enabled(dev)? {
            migs(nvml, dev)?
        } else {
            Vec::new()
        };
        out.push(json!({
            "index": index,
            "uuid": nvml.uuid(dev)?,
            "bus_id": nvml.bus_id(dev)?,
            "mig_enabled": !migs.is_empty(),
            "migs": migs,
        }));
    }
    Ok(out)
}

/// The MIG devices of one GPU in MIG mode: the slots NVML has filled.
fn migs(nvml: &Nvml, gpu: nvml::Device) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for slot in 0..nvml.max_mig_count(gpu)? {
        let Some(mig) = nvml.mig_device(gpu, slot)? else {
            continue;
        };
        out.push(json!({
            "index": slot,
            "gi": nvml.gpu_instance_id(mig)?,
            "ci": nvml.compute_instance_id(mig)?,
            "uuid": nvml.uuid(mig)?,
        }));
    }
    Ok(out)
}
