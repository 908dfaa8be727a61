//! `events --stats`: one sample of a container's cgroup in runc's JSON shape.

use super::Layout;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

fn read(dirs: &[PathBuf], file: &str) -> Option<String> {
    dirs.iter()
        .find_map(|d| std::fs::read_to_string(d.join(file)).ok())
}

fn num(dirs: &[PathBuf], file: &str) -> u64 {
    read(dirs, file)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat) as a map.
fn kv(text: Option<String>) -> Map<String, Value> {
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| {
            v.trim()
                .parse::<u64>()
                .ok()
                .map(|n| (k.to_string(), Value::from(n)))
        })
        .collect()
}

/// One stats sample of the container's cgroup: v1 files on a v1 or hybrid
/// host, else v2.
pub(super) fn sample(layout: Layout, dirs: &[PathBuf]) -> Value {
    let (cpu, memory) = if layout != Layout::Unified {
        let percpu: Vec<u64> = read(dirs, "cpuacct.usage_percpu")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        // cpuacct.stat is in clock ticks (USER_HZ = 100): 10 ms each.
        let st = kv(read(dirs, "cpuacct.stat"));
        let ticks = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0) * 10_000_000;
        (
            json!({"usage": {"total": num(dirs, "cpuacct.usage"), "percpu": percpu, "kernel": ticks("system"), "user": ticks("user")}}),
            json!({
                "usage": {"usage": num(dirs, "memory.usage_in_bytes"), "max": num(dirs, "memory.max_usage_in_bytes"),
                          "limit": num(dirs, "memory.limit_in_bytes"), "failcnt": num(dirs, "memory.failcnt")},
                "raw": kv(read(dirs, "memory.stat")),
            }),
        )
    } else {
        let st = kv(read(dirs, "cpu.stat"));
        let usec = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0) * 1000;
        let limit = read(dirs, "memory.max")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        (
            json!({"usage": {"total": usec("usage_usec"), "kernel": usec("system_usec"), "user": usec("user_usec")}}),
            json!({
                "usage": {"usage": num(dirs, "memory.current"), "max": num(dirs, "memory.peak"), "limit": limit},
                "raw": kv(read(dirs, "memory.stat")),
            }),
        )
    };
    let pids_limit = read(dirs, "pids.max")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    json!({"cpu": cpu, "memory": memory, "pids": {"current": num(dirs, "pids.current"), "limit": pids_limit}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_from_a_fake_v1_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        for (f, v) in [
            ("cpuacct.usage", "123"),
            ("cpuacct.stat", "user 2\nsystem 1\n"),
            ("memory.usage_in_bytes", "4096"),
            ("pids.current", "3"),
            ("pids.max", "max"),
        ] {
            std::fs::write(d.join(f), v).unwrap();
        }
        let s = sample(Layout::Legacy, &[d]);
        assert_eq!(s["cpu"]["usage"]["total"], 123);
        assert_eq!(s["cpu"]["usage"]["user"], 20_000_000);
        assert_eq!(s["memory"]["usage"]["usage"], 4096);
        assert_eq!(s["pids"]["current"], 3);
    }
}
