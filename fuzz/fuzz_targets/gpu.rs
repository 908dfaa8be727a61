//! GPU inputs: CDI specs (YAML and JSON), NVIDIA_* values, device mount
//! paths, the config file, requirement expressions, driver procfs text,
//! and ld.so.cache files. Errors are fine; panics are not.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vessel::gpu::{cdi, ldcache, proc_files, request, require};

fuzz_target!(|data: &[u8]| {
    let _ = ldcache::parse(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["spec.yaml", "spec.json"] {
        if let Ok(spec) = cdi::parse_spec(Path::new(name), text) {
            let mut s: oci_spec_stub::Spec = oci_spec_stub::spec();
            let _ = vessel::gpu::edits::apply(&mut s, &spec.container_edits);
            for d in &spec.devices {
                let _ = vessel::gpu::edits::apply(&mut s, &d.container_edits);
            }
        }
    }
    let env: Vec<String> = text.lines().map(str::to_string).collect();
    for privileged in [false, true] {
        let inputs = request::Inputs {
            privileged,
            ..request::Inputs::env(&env)
        };
        let _ = request::parse(&inputs, &request::Policy::default());
    }
    let _ = request::mounted_id(text);
    let _ = vessel::config::parse(Path::new("config.toml"), text);
    let _ = request::Caps::parse(text);
    let facts = require::Facts::new("535.104.05", &["NVIDIA H100 80GB HBM3", text]);
    let _ = require::check(&env, &facts);
    let _ = proc_files::parse_version(text);
    let _ = proc_files::parse_information(text);
    let _ = proc_files::parse_char_majors(text);
    let _ = proc_files::normalize_bus_id(text);
    let _ = ldcache::write(&ldcache::parse(data).unwrap_or_default());
});

/// A minimal spec to apply CDI edits to.
mod oci_spec_stub {
    pub type Spec = vessel::bundle::Spec;
    pub fn spec() -> Spec {
        serde_json::from_str(
            r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":1,"gid":1}}}"#,
        )
        .unwrap()
    }
}
