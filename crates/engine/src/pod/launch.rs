//! Creating, starting and deleting pods from the command line's side: the
//! record, the detached supervisor, and the delete request.

use std::fs::File;
use std::io::BufReader;
use std::time::{Duration, Instant};

use super::record::{ContainerState, ContainerStatus, Phase, PodRecord};
use super::{PodPlan, supervisor};
use crate::containers::{Engine, EngineError, LaunchError, next_event};
use crate::time::format_rfc3339_nano;

/// What `apply` gives to make one pod.
#[derive(Debug, Clone)]
pub struct PodLaunch {
    pub plan: PodPlan,
    pub uid: String,
    pub owner: Option<String>,
    pub manifest: serde_json::Value,
}

/// A pod whose supervisor is bringing it up.
pub struct PendingPod {
    id: String,
    name: String,
    /// The supervisor's event pipe.
    events: BufReader<File>,
}

impl Engine {
    /// Makes pod `launch` and starts its supervisor; returns once its app
    /// containers run (or it failed to start).
    pub fn run_pod(&self, launch: PodLaunch) -> Result<PodRecord, EngineError> {
        let pending = self.begin_pod(launch)?;
        self.finish_pod(pending)
    }

    /// Makes pod `launch` and starts its supervisor, which brings the pod
    /// up on its own; [`Self::finish_pod`] waits for it. Several pods may
    /// be coming up at once.
    pub fn begin_pod(&self, launch: PodLaunch) -> Result<PendingPod, EngineError> {
        let id = crate::record::new_id()?;
        let plan = launch.plan;
        let record = PodRecord {
            id: id.clone(),
            uid: launch.uid,
            name: plan.name.clone(),
            namespace: plan.namespace.clone(),
            created: format_rfc3339_nano(std::time::SystemTime::now()),
            owner: launch.owner,
            manifest: launch.manifest,
            phase: Phase::Pending,
            ip: None,
            netns: None,
            infra: None,
            supervisor: None,
            containers: plan
                .containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    kind: c.kind,
                    container_id: None,
                    image: c.request.image.clone(),
                    restart_count: 0,
                    state: ContainerState::Waiting {
                        reason: "ContainerCreating".into(),
                    },
                    last_state: None,
                    ready: false,
                    backoff: Default::default(),
                    starts: Vec::new(),
                })
                .collect(),
            events: Vec::new(),
            deleting: false,
            stopping: false,
            finished: None,
            plan,
        };
        self.pods.create(&record)?;
        let log = self.pods.dir(&id).join("supervisor.log");
        match self.spawn_detached(&["__pod-supervise".into(), id.clone()], &log) {
            Ok(events) => Ok(PendingPod {
                id,
                name: record.name,
                events,
            }),
            Err(e) => {
                let _ = self.pods.remove(&id);
                Err(e)
            }
        }
    }

    /// Waits until pending pod's app containers run (or it failed to
    /// start, and is removed whole).
    pub fn finish_pod(&self, pending: PendingPod) -> Result<PodRecord, EngineError> {
        let PendingPod {
            id,
            name,
            mut events,
        } = pending;
        loop {
            match next_event(&mut events) {
                Some(ev) if ev["event"] == "started" => break,
                Some(ev) if ev["event"] == "error" => {
                    // The pod could not be brought up (a port in use, a bad
                    // volume): nothing of it stays behind.
                    let _ = self.delete_pod(&id, Some(0));
                    return Err(LaunchError::StartFailed {
                        message: format!(
                            "pod {}: {}",
                            name,
                            ev["message"].as_str().unwrap_or("failed to start")
                        ),
                        code: 1,
                    }
                    .into());
                }
                Some(_) => continue,
                // Ended before its app containers ran (init failed, or it
                // completed): the record says how.
                None => break,
            }
        }
        Ok(self.pods.load(&id)?)
    }

    /// Deletes pod `id`: its supervisor stops the containers (preStop,
    /// stop signal, `grace` seconds — the pod's own when None — then
    /// SIGKILL) and tears it down; then everything it had is removed.
    pub fn delete_pod(&self, id: &str, grace: Option<u32>) -> Result<(), EngineError> {
        let (rec, ()) = self.pods.update(id, |r| {
            r.deleting = true;
            if let Some(g) = grace {
                r.plan.grace_period = g;
            }
        })?;
        if let Some(s) = rec.supervisor.filter(|s| s.alive()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(s.pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let limit = Duration::from_secs(u64::from(rec.plan.grace_period) + 20);
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                match self.pods.load(id) {
                    Ok(r) if r.supervisor.is_some_and(|s| s.alive()) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
        }
        // Whatever the supervisor did not get to (or it was gone).
        if let Ok(rec) = self.pods.load(id) {
            if let Some(infra) = rec.infra.filter(|p| p.alive()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(infra.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            supervisor::release(self, &rec, true);
        }
        Ok(())
    }
}
