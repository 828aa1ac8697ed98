//! One function per verb: parse what the library needs, call it, print.

use std::path::Path;

use anyhow::{Context, Result, bail};
use oci_spec::runtime::Process;
use pea_runtime::{CreateOptions, ExecOptions, Runtime, SignalNumber, Status};

use crate::args::{Cli, Command, CreateArgs, ExecArgs, Format, RunArgs};

/// Runs the command; the value is the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    if cli.systemd_cgroup && !systemd_running() {
        bail!(
            "--systemd-cgroup: systemd is not running as PID 1 on this host; drop the flag to use cgroupfs"
        );
    }
    let rt = Runtime::new(&cli.root).with_systemd_cgroup(cli.systemd_cgroup);
    match cli.command {
        Command::Create(a) => {
            rt.create(&create_options(&a))?;
            Ok(0)
        }
        Command::Start { id } => {
            rt.start(&id)?;
            Ok(0)
        }
        Command::State { id } => {
            let st = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = SignalNumber::parse(&signal)?;
            rt.kill(&id, sig, all)?;
            Ok(0)
        }
        Command::Delete { force, id } => match rt.delete(&id, force) {
            // runc: forcing the delete of a container that is not there succeeds.
            Err(pea_runtime::ContainerError::State(pea_runtime::state::StateError::NotFound(
                _,
            ))) if force => Ok(0),
            r => r.map(|_| 0).map_err(Into::into),
        },
        Command::Run(a) => run_container(&rt, &a),
        Command::Exec(a) => exec(&rt, &a),
        Command::List { format, quiet } => list(&rt, format, quiet),
        Command::Ps { format, id } => ps(&rt, &id, format),
        Command::Spec { bundle, rootless } => spec(&bundle, rootless),
        Command::Update(a) => crate::cgroup_cmds::update(&rt, &a),
        Command::Pause { id } => {
            rt.pause(&id)?;
            Ok(0)
        }
        Command::Resume { id } => {
            rt.resume(&id)?;
            Ok(0)
        }
        Command::Events(a) => crate::cgroup_cmds::events(&rt, &a),
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::features::features())?
            );
            Ok(0)
        }
    }
}

fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
}

fn listen_fds() -> u32 {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !pid_ok {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn create_options(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        listen_fds: listen_fds(),
    }
}

/// Force-deletes a container `run` made unless disarmed, so no error path
/// (failed start, lost terminal, failed wait) leaves it behind.
struct RunGuard<'a> {
    rt: &'a Runtime,
    id: &'a str,
    armed: bool,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.rt.delete(self.id, true);
        }
    }
}

/// `run`: create + start; in the foreground, wait and pass the exit code on.
fn run_container(rt: &Runtime, a: &RunArgs) -> Result<u8> {
    let mut opts = create_options(&a.create);
    if a.detach {
        rt.create(&opts)?;
        let mut guard = RunGuard {
            rt,
            id: &opts.id,
            armed: true,
        };
        rt.start(&opts.id)?;
        guard.armed = false;
        return Ok(0);
    }
    // The init is a grandchild: adopt it to wait for it.
    pea_runtime::become_subreaper().context("become subreaper")?;
    let terminal = crate::tty::wants_terminal(&opts.bundle)?;
    let console = if terminal && opts.console_socket.is_none() {
        let c = crate::tty::ConsoleServer::new(rt.root(), &opts.id)?;
        opts.console_socket = Some(c.path().to_path_buf());
        Some(c)
    } else {
        None
    };
    let forward = crate::tty::SignalForwarder::block()?;
    let pid = rt.create(&opts)?;
    let mut guard = RunGuard {
        rt,
        id: &opts.id,
        armed: true,
    };
    let session = console.map(|c| c.accept()).transpose()?;
    rt.start(&opts.id)?;
    let status = forward.wait(pid, session)?;
    guard.armed = false;
    // --keep leaves the stopped container for the caller to inspect.
    if !a.keep {
        rt.delete(&opts.id, true)?;
    }
    Ok(status.code() as u8)
}

fn parse_user(spec: &str) -> Result<(u32, Option<u32>)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = u
        .parse()
        .with_context(|| format!("--user {spec:?}: expected UID[:GID] as numbers"))?;
    let gid = g
        .map(|g| {
            g.parse()
                .with_context(|| format!("--user {spec:?}: expected UID[:GID] as numbers"))
        })
        .transpose()?;
    Ok((uid, gid))
}

fn exec_process(rt: &Runtime, a: &ExecArgs) -> Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("--process {}", path.display()))?;
        let p: Process = serde_json::from_slice(&data)
            .with_context(|| format!("--process {} is not a valid process JSON", path.display()))?;
        return Ok(p);
    }
    if a.args.is_empty() {
        bail!(
            "exec needs a command: pea exec {} COMMAND [ARGS...] (or --process FILE)",
            a.id
        );
    }
    let mut p = rt.process_of(&a.id)?;
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid.unwrap_or(user.gid()));
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.caps {
            let c: oci_spec::runtime::Capability = name.parse().map_err(|_| {
                anyhow::anyhow!("--cap {name:?} is not a capability name like CAP_NET_ADMIN")
            })?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(c);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn exec(rt: &Runtime, a: &ExecArgs) -> Result<u8> {
    let process = exec_process(rt, a)?;
    let terminal = process.terminal().unwrap_or(false);
    let mut opts = ExecOptions {
        id: a.id.clone(),
        process,
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
    };
    if a.detach {
        rt.exec(&opts)?;
        return Ok(0);
    }
    pea_runtime::become_subreaper().context("become subreaper")?;
    let console = if terminal && opts.console_socket.is_none() {
        let c = crate::tty::ConsoleServer::new(
            rt.root(),
            &format!("{}-exec-{}", a.id, std::process::id()),
        )?;
        opts.console_socket = Some(c.path().to_path_buf());
        Some(c)
    } else {
        None
    };
    let forward = crate::tty::SignalForwarder::block()?;
    let pid = rt.exec(&opts)?;
    let session = console.map(|c| c.accept()).transpose()?;
    let status = forward.wait(pid, session)?;
    Ok(status.code() as u8)
}

fn list(rt: &Runtime, format: Format, quiet: bool) -> Result<u8> {
    let all = rt.list()?;
    if quiet {
        for c in &all {
            println!("{}", c.id);
        }
        return Ok(0);
    }
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "ociVersion": pea_runtime::state::OCI_VERSION,
                        "id": c.id,
                        "pid": c.pid,
                        "status": c.status,
                        "bundle": c.bundle,
                        "rootfs": c.rootfs,
                        "created": crate::time::rfc3339(c.created),
                        "annotations": c.annotations,
                        "owner": c.owner,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string(&rows)?);
        }
        Format::Table => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<22} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for c in &all {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<22} {}",
                    c.id,
                    c.pid,
                    c.status,
                    c.bundle.display(),
                    crate::time::rfc3339(c.created),
                    c.owner
                );
            }
        }
    }
    Ok(0)
}

fn ps(rt: &Runtime, id: &str, format: Format) -> Result<u8> {
    let st = rt.state(id)?;
    if st.status == Status::Stopped {
        bail!("container {id:?} is stopped: it has no processes");
    }
    let pids = rt.pids(id)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string(&pids)?),
        Format::Table => {
            println!("{:<8} {:<8} CMD", "PID", "PPID");
            for pid in pids {
                let (ppid, cmd) = proc_info(pid);
                println!("{pid:<8} {ppid:<8} {cmd}");
            }
        }
    }
    Ok(0)
}

fn proc_info(pid: i32) -> (String, String) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ppid = stat
        .rfind(')')
        .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    (ppid, cmd)
}

fn spec(bundle: &Path, rootless: bool) -> Result<u8> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} already exists: remove it first", path.display());
    }
    let ids = rootless.then(|| {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    });
    let spec = pea_runtime::spec_default::default_spec(ids);
    std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
        .with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}
