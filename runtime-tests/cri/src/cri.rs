//! The kubelet's side of the CRI: a client on containerd's socket and the
//! pod and container configurations a kubelet builds.

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint, Uri};

pub type Res<T> = Result<T, String>;

/// What the kubelet of this test node is configured with.
#[derive(Clone, Debug)]
pub struct Node {
    pub socket: String,
    pub handler: String,
    pub image: String,
    /// `cgroupfs` or `systemd`, as containerd's `SystemdCgroup`.
    pub cgroup_driver: String,
    /// Where pod logs go (the kubelet's /var/log/pods).
    pub log_root: String,
    /// The runtime's `--root` for this handler (containerd's runc `Root`
    /// option plus the `k8s.io` namespace).
    pub runtime_root: String,
}

pub struct Cri {
    pub rt: RuntimeServiceClient<Channel>,
    pub node: Node,
}

fn status(e: tonic::Status) -> String {
    format!("{}: {}", e.code(), e.message())
}

impl Cri {
    pub async fn connect(node: Node) -> Res<Cri> {
        let path = node.socket.clone();
        let channel = Endpoint::try_from("http://[::]")
            .map_err(|e| e.to_string())?
            .timeout(Duration::from_secs(120))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }))
            .await
            .map_err(|e| format!("connecting to {}: {e}", node.socket))?;
        Ok(Cri {
            rt: RuntimeServiceClient::new(channel),
            node,
        })
    }

    pub async fn version(&mut self) -> Res<VersionResponse> {
        let r = self.rt.version(VersionRequest {
            version: "v1".into(),
        });
        Ok(r.await.map_err(status)?.into_inner())
    }

    pub async fn run_pod(&mut self, pod: &PodSandboxConfig) -> Res<String> {
        let req = RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: self.node.handler.clone(),
        };
        let r = self.rt.run_pod_sandbox(req).await.map_err(status)?;
        Ok(r.into_inner().pod_sandbox_id)
    }

    pub async fn stop_pod(&mut self, id: &str) -> Res<()> {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt.stop_pod_sandbox(req).await.map_err(status)?;
        Ok(())
    }

    pub async fn remove_pod(&mut self, id: &str) -> Res<()> {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt.remove_pod_sandbox(req).await.map_err(status)?;
        Ok(())
    }

    pub async fn pod_status(&mut self, id: &str) -> Res<PodSandboxStatus> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        let r = self.rt.pod_sandbox_status(req).await.map_err(status)?;
        r.into_inner()
            .status
            .ok_or_else(|| "no pod status".to_string())
    }

    /// CreateContainer then StartContainer; the container's id.
    pub async fn start(
        &mut self,
        pod_id: &str,
        pod: &PodSandboxConfig,
        c: ContainerConfig,
    ) -> Res<String> {
        let id = self.create(pod_id, pod, c).await?;
        let req = StartContainerRequest {
            container_id: id.clone(),
        };
        self.rt
            .start_container(req)
            .await
            .map_err(|e| format!("StartContainer: {}", status(e)))?;
        Ok(id)
    }

    pub async fn create(
        &mut self,
        pod_id: &str,
        pod: &PodSandboxConfig,
        c: ContainerConfig,
    ) -> Res<String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod_id.into(),
            config: Some(c),
            sandbox_config: Some(pod.clone()),
        };
        let r = self
            .rt
            .create_container(req)
            .await
            .map_err(|e| format!("CreateContainer: {}", status(e)))?;
        Ok(r.into_inner().container_id)
    }

    pub async fn exec_sync(&mut self, id: &str, cmd: &[&str]) -> Res<ExecSyncResponse> {
        let req = ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        };
        let r = self.rt.exec_sync(req).await.map_err(status)?;
        Ok(r.into_inner())
    }

    /// ExecSync's stdout, trimmed; an error unless it exited 0.
    pub async fn sh(&mut self, id: &str, script: &str) -> Res<String> {
        let r = self.exec_sync(id, &["sh", "-c", script]).await?;
        let out = String::from_utf8_lossy(&r.stdout).trim().to_string();
        if r.exit_code != 0 {
            return Err(format!(
                "`{script}` exited {}: stdout {out:?}, stderr {:?}",
                r.exit_code,
                String::from_utf8_lossy(&r.stderr).trim()
            ));
        }
        Ok(out)
    }

    pub async fn status(&mut self, id: &str) -> Res<ContainerStatus> {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let r = self.rt.container_status(req).await.map_err(status)?;
        r.into_inner()
            .status
            .ok_or_else(|| "no container status".to_string())
    }

    /// Polls ContainerStatus until the container has exited.
    pub async fn wait_exited(&mut self, id: &str, secs: u64) -> Res<ContainerStatus> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status(id).await?;
            if s.state == ContainerState::ContainerExited as i32 {
                return Ok(s);
            }
            if Instant::now() > end {
                return Err(format!("still in state {} after {secs} s", s.state));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(&mut self, id: &str, timeout: i64) -> Res<()> {
        let req = StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.rt.stop_container(req).await.map_err(status)?;
        Ok(())
    }

    pub async fn remove(&mut self, id: &str) -> Res<()> {
        let req = RemoveContainerRequest {
            container_id: id.into(),
        };
        self.rt.remove_container(req).await.map_err(status)?;
        Ok(())
    }
}

/// The pod's cgroup parent as the kubelet names it for its driver.
pub fn cgroup_parent(driver: &str, uid: &str) -> String {
    if driver == "systemd" {
        format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_"))
    } else {
        format!("/kubepods/burstable/pod{uid}")
    }
}

/// A pod as the kubelet asks for it: its own network, IPC and UTS
/// namespaces; one pid namespace for all when `share_pid`.
pub fn pod_config(node: &Node, name: &str, uid: &str, share_pid: bool) -> PodSandboxConfig {
    let ns = namespaces(share_pid);
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: format!("{}/default_{name}_{uid}", node.log_root),
        labels: HashMap::from([("io.kubernetes.pod.name".into(), name.into())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(&node.cgroup_driver, uid),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(ns),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn namespaces(share_pid: bool) -> NamespaceOption {
    let pid = if share_pid {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: pid as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// An app container running `sh -c script` in the node's image.
pub fn container(node: &Node, name: &str, script: &str, share_pid: bool) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: node.image.clone(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespaces(share_pid)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A fresh pod uid (unique across runs and handlers).
pub fn new_uid(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        std::process::id(),
        n & 0xffff,
        tag.len() & 0xfff,
        (t >> 48) as u16 & 0xfff,
        t & 0xffff_ffff_ffff
    )
}
