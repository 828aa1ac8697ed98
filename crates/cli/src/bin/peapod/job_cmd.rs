//! Jobs from the command line: `get jobs`, `describe job`, `delete job`
//! (called from kube_cmd) and the hidden `__job-supervise` that is each
//! Job's controller.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use clap::Args;
use peapod_engine::containers::Engine;
use peapod_engine::pod::job::JobRecord;
use peapod_engine::pod::job_index::format_indexes;
use serde_json::json;

use crate::kube_cmd::{GetArgs, Output, WaitFor, age};

#[derive(Args, Debug)]
pub struct JobSuperviseArgs {
    pub namespace: String,
    pub name: String,
}

/// `peapod __job-supervise NS NAME`.
pub fn supervise(engine: &Engine, a: &JobSuperviseArgs) -> Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: the launcher put its pipe on this descriptor for us alone;
    // fcntl tells whether it is open before it is owned.
    let ready = unsafe {
        (libc::fcntl(peapod_engine::containers::READY_FD, libc::F_GETFD) >= 0)
            .then(|| std::fs::File::from_raw_fd(peapod_engine::containers::READY_FD))
    };
    peapod_engine::pod::run_job_controller(engine, &a.namespace, &a.name, ready)?;
    Ok(())
}

fn time(s: &str) -> Option<SystemTime> {
    peapod_engine::time::parse_rfc3339(s)
}

/// kubectl's short durations: 45s, 3m12s, 2h5m, 3d.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..600 if !s.is_multiple_of(60) => format!("{}m{}s", s / 60, s % 60),
        120..10_800 => format!("{}m", s / 60),
        10_800..172_800 if !(s / 60).is_multiple_of(60) => {
            format!("{}h{}m", s / 3600, (s / 60) % 60)
        }
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// From start to the end (or now).
fn duration(r: &JobRecord) -> Option<Duration> {
    let start = time(r.start_time.as_deref()?)?;
    let end = match &r.end {
        Some(e) => time(&e.time)?,
        None => SystemTime::now(),
    };
    Some(end.duration_since(start).unwrap_or_default())
}

/// The Job as Kubernetes shows it (`-o json|yaml`).
fn job_object(engine: &Engine, r: &JobRecord) -> Result<serde_json::Value> {
    let mut obj = r.manifest.clone();
    obj["apiVersion"] = json!("batch/v1");
    obj["kind"] = json!("Job");
    obj["metadata"]["namespace"] = json!(r.namespace);
    obj["metadata"]["uid"] = json!(r.uid);
    obj["metadata"]["creationTimestamp"] = json!(r.created);
    let spec = &mut obj["spec"];
    spec["completions"] = json!(r.completions);
    spec["parallelism"] = json!(r.parallelism);
    spec["backoffLimit"] = json!(r.backoff_limit);
    spec["suspend"] = json!(r.suspend);
    spec["completionMode"] = json!(if r.indexed { "Indexed" } else { "NonIndexed" });
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": r.uid}});
    spec["template"]["metadata"]["labels"]["job-name"] = json!(r.name);
    spec["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] = json!(r.name);
    spec["template"]["metadata"]["labels"]["controller-uid"] = json!(r.uid);
    spec["template"]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = json!(r.uid);
    let mut status = json!({});
    let active = engine.job_active(r)?;
    if active > 0 {
        status["active"] = json!(active);
    }
    if r.succeeded() > 0 {
        status["succeeded"] = json!(r.succeeded());
    }
    if r.failed() > 0 {
        status["failed"] = json!(r.failed());
    }
    if let Some(t) = &r.start_time {
        status["startTime"] = json!(t);
    }
    if let Some(e) = r.end.as_ref().filter(|e| e.condition == "Complete") {
        status["completionTime"] = json!(e.time);
    }
    if r.indexed {
        status["completedIndexes"] = json!(format_indexes(&r.succeeded_indexes()));
        if r.backoff_limit_per_index.is_some() {
            status["failedIndexes"] = json!(format_indexes(&r.failed_indexes));
        }
    }
    let conditions: Vec<serde_json::Value> = r
        .conditions()
        .iter()
        .map(|c| {
            json!({
                "type": c.kind,
                "status": if c.status { "True" } else { "False" },
                "reason": c.reason,
                "message": c.message,
                "lastProbeTime": c.time,
                "lastTransitionTime": c.time,
            })
        })
        .collect();
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    obj["status"] = status;
    Ok(obj)
}

/// `peapod get jobs`.
pub fn get(engine: &Engine, a: &GetArgs) -> Result<()> {
    let jobs: Vec<JobRecord> = engine
        .jobs()
        .list()?
        .into_iter()
        .filter(|r| !r.deleting)
        .filter(|r| a.all_namespaces || r.namespace == a.namespace)
        .filter(|r| a.names.is_empty() || a.names.contains(&r.name))
        .collect();
    for n in &a.names {
        if !jobs.iter().any(|r| &r.name == n) {
            anyhow::bail!("jobs.batch {n:?} not found in namespace {:?}", a.namespace);
        }
    }
    match a.output {
        Some(o @ (Output::Json | Output::Yaml)) => {
            let items = jobs
                .iter()
                .map(|r| job_object(engine, r))
                .collect::<Result<Vec<_>>>()?;
            return crate::kube_cmd::print_objects(items, !a.names.is_empty(), o);
        }
        Some(Output::Name) => {
            for r in &jobs {
                println!("job.batch/{}", r.name);
            }
            return Ok(());
        }
        _ => {}
    }
    if jobs.is_empty() {
        eprintln!("No resources found in {} namespace.", a.namespace);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let ns_col = if a.all_namespaces { "NAMESPACE   " } else { "" };
    writeln!(
        out,
        "{ns_col}{:<24} {:<10} {:<12} {:<10} AGE",
        "NAME", "STATUS", "COMPLETIONS", "DURATION"
    )?;
    for r in &jobs {
        if a.all_namespaces {
            write!(out, "{:<12}", r.namespace)?;
        }
        writeln!(
            out,
            "{:<24} {:<10} {:<12} {:<10} {}",
            r.name,
            r.status(),
            format!("{}/{}", r.succeeded(), r.completions),
            duration(r).map(short).unwrap_or_default(),
            age(&r.created)
        )?;
    }
    Ok(())
}

/// `peapod describe job NAME`.
pub fn describe(engine: &Engine, ns: &str, name: &str) -> Result<()> {
    let r = engine
        .jobs()
        .load(ns, name)?
        .filter(|r| !r.deleting)
        .with_context(|| format!("job {name:?} not found in namespace {ns:?}"))?;
    let pods = engine.job_pods(&r)?;
    let mut o = std::io::stdout().lock();
    writeln!(o, "Name:             {}", r.name)?;
    writeln!(o, "Namespace:        {}", r.namespace)?;
    writeln!(
        o,
        "Selector:         batch.kubernetes.io/controller-uid={}",
        r.uid
    )?;
    writeln!(o, "Parallelism:      {}", r.parallelism)?;
    writeln!(o, "Completions:      {}", r.completions)?;
    if r.indexed {
        writeln!(o, "Completion Mode:  Indexed")?;
    }
    writeln!(o, "Suspend:          {}", r.suspend)?;
    writeln!(o, "Backoff Limit:    {}", r.backoff_limit)?;
    if let Some(d) = r.active_deadline_seconds {
        writeln!(o, "Active Deadline Seconds:  {d}s")?;
    }
    if let Some(t) = r.ttl_seconds_after_finished {
        writeln!(o, "TTL Seconds After Finished:  {t}")?;
    }
    writeln!(
        o,
        "Start Time:       {}",
        r.start_time.as_deref().unwrap_or("<none>")
    )?;
    if let Some(e) = r.end.as_ref().filter(|e| e.condition == "Complete") {
        writeln!(o, "Completed At:     {}", e.time)?;
    }
    for c in r.conditions() {
        writeln!(
            o,
            "Condition:        {}={} ({}): {}",
            c.kind,
            if c.status { "True" } else { "False" },
            c.reason,
            c.message
        )?;
    }
    if let Some(d) = duration(&r) {
        writeln!(o, "Duration:         {}", short(d))?;
    }
    writeln!(
        o,
        "Pods Statuses:    {} Active / {} Succeeded / {} Failed",
        engine.job_active(&r)?,
        r.succeeded(),
        r.failed()
    )?;
    if r.indexed {
        writeln!(
            o,
            "Completed Indexes: {}",
            Some(format_indexes(&r.succeeded_indexes()))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".into())
        )?;
    }
    writeln!(o, "Pods:")?;
    if pods.is_empty() {
        writeln!(o, "  <none>")?;
    }
    for p in &pods {
        let s = p.summary();
        writeln!(
            o,
            "  {:<32} {:<18} restarts {}  age {}",
            p.name,
            s.status,
            s.restarts,
            age(&p.created)
        )?;
    }
    crate::kube_cmd::print_events(&mut o, &r.events)?;
    Ok(())
}

/// `peapod delete job NAME`.
pub fn delete(engine: &Engine, ns: &str, name: &str, grace: Option<u32>) -> Result<()> {
    if !engine.delete_job(ns, name, grace)? {
        anyhow::bail!("job {name:?} not found in namespace {ns:?}");
    }
    println!("job.batch \"{name}\" deleted");
    Ok(())
}

/// The conditions a Job can have (kubectl matches them in any case).
const CONDITIONS: [&str; 5] = [
    "Complete",
    "Failed",
    "Suspended",
    "SuccessCriteriaMet",
    "FailureTarget",
];

/// `peapod wait --for=condition=Complete job/NAME` (or Failed, Suspended,
/// SuccessCriteriaMet, FailureTarget, `=false`) and `--for=delete`,
/// until `deadline`.
pub fn wait(
    engine: &Engine,
    ns: &str,
    name: &str,
    want: &WaitFor,
    deadline: Instant,
) -> Result<()> {
    let store = engine.jobs();
    let load =
        || -> Result<Option<JobRecord>> { Ok(store.load(ns, name)?.filter(|r| !r.deleting)) };
    let condition = match want {
        WaitFor::Delete => None,
        WaitFor::Condition { name: c, value } => {
            let Some(kind) = CONDITIONS.iter().find(|k| k.eq_ignore_ascii_case(c)) else {
                anyhow::bail!(
                    "--for condition={c}: a job's conditions are {}",
                    CONDITIONS.join(", ")
                );
            };
            // Fails now when there is no such Job, as kubectl does.
            if load()?.is_none() {
                anyhow::bail!("jobs.batch {name:?} not found in namespace {ns:?}");
            }
            Some((*kind, *value))
        }
    };
    loop {
        let rec = load()?;
        let met = match (condition, &rec) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(_), None) => {
                anyhow::bail!("job.batch/{name} was deleted while waiting for its condition")
            }
            (Some((kind, value)), Some(r)) => r
                .conditions()
                .iter()
                .any(|c| c.kind == kind && c.status == value),
        };
        if met {
            println!("job.batch/{name} condition met");
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out waiting for the condition on jobs/{name}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
