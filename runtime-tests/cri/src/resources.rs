//! The CRI's LinuxContainerResources, seen and felt from inside the
//! container: memory and CPU limits at create and after
//! UpdateContainerResources, the pod's pids limit (the kubelet's, on the
//! pod cgroup), and an OOM kill reported as `OOMKilled`.

use crate::cri::{self, Cri, Res};
use crate::lifecycle::Pod;
use crate::Report;
use k8s_cri::v1::*;

const MIB: i64 = 1024 * 1024;
const MEMORY_LIMIT: &str =
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";
const CPU_QUOTA: &str =
    "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max";
const THROTTLED: &str = "grep -h nr_throttled /sys/fs/cgroup/cpu/cpu.stat /sys/fs/cgroup/cpu.stat 2>/dev/null | cut -d' ' -f2";

fn resources(memory: i64, quota: i64) -> LinuxContainerResources {
    LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: quota,
        cpu_shares: 512,
        memory_limit_in_bytes: memory,
        ..Default::default()
    }
}

fn with_resources(cfg: &mut ContainerConfig, res: LinuxContainerResources) {
    if let Some(l) = cfg.linux.as_mut() {
        l.resources = Some(res);
    }
}

/// `oom_too`: whether the OOM kill is checked (the `oom` group).
pub async fn run(c: &mut Cri, r: &mut Report, oom_too: bool) {
    let mut pod = match Pod::start(c, "limits", false, None).await {
        Ok(p) => p,
        Err(e) => {
            r.check("RunPodSandbox for containers with limits", Err(e));
            return;
        }
    };
    let mut cfg = cri::container(&c.node, "limited", "exec sleep 1000", false);
    with_resources(&mut cfg, resources(64 * MIB, 20_000));
    match pod.start_container(c, cfg).await {
        Ok(id) => {
            r.check(
                "memory and CPU limits are set (read from inside)",
                limits_are(c, &id, 64 * MIB, 20_000).await,
            );
            r.check(
                "the CPU quota throttles a busy loop",
                throttled(c, &id).await,
            );
            r.check(
                "UpdateContainerResources changes the limits live",
                update(c, &id).await,
            );
        }
        Err(e) => r.check("a container with resources starts", Err(e)),
    }
    if oom_too {
        r.check(
            "an OOM kill: exit code 137, reason OOMKilled",
            oom(c, &mut pod).await,
        );
    } else {
        r.skip(
            "an OOM kill: exit code 137, reason OOMKilled",
            "the oom group is not asked for here",
        );
    }
    r.check(
        "the pod with limits is removed without leftovers",
        pod.end(c).await,
    );
    if c.node.cgroup_driver == "systemd" {
        r.skip(
            "the pod's pids limit stops forks",
            "the kubelet sets it on the pod slice through systemd; this test makes no slices",
        );
    } else {
        r.check(
            "the pod's pids limit (on the kubelet's pod cgroup) stops forks",
            pids_limited(c, 24).await,
        );
    }
}

async fn limits_are(c: &mut Cri, id: &str, memory: i64, quota: i64) -> Res<()> {
    let mem = c.sh(id, MEMORY_LIMIT).await?;
    let q = c.sh(id, CPU_QUOTA).await?;
    if mem != memory.to_string() || q != quota.to_string() {
        return Err(format!(
            "memory limit {mem}, cpu quota {q}; want {memory}, {quota}"
        ));
    }
    Ok(())
}

async fn throttled(c: &mut Cri, id: &str) -> Res<()> {
    c.sh(id, "timeout 1 sh -c 'while :; do :; done'; true")
        .await?;
    let n = c.sh(id, THROTTLED).await?;
    match n.parse::<u64>() {
        Ok(v) if v > 0 => Ok(()),
        _ => Err(format!(
            "nr_throttled {n:?} after a second of busy loop at 20% CPU"
        )),
    }
}

/// Forks fail inside once the pod holds pids.max processes; the pod is
/// its own, since nothing more can start in it afterwards.
async fn pids_limited(c: &mut Cri, max: u32) -> Res<()> {
    let mut pod = Pod::start(c, "pids", false, Some(max)).await?;
    let res = async {
        let id = pod
            .start_container(
                c,
                cri::container(&c.node, "forks", "exec sleep 1000", false),
            )
            .await?;
        let r = c
            .exec_sync(
                &id,
                &[
                    "sh",
                    "-c",
                    "for i in $(seq 60); do sleep 30 >/dev/null 2>&1 & done; echo all-forked",
                ],
            )
            .await?;
        let out = String::from_utf8_lossy(&r.stdout);
        let err = String::from_utf8_lossy(&r.stderr);
        if r.exit_code == 0 || out.contains("all-forked") || !err.contains("fork") {
            return Err(format!(
                "60 forks with pids.max {max}: exit {}, stdout {out:?}, stderr {err:?}",
                r.exit_code
            ));
        }
        let parent = cri::cgroup_parent(&c.node.cgroup_driver, &pod.uid);
        let current = crate::host::pids_current(&parent)?;
        // The shell whose fork failed has exited since: one pid is free.
        if current > max || current + 2 < max {
            return Err(format!("pids.current of the pod {current}, pids.max {max}"));
        }
        Ok(())
    }
    .await;
    let end = pod.end(c).await;
    res.and(end)
}

async fn update(c: &mut Cri, id: &str) -> Res<()> {
    let req = UpdateContainerResourcesRequest {
        container_id: id.into(),
        linux: Some(resources(96 * MIB, 50_000)),
        ..Default::default()
    };
    c.rt.update_container_resources(req)
        .await
        .map_err(|e| format!("UpdateContainerResources: {}", e.message()))?;
    limits_are(c, id, 96 * MIB, 50_000).await
}

async fn oom(c: &mut Cri, pod: &mut Pod) -> Res<()> {
    let hog = "a=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived ${#a}";
    let mut cfg = cri::container(&c.node, "hog", hog, false);
    with_resources(&mut cfg, resources(32 * MIB, 0));
    let id = pod.start_container(c, cfg).await?;
    let mut s = c.wait_exited(&id, 240).await?;
    // The shim reports the exit and the OOM kill as two events (on v2 the
    // OOM one after it reads memory.events); containerd sets the reason
    // when the second arrives, which the kubelet's next status read sees.
    for _ in 0..150 {
        if s.reason == "OOMKilled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        s = c.status(&id).await?;
    }
    if s.reason != "OOMKilled" || s.exit_code != 137 {
        return Err(format!(
            "exit code {}, reason {:?}, message {:?}",
            s.exit_code, s.reason, s.message
        ));
    }
    Ok(())
}
