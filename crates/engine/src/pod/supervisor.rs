//! The supervisor of one pod: a process of its own (single-threaded, a
//! subreaper) that brings the pod up — network, cgroup, infra process,
//! containers — runs init containers in order, then the app containers,
//! restarts them per the pod's policy with back-off, and on delete stops
//! them (preStop, stop signal, grace period, SIGKILL) and tears it down.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::infra::{self, InfraSpec};
use super::memory;
use super::probe::{self, Action, Kind, Probe};
use super::record::{ContainerState, Phase, PodRecord};
use super::run::{self, Run};
use super::{ContainerKind, POD_IP, PodRestart, cgroup};
use crate::containers::{Engine, EngineError};
use crate::monitor::Ready;
use crate::record::{ProcRef, State};
use crate::request::{IpcMode, NetworkMode, PidMode, UtsMode};
use crate::restart::RestartPolicy;
use crate::time::format_rfc3339_nano;

/// How long a postStart hook may take.
const HOOK_LIMIT: Duration = Duration::from_secs(30);

fn now() -> String {
    format_rfc3339_nano(SystemTime::now())
}

/// The controllers' stop and wake signals, and SIGCHLD.
fn signals() -> SigSet {
    let mut set = super::controller::signals();
    set.add(Signal::SIGCHLD);
    set
}

/// What woke the supervisor.
enum Wake {
    Child,
    Stop,
    Timer,
}

struct Pod<'a> {
    engine: &'a Engine,
    id: String,
    /// The running containers, by main pid.
    runs: HashMap<i32, Run>,
    /// Containers that could not start: index and exit code, handled as
    /// if they had ended.
    failed_starts: Vec<(usize, i32)>,
    /// SIGCHLD, SIGTERM and the rest, read here instead of delivered.
    signals: SignalFd,
    /// Where container output is read into.
    buf: Vec<u8>,
    /// container index -> when to start it again
    timers: HashMap<usize, Instant>,
    /// other children reaped while waiting for something else
    infra: Option<i32>,
    stopping: bool,
    restarts: u32,
    /// The running probes of each container.
    probes: HashMap<(usize, Kind), ProbeState>,
    /// probe child pid -> its probe
    probe_pids: HashMap<i32, (usize, Kind)>,
    /// probe results reaped but not yet handled: exit code, None on a
    /// timeout
    probe_results: Vec<(usize, Kind, Option<i32>)>,
    /// container index -> when to SIGKILL it (after a probe or hook
    /// failure and the stop signal)
    kill_at: HashMap<usize, Instant>,
    /// The pod's IP, for network probes.
    ip: Option<std::net::IpAddr>,
}

/// One probe of a running container.
struct ProbeState {
    probe: Probe,
    /// When to run it next.
    next: Instant,
    successes: u32,
    failures: u32,
    /// The check running now: its pid and deadline.
    running: Option<(i32, Instant)>,
}

/// Runs pod `id` until it ends or is deleted. `ready` gets one JSON line:
/// `started` once the app containers run, or `error`.
pub fn run(engine: &Engine, id: &str, ready: Option<File>) -> Result<(), EngineError> {
    let mut ready = Ready::new(ready);
    pea_runtime::become_subreaper().map_err(|e| EngineError::Invalid(format!("subreaper: {e}")))?;
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals()), None)
        .map_err(|e| EngineError::Invalid(format!("block signals: {e}")))?;
    let signals = SignalFd::with_flags(&signals(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| EngineError::Invalid(format!("make a signalfd: {e}")))?;
    let mut pod = Pod {
        engine,
        id: id.to_string(),
        runs: HashMap::new(),
        failed_starts: Vec::new(),
        signals,
        buf: vec![0; 8 * 1024],
        timers: HashMap::new(),
        infra: None,
        stopping: false,
        restarts: 0,
        probes: HashMap::new(),
        probe_pids: HashMap::new(),
        probe_results: Vec::new(),
        kill_at: HashMap::new(),
        ip: None,
    };
    pod.update(|r| {
        r.supervisor = ProcRef::current();
        r.phase = Phase::Pending;
    })?;
    if let Err(e) = pod.bring_up() {
        let msg = e.to_string();
        let _ = pod.update(|r| {
            r.phase = Phase::Failed;
            r.event("Warning", "Failed", msg.clone());
        });
        ready.send(serde_json::json!({"event": "error", "message": msg, "code": 125}));
        pod.tear_down(false);
        return Err(e);
    }
    let result = pod.run_init();
    let result = result.and_then(|ok| {
        if ok && !pod.stopping {
            pod.start_apps()?;
            ready.send(serde_json::json!({"event": "started", "pid": pod.infra.unwrap_or(0)}));
            ready.close();
            pod.main_loop()
        } else {
            Ok(())
        }
    });
    // A failed init container (restartPolicy Never) is the pod's outcome,
    // not a failure to create it: `apply` succeeds and the record says
    // Failed (Init:Error), as in Kubernetes.
    if let Err(e) = &result {
        ready.send(serde_json::json!({"event": "error", "message": format!("the pod ended before its containers started: {e}"), "code": 1}));
    }
    // Stopped (`pod stop`): torn down but kept; deleted: removed.
    let remove = pod.stopping && pod.record().map(|r| r.deleting).unwrap_or(true);
    pod.tear_down(remove);
    result
}

impl Pod<'_> {
    fn store(&self) -> &super::PodStore {
        &self.engine.pods
    }

    fn update<T>(&self, f: impl FnOnce(&mut PodRecord) -> T) -> Result<T, EngineError> {
        Ok(self.store().update(&self.id, f)?.1)
    }

    fn record(&self) -> Result<PodRecord, EngineError> {
        Ok(self.store().load(&self.id)?)
    }

    /// Network, cgroup, infra process, and a container record for each
    /// container.
    fn bring_up(&mut self) -> Result<(), EngineError> {
        let rec = self.record()?;
        let plan = rec.plan.clone();
        for (dir, size) in &plan.memory_volumes {
            std::fs::create_dir_all(dir).map_err(crate::containers::io("volume", dir))?;
            let opts = size.map(|s| format!("size={s}"));
            nix::mount::mount(
                Some("tmpfs"),
                dir.as_path(),
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                opts.as_deref(),
            )
            .map_err(|e| {
                EngineError::Invalid(format!("emptyDir tmpfs on {}: {e}", dir.display()))
            })?;
        }
        let (netns, ip) = if plan.host_network {
            (None, None)
        } else {
            let a = self.engine.networks.attach(&self.id, None, &plan.ports)?;
            (Some(a.netns.clone()), a.ip)
        };
        self.ip = ip;
        self.update(|r| {
            r.netns = netns.clone();
            r.ip = ip;
        })?;
        cgroup::create(&plan, &rec.uid).map_err(pea_runtime::ContainerError::from)?;
        // hostUsers: false: one private id range for the whole pod, in one
        // user namespace the infra process makes and the containers join.
        let userns = if plan.private_users {
            Some(self.engine.userns.allocate(&self.id)?)
        } else {
            None
        };
        let infra_pid = infra::start(&InfraSpec {
            userns: userns.as_ref(),
            netns: netns.as_deref(),
            new_ipc: !plan.host_ipc,
            share_pid: plan.share_pid && !plan.host_pid,
            hostname: &plan.hostname,
        })
        .map_err(|e| EngineError::Invalid(format!("start the pod's infra process: {e}")))?;
        self.infra = Some(infra_pid);
        let _ = cgroup::add(&plan, &rec.uid, infra_pid);
        self.update(|r| {
            r.infra = ProcRef::of(infra_pid);
            r.event(
                "Normal",
                "SandboxReady",
                format!("infra process {infra_pid} holds the pod's namespaces"),
            );
        })?;
        let ns = |kind: &str| PathBuf::from(format!("/proc/{infra_pid}/ns/{kind}"));
        let cgroup_parent = cgroup::path(&plan, &rec.uid);
        let ip_text = ip.map(|i| i.to_string()).unwrap_or_default();
        for (i, c) in plan.containers.iter().enumerate() {
            let mut req = c.request.clone();
            req.userns_mapping = userns.clone();
            req.userns_path = userns.as_ref().map(|_| ns("user"));
            req.name = Some(container_name(&rec, &c.name));
            req.network = match &netns {
                Some(p) => NetworkMode::Namespace(p.clone()),
                None => NetworkMode::Host,
            };
            req.publish.clear();
            req.ipc = if plan.host_ipc {
                IpcMode::Host
            } else {
                IpcMode::Namespace(ns("ipc"))
            };
            req.pid = if plan.host_pid {
                PidMode::Host
            } else if plan.share_pid {
                PidMode::Namespace(ns("pid"))
            } else {
                PidMode::Private
            };
            req.uts = UtsMode::Private;
            req.hostname = Some(plan.hostname.clone());
            // As kubelet's hosts file: the pod's IP names the pod, before
            // the hostAliases.
            if let Some(ip) = ip {
                req.extra_hosts.insert(0, (plan.hostname.clone(), ip));
            }
            req.cgroup_parent = Some(cgroup_parent.clone());
            req.restart = RestartPolicy::No;
            req.auto_remove = false;
            for e in &mut req.env {
                if e.contains(POD_IP) {
                    *e = e.replace(POD_IP, &ip_text);
                }
            }
            let made = self.engine.create(&req)?;
            self.update(|r| {
                if let Some(s) = r.containers.get_mut(i) {
                    s.container_id = Some(made.id.clone());
                }
                r.event("Normal", "Created", format!("Created container {}", c.name));
            })?;
        }
        Ok(())
    }

    fn kind_of(&self, rec: &PodRecord, i: usize) -> ContainerKind {
        rec.plan.containers[i].kind
    }

    /// Runs init containers in order (sidecars are started and left
    /// running); whether the pod may go on.
    fn run_init(&mut self) -> Result<bool, EngineError> {
        let rec = self.record()?;
        for i in 0..rec.plan.containers.len() {
            match self.kind_of(&rec, i) {
                ContainerKind::App => {}
                ContainerKind::Sidecar => self.start(i)?,
                ContainerKind::Init => loop {
                    self.start(i)?;
                    let Some(code) = self.wait_for(i)? else {
                        return Ok(false);
                    };
                    if code == 0 {
                        break;
                    }
                    // Not restarted (restartPolicy Never, or past the
                    // limit): the init container failed the pod.
                    let restarted = self.after_exit(i, code)?;
                    let Some(at) = self.timers.remove(&i).filter(|_| restarted) else {
                        self.update(|r| {
                            r.phase = Phase::Failed;
                            r.finished = Some(now());
                        })?;
                        return Ok(false);
                    };
                    if !self.sleep_until(at)? {
                        return Ok(false);
                    }
                },
            }
        }
        Ok(true)
    }

    fn start_apps(&mut self) -> Result<(), EngineError> {
        let rec = self.record()?;
        for i in 0..rec.plan.containers.len() {
            if self.kind_of(&rec, i) == ContainerKind::App {
                self.start(i)?;
            }
        }
        self.update(|r| r.phase = Phase::Running)?;
        Ok(())
    }

    /// Creates and starts container `i`; its run is watched here.
    fn start(&mut self, i: usize) -> Result<(), EngineError> {
        let rec = self.record()?;
        let status = &rec.containers[i];
        let Some(cid) = status.container_id.clone() else {
            return Err(EngineError::Invalid(format!(
                "container {} was not created",
                status.name
            )));
        };
        let started = match run::start(self.engine, i, &cid)? {
            Ok(run) => {
                let started = format_rfc3339_nano(run.started);
                self.runs.insert(run.pid, run);
                started
            }
            Err(failure) => {
                let name = status.name.clone();
                self.update(|r| {
                    r.event(
                        "Warning",
                        "Failed",
                        format!(
                            "Error: container {name} could not start: {}",
                            failure.reason
                        ),
                    )
                })?;
                self.failed_starts.push((i, failure.code));
                return Ok(());
            }
        };
        let name = status.name.clone();
        let pc = rec.plan.containers[i].clone();
        // postStart runs before the container counts as started (as
        // kubelet's, which blocks on it).
        let hook_failed = match (&pc.post_start, &pc.post_start_net) {
            (Some(cmd), _) => self.run_hook(&cid, cmd, HOOK_LIMIT).err(),
            (None, Some(a)) => self.net_hook(a, HOOK_LIMIT).err(),
            (None, None) => None,
        };
        // Without a readiness probe a running container is ready (once its
        // startup probe succeeds, if it has one).
        let ready = pc.readiness.is_none() && pc.startup.is_none() && hook_failed.is_none();
        // The run's start (before its first output), so logs split by run
        // start never lose a line.
        self.update(|r| {
            if let Some(c) = r.containers.get_mut(i) {
                c.state = ContainerState::Running {
                    started_at: started.clone(),
                };
                c.ready = ready;
                c.starts.push(started);
            }
            r.event("Normal", "Started", format!("Started container {name}"));
            if let Some(why) = &hook_failed {
                r.event(
                    "Warning",
                    "FailedPostStartHook",
                    format!("PostStartHook of container {name} failed: {why}"),
                );
            }
        })?;
        if hook_failed.is_some() {
            self.kill_container(i, &format!("Container {name} failed its postStart hook"));
            return Ok(());
        }
        let at = Instant::now();
        for (kind, p) in [
            (Kind::Startup, &pc.startup),
            (Kind::Liveness, &pc.liveness),
            (Kind::Readiness, &pc.readiness),
        ] {
            if let Some(p) = p {
                self.probes.insert(
                    (i, kind),
                    ProbeState {
                        probe: p.clone(),
                        next: at + Duration::from_secs(u64::from(p.initial_delay)),
                        successes: 0,
                        failures: 0,
                        running: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// The stop signal to container `i`, and SIGKILL after the grace period
    /// (a failed liveness or startup probe or postStart hook).
    fn kill_container(&mut self, i: usize, message: &str) {
        self.drop_probes(i);
        let Ok(rec) = self.record() else { return };
        let Some(cid) = rec.containers[i].container_id.clone() else {
            return;
        };
        let _ = self.update(|r| r.event("Normal", "Killing", message));
        self.send_stop_signal(&cid);
        self.kill_at.insert(
            i,
            Instant::now() + Duration::from_secs(u64::from(rec.plan.grace_period)),
        );
    }

    /// Sends container `cid` its stop signal (the image's, else SIGTERM).
    fn send_stop_signal(&self, cid: &str) {
        let sig = self
            .engine
            .store
            .load(cid)
            .map(|r| r.setup.stop_signal)
            .unwrap_or(0);
        let sig = if sig == 0 { libc::SIGTERM } else { sig };
        if let Ok(n) = pea_runtime::SignalNumber::parse(&sig.to_string()) {
            let _ = self.engine.runtime.kill(cid, n, false);
        }
    }

    /// Forgets container `i`'s probes, ending any check still running.
    fn drop_probes(&mut self, i: usize) {
        self.probes.retain(|(j, _), _| *j != i);
        let pids: Vec<i32> = self
            .probe_pids
            .iter()
            .filter(|(_, (j, _))| *j == i)
            .map(|(p, _)| *p)
            .collect();
        for p in pids {
            // The pid stays in probe_pids until reaped; its result is
            // ignored as the probe is gone.
            // SAFETY: kill(2) with a pid and a signal number.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        self.probe_results.retain(|(j, _, _)| *j != i);
    }

    /// When a probe is next due (or times out), or a container is to be
    /// killed.
    fn next_probe_event(&self) -> Option<Instant> {
        let probes = self
            .probes
            .iter()
            .filter_map(|((i, kind), st)| match st.running {
                Some((_, deadline)) => Some(deadline),
                None if self.gated(*i, *kind) => None,
                None => Some(st.next),
            });
        probes.chain(self.kill_at.values().copied()).min()
    }

    /// Whether probe `kind` of container `i` waits for its startup probe.
    fn gated(&self, i: usize, kind: Kind) -> bool {
        kind != Kind::Startup && self.probes.contains_key(&(i, Kind::Startup))
    }

    /// Handles probe results and timeouts, starts the probes that are due,
    /// and kills what outlived its grace period.
    fn tick_probes(&mut self) -> Result<(), EngineError> {
        let now = Instant::now();
        let mut results = std::mem::take(&mut self.probe_results);
        for (&(i, kind), st) in self.probes.iter_mut() {
            if let Some((pid, deadline)) = st.running
                && deadline <= now
            {
                // SAFETY: kill(2) with a pid and a signal number.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                st.running = None;
                results.push((i, kind, None));
            }
        }
        for (i, kind, code) in results {
            self.probe_result(i, kind, code)?;
        }
        let due: Vec<(usize, Kind)> = self
            .probes
            .iter()
            .filter(|((i, kind), st)| {
                st.running.is_none() && st.next <= now && !self.gated(*i, *kind)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.launch_probe(key);
        }
        let kill = pea_runtime::SignalNumber::parse("9").expect("SIGKILL");
        let overdue: Vec<usize> = self
            .kill_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(i, _)| *i)
            .collect();
        if !overdue.is_empty() {
            let rec = self.record()?;
            for i in overdue {
                self.kill_at.remove(&i);
                if self.running(i)
                    && let Some(cid) = &rec.containers[i].container_id
                {
                    let _ = self.engine.runtime.kill(cid, kill, true);
                }
            }
        }
        Ok(())
    }

    /// Starts one check of probe `key`: a command in the container, or a
    /// forked child that makes the network check.
    fn launch_probe(&mut self, key: (usize, Kind)) {
        let Some(st) = self.probes.get(&key) else {
            return;
        };
        let probe = st.probe.clone();
        let now = Instant::now();
        let timeout = Duration::from_secs(u64::from(probe.timeout));
        let pid = match &probe.action {
            Action::Exec(cmd) => self
                .record()
                .ok()
                .and_then(|r| r.containers[key.0].container_id.clone())
                .and_then(|cid| {
                    let req = crate::containers::ExecRequest {
                        command: cmd.clone(),
                        ..Default::default()
                    };
                    crate::containers::exec(self.engine, &cid, &req).ok()
                }),
            action => {
                // SAFETY: this process has one thread, so the child may run
                // any code after fork; it ends with _exit.
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => {
                        let code = probe::check(action, self.ip, timeout);
                        // SAFETY: _exit(2) ends the child without running
                        // the parent's atexit handlers or destructors.
                        unsafe { libc::_exit(code) }
                    }
                    Ok(ForkResult::Parent { child }) => Some(child.as_raw()),
                    Err(_) => None,
                }
            }
        };
        let Some(st) = self.probes.get_mut(&key) else {
            return;
        };
        st.next = now + Duration::from_secs(u64::from(probe.period));
        match pid {
            Some(pid) => {
                st.running = Some((pid, now + timeout));
                self.probe_pids.insert(pid, key);
            }
            // It could not even start: a failure.
            None => self.probe_results.push((key.0, key.1, Some(126))),
        }
    }

    /// Counts one result of probe `kind` of container `i` and acts on it
    /// as kubelet does.
    fn probe_result(&mut self, i: usize, kind: Kind, code: Option<i32>) -> Result<(), EngineError> {
        let Some(st) = self.probes.get_mut(&(i, kind)) else {
            return Ok(());
        };
        st.running = None;
        let ok = code == Some(0);
        if ok {
            st.successes += 1;
            st.failures = 0;
        } else {
            st.failures += 1;
            st.successes = 0;
        }
        let (successes, failures) = (st.successes, st.failures);
        let probe = st.probe.clone();
        let rec = self.record()?;
        let name = rec.containers[i].name.clone();
        let has_readiness = rec.plan.containers[i].readiness.is_some();
        if ok {
            if successes < probe.success_threshold {
                return Ok(());
            }
            match kind {
                Kind::Readiness => {
                    if !rec.containers[i].ready {
                        self.update(|r| r.containers[i].ready = true)?;
                    }
                }
                Kind::Startup => {
                    self.probes.remove(&(i, kind));
                    let now = Instant::now();
                    for (&(j, _), st) in self.probes.iter_mut() {
                        if j == i && st.next < now {
                            st.next = now;
                        }
                    }
                    if !has_readiness {
                        self.update(|r| r.containers[i].ready = true)?;
                    }
                }
                Kind::Liveness => {}
            }
            return Ok(());
        }
        let why = probe::failure_message(&probe.action, code, probe.timeout, self.ip);
        self.update(|r| {
            r.event(
                "Warning",
                "Unhealthy",
                format!("{} probe failed: {why}", kind.word()),
            );
        })?;
        if failures < probe.failure_threshold {
            return Ok(());
        }
        match kind {
            Kind::Readiness => {
                if rec.containers[i].ready {
                    self.update(|r| r.containers[i].ready = false)?;
                }
            }
            Kind::Liveness | Kind::Startup => {
                let what = if kind == Kind::Liveness {
                    "liveness"
                } else {
                    "startup"
                };
                self.kill_container(
                    i,
                    &format!("Container {name} failed {what} probe, will be restarted"),
                );
            }
        }
        Ok(())
    }

    /// Reaps what ended; for each container that ended (or could not
    /// start), its index and exit code.
    fn reap(&mut self) -> Vec<(usize, i32)> {
        let mut ended = std::mem::take(&mut self.failed_starts);
        loop {
            match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::Exited(p, code)) => self.reaped(p.as_raw(), code, &mut ended),
                Ok(WaitStatus::Signaled(p, sig, _)) => {
                    self.reaped(p.as_raw(), 128 + sig as i32, &mut ended)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return ended,
                Ok(_) => {}
            }
        }
    }

    /// Accounts for child `pid` that ended with `code`.
    fn reaped(&mut self, pid: i32, code: i32, ended: &mut Vec<(usize, i32)>) {
        if let Some((i, kind)) = self.probe_pids.remove(&pid) {
            if self
                .probes
                .get(&(i, kind))
                .is_some_and(|st| st.running.is_some_and(|(p, _)| p == pid))
            {
                self.probe_results.push((i, kind, Some(code)));
            }
            return;
        }
        if Some(pid) == self.infra {
            self.infra = None;
            let _ = self.update(|r| r.event("Warning", "SandboxDied", "the infra process ended"));
        }
        if let Some(run) = self.runs.remove(&pid) {
            let i = run.index;
            if let Err(e) = run.finish(self.engine, code, &mut self.buf) {
                eprintln!("record the end of container {i}: {e}");
            }
            ended.push((i, code));
        }
    }

    /// Whether container `i` runs now.
    fn running(&self, i: usize) -> bool {
        self.runs.values().any(|r| r.index == i)
    }

    /// Waits for a signal, at most `timeout`, copying container output
    /// into the logs meanwhile. A start that failed wakes it at once.
    fn wait(&mut self, timeout: Option<Duration>) -> Wake {
        self.wait_with(timeout, true)
    }

    /// Copies container output into the logs for `time`, leaving signals
    /// for the next [`Self::wait`].
    fn pump_for(&mut self, time: Duration) {
        self.wait_with(Some(time), false);
    }

    fn wait_with(&mut self, timeout: Option<Duration>, signals: bool) -> Wake {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if signals && !self.failed_starts.is_empty() {
                return Wake::Child;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let keys: Vec<(i32, usize)> = self
                .runs
                .iter()
                .flat_map(|(&pid, r)| (0..r.outputs().count()).map(move |n| (pid, n)))
                .collect();
            let ready: Vec<usize> = {
                // The signalfd is polled for nothing when signals wait.
                let events = if signals {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                };
                let mut fds = vec![PollFd::new(self.signals.as_fd(), events)];
                for run in self.runs.values() {
                    fds.extend(run.outputs().map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
                }
                let timeout = match left {
                    None => PollTimeout::NONE,
                    // Rounded up, so a timer due in 0.4 ms does not spin.
                    Some(l) => PollTimeout::from(
                        u16::try_from(l.as_nanos().div_ceil(1_000_000)).unwrap_or(u16::MAX),
                    ),
                };
                match poll(&mut fds, timeout) {
                    Ok(0) => return Wake::Timer,
                    Ok(_) => (0..fds.len())
                        .filter(|&n| fds[n].any().unwrap_or(false))
                        .collect(),
                    Err(nix::Error::EINTR) => Vec::new(),
                    Err(_) => return Wake::Timer,
                }
            };
            // Output first (by run, last stream first: pump may close it).
            for &n in ready.iter().rev().filter(|&&n| n > 0) {
                let (pid, out) = keys[n - 1];
                if let Some(run) = self.runs.get_mut(&pid) {
                    run.pump(out, &mut self.buf);
                }
            }
            if ready.first() == Some(&0) {
                let mut wake = None;
                while let Ok(Some(info)) = self.signals.read_signal() {
                    let w = match info.ssi_signo as i32 {
                        libc::SIGCHLD => Wake::Child,
                        _ => Wake::Stop,
                    };
                    // A stop request outranks a child's end.
                    if !matches!(wake, Some(Wake::Stop)) {
                        wake = Some(w);
                    }
                }
                if let Some(w) = wake {
                    return w;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Wake::Timer;
            }
        }
    }

    /// Waits until container `i`'s run ends; None when the pod is being
    /// stopped instead.
    fn wait_for(&mut self, i: usize) -> Result<Option<i32>, EngineError> {
        loop {
            for (j, code) in self.reap() {
                if j == i {
                    return Ok(Some(code));
                }
                self.after_exit(j, code)?;
            }
            self.tick_probes()?;
            let next = self.next_probe_event();
            match self.wait(next.map(|t| t.saturating_duration_since(Instant::now()))) {
                Wake::Stop if self.delete_requested() => {
                    self.stopping = true;
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// Whether a delete or a stop was asked for.
    fn delete_requested(&self) -> bool {
        self.record()
            .map(|r| r.deleting || r.stopping)
            .unwrap_or(true)
    }

    /// Sleeps until `at` unless a delete comes first; whether it slept.
    fn sleep_until(&mut self, at: Instant) -> Result<bool, EngineError> {
        loop {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(true);
            }
            let left = match self.next_probe_event() {
                Some(p) => left.min(p.saturating_duration_since(Instant::now())),
                None => left,
            };
            match self.wait(Some(left)) {
                Wake::Stop if self.delete_requested() => {
                    self.stopping = true;
                    return Ok(false);
                }
                Wake::Child => {
                    for (j, code) in self.reap() {
                        self.after_exit(j, code)?;
                    }
                }
                _ => {}
            }
            self.tick_probes()?;
        }
    }

    /// Records container `i`'s end and decides on a restart (a timer);
    /// whether the pod goes on.
    fn after_exit(&mut self, i: usize, code: i32) -> Result<bool, EngineError> {
        self.drop_probes(i);
        self.kill_at.remove(&i);
        let rec = self.record()?;
        let plan = &rec.plan;
        let kind = plan.containers[i].kind;
        let oom = rec.containers[i]
            .container_id
            .as_ref()
            .and_then(|cid| self.engine.store.load(cid).ok())
            .is_some_and(|r| {
                matches!(
                    r.state,
                    State::Exited {
                        oom_killed: true,
                        ..
                    }
                )
            });
        let reason = if oom {
            "OOMKilled"
        } else if code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let restart = !self.stopping
            && match (kind, plan.restart) {
                (ContainerKind::Sidecar, _) => true,
                (_, PodRestart::Always) => kind != ContainerKind::Init || code != 0,
                (_, PodRestart::OnFailure) => code != 0,
                (_, PodRestart::Never) => false,
            };
        let over_limit =
            restart && code != 0 && plan.max_restarts.is_some_and(|max| self.restarts >= max);
        let ran_for = match &rec.containers[i].state {
            ContainerState::Running { started_at } => crate::time::parse_rfc3339(started_at)
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let name = rec.containers[i].name.clone();
        let will_restart = restart && !over_limit;
        let delay = self.update(|r| {
            let c = &mut r.containers[i];
            let started_at = match &c.state {
                ContainerState::Running { started_at } => Some(started_at.clone()),
                _ => None,
            };
            let terminated = ContainerState::Terminated {
                exit_code: code,
                reason: reason.into(),
                started_at,
                finished_at: now(),
            };
            c.ready = false;
            let delay = if will_restart {
                let d = c.backoff.next_delay(ran_for);
                c.last_state = Some(terminated);
                c.state = ContainerState::Waiting {
                    reason: if code == 0 && reason == "Completed" && kind == ContainerKind::Init {
                        "PodInitializing".into()
                    } else {
                        "CrashLoopBackOff".into()
                    },
                };
                Some(d)
            } else {
                c.state = terminated;
                None
            };
            if oom {
                r.event(
                    "Warning",
                    "OOMKilled",
                    format!("Container {name} was killed: out of memory"),
                );
            }
            if let Some(d) = delay {
                r.event(
                    "Warning",
                    "BackOff",
                    format!(
                        "Back-off {}s restarting failed container {name}",
                        d.as_secs()
                    ),
                );
            } else {
                r.event(
                    "Normal",
                    "Completed",
                    format!("Container {name} exited with code {code}"),
                );
            }
            delay
        })?;
        if let Some(d) = delay {
            self.timers.insert(i, Instant::now() + d);
            if code != 0 {
                self.restarts += 1;
            }
        }
        Ok(!over_limit)
    }

    /// Runs until every app container is done for good, or a delete.
    fn main_loop(&mut self) -> Result<(), EngineError> {
        loop {
            let rec = self.record()?;
            let apps_active = (0..rec.plan.containers.len()).any(|i| {
                rec.plan.containers[i].kind == ContainerKind::App
                    && (self.running(i) || self.timers.contains_key(&i))
            });
            if !apps_active && !rec.plan.keep_running {
                let failed = rec.containers.iter().any(|c| {
                    matches!(&c.state, ContainerState::Terminated { exit_code, .. } if *exit_code != 0)
                });
                self.update(|r| {
                    r.phase = if failed {
                        Phase::Failed
                    } else {
                        Phase::Succeeded
                    };
                    r.finished = Some(now());
                })?;
                // Sidecars end with the pod.
                self.stop_all(0)?;
                return Ok(());
            }
            let next = self
                .timers
                .values()
                .copied()
                .chain(self.next_probe_event())
                .min();
            drop(rec);
            memory::release_free_memory();
            let wake = self.wait(next.map(|t| t.saturating_duration_since(Instant::now())));
            match wake {
                Wake::Stop if self.delete_requested() => {
                    self.stopping = true;
                    // The delete may have set its own grace period.
                    let grace = self.record()?.plan.grace_period;
                    self.stop_all(grace)?;
                    return Ok(());
                }
                Wake::Child => {
                    for (j, code) in self.reap() {
                        if !self.after_exit(j, code)? {
                            self.timers.clear();
                            self.update(|r| r.phase = Phase::Failed)?;
                        }
                    }
                }
                _ => {}
            }
            let due: Vec<usize> = self
                .timers
                .iter()
                .filter(|(_, at)| **at <= Instant::now())
                .map(|(i, _)| *i)
                .collect();
            for i in due {
                self.timers.remove(&i);
                self.update(|r| r.containers[i].restart_count += 1)?;
                self.start(i)?;
            }
            self.tick_probes()?;
        }
    }

    /// preStop hooks, the stop signal, `grace` seconds, then SIGKILL, for
    /// every running container.
    fn stop_all(&mut self, grace: u32) -> Result<(), EngineError> {
        self.timers.clear();
        self.kill_at.clear();
        for i in 0..self.record()?.containers.len() {
            self.drop_probes(i);
        }
        let rec = self.record()?;
        let running: Vec<usize> = self.runs.values().map(|r| r.index).collect();
        for &i in &running {
            let c = &rec.plan.containers[i];
            let Some(cid) = rec.containers[i].container_id.clone() else {
                continue;
            };
            let _ = self.update(|r| {
                r.event(
                    "Normal",
                    "Killing",
                    format!("Stopping container {}", c.name),
                )
            });
            let limit = Duration::from_secs(u64::from(grace));
            let failed = match (&c.pre_stop, &c.pre_stop_net) {
                (Some(cmd), _) => self.run_hook(&cid, cmd, limit).err(),
                (None, Some(a)) => self.net_hook(a, limit).err(),
                (None, None) => None,
            };
            if let Some(why) = failed {
                let _ = self.update(|r| {
                    r.event(
                        "Warning",
                        "FailedPreStopHook",
                        format!("PreStopHook of container {} failed: {why}", c.name),
                    )
                });
            }
            self.send_stop_signal(&cid);
        }
        let deadline = Instant::now() + Duration::from_secs(u64::from(grace));
        while !self.runs.is_empty() && Instant::now() < deadline {
            let _ = self.wait(Some(deadline.saturating_duration_since(Instant::now())));
            for (j, code) in self.reap() {
                self.after_exit(j, code)?;
            }
        }
        let kill = pea_runtime::SignalNumber::parse("9").expect("SIGKILL");
        let running: Vec<usize> = self.runs.values().map(|r| r.index).collect();
        for &i in &running {
            if let Some(cid) = &rec.containers[i].container_id {
                let _ = self.engine.runtime.kill(cid, kill, true);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.runs.is_empty() && Instant::now() < deadline {
            let _ = self.wait(Some(Duration::from_millis(200)));
            for (j, code) in self.reap() {
                self.after_exit(j, code)?;
            }
        }
        Ok(())
    }

    /// Runs a hook command in container `cid`, waiting at most `limit`;
    /// why it failed, if it did.
    fn run_hook(&mut self, cid: &str, cmd: &[String], limit: Duration) -> Result<(), String> {
        let req = crate::containers::ExecRequest {
            command: cmd.to_vec(),
            ..Default::default()
        };
        let pid = crate::containers::exec(self.engine, cid, &req).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match waitpid(
                Pid::from_raw(pid),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::StillAlive) => self.pump_for(Duration::from_millis(20)),
                Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
                Ok(WaitStatus::Exited(_, c)) => {
                    return Err(format!("command {cmd:?} exited with code {c}"));
                }
                Ok(WaitStatus::Signaled(_, s, _)) => {
                    return Err(format!("command {cmd:?} was killed by {s}"));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("wait for {cmd:?}: {e}")),
            }
        }
        // SAFETY: kill(2) with a pid and a signal number.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        Err(format!(
            "command {cmd:?} timed out after {}s",
            limit.as_secs()
        ))
    }

    /// An httpGet or tcpSocket hook, done here (blocking at most `limit`).
    fn net_hook(&self, action: &Action, limit: Duration) -> Result<(), String> {
        match probe::check(action, self.ip, limit.max(Duration::from_secs(1))) {
            probe::OK => Ok(()),
            code => Err(probe::failure_message(
                action,
                Some(code),
                limit.as_secs() as u32,
                self.ip,
            )),
        }
    }

    /// Ends the infra process and frees the network and cgroup; with
    /// `remove`, the containers and the record go too.
    fn tear_down(&mut self, remove: bool) {
        let Ok(rec) = self.record() else { return };
        if let Some(pid) = self
            .infra
            .take()
            .or(rec.infra.filter(|p| p.alive()).map(|p| p.pid))
        {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match waitpid(
                    Pid::from_raw(pid),
                    Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
                ) {
                    Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
                    _ => break,
                }
            }
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        release(self.engine, &rec, remove);
        if !remove {
            let _ = self.update(|r| {
                r.infra = None;
                r.supervisor = None;
                if r.stopping && matches!(r.phase, Phase::Pending | Phase::Running) {
                    r.phase = Phase::Succeeded;
                    r.finished = Some(now());
                }
            });
        }
    }
}

/// Frees what the pod holds besides its processes (idempotent; also used by
/// `delete` when the supervisor is gone).
pub(crate) fn release(engine: &Engine, rec: &PodRecord, remove: bool) {
    for c in &rec.containers {
        if let Some(cid) = &c.container_id {
            if remove {
                let _ = engine.remove(cid, true, true);
            } else if engine.runtime.state(cid).is_ok() {
                let _ = engine.runtime.delete(cid, true);
            }
        }
    }
    let _ = engine.networks.detach(&rec.id);
    let _ = cgroup::destroy(&rec.plan, &rec.uid);
    for (dir, _) in &rec.plan.memory_volumes {
        let _ = nix::mount::umount2(dir.as_path(), nix::mount::MntFlags::MNT_DETACH);
    }
    if remove {
        let volumes = engine
            .paths
            .root
            .join("pods")
            .join("volumes")
            .join(&rec.uid);
        if !holds_mounts(&volumes) {
            let _ = std::fs::remove_dir_all(&volumes);
        }
        let _ = engine.userns.release(&rec.id);
        let _ = engine.pods.remove(&rec.id);
    }
}

/// Whether anything is mounted at or under `dir` in this mount namespace.
fn holds_mounts(dir: &std::path::Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| std::path::Path::new(m).starts_with(dir))
}

/// The engine container name of pod container `name` (as kubelet's
/// Docker names: k8s_<container>_<pod>_<namespace>_<uid>).
fn container_name(rec: &PodRecord, name: &str) -> String {
    format!(
        "k8s_{name}_{}_{}_{}",
        rec.name,
        rec.namespace,
        &rec.uid[..8.min(rec.uid.len())]
    )
}
