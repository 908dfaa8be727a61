//! config.json loading and planning: any bytes either parse into a spec
//! that every planning step accepts or refuses with an error, or fail to
//! parse with an error naming the place; nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let spec = match vessel::bundle::parse_spec(data) {
        Ok(spec) => spec,
        Err(msg) => {
            assert!(!msg.is_empty());
            return;
        }
    };
    let _ = vessel::bundle::check_spec(&spec, std::path::Path::new("/nonexistent-vessel-fuzz"));
    if let Some(p) = spec.process() {
        let _ = vessel::bundle::check_process(p);
    }
    let bundle = vessel::bundle::Bundle {
        dir: "/nonexistent-vessel-fuzz".into(),
        rootfs: "/nonexistent-vessel-fuzz/rootfs".into(),
        spec: spec.clone(),
        config: String::new(),
    };
    let _ = vessel::plan::Plan::new(&bundle);
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        let _ = vessel::cgroup::resources::check(r);
        let _ = vessel::cgroup::resources::plan_v1(r);
        let _ = vessel::cgroup::resources::plan_v2(r);
        if let Some(rules) = r.devices() {
            let _ = vessel::cgroup::bpf_devices::program(rules);
            let _ = vessel::cgroup::systemd::device_allow(rules);
        }
    }
    if let Some(path) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) {
        let _ = vessel::cgroup::systemd::parse_path(Some(&path), "fuzz");
        let _ = vessel::cgroup::clean(&path);
    }
    // The GPU step, up to discovery (which reads the host).
    let mut spec = spec;
    let hooks = vessel::gpu::request::take_gpu_hooks(&mut spec);
    let _ = vessel::gpu::request::from_spec(&spec, &hooks, &Default::default());
});
