//! The supervisor's core: the restart loop around runs of a container
//! (`supervise_with`: policy, back-off, stop during the back-off), and
//! `run_once`, one run in this process through the monitor's code.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use pea_runtime::{ContainerError, Runtime};

use crate::logs::{self, LogError};
use crate::record::{RecordError, State, Store};

/// Log file sizes (kubelet's defaults unless told otherwise).
#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    pub max_size: u64,
    pub max_files: usize,
    pub max_line: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_size: logs::DEFAULT_MAX_SIZE,
            max_files: logs::DEFAULT_MAX_FILES,
            max_line: logs::DEFAULT_MAX_LINE,
        }
    }
}

/// One container to run: its record (by full id, also the runtime id) and
/// the OCI bundle made for it.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub runtime: Runtime,
    pub store: Store,
    pub id: String,
    pub bundle: PathBuf,
    pub log: LogConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Runtime(#[from] ContainerError),
    #[error("supervisor: cannot {what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
}

/// Maps a failed system call to the error naming what was being done.
pub(crate) fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> SupervisorError {
    move |source| SupervisorError::Sys { what, source }
}

/// What `run_once` saw end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The process's code, or 128 + signal number.
    pub code: i32,
    pub oom_killed: bool,
    /// From start to exit (what the restart back-off looks at).
    pub ran_for: Duration,
}

/// Runs the container once in this process, as the monitor process does
/// for a detached container (the same code): creates and starts it, copies
/// its output into the log until it ends, waits for it, removes it from the
/// runtime, and records `Exited { code, oom_killed, finished_at }`.
pub fn run_once(spec: &RunSpec) -> Result<Exit, SupervisorError> {
    let monitor = crate::monitor::MonitorSpec {
        runtime: spec.runtime.clone(),
        store: spec.store.clone(),
        id: spec.id.clone(),
        bundle: spec.bundle.clone(),
        socket: spec
            .store
            .root()
            .join(format!(".{}.sock", &spec.id[..spec.id.len().min(16)])),
        log: spec.log,
        tty: false,
        interactive: false,
        wait_attach: false,
    };
    crate::monitor::run(&monitor, &mut crate::monitor::Ready::new(None))
}

/// Runs the container and restarts it per the record's restart policy:
/// after each end the record says `Restarting` with the back-off, `sleep` is
/// called with the delay (10 s doubling to 5 min, reset
/// after 10 min of running), and the container is run again. `sleep`
/// returns false when the wait was cut short by a stop request; a stop
/// (`stopped_by_user` in the record) during the wait ends it too. Each
/// restart counts in `restart_count`. Returns the last exit, recorded as
/// `Exited`.
pub fn supervise(
    spec: &RunSpec,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<Exit, SupervisorError> {
    supervise_with(&spec.store, &spec.id, &mut || run_once(spec), sleep)
}

/// `supervise` with the run itself given: `run` runs the container once and
/// records its end (in-process, or by a monitor process).
pub fn supervise_with(
    store: &Store,
    id: &str,
    run: &mut dyn FnMut() -> Result<Exit, SupervisorError>,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<Exit, SupervisorError> {
    loop {
        let exit = run()?;
        let (record, delay) = store.update(id, |r| {
            if !r
                .restart_policy
                .should_restart(exit.code, r.restart_count, r.stopped_by_user)
            {
                return None;
            }
            let finished_at = match r.state {
                State::Exited { finished_at, .. } => finished_at,
                _ => SystemTime::now(),
            };
            r.state = State::Restarting {
                exit_code: exit.code,
                finished_at,
            };
            Some(r.backoff.next_delay(exit.ran_for))
        })?;
        let Some(delay) = delay else {
            return Ok(exit);
        };
        let slept = sleep(delay);
        let stopped = store.load(id)?.stopped_by_user;
        if !slept || stopped {
            let State::Restarting { finished_at, .. } = record.state else {
                unreachable!("set to Restarting above");
            };
            store.update(id, |r| {
                r.state = State::Exited {
                    code: exit.code,
                    oom_killed: exit.oom_killed,
                    finished_at,
                };
            })?;
            return Ok(exit);
        }
        store.update(id, |r| r.restart_count += 1)?;
    }
}
