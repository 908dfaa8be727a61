//! A pod's life through the CRI: sandbox, containers, exec and attach,
//! status and exit reasons, stop with a grace period, logs, removal, and
//! that nothing is left afterwards; pod create/remove cycles; the bench.

use crate::cri::{self, Cri, Res};
use crate::{host, stream, Report};
use k8s_cri::v1::*;
use std::time::{Duration, Instant};

/// A running pod sandbox with the containers made in it.
pub struct Pod {
    pub id: String,
    pub uid: String,
    pub config: PodSandboxConfig,
    pub containers: Vec<String>,
}

impl Pod {
    /// The kubelet's steps: the pod cgroup, then RunPodSandbox.
    pub async fn start(
        c: &mut Cri,
        name: &str,
        share_pid: bool,
        pids_max: Option<u32>,
    ) -> Res<Pod> {
        let uid = cri::new_uid(name);
        let config = cri::pod_config(&c.node, name, &uid, share_pid);
        let parent = cri::cgroup_parent(&c.node.cgroup_driver, &uid);
        if c.node.cgroup_driver == "cgroupfs" {
            host::make_pod_cgroup(&parent, pids_max)?;
        }
        if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
            return Err(format!("log directory {}: {e}", config.log_directory));
        }
        let id = c
            .run_pod(&config)
            .await
            .map_err(|e| format!("RunPodSandbox: {e}"))?;
        Ok(Pod {
            id,
            uid,
            config,
            containers: Vec::new(),
        })
    }

    pub async fn start_container(&mut self, c: &mut Cri, cfg: ContainerConfig) -> Res<String> {
        let id = c.start(&self.id, &self.config, cfg).await?;
        self.containers.push(id.clone());
        Ok(id)
    }

    pub fn log_path(&self, name: &str) -> String {
        format!("{}/{name}.log", self.config.log_directory)
    }

    /// StopPodSandbox, RemovePodSandbox, the kubelet's removal of the pod
    /// cgroup; then an error naming whatever is left on the node.
    pub async fn end(self, c: &mut Cri) -> Res<()> {
        c.stop_pod(&self.id)
            .await
            .map_err(|e| format!("StopPodSandbox: {e}"))?;
        c.remove_pod(&self.id)
            .await
            .map_err(|e| format!("RemovePodSandbox: {e}"))?;
        let _ = std::fs::remove_dir_all(&self.config.log_directory);
        let mut ids = self.containers.clone();
        ids.push(self.id.clone());
        let mut left = host::leftovers(c, &self.uid, &ids);
        let parent = cri::cgroup_parent(&c.node.cgroup_driver, &self.uid);
        let removed = if c.node.cgroup_driver == "cgroupfs" {
            host::remove_pod_cgroup(&parent)
        } else {
            host::stop_pod_slice(&parent)
        };
        if let Err(e) = removed {
            left.push(e);
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left after RemovePodSandbox: {}", left.join("; ")))
        }
    }
}

/// The container's init pid, from ContainerStatus's verbose info.
pub async fn pid_of(c: &mut Cri, id: &str) -> Res<u32> {
    let req = ContainerStatusRequest {
        container_id: id.into(),
        verbose: true,
    };
    let r =
        c.rt.container_status(req)
            .await
            .map_err(|e| e.message().to_string())?;
    let info = r.into_inner().info;
    let json = info.get("info").ok_or("no verbose info")?;
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    v["pid"]
        .as_u64()
        .map(|p| p as u32)
        .ok_or_else(|| format!("no pid in verbose info {json}"))
}

fn expect(what: &str, got: &str, want: &str) -> Res<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

pub async fn run(c: &mut Cri, r: &mut Report) {
    r.check("Version names containerd and CRI v1", version(c).await);
    let mut pod = match Pod::start(c, "life", false, None).await {
        Ok(p) => p,
        Err(e) => {
            r.check("RunPodSandbox", Err(e));
            return;
        }
    };
    r.check(
        "RunPodSandbox with the handler; the sandbox is ready",
        sandbox_ready(c, &pod).await,
    );
    let app = cri::container(&c.node, "app", "echo started; exec sleep 1000", false);
    match pod.start_container(c, app).await {
        Ok(id) => {
            r.check(
                "the container runs under this handler (its state in the runtime's root)",
                under_handler(c, &id),
            );
            r.check(
                "its cgroup is where the kubelet's driver puts it",
                kubelet_cgroup(c, &pod, &id).await,
            );
            r.check("ExecSync: output and exit code", exec_sync(c, &id).await);
            r.check(
                "Exec with a terminal through the streaming server",
                exec_tty(c, &id).await,
            );
            r.check(
                "ContainerStats and ListContainerStats",
                stats(c, &pod, &id).await,
            );
            r.check(
                "ReopenContainerLog: a new log file after rotation",
                reopen_log(c, &pod, &id).await,
            );
        }
        Err(e) => r.check("CreateContainer and StartContainer", Err(e)),
    }
    r.check(
        "Attach with a terminal to a container's shell",
        attach(c, &mut pod).await,
    );
    r.check(
        "ContainerStatus: exit code 3, reason Error",
        exit_reason(c, &mut pod).await,
    );
    r.check(
        "a second container starts in the sandbox after the first exited",
        second_container(c, &mut pod).await,
    );
    r.check(
        "StopContainer: TERM first, a container that handles it exits by itself",
        stop_term(c, &mut pod).await,
    );
    r.check(
        "StopContainer: KILL after the grace period when TERM is ignored",
        stop_kill(c, &mut pod).await,
    );
    r.check(
        "RemoveContainer removes it from the list",
        remove_container(c, &mut pod).await,
    );
    r.check(
        "StopPodSandbox, RemovePodSandbox: no mounts, cgroups, state or processes left",
        pod.end(c).await,
    );
}

async fn version(c: &mut Cri) -> Res<()> {
    let v = c.version().await?;
    if v.runtime_name != "containerd" || v.runtime_api_version != "v1" {
        return Err(format!("{v:?}"));
    }
    Ok(())
}

async fn sandbox_ready(c: &mut Cri, pod: &Pod) -> Res<()> {
    let s = c.pod_status(&pod.id).await?;
    if s.state != PodSandboxState::SandboxReady as i32 {
        return Err(format!("state {}", s.state));
    }
    Ok(())
}

fn under_handler(c: &Cri, id: &str) -> Res<()> {
    let state = std::path::Path::new(&c.node.runtime_root)
        .join(id)
        .join("state.json");
    if state.exists() {
        Ok(())
    } else {
        Err(format!("{} does not exist", state.display()))
    }
}

/// cgroupfs: `/kubepods/burstable/pod<uid>/<id>`; systemd: the scope
/// `cri-containerd-<id>.scope` in the pod's slice, under its parents.
async fn kubelet_cgroup(c: &mut Cri, pod: &Pod, id: &str) -> Res<()> {
    let pid = pid_of(c, id).await?;
    let got = host::memory_cgroup_of(pid)?;
    let want = if c.node.cgroup_driver == "systemd" {
        let uid = pod.uid.replace('-', "_");
        format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{id}.scope")
    } else {
        format!("/kubepods/burstable/pod{}/{id}", pod.uid)
    };
    expect("memory cgroup", &got, &want)
}

async fn exec_sync(c: &mut Cri, id: &str) -> Res<()> {
    let r = c
        .exec_sync(id, &["sh", "-c", "echo out; echo err >&2; exit 5"])
        .await?;
    expect("stdout", String::from_utf8_lossy(&r.stdout).trim(), "out")?;
    expect("stderr", String::from_utf8_lossy(&r.stderr).trim(), "err")?;
    expect("exit code", &r.exit_code.to_string(), "5")
}

async fn exec_tty(c: &mut Cri, id: &str) -> Res<()> {
    let req = ExecRequest {
        container_id: id.into(),
        cmd: ["sh", "-c", "tty; read x; echo got-$x"]
            .map(String::from)
            .to_vec(),
        tty: true,
        stdin: true,
        stdout: true,
        stderr: false,
    };
    let url =
        c.rt.exec(req)
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner()
            .url;
    let s = stream::session(&url, &[("/dev/pts/", "hello\n")], 30).await?;
    if !s.stdout.contains("/dev/pts/") || !s.stdout.contains("got-hello") {
        return Err(format!("output {:?}, status {:?}", s.stdout, s.status));
    }
    if !s.status.contains("Success") {
        return Err(format!("final status {:?}", s.status));
    }
    Ok(())
}

async fn attach(c: &mut Cri, pod: &mut Pod) -> Res<()> {
    let mut cfg = cri::container(&c.node, "shell", "", false);
    cfg.command = vec!["sh".into()];
    cfg.tty = true;
    cfg.stdin = true;
    cfg.stdin_once = true;
    let id = pod.start_container(c, cfg).await?;
    let req = AttachRequest {
        container_id: id.clone(),
        stdin: true,
        tty: true,
        stdout: true,
        stderr: false,
    };
    let url =
        c.rt.attach(req)
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner()
            .url;
    // Attaching does not replay the prompt: send a line at once.
    let s = stream::session(
        &url,
        &[
            ("", "echo attached-$((6*7)); tty\n"),
            ("attached-42", "exit 4\n"),
        ],
        30,
    )
    .await?;
    if !s.stdout.contains("attached-42") || !s.stdout.contains("/dev/pts/") {
        return Err(format!("output {:?}, status {:?}", s.stdout, s.status));
    }
    let st = c.wait_exited(&id, 20).await?;
    expect("exit code after `exit 4`", &st.exit_code.to_string(), "4")
}

async fn stats(c: &mut Cri, pod: &Pod, id: &str) -> Res<()> {
    c.sh(id, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
        .await?;
    let s =
        c.rt.container_stats(ContainerStatsRequest {
            container_id: id.into(),
        })
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner()
        .stats
        .ok_or("no stats")?;
    let cpu = s
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map_or(0, |v| v.value);
    let mem = s
        .memory
        .and_then(|m| m.working_set_bytes)
        .map_or(0, |v| v.value);
    if cpu == 0 || mem == 0 {
        return Err(format!("cpu {cpu} ns, working set {mem} bytes"));
    }
    let filter = ContainerStatsFilter {
        pod_sandbox_id: pod.id.clone(),
        ..Default::default()
    };
    let list =
        c.rt.list_container_stats(ListContainerStatsRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner()
        .stats;
    if !list
        .iter()
        .any(|s| s.attributes.as_ref().is_some_and(|a| a.id == id))
    {
        return Err(format!(
            "ListContainerStats of the pod has no {id} ({} entries)",
            list.len()
        ));
    }
    Ok(())
}

/// The kubelet rotates a log by renaming it, then asks for a new file.
async fn reopen_log(c: &mut Cri, pod: &Pod, id: &str) -> Res<()> {
    let log = pod.log_path("app");
    let rotated = format!("{log}.1");
    std::fs::rename(&log, &rotated).map_err(|e| format!("renaming {log}: {e}"))?;
    c.rt.reopen_container_log(ReopenContainerLogRequest {
        container_id: id.into(),
    })
    .await
    .map_err(|e| format!("ReopenContainerLog: {}", e.message()))?;
    c.sh(id, "echo after-reopen > /proc/1/fd/1").await?;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("after-reopen") {
            let old = std::fs::read_to_string(&rotated).unwrap_or_default();
            return if old.contains("started") {
                Ok(())
            } else {
                Err(format!("the rotated log lost its lines: {old:?}"))
            };
        }
        if Instant::now() > end {
            return Err(format!("{log} has {text:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn exit_reason(c: &mut Cri, pod: &mut Pod) -> Res<()> {
    let id = pod
        .start_container(c, cri::container(&c.node, "fails", "exit 3", false))
        .await?;
    let s = c.wait_exited(&id, 30).await?;
    expect("exit code", &s.exit_code.to_string(), "3")?;
    expect("reason", &s.reason, "Error")
}

async fn second_container(c: &mut Cri, pod: &mut Pod) -> Res<()> {
    let id = pod
        .start_container(
            c,
            cri::container(&c.node, "second", "echo second; exit 0", false),
        )
        .await?;
    let s = c.wait_exited(&id, 30).await?;
    expect("exit code", &s.exit_code.to_string(), "0")?;
    expect("reason", &s.reason, "Completed")?;
    let log = std::fs::read_to_string(pod.log_path("second")).unwrap_or_default();
    if !log.contains(" stdout F second") {
        return Err(format!("log {log:?}"));
    }
    Ok(())
}

async fn stop_term(c: &mut Cri, pod: &mut Pod) -> Res<()> {
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done";
    let id = pod
        .start_container(c, cri::container(&c.node, "graceful", script, false))
        .await?;
    wait_log(&pod.log_path("graceful"), "ready").await?;
    c.stop(&id, 30).await?;
    let s = c.wait_exited(&id, 5).await?;
    expect(
        "exit code from the TERM trap",
        &s.exit_code.to_string(),
        "7",
    )?;
    wait_log(&pod.log_path("graceful"), "got-term").await
}

async fn stop_kill(c: &mut Cri, pod: &mut Pod) -> Res<()> {
    let script = "trap '' TERM; echo ready; while :; do sleep 0.1; done";
    let id = pod
        .start_container(c, cri::container(&c.node, "stubborn", script, false))
        .await?;
    wait_log(&pod.log_path("stubborn"), "ready").await?;
    let t = Instant::now();
    c.stop(&id, 2).await?;
    let waited = t.elapsed();
    let s = c.wait_exited(&id, 5).await?;
    expect("exit code", &s.exit_code.to_string(), "137")?;
    // Behaviour, not speed: KILL must not come before the grace period.
    if waited < Duration::from_millis(1900) {
        return Err(format!(
            "stopped after {waited:?}, before the 2 s grace period"
        ));
    }
    Ok(())
}

async fn remove_container(c: &mut Cri, pod: &mut Pod) -> Res<()> {
    let id = pod.containers.first().cloned().ok_or("no container")?;
    c.stop(&id, 0).await?;
    c.remove(&id).await?;
    let list =
        c.rt.list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: pod.id.clone(),
                ..Default::default()
            }),
        })
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner()
        .containers;
    if list.iter().any(|x| x.id == id) {
        return Err("still listed".into());
    }
    let state = std::path::Path::new(&c.node.runtime_root).join(&id);
    if state.exists() {
        return Err(format!("{} still exists", state.display()));
    }
    Ok(())
}

pub async fn wait_log(path: &str, what: &str) -> Res<()> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(what) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("{path} has no {what:?}: {text:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` pods made and removed (with a GPU container when `gpu`), then
/// checked for leftovers each time.
pub async fn cycles(c: &mut Cri, r: &mut Report, n: u32, gpu: bool) {
    if n == 0 {
        return;
    }
    let t = Instant::now();
    let mut res = Ok(());
    for i in 0..n {
        if let Err(e) = one_cycle(c, gpu).await {
            res = Err(format!("cycle {i}: {e}"));
            break;
        }
    }
    let what = if gpu { " with a GPU" } else { "" };
    println!(
        "# [{}] {n} pod cycles{what} in {:.1} s",
        c.node.handler,
        t.elapsed().as_secs_f64()
    );
    r.check(
        &format!("{n} pod create/remove cycles{what} leave nothing behind"),
        res,
    );
}

async fn one_cycle(c: &mut Cri, gpu: bool) -> Res<()> {
    let mut pod = Pod::start(c, "cycle", false, None).await?;
    let mut cfg = cri::container(&c.node, "app", "exec sleep 1000", false);
    if gpu {
        cfg.envs.push(KeyValue {
            key: "NVIDIA_VISIBLE_DEVICES".into(),
            value: "0".into(),
        });
    }
    let res = match pod.start_container(c, cfg).await {
        Ok(id) if gpu => c.sh(&id, "test -c /dev/nvidia1").await.map(drop),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    let end = pod.end(c).await;
    res.and(end)
}

/// `make bench`'s pod row: RunPodSandbox + CreateContainer +
/// StartContainer + StopPodSandbox + RemovePodSandbox, `n` times; one
/// `sample HANDLER MS` line each (run.sh takes the medians).
pub async fn bench(c: &mut Cri, n: u32) {
    for _ in 0..n {
        let t = Instant::now();
        let res = async {
            let mut pod = Pod::start(c, "bench", false, None).await?;
            pod.start_container(c, cri::container(&c.node, "app", "exec sleep 1000", false))
                .await?;
            pod.end(c).await
        }
        .await;
        if let Err(e) = res {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
        println!(
            "sample {} {:.2}",
            c.node.handler,
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}
