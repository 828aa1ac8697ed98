//! Container commands: run, create, start, stop, kill, restart, rm, wait,
//! exec, logs, and the hidden `__supervise` a detached container runs under.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use peapod_engine::attach::client::{self, AttachEnd, AttachOptions};
use peapod_engine::containers::{Engine, EngineError, Launch, LaunchError, Status};
use peapod_engine::logs::{self, Follow, ReadOptions};
use peapod_engine::monitor::MonitorSpec;
use peapod_engine::record::Record;
use peapod_engine::supervisor::LogConfig;

use crate::args;
use crate::images::ensure_image;

/// Docker's exit code for an error of the engine itself.
pub const ENGINE_ERROR: i32 = 125;

/// An error that ends the command with a given exit code.
#[derive(Debug)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn launch_code(e: &anyhow::Error) -> Option<i32> {
    match e.downcast_ref::<EngineError>() {
        Some(EngineError::Launch(LaunchError::StartFailed { code, .. })) => Some(*code),
        _ => None,
    }
}

/// The request of `run`/`create`; with `--pod`, made a container of it.
fn request(engine: &Engine, a: &args::RunArgs) -> Result<peapod_engine::request::ContainerRequest> {
    let mut req = a.create.request()?;
    if let Some(pod) = &a.create.pod {
        engine.join_pod(pod, &mut req)?;
    }
    Ok(req)
}

/// `peapod create`: prints the new container's id.
pub fn create(engine: &Engine, cli: &args::Cli, a: &args::RunArgs) -> Result<()> {
    let req = request(engine, a)?;
    ensure_image(engine, cli, &req.image)?;
    let record = engine.create(&req)?;
    println!("{}", record.id);
    Ok(())
}

/// `peapod run`.
pub fn run(engine: &Engine, cli: &args::Cli, a: &args::RunArgs) -> Result<()> {
    let req = request(engine, a)?;
    if a.detach && req.auto_remove && req.interactive && !req.tty {
        // Allowed by Docker; nothing special.
    }
    ensure_image(engine, cli, &req.image)?;
    let record = engine.create(&req)?;
    let id = record.id.clone();
    if a.detach {
        match engine.start(&id, Launch { wait_attach: false }) {
            Ok(_) => {
                println!("{id}");
                Ok(())
            }
            Err(e) => {
                let e = anyhow::Error::from(e);
                cleanup_failed(engine, &id, req.auto_remove);
                Err(with_code(e))
            }
        }
    } else {
        let code = attached_run(engine, &record, req.interactive, req.tty)?;
        if req.auto_remove {
            wait_removed(engine, &id);
        }
        if code == 0 {
            Ok(())
        } else {
            Err(Exit(code).into())
        }
    }
}

fn with_code(e: anyhow::Error) -> anyhow::Error {
    match launch_code(&e) {
        Some(code) => {
            eprintln!("peapod: {}", crate::edge::one_line(&e));
            Exit(code).into()
        }
        None => e,
    }
}

fn cleanup_failed(engine: &Engine, id: &str, auto_remove: bool) {
    if auto_remove {
        wait_removed(engine, id);
        let _ = engine.remove(id, true, true);
    }
}

/// Waits (bounded) until the supervisor of a `--rm` container removed it.
/// The supervisor clears its pid from the record before it removes the
/// container, so the process itself is waited for: returning earlier would
/// leave the removal (mounts, record directory) half done behind us.
fn wait_removed(engine: &Engine, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut supervisor = None;
    while std::time::Instant::now() < deadline {
        let record = engine.store.load(id).ok();
        if let Some(s) = record.as_ref().and_then(|r| r.supervisor) {
            supervisor = Some(s);
        }
        if supervisor.is_some_and(|s| s.alive()) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if record.is_some() {
            let _ = engine.remove(id, true, true);
        }
        return;
    }
}

/// Starts `record` with this process attached; returns the exit code.
fn attached_run(engine: &Engine, record: &Record, stdin: bool, tty: bool) -> Result<i32> {
    let mut launched = match engine.start(&record.id, Launch { wait_attach: true }) {
        Ok(l) => l,
        Err(e) => {
            let e = anyhow::Error::from(e);
            let code = launch_code(&e);
            if record.setup.request.auto_remove {
                cleanup_failed(engine, &record.id, true);
            }
            return match code {
                Some(c) => {
                    eprintln!("peapod: {}", crate::edge::one_line(&e));
                    Ok(c)
                }
                None => Err(e),
            };
        }
    };
    let opts = AttachOptions { stdin, tty };
    let conn = client::connect(&engine.socket(&record.id), opts)
        .with_context(|| format!("attach to container {}", record.name))?;
    forward_signals(engine, &record.id, tty);
    let end = client::relay(conn, opts, &mut || {})?;
    let _ = launched.wait_started(&record.name, "");
    Ok(match end {
        AttachEnd::Exited(code) => code,
        AttachEnd::Failed(reason) => {
            eprintln!("peapod: {reason}");
            exit_code_of(engine, &record.id).unwrap_or(ENGINE_ERROR)
        }
        AttachEnd::Lost => {
            // The monitor went away; the record knows how it ended.
            engine.wait_supervisor(&record.id);
            exit_code_of(engine, &record.id).unwrap_or(ENGINE_ERROR)
        }
    })
}

fn exit_code_of(engine: &Engine, id: &str) -> Option<i32> {
    let r = engine.store.load(id).ok()?;
    match engine.view(&r).status {
        Status::Exited { code, .. } => Some(code),
        _ => None,
    }
}

/// Without a terminal, SIGINT, SIGTERM and SIGHUP sent to this process go
/// to the container (Docker's sig-proxy).
fn forward_signals(engine: &Engine, id: &str, tty: bool) {
    use nix::sys::signal::{SigSet, Signal};
    if tty {
        return;
    }
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let engine = engine.clone();
    let id = id.to_string();
    std::thread::spawn(move || {
        while let Ok(sig) = set.wait() {
            if let Ok(n) = pea_runtime::SignalNumber::parse(&(sig as i32).to_string()) {
                let _ = engine.runtime.kill(&id, n, false);
            }
        }
    });
}

/// `peapod start`.
pub fn start(engine: &Engine, a: &args::StartArgs) -> Result<()> {
    if a.attach {
        let [one] = a.containers.as_slice() else {
            bail!("start --attach takes exactly one container");
        };
        let record = engine.store.resolve(one)?;
        let code = attached_run(engine, &record, a.interactive, record.setup.tty)?;
        return if code == 0 {
            Ok(())
        } else {
            Err(Exit(code).into())
        };
    }
    let mut failed = None;
    for c in &a.containers {
        match engine.start(c, Launch::default()) {
            Ok(_) => println!("{c}"),
            Err(e) => {
                eprintln!("peapod: {}", crate::edge::one_line(&e.into()));
                failed = Some(());
            }
        }
    }
    failed.map_or(Ok(()), |()| Err(Exit(1).into()))
}

fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("peapod: {}", crate::edge::one_line(&e));
                failed = true;
            }
        }
    }
    if failed { Err(Exit(1).into()) } else { Ok(()) }
}

pub fn stop(engine: &Engine, a: &args::StopArgs) -> Result<()> {
    each(&a.containers, |c| {
        engine.stop(c, a.time).map(drop).map_err(Into::into)
    })
}

pub fn restart(engine: &Engine, a: &args::StopArgs) -> Result<()> {
    each(&a.containers, |c| {
        engine.stop(c, a.time)?;
        engine.start(c, Launch::default())?;
        Ok(())
    })
}

pub fn kill(engine: &Engine, a: &args::KillArgs) -> Result<()> {
    let sig = pea_runtime::SignalNumber::parse(&a.signal)
        .map_err(|e| anyhow::anyhow!("--signal {:?}: {}", a.signal, e.0))?;
    each(&a.containers, |c| engine.kill(c, sig).map_err(Into::into))
}

pub fn rm(engine: &Engine, a: &args::RmContainersArgs) -> Result<()> {
    each(&a.containers, |c| {
        engine.remove(c, a.force, a.volumes).map_err(Into::into)
    })
}

/// `peapod wait`: prints each container's exit code once it ends.
pub fn wait(engine: &Engine, a: &args::WaitArgs) -> Result<()> {
    for c in &a.containers {
        let id = engine.store.resolve(c)?.id;
        loop {
            let r = engine.store.load(&id)?;
            if let Status::Exited { code, .. } = engine.view(&r).status {
                println!("{code}");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// `peapod logs`.
pub fn logs(engine: &Engine, a: &args::LogsArgs) -> Result<()> {
    let record = match engine.store.resolve(&a.container) {
        Ok(r) if a.pod_container.is_none() => r,
        Err(_) | Ok(_) if engine.pods.find(&a.namespace, &a.container)?.is_some() => {
            return crate::kube_cmd::logs(
                engine,
                &crate::kube_cmd::PodLogsArgs {
                    pod: a.container.clone(),
                    container: a.pod_container.clone(),
                    follow: a.follow,
                    previous: a.previous,
                    timestamps: a.timestamps,
                    namespace: a.namespace.clone(),
                },
            );
        }
        r => r?,
    };
    let opts = ReadOptions {
        tail: a.tail.as_deref().and_then(|t| t.parse().ok()),
        timestamps: a.timestamps,
        max_files: logs::DEFAULT_MAX_FILES,
    };
    if a.tail
        .as_deref()
        .is_some_and(|t| t != "all" && t.parse::<usize>().is_err())
    {
        bail!(
            "--tail {:?}: expected a number of lines or \"all\"",
            a.tail.as_deref().unwrap_or("")
        );
    }
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    if !record.log_path.exists() {
        return Ok(());
    }
    let mut keep_going = || {
        engine
            .store
            .load(&record.id)
            .is_ok_and(|r| engine.view(&r).status.is_active())
    };
    let follow = a.follow.then(|| Follow {
        poll: Duration::from_millis(50),
        keep_going: &mut keep_going,
    });
    logs::write_logs(&record.log_path, &opts, &mut out, &mut err, follow)?;
    out.flush()?;
    Ok(())
}

/// `peapod __supervise ID`: the supervisor of a detached container.
pub fn supervise(engine: &Engine, a: &args::SuperviseArgs) -> Result<()> {
    use std::os::fd::FromRawFd;
    let record = engine.store.load(&a.id)?;
    // SAFETY: the launcher put its pipe on this descriptor for us alone;
    // fcntl tells whether it is open before it is owned.
    let ready = unsafe {
        (libc::fcntl(peapod_engine::containers::READY_FD, libc::F_GETFD) >= 0)
            .then(|| std::fs::File::from_raw_fd(peapod_engine::containers::READY_FD))
    };
    let spec = MonitorSpec {
        runtime: engine.runtime.clone(),
        store: engine.store.clone(),
        id: record.id.clone(),
        bundle: record.setup.bundle.clone(),
        socket: engine.socket(&record.id),
        log: LogConfig::default(),
        tty: record.setup.tty,
        interactive: record.setup.interactive,
        wait_attach: a.wait_attach,
    };
    let result = peapod_engine::supervise::run(&spec, ready);
    if record.setup.request.auto_remove {
        engine.remove(&record.id, true, true)?;
    }
    result?;
    Ok(())
}

/// An exec that could not start: Docker's 127 (not found) or 126 (cannot
/// execute) when the command is at fault, else the engine's error (125).
fn exec_failed(e: EngineError) -> anyhow::Error {
    use pea_runtime::ContainerError::{Spawn, StartFailed};
    if let EngineError::Runtime(rt @ (Spawn { .. } | StartFailed { .. })) = &e {
        let code = peapod_engine::monitor::start_failure_code(&rt.to_string());
        if code != ENGINE_ERROR {
            eprintln!("peapod: {}", crate::edge::one_line(&anyhow::Error::from(e)));
            return Exit(code).into();
        }
    }
    e.into()
}

/// `peapod exec`.
pub fn exec(engine: &Engine, a: &args::ExecArgs) -> Result<()> {
    use peapod_engine::containers::ExecRequest;
    let mut env = Vec::new();
    for e in &a.env {
        env.extend(peapod_engine::request_parse::resolve_env(
            e,
            &peapod_engine::request_parse::host_env,
        )?);
    }
    let mut req = ExecRequest {
        command: a.command.clone(),
        tty: a.tty,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        env,
        console_socket: None,
    };
    if !a.interactive {
        // The process gets no stdin unless asked for (-i).
        let null = std::fs::File::open("/dev/null")?;
        nix::unistd::dup2_stdin(null)?;
    }
    let record = match engine.store.resolve(&a.container) {
        Ok(r) if a.pod_container.is_none() => r,
        Err(_) | Ok(_) if engine.pods.find(&a.namespace, &a.container)?.is_some() => {
            let pod = engine
                .pods
                .find(&a.namespace, &a.container)?
                .context("pod gone")?;
            let c = crate::kube_cmd::container_of(&pod, a.pod_container.as_deref())?;
            let cid = c
                .container_id
                .clone()
                .context("the container was not created yet")?;
            engine.store.load(&cid)?
        }
        r => r?,
    };
    // The process may be forked twice (to enter a pid namespace): it must
    // still come back to us.
    pea_runtime::become_subreaper()?;
    let forward = crate::tty::SignalForwarder::block()?;
    let console = if a.tty {
        // In the run root: under the container's directory the socket's
        // path would pass the 108 bytes a socket address holds.
        Some(crate::tty::ConsoleServer::new(
            &engine.paths.run,
            &format!("exec-{}-{}", record.short_id(), std::process::id()),
        )?)
    } else {
        None
    };
    req.console_socket = console.as_ref().map(|c| c.path().to_path_buf());
    let pid = peapod_engine::containers::exec(engine, &record.id, &req).map_err(exec_failed)?;
    if a.detach {
        return Ok(());
    }
    let terminal = console.map(|c| c.accept()).transpose()?;
    let code = forward.wait(pid, terminal)?.code();
    if code == 0 {
        Ok(())
    } else {
        Err(Exit(code).into())
    }
}

/// Names of the containers that mount volume `name`.
pub fn volume_users(engine: &Engine, name: &str) -> Vec<String> {
    engine
        .store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.setup
                .mounts
                .iter()
                .any(|m| m["Type"] == "volume" && m["Name"] == name)
        })
        .map(|r| r.name)
        .collect()
}

/// Names of the containers attached to network `name`.
pub fn network_users(engine: &Engine, name: &str) -> Vec<String> {
    engine
        .store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.setup.network.as_ref().is_some_and(|a| a.network == name))
        .map(|r| r.name)
        .collect()
}

/// `peapod __pod-supervise ID`: the supervisor of a pod.
pub fn pod_supervise(engine: &Engine, a: &args::SuperviseArgs) -> Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: the launcher put its pipe on this descriptor for us alone;
    // fcntl tells whether it is open before it is owned.
    let ready = unsafe {
        (libc::fcntl(peapod_engine::containers::READY_FD, libc::F_GETFD) >= 0)
            .then(|| std::fs::File::from_raw_fd(peapod_engine::containers::READY_FD))
    };
    peapod_engine::pod::supervise(engine, &a.id, ready)?;
    Ok(())
}
