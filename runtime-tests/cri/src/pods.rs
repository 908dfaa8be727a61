//! Pods share namespaces by path: the sandbox holds the network, IPC and
//! UTS namespaces, app containers join them; shareProcessNamespace puts
//! every container in the sandbox's pid namespace.

use crate::cri::{self, Cri, Res};
use crate::lifecycle::Pod;
use crate::Report;

pub async fn run(c: &mut Cri, r: &mut Report) {
    for share_pid in [false, true] {
        let tag = if share_pid {
            " (shareProcessNamespace)"
        } else {
            ""
        };
        let mut pod = match Pod::start(
            c,
            if share_pid { "shared" } else { "pair" },
            share_pid,
            None,
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                r.check(&format!("RunPodSandbox{tag}"), Err(e));
                continue;
            }
        };
        let res = two_containers(c, &mut pod, share_pid).await;
        match res {
            Ok((a, b)) => {
                r.check(
                    &format!("the pod's network has only lo{tag}"),
                    only_lo(c, &a).await,
                );
                r.check(
                    &format!("two containers talk over 127.0.0.1{tag}"),
                    loopback_talk(c, &b).await,
                );
                r.check(
                    &format!("both see the pod's hostname{tag}"),
                    same_hostname(c, &pod, &a, &b).await,
                );
                r.check(
                    &format!("net, ipc and uts namespaces are the sandbox's{tag}"),
                    same_ns(c, &a, &b, &["net", "ipc", "uts"]).await,
                );
                r.check(
                    &format!("pid namespaces{tag}"),
                    pid_ns(c, &a, &b, share_pid).await,
                );
            }
            Err(e) => r.check(&format!("two containers start in one pod{tag}"), Err(e)),
        }
        r.check(
            &format!("the pod is removed without leftovers{tag}"),
            pod.end(c).await,
        );
    }
}

async fn two_containers(c: &mut Cri, pod: &mut Pod, share_pid: bool) -> Res<(String, String)> {
    let server = "mkdir -p /tmp/www && echo pod-local > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www";
    let a = pod
        .start_container(c, cri::container(&c.node, "server", server, share_pid))
        .await?;
    let b = pod
        .start_container(
            c,
            cri::container(&c.node, "client", "exec sleep 1000", share_pid),
        )
        .await?;
    Ok((a, b))
}

async fn only_lo(c: &mut Cri, id: &str) -> Res<()> {
    let links = c.sh(id, "ls /sys/class/net").await?;
    if links.split_whitespace().collect::<Vec<_>>() == ["lo"] {
        Ok(())
    } else {
        Err(format!("interfaces {links:?}"))
    }
}

async fn loopback_talk(c: &mut Cri, client: &str) -> Res<()> {
    let mut last = String::new();
    for _ in 0..50 {
        // busybox's nc: its static wget resolves names through NSS.
        let get = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 | tail -n 1";
        match c.sh(client, get).await {
            Ok(body) if body.trim() == "pod-local" => return Ok(()),
            Ok(body) => last = body,
            Err(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(last)
}

async fn same_hostname(c: &mut Cri, pod: &Pod, a: &str, b: &str) -> Res<()> {
    let ha = c.sh(a, "hostname").await?;
    let hb = c.sh(b, "hostname").await?;
    if ha == pod.config.hostname && hb == ha {
        Ok(())
    } else {
        Err(format!(
            "{ha:?} and {hb:?}, pod hostname {:?}",
            pod.config.hostname
        ))
    }
}

async fn ns_of(c: &mut Cri, id: &str, ns: &str) -> Res<String> {
    c.sh(id, &format!("readlink /proc/self/ns/{ns}")).await
}

async fn same_ns(c: &mut Cri, a: &str, b: &str, kinds: &[&str]) -> Res<()> {
    for ns in kinds {
        let (x, y) = (ns_of(c, a, ns).await?, ns_of(c, b, ns).await?);
        if x != y {
            return Err(format!("{ns}: {x} and {y}"));
        }
        let host =
            std::fs::read_link(format!("/proc/self/ns/{ns}")).map(|p| p.display().to_string());
        if host.is_ok_and(|h| h == x) {
            return Err(format!("{ns} is the host's ({x})"));
        }
    }
    Ok(())
}

/// Shared: one pid namespace whose init is the pause process, where the
/// client sees the server's httpd. Not shared: each its own.
async fn pid_ns(c: &mut Cri, a: &str, b: &str, share_pid: bool) -> Res<()> {
    let (x, y) = (ns_of(c, a, "pid").await?, ns_of(c, b, "pid").await?);
    if !share_pid {
        return if x != y {
            Ok(())
        } else {
            Err(format!("both in {x}"))
        };
    }
    if x != y {
        return Err(format!("{x} and {y}"));
    }
    let init = c.sh(b, "cat /proc/1/cmdline | tr '\\0' ' '").await?;
    let ps = c.sh(b, "ps -o comm").await?;
    if !init.contains("pause") || !ps.contains("httpd") {
        return Err(format!("pid 1 is {init:?}; ps: {ps:?}"));
    }
    Ok(())
}
