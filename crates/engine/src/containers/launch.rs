//! Starting a container: a detached supervisor process (this program again,
//! in its own session) that reports back, one JSON line per event, on a
//! pipe: `created` (the attach socket is ready), `started`, or `error`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::fcntl::OFlag;

use super::{Engine, EngineError, io};
use crate::record::State;

/// The descriptor a supervisor finds its launcher's pipe on.
pub const READY_FD: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The container could not start; `code` is Docker's exit code for it
    /// (125 engine error, 126 cannot execute, 127 not found).
    #[error("{message}")]
    StartFailed { message: String, code: i32 },
    #[error("the supervisor of container {name} ended without starting it; see {log}")]
    SupervisorLost { name: String, log: String },
    #[error("cannot run the supervisor {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
}

/// How to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Launch {
    /// Wait for a client to attach before the process starts.
    pub wait_attach: bool,
}

/// A started supervisor.
pub struct Launched {
    /// The container's init pid (known once created).
    pub pid: i32,
    /// The launcher's pipe, until `started` was read from it.
    events: Option<BufReader<File>>,
}

impl Launched {
    /// Waits for `started` (after an attach, when launched with
    /// `wait_attach`).
    pub fn wait_started(&mut self, name: &str, log: &str) -> Result<i32, LaunchError> {
        let Some(events) = self.events.as_mut() else {
            return Ok(self.pid);
        };
        loop {
            match next_event(events) {
                Some(ev) if ev["event"] == "started" => {
                    self.events = None;
                    return Ok(self.pid);
                }
                Some(ev) if ev["event"] == "error" => return Err(failed(&ev)),
                Some(_) => continue,
                None => {
                    return Err(LaunchError::SupervisorLost {
                        name: name.into(),
                        log: log.into(),
                    });
                }
            }
        }
    }
}

pub fn next_event(r: &mut BufReader<File>) -> Option<serde_json::Value> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => serde_json::from_str(&line).ok(),
    }
}

const TUNABLES: &str = "GLIBC_TUNABLES";

/// The allocator settings of a process that lives as long as what it
/// watches: no per-thread cache of freed blocks (glibc keeps up to seven of
/// each size there, scattered over the heap, where they pin pages that
/// would otherwise go back to the system when it idles).
fn long_lived_tunables() -> String {
    let own = "glibc.malloc.tcache_count=0";
    match std::env::var(TUNABLES) {
        Ok(t) if !t.is_empty() => format!("{t}:{own}"),
        _ => own.to_string(),
    }
}

fn failed(ev: &serde_json::Value) -> LaunchError {
    LaunchError::StartFailed {
        message: ev["message"].as_str().unwrap_or("start failed").to_string(),
        code: ev["code"].as_i64().unwrap_or(125) as i32,
    }
}

impl Engine {
    /// Runs this program with `args` (after the engine's own root flags) in
    /// a session of its own, stderr to `log`; returns its event pipe.
    pub fn spawn_detached(
        &self,
        args: &[String],
        log: &std::path::Path,
    ) -> Result<BufReader<File>, EngineError> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| {
            EngineError::Invalid(format!("cannot make a pipe for the supervisor: {e}"))
        })?;
        let log_file = File::create(log).map_err(io("supervisor log", log))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--root")
            .arg(&self.paths.root)
            .arg("--run-root")
            .arg(&self.paths.run)
            .arg("--cni-config-dir")
            .arg(&self.paths.cni_config)
            .arg("--storage-driver")
            .arg(&self.storage_driver)
            .args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .env(TUNABLES, long_lived_tunables());
        let fd = write.as_raw_fd();
        // SAFETY: between fork and exec the closure only makes async-signal-
        // safe calls (setsid, dup2) on descriptors it owns.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::dup2(fd, READY_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            exe: self.exe.display().to_string(),
            source,
        })?;
        drop(write);
        // Reaped by whoever waits for us; the supervisor lives on its own.
        drop(child);
        Ok(BufReader::new(File::from(read)))
    }

    /// Starts container `key` under a new supervisor; returns once it is
    /// created (`wait_attach`: the caller attaches, then waits for
    /// `started`) or started.
    pub fn start(&self, key: &str, how: Launch) -> Result<Launched, EngineError> {
        let record = self.store.resolve(key)?;
        let view = self.view(&record);
        if view.status.is_active() {
            return Err(EngineError::WrongState {
                name: record.name.clone(),
                state: view.status.word().into(),
                fix: "it is already running; stop it first",
            });
        }
        if record.setup.bundle.as_os_str().is_empty() {
            return Err(EngineError::Invalid(format!(
                "container {} has no bundle: it was not made by peapod create",
                record.name
            )));
        }
        self.store.update_quick(&record.id, |r| {
            r.state = State::Created;
            r.stopped_by_user = false;
        })?;
        std::fs::create_dir_all(self.paths.sockets())
            .map_err(io("sockets directory", &self.paths.sockets()))?;
        let log_path = self.store.dir(&record.id).join("supervisor.log");
        let mut args = vec!["__supervise".to_string(), record.id.clone()];
        if how.wait_attach {
            args.push("--wait-attach".into());
        }
        let mut events = self.spawn_detached(&args, &log_path)?;
        let lost = || LaunchError::SupervisorLost {
            name: record.name.clone(),
            log: log_path.display().to_string(),
        };
        loop {
            let ev = next_event(&mut events).ok_or_else(lost)?;
            match ev["event"].as_str() {
                Some("created") => {
                    let pid = ev["pid"].as_i64().unwrap_or(0) as i32;
                    let mut launched = Launched {
                        pid,
                        events: Some(events),
                    };
                    if !how.wait_attach {
                        launched.wait_started(&record.name, &log_path.display().to_string())?;
                    }
                    return Ok(launched);
                }
                Some("error") => return Err(failed(&ev).into()),
                _ => continue,
            }
        }
    }
}
