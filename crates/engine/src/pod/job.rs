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
//! `batch.kubernetes.io/controller-uid`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::Pid;
use peapod_kube::k8s_openapi::api::batch::v1::Job;
use peapod_kube::k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};

use super::controller::{reap, signals, wait_signal};
use super::deployment::ConfigData;
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
    /// BackoffLimitExceeded, DeadlineExceeded (Failed) or empty.
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
    /// ConfigMaps and Secrets applied with it (for its pods' volumes/env).
    #[serde(default)]
    pub config: ConfigData,
    /// When the controller first looked at it (status.startTime).
    pub start_time: Option<String>,
    /// Pods counted as succeeded or failed, by pod uid (true: succeeded),
    /// so a pod deleted afterwards still counts.
    #[serde(default)]
    pub counted: BTreeMap<String, bool>,
    /// When the last failed pod ended (for the back-off).
    #[serde(default)]
    pub last_failure: Option<String>,
    pub end: Option<JobEnd>,
    /// The controller process.
    pub controller: Option<ProcRef>,
    /// A delete was asked for: the controller stops.
    #[serde(default)]
    pub deleting: bool,
    #[serde(default)]
    pub events: Vec<Event>,
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

    pub fn succeeded(&self) -> u32 {
        self.counted.values().filter(|&&s| s).count() as u32
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

    /// Creates the record of Job `job` (replacing a changed one) and
    /// starts its controller; created, configured or unchanged.
    pub fn apply_job(&self, job: &Job, config: &ConfigData) -> Result<&'static str, EngineError> {
        let name = job.metadata.name.clone().unwrap_or_default();
        let ns = job
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let manifest = serde_json::to_value(job).unwrap_or_default();
        let store = self.jobs();
        let action = match store.load(&ns, &name)? {
            Some(r) if !r.deleting && r.manifest == manifest && r.config == *config => {
                // Unchanged; its controller may have died.
                if r.end.is_none() || r.ttl_seconds_after_finished.is_some() {
                    self.ensure_job_controller(&ns, &name)?;
                }
                return Ok("unchanged");
            }
            Some(_) => {
                self.delete_job(&ns, &name, Some(0))?;
                "configured"
            }
            None => "created",
        };
        let spec = job.spec.clone().unwrap_or_default();
        let seconds = |v: Option<i64>| v.map(|s| s.max(0) as u64);
        let mut rec = JobRecord {
            name: name.clone(),
            namespace: ns.clone(),
            uid: peapod_kube::names::new_uid(),
            created: format_rfc3339_nano(SystemTime::now()),
            manifest,
            template: spec.template.clone(),
            completions: spec.completions.unwrap_or(1).max(0) as u32,
            parallelism: spec.parallelism.unwrap_or(1).max(0) as u32,
            backoff_limit: spec.backoff_limit.unwrap_or(6).max(0) as u32,
            active_deadline_seconds: seconds(spec.active_deadline_seconds),
            ttl_seconds_after_finished: seconds(spec.ttl_seconds_after_finished.map(i64::from)),
            config: config.clone(),
            start_time: None,
            counted: BTreeMap::new(),
            last_failure: None,
            end: None,
            controller: None,
            deleting: false,
            events: Vec::new(),
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
            let pid = Pid::from_raw(c.pid);
            let _ = kill(pid, Signal::SIGTERM);
            // It may be starting a pod (a few seconds at most).
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if c.alive() {
                let _ = kill(pid, Signal::SIGKILL);
                let deadline = Instant::now() + Duration::from_secs(5);
                while c.alive() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let pods = self.job_pods(&rec)?;
        for p in &pods {
            self.begin_pod_delete(p, grace);
        }
        for p in &pods {
            match self.delete_pod(&p.id, grace) {
                Err(EngineError::Record(crate::record::RecordError::NotFound(_))) => {}
                other => other?,
            }
        }
        store.remove(namespace, name);
        Ok(true)
    }
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
    let me = ProcRef::current();
    let mine = store.update(namespace, name, |r| match r {
        Some(mut r) if !r.deleting => {
            if r.controller
                .is_some_and(|c| c.alive() && Some(c.pid) != me.map(|m| m.pid))
            {
                return (None, false);
            }
            r.controller = me;
            (Some(r), true)
        }
        _ => (None, false),
    })?;
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
        if rec.start_time.is_none() {
            rec = match self.update(|r| r.start_time = Some(format_rfc3339_nano(SystemTime::now())))
            {
                Some(r) => r,
                None => return Ok(false),
            };
        }
        let pods = self.engine.job_pods(&rec)?;
        // Count the pods that ended.
        let ended: Vec<&PodRecord> = pods
            .iter()
            .filter(|p| {
                !p.deleting
                    && matches!(p.phase, Phase::Failed | Phase::Succeeded)
                    && !p.supervised()
                    && !rec.counted.contains_key(&p.uid)
            })
            .collect();
        if !ended.is_empty() {
            rec = match self.update(|r| {
                for p in &ended {
                    let ok = p.phase == Phase::Succeeded;
                    r.counted.insert(p.uid.clone(), ok);
                    if ok {
                        r.event("Normal", "Completed", format!("Pod {} succeeded", p.name));
                    } else {
                        r.last_failure = Some(
                            p.finished
                                .clone()
                                .unwrap_or_else(|| format_rfc3339_nano(SystemTime::now())),
                        );
                        r.event("Warning", "PodFailed", format!("Pod {} failed", p.name));
                    }
                }
            }) {
                Some(r) => r,
                None => return Ok(false),
            };
        }
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
        let succeeded = rec.succeeded();
        // OnFailure: the containers' restarts count too.
        let restarts: u32 = pods
            .iter()
            .flat_map(|p| p.containers.iter())
            .map(|c| c.restart_count)
            .sum();
        let failures = rec.failed() + restarts;
        let end = if succeeded >= rec.completions {
            Some((
                "Complete",
                "",
                format!("{succeeded} of {} pods succeeded", rec.completions),
            ))
        } else if failures > rec.backoff_limit {
            Some((
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".to_string(),
            ))
        } else if let Some(d) = rec.active_deadline_seconds
            && rec
                .start_time
                .as_deref()
                .is_some_and(|t| since(t) >= Duration::from_secs(d))
        {
            Some((
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline".to_string(),
            ))
        } else {
            None
        };
        if let Some((condition, reason, message)) = end {
            for p in &live {
                self.delete_pod(p, message.as_str());
            }
            let ended = self.update(|r| {
                let kind = if condition == "Complete" {
                    "Normal"
                } else {
                    "Warning"
                };
                let why = if reason.is_empty() {
                    "Completed"
                } else {
                    reason
                };
                r.event(kind, why, message.clone());
                r.end = Some(JobEnd {
                    condition: condition.into(),
                    reason: reason.into(),
                    message: message.clone(),
                    time: format_rfc3339_nano(SystemTime::now()),
                });
            });
            return Ok(ended.is_some_and(|r| r.ttl_seconds_after_finished.is_some()));
        }
        // More pods: up to parallelism, never more than the completions
        // still needed.
        let needed = rec.completions - succeeded;
        let want = rec.parallelism.min(needed) as usize;
        if live.len() >= want {
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
        for _ in live.len()..want {
            if self.stopping() {
                break;
            }
            if !self.create(&rec, failures)? {
                break;
            }
        }
        Ok(true)
    }

    /// Makes one pod of the Job; false when it could not.
    fn create(&self, rec: &JobRecord, failures: u32) -> Result<bool, EngineError> {
        let pod_name = peapod_kube::names::job_pod_name(&rec.name);
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
        meta.labels = Some(labels.clone());
        let restart = rec.restart_policy();
        let mut spec = rec.template.spec.clone().unwrap_or_default();
        spec.restart_policy = Some(restart.into());
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": rec.namespace, "labels": labels},
            "spec": serde_json::to_value(&spec).unwrap_or_default(),
        });
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
