//! The controller process of one Deployment or ReplicaSet
//! (`peapod __deploy-supervise NS NAME`): single-threaded, it looks at the
//! record and the pods about once a second (at once on SIGUSR1, which
//! apply and scale send) and moves the pods toward what the record asks:
//! missing replicas made, extra and ended ones deleted, and on a template
//! change the old pods replaced (RollingUpdate within maxSurge and
//! maxUnavailable, counting pods available after `minReadySeconds`, or
//! Recreate). Each look also notes when pods became ready and drops
//! revisions past the history limit. It ends on SIGTERM once the object
//! is being deleted (the deleter then removes the pods).

use std::fs::File;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use peapod_kube::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::deployment::{ControllerKind, ControllerRecord, ControllerStore, Strategy};
use super::record::{Phase, PodRecord};
use crate::containers::{Engine, EngineError};
use crate::monitor::Ready;

/// How often the controller looks when nothing wakes it.
const PERIOD: Duration = Duration::from_secs(1);

pub(super) fn signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Waits up to `timeout` for one of [`signals`]; whether it was a stop
/// signal.
pub(super) fn wait_signal(timeout: Duration) -> bool {
    let set = signals();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: sigtimedwait reads the valid set and timespec given; a null
    // siginfo pointer is allowed.
    let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    matches!(sig, libc::SIGTERM | libc::SIGINT | libc::SIGHUP)
}

/// How long ago `created` (RFC 3339) was.
fn age(created: &str) -> Duration {
    crate::time::parse_rfc3339(created)
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Reaps ended children (pod supervisors this process started).
pub(super) fn reap() {
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

struct Controller<'a> {
    engine: &'a Engine,
    store: ControllerStore,
    namespace: String,
    name: String,
    /// No pod is made before this (after a failure to make one).
    hold_until: Option<Instant>,
    failures: u32,
}

/// Runs the controller of `kind` `namespace/name` until the object is
/// deleted. `ready` gets `started` once this process is in the record (or
/// `error`).
pub fn run(
    engine: &Engine,
    kind: ControllerKind,
    namespace: &str,
    name: &str,
    ready: Option<File>,
) -> Result<(), EngineError> {
    // Kept open for the life of the process so the descriptor number is
    // not reused by a later pipe.
    let mut ready = Ready::new(ready);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals()), None)
        .map_err(|e| EngineError::Invalid(format!("block signals: {e}")))?;
    let store = engine.controllers(kind);
    let mine = super::revive::claim(&store, namespace, name)?;
    if !mine {
        // Another controller runs it (or it is gone): that one is woken.
        ready.send(serde_json::json!({"event": "started", "pid": 0}));
        return Ok(());
    }
    ready.send(serde_json::json!({"event": "started", "pid": std::process::id()}));
    let mut c = Controller {
        engine,
        store,
        namespace: namespace.to_string(),
        name: name.to_string(),
        hold_until: None,
        failures: 0,
    };
    loop {
        reap();
        match c.tick() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("controller {namespace}/{name}: {e}");
                c.note("Warning", "ReconcileError", e.to_string());
            }
        }
        if wait_signal(PERIOD) && c.stopping() {
            break;
        }
    }
    reap();
    Ok(())
}

impl Controller<'_> {
    fn record(&self) -> Result<Option<ControllerRecord>, EngineError> {
        self.store.load(&self.namespace, &self.name)
    }

    /// The object is gone or being deleted.
    fn stopping(&self) -> bool {
        !matches!(self.record(), Ok(Some(r)) if !r.deleting)
    }

    /// Adds an event to the record.
    fn note(&self, kind: &str, reason: &str, message: String) {
        let _ = self.store.update(&self.namespace, &self.name, |r| match r {
            Some(mut r) if !r.deleting => {
                r.event(kind, reason, message);
                (Some(r), ())
            }
            _ => (None, ()),
        });
    }

    /// Notes which pods are ready since when and prunes old revisions;
    /// the record after (None when it is gone or being deleted).
    fn observe(&self, pods: &[PodRecord]) -> Result<Option<ControllerRecord>, EngineError> {
        let now = SystemTime::now();
        self.store.update(&self.namespace, &self.name, |r| match r {
            Some(mut r) if !r.deleting => {
                if r.observe(pods, now) {
                    (Some(r.clone()), Some(r))
                } else {
                    (None, Some(r))
                }
            }
            _ => (None, None),
        })
    }

    /// One look; false when the controller should end.
    fn tick(&mut self) -> Result<bool, EngineError> {
        let Some(rec) = self.record()? else {
            return Ok(false);
        };
        if rec.deleting {
            return Ok(false);
        }
        let pods = self.engine.controller_pods(&rec)?;
        let Some(rec) = self.observe(&pods)? else {
            return Ok(false);
        };
        let mut live: Vec<PodRecord> = Vec::new();
        for p in pods {
            if p.deleting {
                // Its supervisor died before it was done.
                if !p.supervised() {
                    let _ = self.engine.delete_pod(&p.id, Some(0));
                }
                continue;
            }
            if matches!(p.phase, Phase::Failed | Phase::Succeeded) {
                self.delete(&p, &format!("pod {} ended ({:?})", p.name, p.phase));
                continue;
            }
            // Its supervisor died (this process makes pods one at a time
            // and each has its supervisor once made).
            if !p.supervised() && age(&p.created) > Duration::from_secs(5) {
                self.delete(&p, &format!("the supervisor of pod {} is gone", p.name));
                continue;
            }
            live.push(p);
        }
        let desired = rec.replicas as usize;
        let (new, old): (Vec<PodRecord>, Vec<PodRecord>) =
            live.into_iter().partition(|p| rec.current(p));
        let strategy = match rec.kind {
            ControllerKind::ReplicaSet => None,
            ControllerKind::Deployment => Some(rec.strategy()),
        };
        match strategy {
            _ if old.is_empty() => self.scale(&rec, new, desired)?,
            None => self.scale(&rec, new, desired)?,
            Some(Strategy::Recreate) => {
                for p in &old {
                    self.delete(p, &format!("pod {} of an old template", p.name));
                }
            }
            Some(Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            }) => self.roll(&rec, new, old, desired, max_surge, max_unavailable)?,
        }
        Ok(true)
    }

    /// Recreate waits for the old pods to be gone before making new ones.
    fn old_terminating(&self, rec: &ControllerRecord) -> Result<bool, EngineError> {
        Ok(self
            .engine
            .controller_pods(rec)?
            .iter()
            .any(|p| !rec.current(p)))
    }

    /// Makes or deletes pods of the current template until there are
    /// `desired`.
    fn scale(
        &mut self,
        rec: &ControllerRecord,
        mut pods: Vec<PodRecord>,
        desired: usize,
    ) -> Result<(), EngineError> {
        if pods.len() < desired {
            if rec.kind == ControllerKind::Deployment
                && rec.strategy() == Strategy::Recreate
                && self.old_terminating(rec)?
            {
                return Ok(());
            }
            for _ in pods.len()..desired {
                if !self.create(rec)? {
                    break;
                }
            }
        } else if pods.len() > desired {
            // Unavailable pods go first, then the newest.
            pods.sort_by(|a, b| {
                rec.available(a)
                    .cmp(&rec.available(b))
                    .then(b.created.cmp(&a.created))
            });
            for p in &pods[..pods.len() - desired] {
                self.delete(p, &format!("scaled down to {desired}"));
            }
        }
        Ok(())
    }

    /// One step of a rolling update: new pods up to `desired + surge` in
    /// all, then old pods down while at least `desired - unavailable` are
    /// available.
    fn roll(
        &mut self,
        rec: &ControllerRecord,
        new: Vec<PodRecord>,
        old: Vec<PodRecord>,
        desired: usize,
        surge: u32,
        unavailable: u32,
    ) -> Result<(), EngineError> {
        let total = new.len() + old.len();
        let room = (desired + surge as usize).saturating_sub(total);
        let want = desired.saturating_sub(new.len());
        for _ in 0..room.min(want) {
            if !self.create(rec)? {
                break;
            }
        }
        // Look again: the pods just made may be ready.
        let pods: Vec<PodRecord> = self
            .engine
            .controller_pods(rec)?
            .into_iter()
            .filter(|p| !p.deleting && !matches!(p.phase, Phase::Failed | Phase::Succeeded))
            .collect();
        let mut available = pods.iter().filter(|p| rec.available(p)).count();
        let min_available = desired.saturating_sub(unavailable as usize);
        let mut old: Vec<&PodRecord> = pods.iter().filter(|p| !rec.current(p)).collect();
        // Unavailable old pods cost no availability: they go first, then
        // the oldest.
        old.sort_by(|a, b| {
            rec.available(a)
                .cmp(&rec.available(b))
                .then(a.created.cmp(&b.created))
        });
        for p in old {
            let is_available = rec.available(p);
            // Never below the replicas that must stay available.
            if is_available && available <= min_available {
                break;
            }
            self.delete(p, "replaced by the new template");
            if is_available {
                available -= 1;
            }
        }
        Ok(())
    }

    /// Makes one pod of the current template; false when it should stop
    /// making pods for now.
    fn create(&mut self, rec: &ControllerRecord) -> Result<bool, EngineError> {
        if self.hold_until.is_some_and(|t| Instant::now() < t) || self.stopping() {
            return Ok(false);
        }
        let pod_name = match rec.kind {
            ControllerKind::Deployment => {
                peapod_kube::names::deployment_pod_name(&rec.name, &rec.template_hash)
            }
            ControllerKind::ReplicaSet => {
                peapod_kube::names::generate_name(&format!("{}-", rec.name))
            }
        };
        let mut meta: ObjectMeta = rec.template.metadata.clone().unwrap_or_default();
        meta.name = Some(pod_name.clone());
        meta.namespace = Some(rec.namespace.clone());
        let mut labels = meta.labels.clone().unwrap_or_default();
        if rec.kind == ControllerKind::Deployment {
            labels.insert("pod-template-hash".into(), rec.template_hash.clone());
        }
        meta.labels = Some(labels.clone());
        let mut spec = rec.template.spec.clone().unwrap_or_default();
        spec.restart_policy = Some("Always".into());
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": rec.namespace, "labels": labels},
            "spec": serde_json::to_value(&spec).unwrap_or_default(),
        });
        match self.engine.apply_pod(
            &pod_name,
            &meta,
            &spec,
            "Always",
            None,
            Some(rec.owner()),
            manifest,
            &rec.config,
        ) {
            Ok(_) => {
                self.failures = 0;
                self.hold_until = None;
                self.note(
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {pod_name}"),
                );
                Ok(true)
            }
            Err(e) => {
                self.failures += 1;
                let wait = Duration::from_secs(1 << self.failures.min(5));
                self.hold_until = Some(Instant::now() + wait);
                self.note(
                    "Warning",
                    "FailedCreate",
                    format!("Error creating pod {pod_name}: {e}"),
                );
                Ok(false)
            }
        }
    }

    fn delete(&self, p: &PodRecord, why: &str) {
        self.engine.begin_pod_delete(p, None);
        self.note(
            "Normal",
            "SuccessfulDelete",
            format!("Deleted pod: {} ({why})", p.name),
        );
    }
}
