//! kubectl-shaped commands over pods: apply, get, describe, logs, exec,
//! delete, and `pod ns` (the namespace table of a pod's processes).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use peapod_engine::containers::Engine;
use peapod_engine::pod::{ContainerKind, ContainerState, PodRecord};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them, or - for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Accept fields the Kubernetes API does not know.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub validate: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Wide,
    Json,
    Yaml,
    Name,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// pods, jobs (po, job).
    pub kind: String,
    pub names: Vec<String>,
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Label selector: key=value[,key=value].
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// After the list, print a pod's row again each time it changes (until
    /// interrupted).
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    pub kind: String,
    pub name: String,
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// pod or job, then names (or -f FILE).
    pub what: Vec<String>,
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
    /// Seconds the containers get between the stop signal and SIGKILL.
    #[arg(long = "grace-period")]
    pub grace_period: Option<u32>,
}

#[derive(Debug)]
pub struct PodLogsArgs {
    pub pod: String,
    pub container: Option<String>,
    pub follow: bool,
    /// The previous run of the container.
    pub previous: bool,
    pub timestamps: bool,
    pub namespace: String,
}

#[derive(Subcommand, Debug)]
pub enum PodCommand {
    /// The namespaces of a pod's infra process and containers, like lsns.
    Ns {
        pod: String,
        #[arg(short = 'n', long = "namespace", default_value = "default")]
        namespace: String,
    },
    /// Make a pod with only its infra process; add containers with run --pod.
    Create(crate::pod_cmd::CreateArgs),
    /// List pods.
    Ps,
    /// A pod as JSON: its state, infra process, IP and containers.
    Inspect { pods: Vec<String> },
    /// Stop a pod's containers and its infra process.
    Stop(crate::pod_cmd::StopArgs),
    /// Bring stopped pods up again, with their containers.
    Start { pods: Vec<String> },
    /// Remove pods and their containers.
    Rm(crate::pod_cmd::RmArgs),
}

pub(crate) fn age(since: &str) -> String {
    let Some(t) = peapod_engine::time::parse_rfc3339(since) else {
        return "?".into();
    };
    let s = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn find_pod(engine: &Engine, ns: &str, name: &str) -> Result<PodRecord> {
    engine.pods.find(ns, name)?.with_context(|| {
        format!("pod {name:?} not found in namespace {ns:?}: list them with peapod get pods")
    })
}

fn selected(p: &PodRecord, selector: Option<&str>) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once("!=") {
            Some((k, v)) => p.plan.labels.get(k.trim()).map(String::as_str) != Some(v.trim()),
            None => match term.split_once('=') {
                Some((k, v)) => {
                    p.plan.labels.get(k.trim()).map(String::as_str)
                        == Some(v.trim().trim_start_matches('='))
                }
                None => p.plan.labels.contains_key(term.trim()),
            },
        })
}

/// `peapod apply -f`.
pub fn apply(engine: &Engine, cli: &crate::args::Cli, a: &ApplyArgs) -> Result<()> {
    let mut objects = Vec::new();
    for f in &a.files {
        objects.extend(peapod_kube::load_path_with(f, a.validate)?);
    }
    // Every image the pods need is here before anything is made.
    let mut images = std::collections::BTreeSet::new();
    for o in &objects {
        let spec = match o {
            peapod_kube::Object::Pod(p) => p.spec.as_ref(),
            peapod_kube::Object::Job(j) => j.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
            peapod_kube::Object::Deployment(d) => d.spec.template.spec.as_ref(),
            peapod_kube::Object::ReplicaSet(r) => {
                r.spec.template.as_ref().and_then(|t| t.spec.as_ref())
            }
            _ => None,
        };
        for c in spec.iter().flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        }) {
            if let Some(i) = &c.image {
                images.insert(i.clone());
            }
        }
    }
    for i in &images {
        crate::images::ensure_image(engine, cli, i)?;
    }
    for applied in engine.apply(&objects)? {
        println!("{} {}", applied.object, applied.action);
    }
    Ok(())
}

/// A pod as Kubernetes shows it (`-o json|yaml`).
fn pod_object(p: &PodRecord) -> serde_json::Value {
    use serde_json::json;
    let state = |s: &ContainerState| match s {
        ContainerState::Waiting { reason } => json!({"waiting": {"reason": reason}}),
        ContainerState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        ContainerState::Terminated {
            exit_code,
            reason,
            started_at,
            finished_at,
        } => json!({"terminated": {
            "exitCode": exit_code, "reason": reason,
            "startedAt": started_at, "finishedAt": finished_at}}),
    };
    let statuses = |kind: fn(ContainerKind) -> bool| -> Vec<serde_json::Value> {
        p.containers
            .iter()
            .filter(|c| kind(c.kind))
            .map(|c| {
                json!({
                    "name": c.name,
                    "image": c.image,
                    "ready": c.ready,
                    "restartCount": c.restart_count,
                    "started": matches!(c.state, ContainerState::Running { .. }),
                    "state": state(&c.state),
                    "lastState": c.last_state.as_ref().map(state).unwrap_or(json!({})),
                    "containerID": c.container_id.as_ref().map(|id| format!("peapod://{id}")),
                })
            })
            .collect()
    };
    let summary = p.summary();
    let ready = summary.ready == summary.total && p.phase == peapod_engine::pod::Phase::Running;
    let mut obj = p.manifest.clone();
    if obj.get("job").is_some() {
        obj.as_object_mut().map(|o| o.remove("job"));
    }
    obj["apiVersion"] = json!("v1");
    obj["kind"] = json!("Pod");
    obj["metadata"]["name"] = json!(p.name);
    obj["metadata"]["namespace"] = json!(p.namespace);
    obj["metadata"]["uid"] = json!(p.uid);
    obj["metadata"]["creationTimestamp"] = json!(p.created);
    obj["metadata"]["labels"] = json!(p.plan.labels);
    if let Some(owner) = &p.owner {
        let (kind, name) = owner.split_once('/').unwrap_or(("", owner));
        obj["metadata"]["ownerReferences"] =
            json!([{"kind": kind, "name": name, "controller": true}]);
    }
    obj["status"] = json!({
        "phase": format!("{:?}", p.phase),
        "podIP": p.ip.map(|i| i.to_string()),
        "podIPs": p.ip.map(|i| vec![json!({"ip": i.to_string()})]).unwrap_or_default(),
        "hostIP": "127.0.0.1",
        "qosClass": p.plan.qos,
        "startTime": p.created,
        "conditions": [
            {"type": "Initialized", "status": if p.containers.iter().filter(|c| c.kind == ContainerKind::Init).all(|c| matches!(c.state, ContainerState::Terminated { exit_code: 0, .. })) { "True" } else { "False" }},
            {"type": "Ready", "status": if ready { "True" } else { "False" }},
            {"type": "ContainersReady", "status": if ready { "True" } else { "False" }},
            {"type": "PodScheduled", "status": "True"},
        ],
        "containerStatuses": statuses(|k| k == ContainerKind::App),
        "initContainerStatuses": statuses(|k| k != ContainerKind::App),
    });
    obj
}

pub(crate) fn print_objects(
    items: Vec<serde_json::Value>,
    single: bool,
    out: Output,
) -> Result<()> {
    let value = if single && items.len() == 1 {
        items.into_iter().next().unwrap_or_default()
    } else {
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
    };
    match out {
        Output::Yaml => print!("{}", serde_norway::to_string(&value)?),
        _ => println!("{}", serde_json::to_string_pretty(&value)?),
    }
    Ok(())
}

/// `peapod get pods|jobs`.
pub fn get(engine: &Engine, a: &GetArgs) -> Result<()> {
    if let Some(kind) = peapod_engine::pod::deployment::ControllerKind::parse(&a.kind) {
        return crate::deploy_cmd::get(engine, a, kind);
    }
    let list = || -> Result<Vec<PodRecord>> {
        Ok(engine
            .pods
            .list()?
            .into_iter()
            .filter(|p| a.all_namespaces || p.namespace == a.namespace)
            .filter(|p| a.names.is_empty() || a.names.contains(&p.name))
            .filter(|p| selected(p, a.selector.as_deref()))
            .collect())
    };
    let pods = list()?;
    match a.kind.as_str() {
        "pods" | "pod" | "po" => {
            if let Some(o @ (Output::Json | Output::Yaml)) = a.output {
                return print_objects(
                    pods.iter().map(pod_object).collect(),
                    !a.names.is_empty(),
                    o,
                );
            }
            if a.output == Some(Output::Name) {
                for p in &pods {
                    println!("pod/{}", p.name);
                }
                return Ok(());
            }
            if pods.is_empty() && !a.watch {
                eprintln!("No resources found in {} namespace.", a.namespace);
                return Ok(());
            }
            let wide = a.output == Some(Output::Wide);
            let mut out = std::io::stdout().lock();
            let ns_col = if a.all_namespaces { "NAMESPACE   " } else { "" };
            write!(
                out,
                "{ns_col}{:<32} {:<7} {:<18} {:<9} {:<6}",
                "NAME", "READY", "STATUS", "RESTARTS", "AGE"
            )?;
            if wide {
                write!(out, " {:<15} NODE", "IP")?;
            }
            writeln!(out)?;
            let node = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into());
            let row = |p: &PodRecord| {
                let s = p.summary();
                let ns = if a.all_namespaces {
                    format!("{:<12}", p.namespace)
                } else {
                    String::new()
                };
                let ip = if wide {
                    let ip =
                        p.ip.map(|i| i.to_string())
                            .unwrap_or_else(|| "<none>".into());
                    format!(" {ip:<15} {node}")
                } else {
                    String::new()
                };
                let state = format!("{}/{} {} {} {ip}", s.ready, s.total, s.status, s.restarts);
                let line = format!(
                    "{ns}{:<32} {:<7} {:<18} {:<9} {:<6}{ip}",
                    p.name,
                    format!("{}/{}", s.ready, s.total),
                    s.status,
                    s.restarts,
                    age(&p.created)
                );
                (state, line)
            };
            let mut seen = std::collections::HashMap::new();
            for p in &pods {
                let (state, line) = row(p);
                writeln!(out, "{line}")?;
                seen.insert(p.id.clone(), state);
            }
            drop(out);
            if !a.watch {
                return Ok(());
            }
            // Until interrupted.
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let mut out = std::io::stdout().lock();
                for p in list()? {
                    let (state, line) = row(&p);
                    if seen.get(&p.id) != Some(&state) {
                        writeln!(out, "{line}")?;
                        out.flush()?;
                        seen.insert(p.id.clone(), state);
                    }
                }
            }
        }
        "jobs" | "job" | "jobs.batch" => crate::job_cmd::get(engine, a),
        other => bail!("unknown resource type {other:?}: use pods or jobs"),
    }
}

/// The Events section of `describe`: type, reason, age and message.
pub fn print_events(o: &mut dyn Write, events: &[peapod_engine::pod::Event]) -> Result<()> {
    let width = events
        .iter()
        .map(|e| e.reason.len())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(o, "Events:")?;
    writeln!(
        o,
        "  {:<8} {:<width$} {:<8} Message",
        "Type", "Reason", "Age"
    )?;
    for e in events {
        writeln!(
            o,
            "  {:<8} {:<width$} {:<8} {}",
            e.kind,
            e.reason,
            age(&e.time),
            e.message
        )?;
    }
    Ok(())
}

/// `peapod describe pod NAME`.
pub fn describe(engine: &Engine, a: &DescribeArgs) -> Result<()> {
    if let Some(kind) = peapod_engine::pod::deployment::ControllerKind::parse(&a.kind) {
        return crate::deploy_cmd::describe(engine, kind, &a.namespace, &a.name);
    }
    if matches!(a.kind.as_str(), "job" | "jobs" | "job.batch" | "jobs.batch") {
        return crate::job_cmd::describe(engine, &a.namespace, &a.name);
    }
    if !matches!(a.kind.as_str(), "pod" | "pods" | "po") {
        bail!(
            "describe {}: only pods can be described; use describe pod NAME",
            a.kind
        );
    }
    let p = find_pod(engine, &a.namespace, &a.name)?;
    let s = p.summary();
    let mut o = std::io::stdout().lock();
    writeln!(o, "Name:         {}", p.name)?;
    writeln!(o, "Namespace:    {}", p.namespace)?;
    writeln!(o, "UID:          {}", p.uid)?;
    writeln!(o, "Start Time:   {}", p.created)?;
    let labels: Vec<String> = p
        .plan
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    writeln!(
        o,
        "Labels:       {}",
        if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(",")
        }
    )?;
    writeln!(o, "Status:       {:?} ({})", p.phase, s.status)?;
    writeln!(
        o,
        "IP:           {}",
        p.ip.map(|i| i.to_string())
            .unwrap_or_else(|| "<none>".into())
    )?;
    if let Some(owner) = &p.owner {
        writeln!(o, "Controlled By:  {owner}")?;
    }
    writeln!(
        o,
        "Infra PID:    {}",
        p.infra
            .map(|i| i.pid.to_string())
            .unwrap_or_else(|| "<none>".into())
    )?;
    let state_lines = |st: &ContainerState| -> Vec<String> {
        match st {
            ContainerState::Waiting { reason } => {
                vec!["Waiting".into(), format!("  Reason:       {reason}")]
            }
            ContainerState::Running { started_at } => {
                vec!["Running".into(), format!("  Started:      {started_at}")]
            }
            ContainerState::Terminated {
                exit_code,
                reason,
                started_at,
                finished_at,
            } => vec![
                "Terminated".into(),
                format!("  Reason:       {reason}"),
                format!("  Exit Code:    {exit_code}"),
                format!("  Started:      {}", started_at.clone().unwrap_or_default()),
                format!("  Finished:     {finished_at}"),
            ],
        }
    };
    for (title, kinds) in [("Init Containers:", false), ("Containers:", true)] {
        let list: Vec<_> = p
            .containers
            .iter()
            .filter(|c| (c.kind == ContainerKind::App) == kinds)
            .collect();
        if list.is_empty() {
            continue;
        }
        writeln!(o, "{title}")?;
        for c in list {
            writeln!(o, "  {}:", c.name)?;
            writeln!(
                o,
                "    Container ID:  {}",
                c.container_id
                    .as_deref()
                    .map(|i| &i[..12])
                    .unwrap_or("<none>")
            )?;
            writeln!(o, "    Image:         {}", c.image)?;
            let lines = state_lines(&c.state);
            writeln!(o, "    State:         {}", lines[0])?;
            for l in &lines[1..] {
                writeln!(o, "    {l}")?;
            }
            if let Some(last) = &c.last_state {
                let lines = state_lines(last);
                writeln!(o, "    Last State:    {}", lines[0])?;
                for l in &lines[1..] {
                    writeln!(o, "    {l}")?;
                }
            }
            writeln!(
                o,
                "    Ready:         {}",
                if c.ready { "True" } else { "False" }
            )?;
            writeln!(o, "    Restart Count: {}", c.restart_count)?;
        }
    }
    writeln!(o, "QoS Class:    {}", p.plan.qos)?;
    print_events(&mut o, &p.events)?;
    Ok(())
}

pub fn container_of<'a>(
    p: &'a PodRecord,
    wanted: Option<&str>,
) -> Result<&'a peapod_engine::pod::ContainerStatus> {
    match wanted {
        Some(name) => p
            .containers
            .iter()
            .find(|c| c.name == name)
            .with_context(|| {
                format!(
                    "container {name:?} is not in pod {}: it has {}",
                    p.name,
                    p.containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        None => p
            .containers
            .iter()
            .find(|c| c.kind == ContainerKind::App)
            .context("the pod has no containers"),
    }
}

/// `peapod logs POD` (a pod name; container ids still work through the
/// container command).
pub fn logs(engine: &Engine, a: &PodLogsArgs) -> Result<()> {
    let p = find_pod(engine, &a.namespace, &a.pod)?;
    let c = container_of(&p, a.container.as_deref())?;
    let cid = c
        .container_id
        .clone()
        .context("the container was not created yet")?;
    let record = engine.store.load(&cid)?;
    if a.previous && c.restart_count == 0 {
        bail!(
            "previous terminated container {:?} in pod {:?} not found",
            c.name,
            p.name
        );
    }
    let opts = peapod_engine::logs::ReadOptions {
        tail: None,
        timestamps: a.timestamps,
        max_files: peapod_engine::logs::DEFAULT_MAX_FILES,
    };
    // The log holds every run.
    let lines = peapod_engine::logs::read_lines(&record.log_path, opts.max_files)?;
    let start_of = |back: usize| {
        c.starts
            .len()
            .checked_sub(back)
            .and_then(|i| c.starts.get(i))
            .and_then(|s| peapod_engine::time::parse_rfc3339(s))
    };
    // The current run is from the last start on; the previous one from
    // the start before it to the last.
    let split = start_of(1);
    let previous_from = start_of(2);
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    if a.previous || !a.follow {
        for l in &lines {
            let current = split.is_none_or(|t| l.time >= t);
            let wanted = if a.previous {
                !current && previous_from.is_none_or(|t| l.time >= t)
            } else {
                current
            };
            if wanted {
                let mut text = Vec::new();
                if a.timestamps {
                    text.extend(peapod_engine::time::format_rfc3339_nano(l.time).into_bytes());
                    text.push(b' ');
                }
                text.extend_from_slice(&l.content);
                if l.complete {
                    text.push(b'\n');
                }
                match l.stream {
                    peapod_engine::logs::Stream::Stdout => out.write_all(&text)?,
                    peapod_engine::logs::Stream::Stderr => err.write_all(&text)?,
                }
            }
        }
        return Ok(());
    }
    let id = p.id.clone();
    let mut keep_going = || engine.pods.load(&id).is_ok_and(|r| r.supervised());
    let follow = peapod_engine::logs::Follow {
        poll: Duration::from_millis(100),
        keep_going: &mut keep_going,
    };
    peapod_engine::logs::write_logs(&record.log_path, &opts, &mut out, &mut err, Some(follow))?;
    Ok(())
}

/// `peapod delete pod NAME | job NAME | -f FILE`.
pub fn delete(engine: &Engine, a: &DeleteArgs) -> Result<()> {
    let mut targets: Vec<(String, String, String)> = Vec::new();
    for f in &a.files {
        for o in peapod_kube::load_path_with(f, false)? {
            targets.push((
                o.kind().name().to_lowercase(),
                o.name().to_string(),
                o.namespace().to_string(),
            ));
        }
    }
    if let Some((kind, names)) = a.what.split_first() {
        let (kind, names) = match kind.split_once('/') {
            Some((k, n)) => (
                k.to_string(),
                [vec![n.to_string()], names.to_vec()].concat(),
            ),
            None => (kind.clone(), names.to_vec()),
        };
        for n in names {
            targets.push((kind.clone(), n, a.namespace.clone()));
        }
    }
    if targets.is_empty() {
        bail!(
            "delete needs something to delete: delete pod NAME, delete job NAME or delete -f FILE"
        );
    }
    for (kind, name, ns) in targets {
        if let Some(k) = peapod_engine::pod::deployment::ControllerKind::parse(&kind) {
            crate::deploy_cmd::delete(engine, k, &ns, &name, a.grace_period)?;
            continue;
        }
        if matches!(kind.as_str(), "job" | "jobs" | "job.batch" | "jobs.batch") {
            crate::job_cmd::delete(engine, &ns, &name, a.grace_period)?;
            continue;
        }
        let pods: Vec<PodRecord> = match kind.as_str() {
            "pod" | "pods" | "po" => vec![find_pod(engine, &ns, &name)?],
            "configmap" | "secret" => {
                println!("{kind} \"{name}\" deleted");
                continue;
            }
            other => bail!("cannot delete {other:?}: use pod or job"),
        };
        for p in pods {
            engine.delete_pod(&p.id, a.grace_period)?;
            if kind.starts_with("po") {
                println!("pod \"{}\" deleted", p.name);
            }
        }
    }
    Ok(())
}

/// `peapod pod ns POD`: a row per process of the pod (the infra process and
/// each container's first process), a column per namespace kind, each
/// inode marked `*` where it is the infra process's.
pub fn pod_ns(engine: &Engine, cmd: &PodCommand) -> Result<()> {
    let PodCommand::Ns { pod, namespace } = cmd else {
        return crate::pod_cmd::run(engine, cmd);
    };
    let p = find_pod(engine, namespace, pod)?;
    const KINDS: [&str; 7] = ["cgroup", "user", "ipc", "net", "mnt", "uts", "pid"];
    let inode = |pid: i32, kind: &str| -> Option<u64> {
        let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
        let s = link.to_str()?;
        s.split('[').nth(1)?.trim_end_matches(']').parse().ok()
    };
    let mut rows: Vec<(String, i32)> = Vec::new();
    if let Some(infra) = p.infra.filter(|i| i.alive()) {
        rows.push(("infra (pause)".into(), infra.pid));
    }
    for c in &p.containers {
        let Some(cid) = &c.container_id else { continue };
        if let Ok(r) = engine.store.load(cid)
            && let peapod_engine::containers::Status::Running { pid, .. } = engine.view(&r).status
        {
            rows.push((c.name.clone(), pid));
        }
    }
    // Containers added with run --pod.
    for (r, s) in engine.pod_member_status(&p) {
        if let peapod_engine::containers::Status::Running { pid, .. } = s {
            rows.push((r.name, pid));
        }
    }
    if rows.is_empty() {
        bail!("pod {} has no running processes", p.name);
    }
    let me = std::process::id() as i32;
    let host: Vec<Option<u64>> = KINDS.iter().map(|k| inode(me, k)).collect();
    let infra: Vec<Option<u64>> = KINDS.iter().map(|k| inode(rows[0].1, k)).collect();
    let mut o = std::io::stdout().lock();
    write!(o, "{:<16} {:>8}", "PROCESS", "PID")?;
    for k in KINDS {
        write!(o, " {k:>12}")?;
    }
    writeln!(o)?;
    for (name, pid) in &rows {
        write!(o, "{name:<16} {pid:>8}")?;
        for (i, k) in KINDS.iter().enumerate() {
            let v = inode(*pid, k);
            let mark = if *name != rows[0].0 && v.is_some() && v == infra[i] {
                "*"
            } else if v.is_some() && v == host[i] {
                "h"
            } else {
                " "
            };
            write!(
                o,
                " {:>11}{mark}",
                v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
            )?;
        }
        writeln!(o)?;
    }
    writeln!(
        o,
        "* shared with the infra process   h the host's   (others: the process's own)"
    )?;
    Ok(())
}

/// `--timeout`: seconds, or a number with s, m or h.
fn wait_timeout(s: &str) -> Result<Duration> {
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = n
        .parse()
        .ok()
        .filter(|n: &f64| *n >= 0.0)
        .with_context(|| format!("--timeout {s:?}: use 30s, 2m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "ms" => n / 1000.0,
        _ => bail!("--timeout {s:?}: use 30s, 2m or 1h"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// What `wait --for` waits for.
pub(crate) enum WaitFor {
    Delete,
    /// `condition=NAME[=VALUE]`: the name as given, and the value
    /// (true unless given).
    Condition {
        name: String,
        value: bool,
    },
}

impl WaitFor {
    fn parse(cond: &str) -> Result<WaitFor> {
        if cond == "delete" {
            return Ok(WaitFor::Delete);
        }
        let Some(c) = cond.strip_prefix("condition=") else {
            bail!("--for {cond:?}: use condition=NAME[=VALUE] or delete");
        };
        let (name, value) = c.split_once('=').unwrap_or((c, "true"));
        let value = match value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => bail!("--for {cond:?}: a condition's value is true or false"),
        };
        Ok(WaitFor::Condition {
            name: name.to_string(),
            value,
        })
    }
}

/// `peapod wait --for=condition=Ready pod/NAME`,
/// `--for=condition=Complete job/NAME` and `--for=delete`, as kubectl
/// wait.
pub fn wait(engine: &Engine, a: &crate::args::WaitArgs) -> Result<()> {
    let cond = a.for_.as_deref().unwrap_or_default();
    let want = WaitFor::parse(cond)?;
    let deadline = std::time::Instant::now() + wait_timeout(&a.timeout)?;
    for target in &a.containers {
        match target.split_once('/') {
            Some(("job" | "jobs" | "job.batch" | "jobs.batch", name)) => {
                crate::job_cmd::wait(engine, &a.namespace, name, &want, deadline)?
            }
            Some(("pod" | "pods" | "po", name)) => {
                wait_pod(engine, &a.namespace, name, &want, deadline)?
            }
            Some((kind, _)) => {
                bail!("{target}: peapod waits for pods (pod/NAME) and jobs (job/NAME), not {kind}")
            }
            None => wait_pod(engine, &a.namespace, target, &want, deadline)?,
        }
    }
    Ok(())
}

/// Waits for pod `name` until `deadline`.
fn wait_pod(
    engine: &Engine,
    namespace: &str,
    name: &str,
    want: &WaitFor,
    deadline: std::time::Instant,
) -> Result<()> {
    let want_delete = matches!(want, WaitFor::Delete);
    let want_ready = match want {
        WaitFor::Delete => true,
        WaitFor::Condition { name: c, value } => {
            if !matches!(c.to_ascii_lowercase().as_str(), "ready" | "containersready") {
                bail!(
                    "--for condition={c}: peapod waits for a pod's condition=Ready, condition=ContainersReady or delete"
                );
            }
            *value
        }
    };
    if !want_delete {
        // Fails now when there is no such pod, as kubectl does.
        find_pod(engine, namespace, name)?;
    }
    loop {
        let pod = engine.pods.find(namespace, name)?;
        let done = match &pod {
            None => want_delete,
            Some(_) if want_delete => false,
            Some(p) => {
                let s = p.summary();
                let ready = p.phase == peapod_engine::pod::Phase::Running
                    && s.total > 0
                    && s.ready == s.total;
                if want_ready && !ready && p.finished.is_some() {
                    bail!(
                        "pod/{name} ended (phase {:?}) without becoming ready",
                        p.phase
                    );
                }
                ready == want_ready
            }
        };
        if done {
            if want_delete {
                println!("pod/{name} deleted");
            } else {
                println!("pod/{name} condition met");
            }
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!("timed out waiting for the condition on pods/{name}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
