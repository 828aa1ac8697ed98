//! Deployments and ReplicaSets on this node: a record per object at
//! `<root>/deployments/<ns>_<name>.json` (or `replicasets/`) holding the
//! object as applied, its current pod-template-hash and the desired
//! replicas, and one controller process per object (`__deploy-supervise`,
//! see [`super::controller`]) that keeps that many pods running.
//!
//! A Deployment's pods are owned by `ReplicaSet/<deploy>-<hash>` and
//! labelled `pod-template-hash`; a standalone ReplicaSet's by
//! `ReplicaSet/<name>`. Each template a Deployment ran is a revision (see
//! [`super::revision`]).
//!
//! A pod is available once it has been ready `spec.minReadySeconds`
//! (counted from when the controller first saw it ready, or from its
//! containers' last start if later); availability, not readiness, is what
//! a rollout keeps above `replicas - maxUnavailable`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use peapod_kube::k8s_openapi::api::core::v1::PodTemplateSpec;
use peapod_kube::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use super::ContainerKind;
use super::record::{Event, Phase, PodRecord};
use super::revision::Revision;
use crate::containers::{Engine, EngineError, next_event};
use crate::record::ProcRef;
use crate::time::{format_rfc3339_nano, parse_rfc3339};

/// ConfigMaps and Secrets of an apply, by name: key → bytes.
pub type ConfigData = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Which kind of object a controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerKind {
    Deployment,
    ReplicaSet,
}

impl ControllerKind {
    fn dir(self) -> &'static str {
        match self {
            ControllerKind::Deployment => "deployments",
            ControllerKind::ReplicaSet => "replicasets",
        }
    }

    /// kubectl's `deployment.apps` / `replicaset.apps`.
    pub fn resource(self) -> &'static str {
        match self {
            ControllerKind::Deployment => "deployment.apps",
            ControllerKind::ReplicaSet => "replicaset.apps",
        }
    }

    /// The word `__deploy-supervise --kind` takes.
    pub fn word(self) -> &'static str {
        match self {
            ControllerKind::Deployment => "deployment",
            ControllerKind::ReplicaSet => "replicaset",
        }
    }

    pub fn parse(word: &str) -> Option<ControllerKind> {
        match word {
            "deployment" | "deployments" | "deploy" | "deployment.apps" => {
                Some(ControllerKind::Deployment)
            }
            "replicaset" | "replicasets" | "rs" | "replicaset.apps" => {
                Some(ControllerKind::ReplicaSet)
            }
            _ => None,
        }
    }
}

/// How a Deployment replaces its pods on a template change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: u32,
        max_unavailable: u32,
    },
}

/// One Deployment or ReplicaSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerRecord {
    pub kind: ControllerKind,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub created: String,
    /// The object as applied.
    pub manifest: serde_json::Value,
    /// Its pod template.
    pub template: PodTemplateSpec,
    /// The pod-template-hash of `template` (Deployments).
    pub template_hash: String,
    /// Desired pods (`spec.replicas`, or `scale`).
    pub replicas: u32,
    /// Bumped on every change of the spec or the replicas.
    pub generation: u64,
    /// ConfigMaps and Secrets applied with it (for its pods' volumes/env).
    #[serde(default)]
    pub config: ConfigData,
    /// The controller process.
    pub controller: Option<ProcRef>,
    /// A delete was asked for: the controller stops.
    #[serde(default)]
    pub deleting: bool,
    #[serde(default)]
    pub events: Vec<Event>,
    /// A Deployment's revisions (its ReplicaSets), oldest first; the one
    /// of `template_hash` is the newest.
    #[serde(default)]
    pub revisions: Vec<Revision>,
    /// When the controller first saw each of its pods ready (RFC 3339, by
    /// pod uid), while they stay ready: for `minReadySeconds`.
    #[serde(default)]
    pub ready_since: BTreeMap<String, String>,
}

impl ControllerRecord {
    pub fn event(&mut self, kind: &str, reason: &str, message: impl Into<String>) {
        self.events.push(Event {
            time: format_rfc3339_nano(std::time::SystemTime::now()),
            kind: kind.into(),
            reason: reason.into(),
            message: message.into(),
        });
        if self.events.len() > 100 {
            self.events.drain(..self.events.len() - 100);
        }
    }

    /// The owner its current pods get.
    pub fn owner(&self) -> String {
        match self.kind {
            ControllerKind::Deployment => format!(
                "ReplicaSet/{}",
                peapod_kube::names::replica_set_name(&self.name, &self.template_hash)
            ),
            ControllerKind::ReplicaSet => format!("ReplicaSet/{}", self.name),
        }
    }

    /// Whether pod `p` is one of its pods (of any template).
    pub fn owns(&self, p: &PodRecord) -> bool {
        if p.namespace != self.namespace {
            return false;
        }
        let Some(owner) = p.owner.as_deref() else {
            return false;
        };
        match self.kind {
            ControllerKind::ReplicaSet => owner == format!("ReplicaSet/{}", self.name),
            ControllerKind::Deployment => p.plan.labels.get("pod-template-hash").is_some_and(|h| {
                owner
                    == format!(
                        "ReplicaSet/{}",
                        peapod_kube::names::replica_set_name(&self.name, h)
                    )
            }),
        }
    }

    /// Whether pod `p` runs the current template.
    pub fn current(&self, p: &PodRecord) -> bool {
        match self.kind {
            ControllerKind::ReplicaSet => true,
            ControllerKind::Deployment => {
                p.plan.labels.get("pod-template-hash") == Some(&self.template_hash)
            }
        }
    }

    /// The strategy, with maxSurge and maxUnavailable resolved against the
    /// desired replicas (surge rounded up, unavailable down; never both 0).
    pub fn strategy(&self) -> Strategy {
        let spec = &self.manifest["spec"]["strategy"];
        if spec["type"] == "Recreate" {
            return Strategy::Recreate;
        }
        let parse = |v: &serde_json::Value| -> Option<IntOrString> {
            serde_json::from_value(v.clone()).ok()
        };
        let roll = &spec["rollingUpdate"];
        let surge = parse(&roll["maxSurge"]).unwrap_or(IntOrString::String("25%".into()));
        let unavailable =
            parse(&roll["maxUnavailable"]).unwrap_or(IntOrString::String("25%".into()));
        let max_surge = resolve(&surge, self.replicas, true);
        let mut max_unavailable = resolve(&unavailable, self.replicas, false);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        }
    }
}

impl ControllerRecord {
    /// `spec.minReadySeconds`.
    pub fn min_ready(&self) -> Duration {
        let secs = self.manifest["spec"]["minReadySeconds"]
            .as_u64()
            .unwrap_or(0);
        Duration::from_secs(secs)
    }

    /// Whether pod `p` is available: ready for at least `minReadySeconds`
    /// without a container starting again.
    pub fn available(&self, p: &PodRecord) -> bool {
        if !pod_ready(p) {
            return false;
        }
        let min = self.min_ready();
        if min.is_zero() {
            return true;
        }
        let Some(seen) = self.ready_since.get(&p.uid).and_then(|t| parse_rfc3339(t)) else {
            return false;
        };
        let last_start = p
            .containers
            .iter()
            .filter(|c| c.kind != ContainerKind::Init)
            .filter_map(|c| c.starts.last().and_then(|t| parse_rfc3339(t)))
            .max();
        let since = last_start.map_or(seen, |s| s.max(seen));
        SystemTime::now()
            .duration_since(since)
            .is_ok_and(|d| d >= min)
    }

    /// Notes which of `pods` (its own) are ready since when, and drops
    /// the revisions past the history limit that have no pods; whether
    /// the record changed.
    pub fn observe(&mut self, pods: &[PodRecord], now: SystemTime) -> bool {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for p in pods.iter().filter(|p| self.owns(p) && pod_ready(p)) {
            let since = self
                .ready_since
                .get(&p.uid)
                .cloned()
                .unwrap_or_else(|| format_rfc3339_nano(now));
            seen.insert(p.uid.clone(), since);
        }
        let mut changed = seen != self.ready_since;
        self.ready_since = seen;
        let with_pods: BTreeSet<String> = pods
            .iter()
            .filter(|p| self.owns(p))
            .filter_map(|p| p.plan.labels.get("pod-template-hash").cloned())
            .collect();
        changed |= self.prune_revisions(&with_pods);
        changed
    }
}

/// An int-or-percent of `total`.
fn resolve(v: &IntOrString, total: u32, round_up: bool) -> u32 {
    match v {
        IntOrString::Int(n) => (*n).max(0) as u32,
        IntOrString::String(s) => {
            let pct: u64 = s.trim_end_matches('%').trim().parse().unwrap_or(25);
            let scaled = pct * u64::from(total);
            let n = if round_up {
                scaled.div_ceil(100)
            } else {
                scaled / 100
            };
            n as u32
        }
    }
}

/// How a controller's pods are doing (computed from the pod records).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerStatus {
    /// Pods not being deleted.
    pub replicas: u32,
    /// Of those, on the current template.
    pub updated: u32,
    /// Of those, with every app container ready.
    pub ready: u32,
    /// Ready pods on the current template.
    pub updated_ready: u32,
    /// Of the pods, available (ready for `minReadySeconds`).
    pub available: u32,
    /// Available pods on the current template.
    pub updated_available: u32,
    /// Pods being deleted.
    pub terminating: u32,
}

/// Whether pod `p` is running with every app container ready.
pub fn pod_ready(p: &PodRecord) -> bool {
    !p.deleting
        && p.phase == Phase::Running
        && p.supervised()
        && p.containers
            .iter()
            .filter(|c| c.kind != ContainerKind::Init)
            .all(|c| c.ready)
}

/// The records of Deployments or of ReplicaSets.
pub type ControllerStore = super::object_store::ObjectStore<ControllerRecord>;

impl super::object_store::Named for ControllerRecord {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl super::revive::Controlled for ControllerRecord {
    fn controller(&self) -> Option<ProcRef> {
        self.controller
    }
    fn wants_controller(&self) -> bool {
        !self.deleting
    }
    fn deleting(&self) -> bool {
        self.deleting
    }
    fn set_controller(&mut self, c: Option<ProcRef>) {
        self.controller = c;
    }
}

/// What `apply` gives for one Deployment or ReplicaSet.
pub struct ControllerApply<'a> {
    pub kind: ControllerKind,
    pub name: &'a str,
    pub namespace: &'a str,
    pub manifest: serde_json::Value,
    pub template: PodTemplateSpec,
    pub replicas: u32,
    pub config: &'a ConfigData,
}

impl Engine {
    pub fn controllers(&self, kind: ControllerKind) -> ControllerStore {
        ControllerStore::new(self.paths.root.join(kind.dir()))
    }

    /// Pods of `rec` (every template), oldest first.
    pub fn controller_pods(&self, rec: &ControllerRecord) -> Result<Vec<PodRecord>, EngineError> {
        Ok(self
            .pods
            .list()?
            .into_iter()
            .filter(|p| rec.owns(p))
            .collect())
    }

    pub fn controller_status(
        &self,
        rec: &ControllerRecord,
    ) -> Result<ControllerStatus, EngineError> {
        let pods = self.controller_pods(rec)?;
        let mut s = ControllerStatus::default();
        for p in &pods {
            if p.deleting {
                s.terminating += 1;
                continue;
            }
            if matches!(p.phase, Phase::Failed | Phase::Succeeded) {
                continue;
            }
            s.replicas += 1;
            let ready = pod_ready(p);
            let available = rec.available(p);
            s.ready += u32::from(ready);
            s.available += u32::from(available);
            if rec.current(p) {
                s.updated += 1;
                s.updated_ready += u32::from(ready);
                s.updated_available += u32::from(available);
            }
        }
        Ok(s)
    }

    /// Creates or updates the record of a Deployment or ReplicaSet, starts
    /// its controller when none runs and wakes it; created, configured or
    /// unchanged.
    pub fn apply_controller(&self, a: ControllerApply) -> Result<&'static str, EngineError> {
        let store = self.controllers(a.kind);
        let hash = peapod_kube::names::pod_template_hash(&a.template);
        let action = store.update(a.namespace, a.name, |old| match old {
            Some(mut r) if !r.deleting => {
                if r.manifest == a.manifest && r.replicas == a.replicas && r.config == *a.config {
                    return (None, "unchanged");
                }
                if r.template_hash != hash && a.kind == ControllerKind::Deployment {
                    r.event(
                        "Normal",
                        "ScalingReplicaSet",
                        format!(
                            "New template: replica set {} rolls out",
                            peapod_kube::names::replica_set_name(a.name, &hash)
                        ),
                    );
                }
                r.manifest = a.manifest.clone();
                r.set_template(a.template.clone());
                r.replicas = a.replicas;
                r.config = a.config.clone();
                r.generation += 1;
                (Some(r), "configured")
            }
            _ => {
                let mut r = ControllerRecord {
                    kind: a.kind,
                    name: a.name.to_string(),
                    namespace: a.namespace.to_string(),
                    uid: peapod_kube::names::new_uid(),
                    created: format_rfc3339_nano(std::time::SystemTime::now()),
                    manifest: a.manifest.clone(),
                    template: a.template.clone(),
                    template_hash: hash.clone(),
                    replicas: a.replicas,
                    generation: 1,
                    config: a.config.clone(),
                    controller: None,
                    deleting: false,
                    events: Vec::new(),
                    revisions: Vec::new(),
                    ready_since: BTreeMap::new(),
                };
                r.bump_revision();
                r.event(
                    "Normal",
                    "Created",
                    format!("{} {} created", a.kind.word(), a.name),
                );
                (Some(r), "created")
            }
        })?;
        self.ensure_controller(a.kind, a.namespace, a.name)?;
        Ok(action)
    }

    /// Starts the controller of an object when none runs, then wakes it.
    pub fn ensure_controller(
        &self,
        kind: ControllerKind,
        namespace: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        let store = self.controllers(kind);
        let rec = store.load(namespace, name)?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "{} {name:?} not found in namespace {namespace:?}",
                kind.word()
            ))
        })?;
        if let Some(c) = rec.controller.filter(|c| c.alive()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.pid),
                nix::sys::signal::Signal::SIGUSR1,
            );
            return Ok(());
        }
        let log = store.log(namespace, name);
        let mut events = self.spawn_detached(
            &[
                "__deploy-supervise".into(),
                namespace.into(),
                name.into(),
                "--kind".into(),
                kind.word().into(),
            ],
            &log,
        )?;
        // It says `started` once its pid is in the record.
        match next_event(&mut events) {
            Some(ev) if ev["event"] == "started" => Ok(()),
            Some(ev) => Err(EngineError::Invalid(format!(
                "the controller of {} {name}: {}",
                kind.word(),
                ev["message"].as_str().unwrap_or("failed to start")
            ))),
            None => Err(EngineError::Invalid(format!(
                "the controller of {} {name} ended at once; see {}",
                kind.word(),
                log.display()
            ))),
        }
    }

    /// Sets the desired replicas of an object and wakes its controller.
    pub fn scale_controller(
        &self,
        kind: ControllerKind,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<(), EngineError> {
        let found = self
            .controllers(kind)
            .update(namespace, name, |r| match r {
                Some(mut r) if !r.deleting => {
                    if r.replicas != replicas {
                        r.event(
                            "Normal",
                            "ScalingReplicaSet",
                            format!("Scaled from {} to {replicas}", r.replicas),
                        );
                        r.replicas = replicas;
                        r.generation += 1;
                    }
                    (Some(r), true)
                }
                _ => (None, false),
            })?;
        if !found {
            return Err(EngineError::Invalid(format!(
                "{} {name:?} not found in namespace {namespace:?}",
                kind.word()
            )));
        }
        self.ensure_controller(kind, namespace, name)
    }

    /// Stops the controller of an object, deletes its pods (`grace`
    /// seconds each, the pods' own when None) and its record; false when
    /// there is no such object.
    pub fn delete_controller(
        &self,
        kind: ControllerKind,
        namespace: &str,
        name: &str,
        grace: Option<u32>,
    ) -> Result<bool, EngineError> {
        let store = self.controllers(kind);
        let rec = store.update(namespace, name, |r| match r {
            Some(mut r) => {
                r.deleting = true;
                (Some(r.clone()), Some(r))
            }
            None => (None, None),
        })?;
        let Some(rec) = rec else { return Ok(false) };
        if let Some(c) = rec.controller.filter(|c| c.alive()) {
            stop_controller(c);
        }
        self.delete_pods(&self.controller_pods(&rec)?, grace)?;
        store.remove(namespace, name);
        Ok(true)
    }

    /// Deletes `pods`: every one is told at once, then each is waited for.
    pub(super) fn delete_pods(
        &self,
        pods: &[PodRecord],
        grace: Option<u32>,
    ) -> Result<(), EngineError> {
        for p in pods {
            self.begin_pod_delete(p, grace);
        }
        for p in pods {
            match self.delete_pod(&p.id, grace) {
                // Its supervisor already removed it.
                Err(EngineError::Record(crate::record::RecordError::NotFound(_))) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Asks pod `p`'s supervisor to delete it without waiting; a pod
    /// whose supervisor is gone is cleaned up at once.
    pub fn begin_pod_delete(&self, p: &PodRecord, grace: Option<u32>) {
        let updated = self.pods.update(&p.id, |r| {
            r.deleting = true;
            if let Some(g) = grace {
                r.plan.grace_period = g;
            }
        });
        match updated {
            Ok((r, ())) if r.supervised() => {
                if let Some(s) = r.supervisor {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(s.pid),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
            }
            Ok(_) => {
                let _ = self.delete_pod(&p.id, Some(0));
            }
            Err(_) => {}
        }
    }
}

/// Ends a controller process (a Deployment's, ReplicaSet's or Job's):
/// SIGTERM, time to finish starting a pod, then SIGKILL.
pub(super) fn stop_controller(c: ProcRef) {
    let pid = nix::unistd::Pid::from_raw(c.pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    // It may be starting a pod (a few seconds at most).
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if c.alive() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_and_unavailable_round_as_kubernetes() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(resolve(&pct("25%"), 3, true), 1);
        assert_eq!(resolve(&pct("25%"), 3, false), 0);
        assert_eq!(resolve(&pct("25%"), 4, false), 1);
        assert_eq!(resolve(&pct("50%"), 5, true), 3);
        assert_eq!(resolve(&IntOrString::Int(2), 5, true), 2);
    }

    fn record(strategy: serde_json::Value, replicas: u32) -> ControllerRecord {
        ControllerRecord {
            kind: ControllerKind::Deployment,
            name: "web".into(),
            namespace: "default".into(),
            uid: String::new(),
            created: String::new(),
            manifest: serde_json::json!({"spec": {"strategy": strategy}}),
            template: PodTemplateSpec::default(),
            template_hash: "bcdfghjklm".into(),
            replicas,
            generation: 1,
            config: ConfigData::new(),
            controller: None,
            deleting: false,
            events: Vec::new(),
            revisions: Vec::new(),
            ready_since: BTreeMap::new(),
        }
    }

    #[test]
    fn strategies() {
        let roll = |max_surge, max_unavailable| Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        };
        assert_eq!(record(serde_json::Value::Null, 3).strategy(), roll(1, 0));
        assert_eq!(record(serde_json::Value::Null, 8).strategy(), roll(2, 2));
        assert_eq!(
            record(serde_json::json!({"type": "Recreate"}), 3).strategy(),
            Strategy::Recreate
        );
        let explicit = serde_json::json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "50%"}});
        assert_eq!(record(explicit, 4).strategy(), roll(0, 2));
        // Both 0 would never progress: one pod may be down.
        let stuck = serde_json::json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
        assert_eq!(record(stuck, 4).strategy(), roll(0, 1));
        assert_eq!(
            record(serde_json::Value::Null, 3).owner(),
            "ReplicaSet/web-bcdfghjklm"
        );
    }
}
