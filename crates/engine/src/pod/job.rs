//! batch/v1 Jobs on this node: a record per Job at
//! `<root>/jobs/<ns>_<name>.json` (the Job as applied, its counts and its
//! end) and one controller process per Job (`peapod __job-supervise NS
//! NAME`), single-threaded, that looks about twice a second (at once on
//! SIGUSR1). It keeps up to `parallelism` pods running until `completions`
//! pods succeeded; a pod of a `restartPolicy: Never` Job that fails counts
//! as a failure and another is made after Kubernetes' back-off (10 s,
//! doubling, at most 6 min); with `OnFailure` the pod restarts its
//! containers and the restarts count. More failures than `backoffLimit`,
//! or `activeDeadlineSeconds` passed, fail the Job and delete its running
//! pods. `ttlSecondsAfterFinished` after the end the controller deletes
//! the Job and its pods, then ends.
//!
//! Pods are named `<job>-<5 chars>`, owned by `Job/<name>` and labelled
//! `job-name`, `batch.kubernetes.io/job-name`, `controller-uid` and
//! `batch.kubernetes.io/controller-uid`. An Indexed Job's pods are named
//! `<job>-<index>-<5 chars>` (see [`super::job_index`]).
//!
//! `suspend: true` keeps a Job from making pods and deletes those it runs
//! (they do not count as failures); its start time and so its deadline
//! begin again when it resumes. A `podFailurePolicy` decides what each
//! failed pod does (see [`super::job_failure_policy`]). Applying a changed
//! Job changes suspend, parallelism, backoffLimit, activeDeadlineSeconds
//! and ttlSecondsAfterFinished in place; the rest is immutable, as in
//! Kubernetes.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::Pid;
use peapod_kube::k8s_openapi::api::batch::v1::{Job, PodFailurePolicy};
use peapod_kube::k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};

use super::controller::{reap, signals, wait_signal};
use super::deployment::ConfigData;
use super::job_failure_policy::{FailureAction, classify};
use super::job_index::{FAILURE_COUNT_KEY, INDEX_KEY, index_pod_spec, pod_index};
use super::record::{Event, Phase, PodRecord};
use crate::containers::{Engine, EngineError, next_event};
use crate::monitor::Ready;
use crate::record::ProcRef;
use crate::time::{format_rfc3339_nano, parse_rfc3339};

/// How often the controller looks when nothing wakes it.
const PERIOD: Duration = Duration::from_millis(500);
/// Kubernetes' pod-failure back-off: the first delay and the cap.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEnd {
    /// Complete or Failed.
    pub condition: String,
    /// CompletionsReached (Complete); BackoffLimitExceeded,
    /// DeadlineExceeded, PodFailurePolicy, FailedIndexes or
    /// MaxFailedIndexesExceeded (Failed).
    pub reason: String,
    pub message: String,
    pub time: String,
}

/// The Job's Suspended condition: true while suspended, false once
/// resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub suspended: bool,
    pub time: String,
}

/// One condition of a Job's status, as Kubernetes shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCondition {
    /// Suspended, SuccessCriteriaMet, Complete, FailureTarget or Failed.
    pub kind: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
    pub time: String,
}

/// One Job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub created: String,
    /// The Job as applied.
    pub manifest: serde_json::Value,
    pub template: PodTemplateSpec,
    pub completions: u32,
    pub parallelism: u32,
    pub backoff_limit: u32,
    pub active_deadline_seconds: Option<u64>,
    pub ttl_seconds_after_finished: Option<u64>,
    /// `completionMode: Indexed`.
    #[serde(default)]
    pub indexed: bool,
    /// `suspend: true`: no pods run.
    #[serde(default)]
    pub suspend: bool,
    /// Failures of one index after which the index fails (Indexed).
    #[serde(default)]
    pub backoff_limit_per_index: Option<u32>,
    /// Failed indexes after which the Job fails.
    #[serde(default)]
    pub max_failed_indexes: Option<u32>,
    #[serde(default)]
    pub pod_failure_policy: Option<PodFailurePolicy>,
    /// ConfigMaps and Secrets applied with it (for its pods' volumes/env).
    #[serde(default)]
    pub config: ConfigData,
    /// When the controller first looked at it, or last resumed it
    /// (status.startTime).
    pub start_time: Option<String>,
    /// Pods counted as succeeded or failed, by pod uid (true: succeeded),
    /// so a pod deleted afterwards still counts.
    #[serde(default)]
    pub counted: BTreeMap<String, bool>,
    /// The completion index of each counted pod (Indexed).
    #[serde(default)]
    pub indexes: BTreeMap<String, u32>,
    /// Failed pods the podFailurePolicy said to ignore, by uid.
    #[serde(default)]
    pub ignored: BTreeSet<String>,
    /// Indexes that failed for good (backoffLimitPerIndex, FailIndex).
    #[serde(default)]
    pub failed_indexes: BTreeSet<u32>,
    /// A FailJob rule of the podFailurePolicy matched: its message.
    #[serde(default)]
    pub policy_failure: Option<String>,
    /// When the last failed pod ended (for the back-off).
    #[serde(default)]
    pub last_failure: Option<String>,
    /// The Suspended condition, once the Job was suspended.
    #[serde(default)]
    pub suspension: Option<Suspension>,
    pub end: Option<JobEnd>,
    /// The controller process.
    pub controller: Option<ProcRef>,
    /// A delete was asked for: the controller stops.
    #[serde(default)]
    pub deleting: bool,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// Fields of a Job's spec that may change while it exists.
const MUTABLE: [&str; 5] = [
    "suspend",
    "parallelism",
    "backoffLimit",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
];

/// The first field of `old`'s spec that `new` changes and that may not
/// change (`spec.template`), if any.
pub fn immutable_change(old: &serde_json::Value, new: &serde_json::Value) -> Option<String> {
    let spec = |v: &serde_json::Value| {
        let mut s = v["spec"].as_object().cloned().unwrap_or_default();
        s.retain(|k, _| !MUTABLE.contains(&k.as_str()));
        s
    };
    let (old, new) = (spec(old), spec(new));
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .find(|k| old.get(*k) != new.get(*k))
        .map(|k| format!("spec.{k}"))
}

impl JobRecord {
    pub fn event(&mut self, kind: &str, reason: &str, message: impl Into<String>) {
        self.events.push(Event {
            time: format_rfc3339_nano(SystemTime::now()),
            kind: kind.into(),
            reason: reason.into(),
            message: message.into(),
        });
        if self.events.len() > 100 {
            self.events.drain(..self.events.len() - 100);
        }
    }

    pub fn owner(&self) -> String {
        format!("Job/{}", self.name)
    }

    /// Whether pod `p` is one of this Job's (not of an earlier Job of
    /// the same name).
    pub fn owns(&self, p: &PodRecord) -> bool {
        p.namespace == self.namespace
            && p.owner.as_deref() == Some(self.owner().as_str())
            && p.plan.labels.get("controller-uid") == Some(&self.uid)
    }

    /// Succeeded pods; for an Indexed Job, succeeded indexes.
    pub fn succeeded(&self) -> u32 {
        if self.indexed {
            return self.succeeded_indexes().len() as u32;
        }
        self.counted.values().filter(|&&s| s).count() as u32
    }

    /// The indexes with a succeeded pod (Indexed).
    pub fn succeeded_indexes(&self) -> BTreeSet<u32> {
        self.counted
            .iter()
            .filter(|(_, ok)| **ok)
            .filter_map(|(uid, _)| self.indexes.get(uid).copied())
            .filter(|&i| i < self.completions)
            .collect()
    }

    /// How often index `index` failed.
    pub fn index_failures(&self, index: u32) -> u32 {
        self.counted
            .iter()
            .filter(|(uid, ok)| !**ok && self.indexes.get(*uid) == Some(&index))
            .count() as u32
    }

    /// The conditions of its status, oldest first.
    pub fn conditions(&self) -> Vec<JobCondition> {
        let mut out = Vec::new();
        if let Some(s) = &self.suspension {
            let (reason, message) = if s.suspended {
                ("JobSuspended", "Job suspended")
            } else {
                ("JobResumed", "Job resumed")
            };
            out.push(JobCondition {
                kind: "Suspended",
                status: s.suspended,
                reason: reason.into(),
                message: message.into(),
                time: s.time.clone(),
            });
        }
        if let Some(e) = &self.end {
            let (target, kind) = if e.condition == "Complete" {
                ("SuccessCriteriaMet", "Complete")
            } else {
                ("FailureTarget", "Failed")
            };
            let reason = if e.reason.is_empty() {
                "CompletionsReached".to_string()
            } else {
                e.reason.clone()
            };
            for kind in [target, kind] {
                out.push(JobCondition {
                    kind,
                    status: true,
                    reason: reason.clone(),
                    message: e.message.clone(),
                    time: e.time.clone(),
                });
            }
        }
        out
    }

    /// Running, Suspended, Complete or Failed.
    pub fn status(&self) -> &str {
        match &self.end {
            Some(e) => e.condition.as_str(),
            None if self.suspend => "Suspended",
            None => "Running",
        }
    }

    pub fn failed(&self) -> u32 {
        self.counted.values().filter(|&&s| !s).count() as u32
    }

    /// `restartPolicy` of its pods (Never or OnFailure).
    pub fn restart_policy(&self) -> &str {
        match self
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
        {
            Some("Never") => "Never",
            _ => "OnFailure",
        }
    }
}

/// Whether pod `p` is running or about to (not ended, not being deleted).
fn active(p: &PodRecord) -> bool {
    !p.deleting && !matches!(p.phase, Phase::Failed | Phase::Succeeded)
}

/// Kubernetes' delay before a new pod after `failures` failed ones.
pub fn failure_backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(10);
    (BACKOFF_BASE * (1u32 << shift)).min(BACKOFF_MAX)
}

/// The directory of Job records.
pub type JobStore = super::object_store::ObjectStore<JobRecord>;

impl super::object_store::Named for JobRecord {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl super::revive::Controlled for JobRecord {
    fn controller(&self) -> Option<ProcRef> {
        self.controller
    }
    /// Until it ends, and after that while a TTL is to be waited out.
    fn wants_controller(&self) -> bool {
        !self.deleting && (self.end.is_none() || self.ttl_seconds_after_finished.is_some())
    }
    fn deleting(&self) -> bool {
        self.deleting
    }
    fn set_controller(&mut self, c: Option<ProcRef>) {
        self.controller = c;
    }
}

impl Engine {
    pub fn jobs(&self) -> JobStore {
        JobStore::new(self.paths.root.join("jobs"))
    }

    /// Pods of Job `rec`, oldest first.
    pub fn job_pods(&self, rec: &JobRecord) -> Result<Vec<PodRecord>, EngineError> {
        Ok(self
            .pods
            .list()?
            .into_iter()
            .filter(|p| rec.owns(p))
            .collect())
    }

    /// Pods of Job `rec` running or about to.
    pub fn job_active(&self, rec: &JobRecord) -> Result<u32, EngineError> {
        Ok(self.job_pods(rec)?.iter().filter(|p| active(p)).count() as u32)
    }

    /// Creates the record of Job `job` and starts its controller, or
    /// changes the mutable fields of the Job of that name in place;
    /// created, configured or unchanged. Any other change is refused.
    pub fn apply_job(&self, job: &Job, config: &ConfigData) -> Result<&'static str, EngineError> {
        let mut rec = new_record(job, config)?;
        let (ns, name) = (rec.namespace.clone(), rec.name.clone());
        let store = self.jobs();
        let action = match store.load(&ns, &name)? {
            Some(r) if !r.deleting && r.manifest == rec.manifest && r.config == *config => {
                // Unchanged; its controller may have died.
                if r.end.is_none() || r.ttl_seconds_after_finished.is_some() {
                    self.ensure_job_controller(&ns, &name)?;
                }
                return Ok("unchanged");
            }
            Some(r) if !r.deleting => {
                if let Some(field) = immutable_change(&r.manifest, &rec.manifest) {
                    return Err(EngineError::Invalid(format!(
                        "The Job {name:?} is invalid: {field}: field is immutable (only {} may change): delete the job to apply a changed one",
                        MUTABLE.join(", ")
                    )));
                }
                let changed = store.update(&ns, &name, |r| match r {
                    Some(mut r) if !r.deleting => {
                        r.manifest = rec.manifest.clone();
                        r.config = rec.config.clone();
                        r.suspend = rec.suspend;
                        r.parallelism = rec.parallelism;
                        r.backoff_limit = rec.backoff_limit;
                        r.active_deadline_seconds = rec.active_deadline_seconds;
                        r.ttl_seconds_after_finished = rec.ttl_seconds_after_finished;
                        r.event("Normal", "Updated", format!("job {name} updated"));
                        (Some(r.clone()), Some(r))
                    }
                    other => (other, None),
                })?;
                if let Some(r) = changed {
                    if r.end.is_none() || r.ttl_seconds_after_finished.is_some() {
                        self.ensure_job_controller(&ns, &name)?;
                    }
                    return Ok("configured");
                }
                // Deleted meanwhile: made anew.
                self.delete_job(&ns, &name, Some(0))?;
                "created"
            }
            Some(_) => {
                self.delete_job(&ns, &name, Some(0))?;
                "created"
            }
            None => "created",
        };
        rec.event("Normal", "Created", format!("job {name} created"));
        store.update(&ns, &name, |_| (Some(rec), ()))?;
        self.ensure_job_controller(&ns, &name)?;
        Ok(action)
    }

    /// Starts the controller of a Job when none runs, then wakes it.
    pub fn ensure_job_controller(&self, namespace: &str, name: &str) -> Result<(), EngineError> {
        let store = self.jobs();
        let rec = store.load(namespace, name)?.ok_or_else(|| {
            EngineError::Invalid(format!("job {name:?} not found in namespace {namespace:?}"))
        })?;
        if let Some(c) = rec.controller.filter(|c| c.alive()) {
            let _ = kill(Pid::from_raw(c.pid), Signal::SIGUSR1);
            return Ok(());
        }
        let log = store.log(namespace, name);
        let mut events = self.spawn_detached(
            &["__job-supervise".into(), namespace.into(), name.into()],
            &log,
        )?;
        match next_event(&mut events) {
            Some(ev) if ev["event"] == "started" => Ok(()),
            Some(ev) => Err(EngineError::Invalid(format!(
                "the controller of job {name}: {}",
                ev["message"].as_str().unwrap_or("failed to start")
            ))),
            None => Err(EngineError::Invalid(format!(
                "the controller of job {name} ended at once; see {}",
                log.display()
            ))),
        }
    }

    /// Stops the controller of a Job, deletes its pods (`grace` seconds
    /// each, the pods' own when None) and its record; false when there is
    /// no such Job.
    pub fn delete_job(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<u32>,
    ) -> Result<bool, EngineError> {
        let store = self.jobs();
        let rec = store.update(namespace, name, |r| match r {
            Some(mut r) => {
                r.deleting = true;
                (Some(r.clone()), Some(r))
            }
            None => (None, None),
        })?;
        let Some(rec) = rec else { return Ok(false) };
        // The controller deletes it by itself after its TTL: not itself.
        let me = std::process::id() as i32;
        if let Some(c) = rec.controller.filter(|c| c.alive() && c.pid != me) {
            super::deployment::stop_controller(c);
        }
        self.delete_pods(&self.job_pods(&rec)?, grace)?;
        store.remove(namespace, name);
        Ok(true)
    }
}

/// A new record (new uid, nothing counted) for Job `job`.
fn new_record(job: &Job, config: &ConfigData) -> Result<JobRecord, EngineError> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let namespace = job
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if indexed && spec.completions.is_none() {
        return Err(EngineError::Invalid(format!(
            "job {name}: spec.completions: required when completionMode is Indexed"
        )));
    }
    let count = |v: Option<i32>| v.map(|n| n.max(0) as u32);
    let seconds = |v: Option<i64>| v.map(|s| s.max(0) as u64);
    let backoff_limit_per_index = indexed
        .then(|| count(spec.backoff_limit_per_index))
        .flatten();
    // With a limit per index, the Job's own limit is off unless given.
    let default_backoff = if backoff_limit_per_index.is_some() {
        i32::MAX as u32
    } else {
        6
    };
    Ok(JobRecord {
        name,
        namespace,
        uid: peapod_kube::names::new_uid(),
        created: format_rfc3339_nano(SystemTime::now()),
        manifest: serde_json::to_value(job).unwrap_or_default(),
        template: spec.template.clone(),
        completions: count(spec.completions).unwrap_or(1),
        parallelism: count(spec.parallelism).unwrap_or(1),
        backoff_limit: count(spec.backoff_limit).unwrap_or(default_backoff),
        active_deadline_seconds: seconds(spec.active_deadline_seconds),
        ttl_seconds_after_finished: seconds(spec.ttl_seconds_after_finished.map(i64::from)),
        indexed,
        suspend: spec.suspend.unwrap_or(false),
        backoff_limit_per_index,
        max_failed_indexes: backoff_limit_per_index.and(count(spec.max_failed_indexes)),
        pod_failure_policy: spec.pod_failure_policy.clone(),
        config: config.clone(),
        start_time: None,
        counted: BTreeMap::new(),
        indexes: BTreeMap::new(),
        ignored: BTreeSet::new(),
        failed_indexes: BTreeSet::new(),
        policy_failure: None,
        last_failure: None,
        suspension: None,
        end: None,
        controller: None,
        deleting: false,
        events: Vec::new(),
    })
}

/// Runs the controller of Job `namespace/name` until it is deleted (by
/// hand or after its TTL). `ready` gets `started` once this process is in
/// the record.
pub fn run(
    engine: &Engine,
    namespace: &str,
    name: &str,
    ready: Option<File>,
) -> Result<(), EngineError> {
    let mut ready = Ready::new(ready);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals()), None)
        .map_err(|e| EngineError::Invalid(format!("block signals: {e}")))?;
    let store = engine.jobs();
    let mine = super::revive::claim(&store, namespace, name)?;
    if !mine {
        ready.send(serde_json::json!({"event": "started", "pid": 0}));
        return Ok(());
    }
    ready.send(serde_json::json!({"event": "started", "pid": std::process::id()}));
    let c = JobController {
        engine,
        store,
        namespace: namespace.to_string(),
        name: name.to_string(),
        hold_until: Cell::new(None),
        create_failures: Cell::new(0),
    };
    loop {
        reap();
        match c.tick() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("job controller {namespace}/{name}: {e}");
                c.update(|r| r.event("Warning", "ReconcileError", e.to_string()));
            }
        }
        if wait_signal(PERIOD) && c.stopping() {
            break;
        }
    }
    reap();
    Ok(())
}

/// Counts ended pod `p` of Job `r`: a success, a failure (what its
/// podFailurePolicy makes of it) or an ignored failure.
fn count_ended(r: &mut JobRecord, p: &PodRecord) {
    let index = if r.indexed { pod_index(p) } else { None };
    if p.phase == Phase::Succeeded {
        r.counted.insert(p.uid.clone(), true);
        if let Some(i) = index {
            r.indexes.insert(p.uid.clone(), i);
        }
        r.event("Normal", "Completed", format!("Pod {} succeeded", p.name));
        return;
    }
    let action = classify(r.pod_failure_policy.as_ref(), p);
    if action == FailureAction::Ignore {
        r.ignored.insert(p.uid.clone());
        r.event(
            "Normal",
            "PodFailureIgnored",
            format!("Pod {} failed; the pod failure policy ignores it", p.name),
        );
        return;
    }
    r.counted.insert(p.uid.clone(), false);
    r.last_failure = Some(
        p.finished
            .clone()
            .unwrap_or_else(|| format_rfc3339_nano(SystemTime::now())),
    );
    r.event("Warning", "PodFailed", format!("Pod {} failed", p.name));
    if let Some(i) = index {
        r.indexes.insert(p.uid.clone(), i);
        let over_limit = r
            .backoff_limit_per_index
            .is_some_and(|limit| r.index_failures(i) > limit);
        if action == FailureAction::FailIndex || over_limit {
            r.failed_indexes.insert(i);
            r.event("Warning", "IndexFailed", format!("Index {i} failed"));
        }
    }
    if let FailureAction::FailJob(message) = action
        && r.policy_failure.is_none()
    {
        r.policy_failure = Some(message);
    }
}

/// Whether Job `r` ended, with `failures` counted: (Complete or Failed,
/// reason, message), with Kubernetes' words.
fn end_of(r: &JobRecord, failures: u32) -> Option<(&'static str, &'static str, String)> {
    let failed = |reason, message: &str| Some(("Failed", reason, message.to_string()));
    if let Some(message) = &r.policy_failure {
        return failed("PodFailurePolicy", message);
    }
    if r.max_failed_indexes
        .is_some_and(|max| r.failed_indexes.len() as u32 > max)
    {
        return failed(
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes",
        );
    }
    let done = if r.indexed {
        r.succeeded() + r.failed_indexes.len() as u32 >= r.completions
    } else {
        r.succeeded() >= r.completions
    };
    if done && !r.failed_indexes.is_empty() {
        return failed("FailedIndexes", "Job has failed indexes");
    }
    if done {
        return Some((
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods".to_string(),
        ));
    }
    if failures > r.backoff_limit {
        return failed(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
    }
    if let Some(d) = r.active_deadline_seconds
        && r.start_time
            .as_deref()
            .is_some_and(|t| since(t) >= Duration::from_secs(d))
    {
        return failed(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        );
    }
    None
}

struct JobController<'a> {
    engine: &'a Engine,
    store: JobStore,
    namespace: String,
    name: String,
    /// No pod is made before this (after a failure to make one).
    hold_until: Cell<Option<Instant>>,
    create_failures: Cell<u32>,
}

fn since(t: &str) -> Duration {
    parse_rfc3339(t)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

impl JobController<'_> {
    fn record(&self) -> Result<Option<JobRecord>, EngineError> {
        self.store.load(&self.namespace, &self.name)
    }

    fn stopping(&self) -> bool {
        !matches!(self.record(), Ok(Some(r)) if !r.deleting)
    }

    /// Changes the record (unless it is gone or being deleted); the
    /// record after.
    fn update(&self, f: impl FnOnce(&mut JobRecord)) -> Option<JobRecord> {
        self.store
            .update(&self.namespace, &self.name, |r| match r {
                Some(mut r) if !r.deleting => {
                    f(&mut r);
                    (Some(r.clone()), Some(r))
                }
                _ => (None, None),
            })
            .ok()
            .flatten()
    }

    /// One look; false when the controller should end.
    fn tick(&self) -> Result<bool, EngineError> {
        let Some(mut rec) = self.record()? else {
            return Ok(false);
        };
        if rec.deleting {
            return Ok(false);
        }
        let pods = self.engine.job_pods(&rec)?;
        // A pod whose supervisor died is not running anything.
        for p in pods.iter().filter(|p| active(p)) {
            if !p.supervised() && since(&p.created) > Duration::from_secs(5) {
                self.delete_pod(p, "its supervisor is gone");
            }
        }
        let live: Vec<&PodRecord> = pods
            .iter()
            .filter(|p| {
                active(p) && (p.supervised() || since(&p.created) <= Duration::from_secs(5))
            })
            .collect();
        if rec.end.is_none() {
            match (rec.suspend, rec.suspension.as_ref().map(|s| s.suspended)) {
                (true, Some(true)) => {}
                (true, _) => {
                    rec = match self.update(|r| {
                        r.suspension = Some(Suspension {
                            suspended: true,
                            time: format_rfc3339_nano(SystemTime::now()),
                        });
                        // The deadline starts again on resume.
                        r.start_time = None;
                        r.event("Normal", "Suspended", "Job suspended");
                    }) {
                        Some(r) => r,
                        None => return Ok(false),
                    };
                }
                (false, Some(true)) => {
                    rec = match self.update(|r| {
                        r.suspension = Some(Suspension {
                            suspended: false,
                            time: format_rfc3339_nano(SystemTime::now()),
                        });
                        r.event("Normal", "Resumed", "Job resumed");
                    }) {
                        Some(r) => r,
                        None => return Ok(false),
                    };
                }
                (false, _) => {}
            }
            if rec.suspend {
                for p in &live {
                    self.delete_pod(p, "the job is suspended");
                }
                return Ok(true);
            }
        }
        if rec.start_time.is_none() && rec.end.is_none() {
            rec = match self.update(|r| r.start_time = Some(format_rfc3339_nano(SystemTime::now())))
            {
                Some(r) => r,
                None => return Ok(false),
            };
        }
        // Count the pods that ended.
        let ended: Vec<&PodRecord> = pods
            .iter()
            .filter(|p| {
                !p.deleting
                    && matches!(p.phase, Phase::Failed | Phase::Succeeded)
                    && !p.supervised()
                    && !rec.counted.contains_key(&p.uid)
                    && !rec.ignored.contains(&p.uid)
            })
            .collect();
        if !ended.is_empty() && rec.end.is_none() {
            rec = match self.update(|r| {
                for p in &ended {
                    count_ended(r, p);
                }
            }) {
                Some(r) => r,
                None => return Ok(false),
            };
        }
        if let Some(end) = &rec.end {
            for p in &live {
                self.delete_pod(p, "the job has ended");
            }
            if let Some(ttl) = rec.ttl_seconds_after_finished
                && since(&end.time) >= Duration::from_secs(ttl)
            {
                self.engine.delete_job(&rec.namespace, &rec.name, Some(0))?;
                return Ok(false);
            }
            return Ok(rec.ttl_seconds_after_finished.is_some());
        }
        // OnFailure: the containers' restarts count too.
        let restarts: u32 = pods
            .iter()
            .flat_map(|p| p.containers.iter())
            .map(|c| c.restart_count)
            .sum();
        let failures = rec.failed() + restarts;
        if let Some((condition, reason, message)) = end_of(&rec, failures) {
            for p in &live {
                self.delete_pod(p, message.as_str());
            }
            let ended = self.update(|r| {
                let kind = if condition == "Complete" {
                    "Normal"
                } else {
                    "Warning"
                };
                r.event(kind, reason, message.clone());
                r.end = Some(JobEnd {
                    condition: condition.into(),
                    reason: reason.into(),
                    message: message.clone(),
                    time: format_rfc3339_nano(SystemTime::now()),
                });
            });
            return Ok(ended.is_some_and(|r| r.ttl_seconds_after_finished.is_some()));
        }
        // The indexes still to do (Indexed) and how many pods should run:
        // up to parallelism, never more than the completions still needed.
        let running: BTreeSet<u32> = live.iter().filter_map(|p| pod_index(p)).collect();
        let (needed, mut todo) = if rec.indexed {
            let done = rec.succeeded_indexes();
            let todo: Vec<u32> = (0..rec.completions)
                .filter(|i| !done.contains(i) && !rec.failed_indexes.contains(i))
                .collect();
            (todo.len() as u32, todo)
        } else {
            (rec.completions.saturating_sub(rec.succeeded()), Vec::new())
        };
        todo.retain(|i| !running.contains(i));
        let want = rec.parallelism.min(needed) as usize;
        if live.len() > want {
            // Fewer wanted (parallelism lowered): the newest go.
            let mut newest: Vec<&&PodRecord> = live.iter().collect();
            newest.sort_by(|a, b| b.created.cmp(&a.created));
            for p in newest.iter().take(live.len() - want) {
                self.delete_pod(p, "more pods than parallelism");
            }
            return Ok(true);
        }
        if live.len() == want {
            return Ok(true);
        }
        if rec.restart_policy() == "Never"
            && let Some(last) = rec.last_failure.as_deref()
            && since(last) < failure_backoff(rec.failed())
        {
            return Ok(true);
        }
        if self.hold_until.get().is_some_and(|t| Instant::now() < t) {
            return Ok(true);
        }
        let mut todo = todo.into_iter();
        for _ in live.len()..want {
            if self.stopping() {
                break;
            }
            let index = if rec.indexed {
                match todo.next() {
                    Some(i) => Some(i),
                    None => break,
                }
            } else {
                None
            };
            if !self.create(&rec, failures, index)? {
                break;
            }
        }
        Ok(true)
    }

    /// Makes one pod of the Job (for completion index `index` of an
    /// Indexed Job); false when it could not.
    fn create(
        &self,
        rec: &JobRecord,
        failures: u32,
        index: Option<u32>,
    ) -> Result<bool, EngineError> {
        let pod_name = match index {
            Some(i) => peapod_kube::names::generate_name(&format!("{}-{i}-", rec.name)),
            None => peapod_kube::names::job_pod_name(&rec.name),
        };
        let mut meta = rec.template.metadata.clone().unwrap_or_default();
        meta.name = Some(pod_name.clone());
        meta.namespace = Some(rec.namespace.clone());
        let mut labels = meta.labels.clone().unwrap_or_default();
        for (k, v) in [
            ("job-name", &rec.name),
            ("batch.kubernetes.io/job-name", &rec.name),
            ("controller-uid", &rec.uid),
            ("batch.kubernetes.io/controller-uid", &rec.uid),
        ] {
            labels.insert(k.into(), v.clone());
        }
        let mut annotations = meta.annotations.clone().unwrap_or_default();
        let restart = rec.restart_policy();
        let mut spec = rec.template.spec.clone().unwrap_or_default();
        spec.restart_policy = Some(restart.into());
        if let Some(i) = index {
            labels.insert(INDEX_KEY.into(), i.to_string());
            annotations.insert(INDEX_KEY.into(), i.to_string());
            if rec.backoff_limit_per_index.is_some() {
                annotations.insert(FAILURE_COUNT_KEY.into(), rec.index_failures(i).to_string());
            }
            index_pod_spec(&mut spec, &rec.name, i);
        }
        meta.labels = Some(labels.clone());
        meta.annotations = (!annotations.is_empty()).then(|| annotations.clone());
        let mut manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": rec.namespace, "labels": labels},
            "spec": serde_json::to_value(&spec).unwrap_or_default(),
        });
        if !annotations.is_empty() {
            manifest["metadata"]["annotations"] = serde_json::json!(annotations);
        }
        // OnFailure: the restarts left before the backoff limit.
        let max_restarts =
            (restart == "OnFailure").then(|| rec.backoff_limit.saturating_sub(failures));
        match self.engine.apply_pod(
            &pod_name,
            &meta,
            &spec,
            restart,
            max_restarts,
            Some(rec.owner()),
            manifest,
            &rec.config,
        ) {
            Ok(_) => {
                self.create_failures.set(0);
                self.hold_until.set(None);
                self.update(|r| {
                    r.event(
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {pod_name}"),
                    )
                });
                Ok(true)
            }
            Err(e) => {
                let n = self.create_failures.get() + 1;
                self.create_failures.set(n);
                self.hold_until
                    .set(Some(Instant::now() + Duration::from_secs(1 << n.min(5))));
                self.update(|r| {
                    r.event(
                        "Warning",
                        "FailedCreate",
                        format!("Error creating pod {pod_name}: {e}"),
                    )
                });
                Ok(false)
            }
        }
    }

    fn delete_pod(&self, p: &PodRecord, why: &str) {
        self.engine.begin_pod_delete(p, None);
        self.update(|r| {
            r.event(
                "Normal",
                "SuccessfulDelete",
                format!("Deleted pod: {} ({why})", p.name),
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_failure_backoff_doubles_to_six_minutes() {
        assert_eq!(failure_backoff(0), Duration::ZERO);
        assert_eq!(failure_backoff(1), Duration::from_secs(10));
        assert_eq!(failure_backoff(2), Duration::from_secs(20));
        assert_eq!(failure_backoff(3), Duration::from_secs(40));
        assert_eq!(failure_backoff(7), Duration::from_secs(360));
        assert_eq!(failure_backoff(40), Duration::from_secs(360));
    }
}
