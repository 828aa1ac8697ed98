//! Imperative pods, as Podman's: `pod create` makes a pod with only its
//! infra process (a plan with no containers that stays up until stopped or
//! deleted); `run --pod` adds ordinary engine containers to it, each with
//! its own supervisor, joined to the infra process's namespaces and placed
//! in the pod's cgroup; `pod stop` / `pod start` / `pod rm` act on the
//! pod and those containers together.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::launch::PodLaunch;
use super::record::{ContainerState, Phase, PodRecord};
use super::{PodPlan, PodRestart, cgroup};
use crate::containers::{Engine, EngineError, Launch, Status};
use crate::record::Record;
use crate::request::{ContainerRequest, IpcMode, NetworkMode, PidMode, PortMapping, UtsMode};

/// The label on a container added with `run --pod`: the pod's id.
pub const POD_LABEL: &str = "io.peapod.pod";

/// The namespace imperative pods live in (Podman's pods have none).
pub const NAMESPACE: &str = "default";

/// What `pod create` asks for.
#[derive(Debug, Clone, Default)]
pub struct PodOptions {
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub ports: Vec<PortMapping>,
    pub share_pid: bool,
    pub labels: BTreeMap<String, String>,
}

impl Engine {
    /// `pod create`: a pod with its network, cgroup and infra process and
    /// no containers, running until stopped or deleted.
    pub fn create_pod(&self, o: PodOptions) -> Result<PodRecord, EngineError> {
        let uid = peapod_kube::names::new_uid();
        let name = match o.name {
            Some(n) => n,
            None => format!("pod-{}", &uid[..8]),
        };
        crate::record::validate_name(&name)?;
        let plan = PodPlan {
            hostname: o.hostname.unwrap_or_else(|| name.clone()),
            name,
            namespace: NAMESPACE.into(),
            labels: o.labels,
            restart: PodRestart::Never,
            containers: Vec::new(),
            ports: o.ports,
            host_network: false,
            host_ipc: false,
            host_pid: false,
            share_pid: o.share_pid,
            grace_period: 10,
            max_restarts: None,
            memory_limit: None,
            cpu_limit_millis: None,
            qos: "BestEffort".into(),
            memory_volumes: Vec::new(),
            keep_running: true,
            private_users: false,
        };
        self.run_pod(PodLaunch {
            plan,
            uid,
            owner: None,
            manifest: serde_json::Value::Null,
        })
    }

    /// A pod by name (in the default namespace) or by id or id prefix.
    pub fn find_pod(&self, key: &str) -> Result<PodRecord, EngineError> {
        if let Some(p) = self.pods.find(NAMESPACE, key)? {
            return Ok(p);
        }
        let all = self.pods.list()?;
        let mut hits = all
            .iter()
            .filter(|p| p.name == key || (key.len() >= 3 && p.id.starts_with(key)));
        match (hits.next(), hits.next()) {
            (Some(p), None) => Ok(p.clone()),
            (Some(_), Some(_)) => Err(EngineError::Invalid(format!(
                "pod {key:?} is ambiguous: give more of its id"
            ))),
            (None, _) => Err(EngineError::Invalid(format!(
                "no such pod: {key} (list them with peapod pod ps)"
            ))),
        }
    }

    /// Makes `req` a container of pod `key` (`run --pod`): it joins the
    /// infra process's network and IPC namespaces (and PID namespace when
    /// the pod shares one), gets the pod's hostname and cgroup, and is
    /// labelled with the pod's id.
    pub fn join_pod(
        &self,
        key: &str,
        req: &mut ContainerRequest,
    ) -> Result<PodRecord, EngineError> {
        let pod = self.find_pod(key)?;
        if !req.publish.is_empty() {
            return Err(EngineError::Invalid(format!(
                "--pod {} and -p conflict: a pod's containers share its network; publish ports on the pod (peapod pod create -p)",
                pod.name
            )));
        }
        if !matches!(req.network, NetworkMode::Default) {
            return Err(EngineError::Invalid(format!(
                "--pod {} and --network conflict: the container joins the pod's network",
                pod.name
            )));
        }
        let infra = pod.infra.filter(|p| p.alive()).ok_or_else(|| {
            EngineError::Invalid(format!(
                "pod {} is not running: start it with peapod pod start {}",
                pod.name, pod.name
            ))
        })?;
        let ns = |kind: &str| std::path::PathBuf::from(format!("/proc/{}/ns/{kind}", infra.pid));
        let plan = &pod.plan;
        req.network = match &pod.netns {
            Some(p) => NetworkMode::Namespace(p.clone()),
            None => NetworkMode::Namespace(ns("net")),
        };
        req.ipc = IpcMode::Namespace(ns("ipc"));
        if plan.share_pid {
            req.pid = PidMode::Namespace(ns("pid"));
        }
        req.uts = UtsMode::Private;
        req.hostname = Some(plan.hostname.clone());
        if let Some(ip) = pod.ip {
            req.extra_hosts.insert(0, (plan.hostname.clone(), ip));
        }
        req.cgroup_parent = Some(cgroup::path(plan, &pod.uid));
        if plan.private_users {
            req.userns_mapping = Some(self.userns.allocate(&pod.id)?);
        }
        req.labels.insert(POD_LABEL.into(), pod.id.clone());
        Ok(pod)
    }

    /// The containers added to pod `id` with `run --pod`.
    pub fn pod_members(&self, id: &str) -> Result<Vec<Record>, EngineError> {
        Ok(self
            .store
            .list()?
            .into_iter()
            .filter(|r| r.setup.request.labels.get(POD_LABEL).map(String::as_str) == Some(id))
            .collect())
    }

    /// `pod stop`: stops the pod's containers, then its infra process (the
    /// supervisor ends, the network and cgroup are freed); the pod and its
    /// containers stay defined.
    pub fn stop_pod(&self, key: &str, timeout: Option<u32>) -> Result<PodRecord, EngineError> {
        let pod = self.find_pod(key)?;
        for c in self.pod_members(&pod.id)? {
            self.stop(&c.id, timeout)?;
        }
        // The manifest's containers are the supervisor's to stop (preStop
        // hooks, stop signal, grace period), without restarting them.
        let (rec, ()) = self.pods.update(&pod.id, |r| {
            r.plan.keep_running = false;
            if !r.containers.is_empty() {
                r.stopping = true;
                if let Some(t) = timeout {
                    r.plan.grace_period = t;
                }
            }
        })?;
        if let Some(s) = rec.supervisor.filter(|s| s.alive()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(s.pid),
                nix::sys::signal::Signal::SIGUSR1,
            );
            let deadline =
                Instant::now() + Duration::from_secs(30 + u64::from(rec.plan.grace_period));
            while Instant::now() < deadline {
                match self.pods.load(&pod.id) {
                    Ok(r) if r.supervisor.is_some_and(|s| s.alive()) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
        }
        Ok(self.pods.load(&pod.id)?)
    }

    /// `pod start`: brings a stopped pod up again (network, cgroup, infra
    /// process) and starts its containers, pointed at the new infra
    /// process's namespaces.
    pub fn start_pod(&self, key: &str) -> Result<PodRecord, EngineError> {
        let pod = self.find_pod(key)?;
        let old_infra = pod.infra.as_ref().map(|p| p.pid);
        let rec = if pod.supervisor.is_some_and(|s| s.alive()) {
            pod
        } else {
            // A pod made from a manifest comes up as it was first made: its
            // supervisor makes its containers again, in the new infra
            // process's namespaces (their logs and restart counts go on).
            let from_manifest = !pod.containers.is_empty();
            for cid in pod
                .containers
                .iter()
                .filter_map(|c| c.container_id.as_ref())
            {
                self.remove(cid, true, false)?;
            }
            let old = pod
                .events
                .iter()
                .rev()
                .find_map(|e| infra_pid_of(&e.message));
            self.pods.update(&pod.id, |r| {
                if from_manifest {
                    for c in &mut r.containers {
                        c.container_id = None;
                        c.ready = false;
                        if matches!(c.state, ContainerState::Terminated { .. }) {
                            c.last_state = Some(c.state.clone());
                        }
                        c.state = ContainerState::Waiting {
                            reason: "ContainerCreating".into(),
                        };
                    }
                } else {
                    r.plan.keep_running = true;
                }
                r.deleting = false;
                r.stopping = false;
                r.phase = Phase::Pending;
                r.finished = None;
                r.infra = None;
                r.supervisor = None;
            })?;
            let log = self.pods.dir(&pod.id).join("supervisor.log");
            let mut events =
                self.spawn_detached(&["__pod-supervise".into(), pod.id.clone()], &log)?;
            while let Some(ev) = crate::containers::next_event(&mut events) {
                if ev["event"] == "started" {
                    break;
                }
                if ev["event"] == "error" {
                    return Err(EngineError::Invalid(format!(
                        "pod {}: {}",
                        pod.name,
                        ev["message"].as_str().unwrap_or("failed to start")
                    )));
                }
            }
            let rec = self.pods.load(&pod.id)?;
            if let (Some(old), Some(new)) = (old_infra.or(old), rec.infra.as_ref()) {
                for c in self.pod_members(&rec.id)? {
                    repoint(&c, old, new.pid)?;
                }
            }
            rec
        };
        for c in self.pod_members(&rec.id)? {
            if !self.view(&c).status.is_active() {
                self.start(&c.id, Launch { wait_attach: false })?;
            }
        }
        Ok(rec)
    }

    /// `pod rm`: deletes the pod; its containers must be stopped unless
    /// `force` (then they are killed); they are removed with it.
    pub fn remove_pod(&self, key: &str, force: bool) -> Result<(), EngineError> {
        let pod = self.find_pod(key)?;
        let members = self.pod_members(&pod.id)?;
        if !force {
            if let Some(c) = members.iter().find(|c| self.view(c).status.is_active()) {
                return Err(EngineError::Invalid(format!(
                    "pod {} has running container {}: stop the pod first, or use pod rm -f",
                    pod.name, c.name
                )));
            }
            if pod.supervisor.is_some_and(|s| s.alive()) && pod.plan.keep_running {
                return Err(EngineError::Invalid(format!(
                    "pod {} is running: stop it first, or use pod rm -f",
                    pod.name
                )));
            }
        }
        for c in &members {
            self.remove(&c.id, true, true)?;
        }
        self.delete_pod(&pod.id, None)
    }

    /// The cgroup path of pod `rec` (the parent of its containers').
    pub fn pod_cgroup(&self, rec: &PodRecord) -> String {
        cgroup::path(&rec.plan, &rec.uid)
    }

    /// Whether pod `rec` is up (its supervisor and infra process run).
    pub fn pod_running(&self, rec: &PodRecord) -> bool {
        rec.supervisor.is_some_and(|s| s.alive()) && rec.infra.is_some_and(|s| s.alive())
    }

    /// What `pod ps` and `pod inspect` count: the pod's running containers
    /// and all of them.
    pub fn pod_member_status(&self, rec: &PodRecord) -> Vec<(Record, Status)> {
        self.pod_members(&rec.id)
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let s = self.view(&r).status;
                (r, s)
            })
            .collect()
    }
}

/// The infra pid named in a SandboxReady event.
fn infra_pid_of(message: &str) -> Option<i32> {
    message
        .strip_prefix("infra process ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Points container `c`'s bundle at infra process `new`'s namespaces
/// instead of `old`'s.
fn repoint(c: &Record, old: i32, new: i32) -> Result<(), EngineError> {
    let path = c.setup.bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(crate::containers::io("bundle", &path))?;
    let from = format!("/proc/{old}/ns/");
    let to = format!("/proc/{new}/ns/");
    if text.contains(&from) {
        let text = text.replace(&from, &to);
        std::fs::write(&path, text).map_err(crate::containers::io("bundle", &path))?;
    }
    Ok(())
}
