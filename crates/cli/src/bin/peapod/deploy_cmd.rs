//! Deployments and ReplicaSets from the command line: `get`, `describe`
//! and `delete` of them (called from kube_cmd), `scale`, and the hidden
//! `__deploy-supervise` that is each one's controller (`rollout` is in
//! rollout_cmd).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use peapod_engine::containers::Engine;
use peapod_engine::pod::deployment::{ControllerKind, ControllerRecord, Strategy};
use peapod_engine::pod::revision::{CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION, Revision};
use peapod_kube::k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::kube_cmd::{GetArgs, Output, age};

#[derive(Args, Debug)]
pub struct DeploySuperviseArgs {
    pub namespace: String,
    pub name: String,
    /// deployment or replicaset.
    #[arg(long, default_value = "deployment")]
    pub kind: String,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// deployment NAME, replicaset NAME, or deployment/NAME.
    #[arg(required = true)]
    pub what: Vec<String>,
    #[arg(long)]
    pub replicas: u32,
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
}

/// `KIND NAME` or `KIND/NAME`.
pub(crate) fn target(what: &[String]) -> Result<(ControllerKind, String)> {
    let (kind, name) = match what {
        [one] => one
            .split_once('/')
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .with_context(|| format!("{one:?}: give KIND NAME or KIND/NAME"))?,
        [k, n] => (k.clone(), n.clone()),
        _ => bail!("give KIND NAME or KIND/NAME (e.g. deployment web)"),
    };
    let kind = ControllerKind::parse(&kind)
        .with_context(|| format!("{kind:?}: use deployment or replicaset"))?;
    Ok((kind, name))
}

pub(crate) fn find(
    engine: &Engine,
    kind: ControllerKind,
    ns: &str,
    name: &str,
) -> Result<ControllerRecord> {
    engine
        .controllers(kind)
        .load(ns, name)?
        .filter(|r| !r.deleting)
        .with_context(|| format!("{} {name:?} not found in namespace {ns:?}", kind.word()))
}

pub(crate) fn duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("bad duration {s:?}: use e.g. 30s, 2m"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "ms" => Duration::from_millis(n),
        _ => bail!("bad duration {s:?}: use e.g. 30s, 2m"),
    })
}

/// `peapod __deploy-supervise NS NAME`.
pub fn supervise(engine: &Engine, a: &DeploySuperviseArgs) -> Result<()> {
    use std::os::fd::FromRawFd;
    let kind = ControllerKind::parse(&a.kind).context("--kind: deployment or replicaset")?;
    // SAFETY: the launcher put its pipe on this descriptor for us alone;
    // fcntl tells whether it is open before it is owned.
    let ready = unsafe {
        (libc::fcntl(peapod_engine::containers::READY_FD, libc::F_GETFD) >= 0)
            .then(|| std::fs::File::from_raw_fd(peapod_engine::containers::READY_FD))
    };
    peapod_engine::pod::run_controller(engine, kind, &a.namespace, &a.name, ready)?;
    Ok(())
}

/// `peapod scale deployment NAME --replicas N`.
pub fn scale(engine: &Engine, a: &ScaleArgs) -> Result<()> {
    let (kind, name) = target(&a.what)?;
    engine.scale_controller(kind, &a.namespace, &name, a.replicas)?;
    println!("{}/{name} scaled", kind.resource());
    Ok(())
}

/// The object with a Kubernetes-like status (`-o json|yaml`).
fn object(engine: &Engine, rec: &ControllerRecord) -> serde_json::Value {
    let s = engine.controller_status(rec).unwrap_or_default();
    let mut obj = rec.manifest.clone();
    obj["metadata"]["namespace"] = serde_json::json!(rec.namespace);
    obj["metadata"]["uid"] = serde_json::json!(rec.uid);
    obj["metadata"]["creationTimestamp"] = serde_json::json!(rec.created);
    obj["metadata"]["generation"] = serde_json::json!(rec.generation);
    obj["spec"]["replicas"] = serde_json::json!(rec.replicas);
    if rec.kind == ControllerKind::Deployment {
        obj["metadata"]["annotations"][REVISION_ANNOTATION] =
            serde_json::json!(rec.revision().to_string());
    }
    obj["status"] = match rec.kind {
        ControllerKind::Deployment => serde_json::json!({
            "observedGeneration": rec.generation,
            "replicas": s.replicas,
            "updatedReplicas": s.updated,
            "readyReplicas": s.ready,
            "availableReplicas": s.available,
            "unavailableReplicas": rec.replicas.max(s.replicas).saturating_sub(s.available),
        }),
        ControllerKind::ReplicaSet => serde_json::json!({
            "observedGeneration": rec.generation,
            "replicas": s.replicas,
            "readyReplicas": s.ready,
            "availableReplicas": s.available,
        }),
    };
    obj
}

fn selector(rec: &ControllerRecord) -> String {
    rec.manifest["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A line of `get replicasets`.
struct RsRow {
    name: String,
    desired: u32,
    current: u32,
    ready: u32,
    created: String,
    obj: serde_json::Value,
}

/// The ReplicaSets of Deployment `d`: one per revision, oldest first, then
/// any other pod template its pods still run.
fn replica_sets(engine: &Engine, d: &ControllerRecord) -> Result<Vec<RsRow>> {
    let pods = engine.controller_pods(d)?;
    // Number 0: a template it no longer keeps as a revision.
    let mut sets: Vec<Revision> = d.revisions.clone();
    for h in pods
        .iter()
        .filter_map(|p| p.plan.labels.get("pod-template-hash"))
        .chain(std::iter::once(&d.template_hash))
    {
        if !sets.iter().any(|s| &s.hash == h) {
            let created = pods
                .iter()
                .find(|p| p.plan.labels.get("pod-template-hash") == Some(h))
                .map_or_else(|| d.created.clone(), |p| p.created.clone());
            sets.push(Revision {
                number: 0,
                hash: h.clone(),
                template: if *h == d.template_hash {
                    d.template.clone()
                } else {
                    PodTemplateSpec::default()
                },
                created,
                change_cause: None,
            });
        }
    }
    let mut rows = Vec::new();
    for set in sets {
        let h = set.hash;
        let mine: Vec<_> = pods
            .iter()
            .filter(|p| !p.deleting && p.plan.labels.get("pod-template-hash") == Some(&h))
            .collect();
        let name = peapod_kube::names::replica_set_name(&d.name, &h);
        let desired = if h == d.template_hash { d.replicas } else { 0 };
        let ready = mine
            .iter()
            .filter(|p| peapod_engine::pod::deployment::pod_ready(p))
            .count() as u32;
        let available = mine.iter().filter(|p| d.available(p)).count() as u32;
        let mut annotations = serde_json::Map::new();
        if set.number > 0 {
            annotations.insert(REVISION_ANNOTATION.into(), set.number.to_string().into());
        }
        if let Some(c) = set.change_cause {
            annotations.insert(CHANGE_CAUSE_ANNOTATION.into(), c.into());
        }
        let obj = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": d.namespace,
                "creationTimestamp": set.created,
                "labels": {"pod-template-hash": h},
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": d.name, "controller": true}],
            },
            "spec": {"replicas": desired, "minReadySeconds": d.min_ready().as_secs(), "template": set.template},
            "status": {"replicas": mine.len(), "readyReplicas": ready, "availableReplicas": available},
        });
        rows.push(RsRow {
            name,
            desired,
            current: mine.len() as u32,
            ready,
            created: set.created,
            obj,
        });
    }
    Ok(rows)
}

/// `peapod get deployments|replicasets`.
pub fn get(engine: &Engine, a: &GetArgs, kind: ControllerKind) -> Result<()> {
    let recs: Vec<ControllerRecord> = engine
        .controllers(kind)
        .list()?
        .into_iter()
        .filter(|r| !r.deleting)
        .filter(|r| a.all_namespaces || r.namespace == a.namespace)
        .collect();
    let mut out = std::io::stdout().lock();
    match kind {
        ControllerKind::Deployment => {
            let recs: Vec<_> = recs
                .into_iter()
                .filter(|r| a.names.is_empty() || a.names.contains(&r.name))
                .collect();
            if let Some(o @ (Output::Json | Output::Yaml)) = a.output {
                let items = recs.iter().map(|r| object(engine, r)).collect();
                return crate::kube_cmd::print_objects(items, !a.names.is_empty(), o);
            }
            if a.output == Some(Output::Name) {
                for r in &recs {
                    writeln!(out, "deployment.apps/{}", r.name)?;
                }
                return Ok(());
            }
            if recs.is_empty() {
                eprintln!("No resources found in {} namespace.", a.namespace);
                return Ok(());
            }
            let wide = a.output == Some(Output::Wide);
            write!(
                out,
                "{:<24} {:<7} {:<10} {:<9} {:<6}",
                "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"
            )?;
            if wide {
                write!(out, " {:<16} {:<16} SELECTOR", "CONTAINERS", "IMAGES")?;
            }
            writeln!(out)?;
            for r in &recs {
                let s = engine.controller_status(r)?;
                write!(
                    out,
                    "{:<24} {:<7} {:<10} {:<9} {:<6}",
                    r.name,
                    format!("{}/{}", s.ready, r.replicas),
                    s.updated,
                    s.available,
                    age(&r.created)
                )?;
                if wide {
                    let cs = r.template.spec.as_ref().map(|s| &s.containers);
                    let names: Vec<String> = cs
                        .iter()
                        .flat_map(|c| c.iter().map(|c| c.name.clone()))
                        .collect();
                    let images: Vec<String> = cs
                        .iter()
                        .flat_map(|c| c.iter().map(|c| c.image.clone().unwrap_or_default()))
                        .collect();
                    write!(
                        out,
                        " {:<16} {:<16} {}",
                        names.join(","),
                        images.join(","),
                        selector(r)
                    )?;
                }
                writeln!(out)?;
            }
            Ok(())
        }
        ControllerKind::ReplicaSet => {
            // Standalone ReplicaSets, then each Deployment's: one per
            // revision it keeps (and any other that still has pods).
            let mut rows: Vec<RsRow> = Vec::new();
            for r in &recs {
                let s = engine.controller_status(r)?;
                rows.push(RsRow {
                    name: r.name.clone(),
                    desired: r.replicas,
                    current: s.replicas,
                    ready: s.ready,
                    created: r.created.clone(),
                    obj: object(engine, r),
                });
            }
            for d in engine
                .controllers(ControllerKind::Deployment)
                .list()?
                .into_iter()
                .filter(|r| !r.deleting)
                .filter(|r| a.all_namespaces || r.namespace == a.namespace)
            {
                rows.extend(replica_sets(engine, &d)?);
            }
            rows.retain(|r| a.names.is_empty() || a.names.contains(&r.name));
            if let Some(o @ (Output::Json | Output::Yaml)) = a.output {
                let items = rows.into_iter().map(|r| r.obj).collect();
                return crate::kube_cmd::print_objects(items, !a.names.is_empty(), o);
            }
            if a.output == Some(Output::Name) {
                for r in &rows {
                    writeln!(out, "replicaset.apps/{}", r.name)?;
                }
                return Ok(());
            }
            if rows.is_empty() {
                eprintln!("No resources found in {} namespace.", a.namespace);
                return Ok(());
            }
            writeln!(
                out,
                "{:<32} {:<8} {:<8} {:<6} AGE",
                "NAME", "DESIRED", "CURRENT", "READY"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:<32} {:<8} {:<8} {:<6} {}",
                    r.name,
                    r.desired,
                    r.current,
                    r.ready,
                    age(&r.created)
                )?;
            }
            Ok(())
        }
    }
}

/// The `Pod Template:` part of describe and `rollout history
/// --revision`; `hash` is the ReplicaSet's pod-template-hash label.
pub(crate) fn print_template(
    o: &mut dyn Write,
    template: &PodTemplateSpec,
    hash: Option<&str>,
) -> Result<()> {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels: Vec<String> = meta
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(h) = hash {
        labels.push(format!("pod-template-hash={h}"));
    }
    let annotations: Vec<String> = meta
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.join(",")
        }
    };
    writeln!(o, "Pod Template:")?;
    writeln!(o, "  Labels:       {}", list(labels))?;
    writeln!(o, "  Annotations:  {}", list(annotations))?;
    writeln!(o, "  Containers:")?;
    for c in template.spec.iter().flat_map(|s| s.containers.iter()) {
        writeln!(o, "   {}:", c.name)?;
        writeln!(o, "    Image:   {}", c.image.clone().unwrap_or_default())?;
        if let Some(cmd) = &c.command {
            writeln!(o, "    Command: {}", cmd.join(" "))?;
        }
    }
    Ok(())
}

/// `peapod describe deployment|replicaset NAME`.
pub fn describe(engine: &Engine, kind: ControllerKind, ns: &str, name: &str) -> Result<()> {
    let rec = find(engine, kind, ns, name)?;
    let s = engine.controller_status(&rec)?;
    let mut o = std::io::stdout().lock();
    writeln!(o, "Name:               {}", rec.name)?;
    writeln!(o, "Namespace:          {}", rec.namespace)?;
    writeln!(o, "CreationTimestamp:  {}", rec.created)?;
    if kind == ControllerKind::Deployment {
        writeln!(
            o,
            "Annotations:        {REVISION_ANNOTATION}: {}",
            rec.revision()
        )?;
    }
    writeln!(o, "Selector:           {}", selector(&rec))?;
    writeln!(
        o,
        "Replicas:           {} desired | {} updated | {} total | {} available | {} unavailable",
        rec.replicas,
        s.updated,
        s.replicas,
        s.available,
        rec.replicas.max(s.replicas).saturating_sub(s.available)
    )?;
    if kind == ControllerKind::Deployment {
        match rec.strategy() {
            Strategy::Recreate => writeln!(o, "StrategyType:       Recreate")?,
            Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            } => {
                writeln!(o, "StrategyType:       RollingUpdate")?;
                writeln!(
                    o,
                    "RollingUpdateStrategy:  {max_unavailable} max unavailable, {max_surge} max surge"
                )?;
            }
        }
    }
    writeln!(o, "MinReadySeconds:    {}", rec.min_ready().as_secs())?;
    print_template(&mut o, &rec.template, None)?;
    if kind == ControllerKind::Deployment {
        let available = match rec.strategy() {
            Strategy::RollingUpdate {
                max_unavailable, ..
            } => s.available >= rec.replicas.saturating_sub(max_unavailable),
            Strategy::Recreate => s.available >= rec.replicas,
        };
        let done = crate::rollout_cmd::rollout_message(&rec.name, rec.replicas, &s).1;
        writeln!(o, "Conditions:")?;
        writeln!(o, "  {:<12} {:<7} Reason", "Type", "Status")?;
        writeln!(
            o,
            "  {:<12} {:<7} {}",
            "Available",
            if available { "True" } else { "False" },
            if available {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            }
        )?;
        writeln!(
            o,
            "  {:<12} {:<7} {}",
            "Progressing",
            "True",
            if done {
                "NewReplicaSetAvailable"
            } else {
                "ReplicaSetUpdated"
            }
        )?;
        writeln!(
            o,
            "NewReplicaSet:      {} ({}/{} replicas created)",
            peapod_kube::names::replica_set_name(&rec.name, &rec.template_hash),
            s.updated,
            rec.replicas
        )?;
    }
    let controller = rec
        .controller
        .filter(|c| c.alive())
        .map(|c| format!("pid {}", c.pid))
        .unwrap_or_else(|| "not running".into());
    writeln!(o, "Controller:         {controller}")?;
    crate::kube_cmd::print_events(&mut o, &rec.events)?;
    Ok(())
}

/// `peapod delete deployment|replicaset NAME`.
pub fn delete(
    engine: &Engine,
    kind: ControllerKind,
    ns: &str,
    name: &str,
    grace: Option<u32>,
) -> Result<()> {
    if !engine.delete_controller(kind, ns, name, grace)? {
        bail!("{} {name:?} not found in namespace {ns:?}", kind.word());
    }
    println!("{} {name:?} deleted", kind.resource());
    Ok(())
}
