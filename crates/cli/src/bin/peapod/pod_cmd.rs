//! Podman-shaped pod commands: `pod create`, `ps`, `inspect`, `stop`,
//! `start`, `rm` (containers join a pod with `run --pod`).

use anyhow::{Result, bail};
use clap::Args;
use peapod_engine::containers::{Engine, Status};
use peapod_engine::pod::{PodOptions, PodRecord};
use peapod_engine::request::PortMapping;

use crate::kube_cmd::PodCommand;

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(long)]
    pub name: Option<String>,
    /// Publish a port of the pod: [IP:]HOSTPORT:CTRPORT[/udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// One PID namespace for the pod's containers.
    #[arg(long = "share-pid")]
    pub share_pid: bool,
    /// The pod's hostname (default: its name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// KEY=VALUE.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    pub pods: Vec<String>,
    /// Seconds between the stop signal and SIGKILL.
    #[arg(short = 't', long = "time")]
    pub time: Option<u32>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    pub pods: Vec<String>,
    /// Stop running pods and containers first.
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn run(engine: &Engine, cmd: &PodCommand) -> Result<()> {
    match cmd {
        PodCommand::Ns { .. } => crate::kube_cmd::pod_ns(engine, cmd),
        PodCommand::Create(a) => create(engine, a),
        PodCommand::Ps => ps(engine),
        PodCommand::Inspect { pods } => inspect(engine, pods),
        PodCommand::Stop(a) => each(&a.pods, |p| {
            engine.stop_pod(p, a.time)?;
            Ok(())
        }),
        PodCommand::Start { pods } => each(pods, |p| {
            engine.start_pod(p)?;
            Ok(())
        }),
        PodCommand::Rm(a) => each(&a.pods, |p| Ok(engine.remove_pod(p, a.force)?)),
    }
}

/// Runs `f` on each pod and prints the names done; fails at the end if any
/// failed.
fn each(pods: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
    if pods.is_empty() {
        bail!("name a pod");
    }
    let mut failed = false;
    for p in pods {
        match f(p) {
            Ok(()) => println!("{p}"),
            Err(e) => {
                eprintln!("Error: {e:#}");
                failed = true;
            }
        }
    }
    if failed {
        Err(crate::containers::Exit(1).into())
    } else {
        Ok(())
    }
}

fn create(engine: &Engine, a: &CreateArgs) -> Result<()> {
    let mut ports = Vec::new();
    for p in &a.publish {
        ports.push(p.parse::<PortMapping>()?);
    }
    let mut labels = std::collections::BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let rec = engine.create_pod(PodOptions {
        name: a.name.clone(),
        hostname: a.hostname.clone(),
        ports,
        share_pid: a.share_pid,
        labels,
    })?;
    println!("{}", rec.id);
    Ok(())
}

/// Running, Exited (stopped), or Created (being made).
fn status(engine: &Engine, p: &PodRecord) -> &'static str {
    if engine.pod_running(p) {
        "Running"
    } else if p.finished.is_some() || p.supervisor.is_none() {
        "Exited"
    } else {
        "Created"
    }
}

fn ps(engine: &Engine) -> Result<()> {
    let mut rows = Vec::new();
    for p in engine.pods.list()? {
        let members = engine.pod_member_status(&p).len()
            + p.containers
                .iter()
                .filter(|c| c.container_id.is_some())
                .count();
        rows.push(vec![
            p.id[..12].to_string(),
            p.name.clone(),
            status(engine, &p).to_string(),
            format!("{} ago", crate::kube_cmd::age(&p.created)),
            members.to_string(),
        ]);
    }
    crate::table::print(
        &["POD ID", "NAME", "STATUS", "CREATED", "# OF CONTAINERS"],
        &rows,
    );
    Ok(())
}

fn inspect(engine: &Engine, pods: &[String]) -> Result<()> {
    if pods.is_empty() {
        bail!("name a pod");
    }
    let mut out = Vec::new();
    for key in pods {
        let p = engine.find_pod(key)?;
        let mut containers: Vec<serde_json::Value> = engine
            .pod_member_status(&p)
            .into_iter()
            .map(|(r, s)| {
                serde_json::json!({
                    "id": r.id,
                    "name": r.name,
                    "state": s.word(),
                    "pid": match s { Status::Running { pid, .. } => Some(pid), _ => None },
                })
            })
            .collect();
        for c in &p.containers {
            let Some(cid) = &c.container_id else { continue };
            let Ok(r) = engine.store.load(cid) else {
                continue;
            };
            let s = engine.view(&r).status;
            containers.push(serde_json::json!({
                "id": r.id,
                "name": r.name,
                "state": s.word(),
                "pid": match s { Status::Running { pid, .. } => Some(pid), _ => None },
            }));
        }
        let running = engine.pod_running(&p);
        out.push(serde_json::json!({
            "id": p.id,
            "name": p.name,
            "namespace": p.namespace,
            "created": p.created,
            "state": status(engine, &p),
            "uid": p.uid,
            "cgroup": engine.pod_cgroup(&p),
            "hostname": p.plan.hostname,
            "sharePid": p.plan.share_pid,
            "labels": p.plan.labels,
            "infraPid": p.infra.filter(|_| running).map(|i| i.pid),
            "ip": p.ip.filter(|_| running).map(|i| i.to_string()),
            "netns": p.netns.filter(|_| running),
            "ports": peapod_engine::containers::ports_text(&p.plan.ports),
            "containers": containers,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
