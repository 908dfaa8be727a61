//! vessel-cri-tests: the kubelet's CRI calls against containerd for one
//! runtime handler. Prints `ok - [handler] check`, `not ok - ... (why)`
//! and `skip - ... (why)` lines; run.sh counts them.
//!
//!   vessel-cri-tests --socket S --handler H --image REF --log-root DIR
//!       --runtime-root DIR --base DIR [--cycles N] [--gpu-cycles N]
//!       [--gpu FAKE_ROOT] [--strict-handler H] [--bench N]
//!       [--groups lifecycle,pods,resources,oom,gpu,cycles]

mod cri;
mod gpu;
mod host;
mod lifecycle;
mod pods;
mod resources;
mod stream;

use cri::{Cri, Node, Res};

/// The results of one handler's run.
pub struct Report {
    handler: String,
    pub failed: u32,
    last: std::time::Instant,
}

impl Report {
    pub fn check(&mut self, name: &str, r: Res<()>) {
        let took = std::mem::replace(&mut self.last, std::time::Instant::now()).elapsed();
        let took = format!("{:.1} s", took.as_secs_f64());
        match r {
            Ok(()) => println!("ok - [{}] {name} ({took})", self.handler),
            Err(e) => {
                self.failed += 1;
                println!(
                    "not ok - [{}] {name} ({took}: {})",
                    self.handler,
                    e.replace('\n', " ")
                );
            }
        }
    }

    pub fn skip(&self, name: &str, why: &str) {
        println!("skip - [{}] {name} ({why})", self.handler);
    }
}

struct Args {
    node: Node,

    cycles: u32,
    gpu_cycles: u32,
    gpu_root: Option<String>,
    strict_handler: Option<String>,
    bench: u32,
    /// Which groups of checks run (all by default).
    groups: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut kv = std::collections::HashMap::new();
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        kv.insert(k.trim_start_matches('-').to_string(), v);
    }
    let need = |k: &str| {
        kv.get(k)
            .cloned()
            .ok_or_else(|| format!("--{k} is required"))
    };
    let num = |k: &str, d: u32| {
        kv.get(k)
            .map_or(Ok(d), |v| v.parse().map_err(|e| format!("--{k}: {e}")))
    };
    Ok(Args {
        node: Node {
            socket: need("socket")?,
            handler: need("handler")?,
            image: need("image")?,
            cgroup_driver: kv
                .get("cgroup-driver")
                .cloned()
                .unwrap_or("cgroupfs".into()),
            log_root: need("log-root")?,
            runtime_root: need("runtime-root")?,
        },

        cycles: num("cycles", 200)?,
        gpu_cycles: num("gpu-cycles", 50)?,
        gpu_root: kv.get("gpu").cloned(),
        strict_handler: kv.get("strict-handler").cloned(),
        bench: num("bench", 0)?,
        groups: kv
            .get("groups")
            .map_or("lifecycle,pods,resources,oom,gpu,cycles", |v| v)
            .split(',')
            .map(String::from)
            .collect(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vessel-cri-tests: {e}");
            std::process::exit(2);
        }
    };
    let mut report = Report {
        handler: args.node.handler.clone(),
        failed: 0,
        last: std::time::Instant::now(),
    };
    let mut c = match Cri::connect(args.node.clone()).await {
        Ok(c) => c,
        Err(e) => {
            report.check("connect to containerd's CRI socket", Err(e));
            std::process::exit(1);
        }
    };
    if args.bench > 0 {
        lifecycle::bench(&mut c, args.bench).await;
        return;
    }
    let wants = |g: &str| args.groups.iter().any(|x| x == g);
    if wants("lifecycle") {
        lifecycle::run(&mut c, &mut report).await;
    }
    if wants("pods") {
        pods::run(&mut c, &mut report).await;
    }
    if wants("resources") {
        resources::run(&mut c, &mut report, wants("oom")).await;
    }
    if wants("gpu") {
        match &args.gpu_root {
            Some(root) => {
                let ctx = gpu::Ctx {
                    root: root.clone(),
                    strict_handler: args.strict_handler.clone(),
                };
                gpu::run(&mut c, &mut report, &ctx).await;
                if wants("cycles") {
                    lifecycle::cycles(&mut c, &mut report, args.gpu_cycles, true).await;
                }
            }
            None if args.node.handler != "vessel" => report.skip(
                "GPU device-plugin strategies",
                "GPU passthrough is vessel's own: this handler's runtime has none",
            ),
            None => report.skip(
                "GPU device-plugin strategies",
                "no fake GPU driver (make-fake-driver.sh failed)",
            ),
        }
    }
    if wants("cycles") {
        lifecycle::cycles(&mut c, &mut report, args.cycles, false).await;
    }
    println!("# [{}] done", args.node.handler);
    std::process::exit(i32::from(report.failed > 0));
}
