//! The supervisor's core: runs one container through the runtime library,
//! as the subreaper of its processes; copies its stdout and stderr into the
//! CRI log; waits; and records the exit code and OOM kill durably.
//!
//! The container's stdin is /dev/null and its stdout and stderr are pipes
//! handed to the runtime (`create_with_stdio`); the supervisor's own stdio is
//! never touched, so it may share a process with other work.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use nix::fcntl::OFlag;
use pea_runtime::{ContainerError, CreateOptions, Runtime};

use crate::logs::{self, LogError, LogWriter, Stream};
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

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> SupervisorError {
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

/// Creates and starts the container, copies its output into the log until
/// it ends, waits for it, removes it from the runtime, and records
/// `Exited { code, oom_killed, finished_at }` in its record.
pub fn run_once(spec: &RunSpec) -> Result<Exit, SupervisorError> {
    pea_runtime::become_subreaper().map_err(sys("become subreaper"))?;
    let record = spec.store.load(&spec.id)?;
    let writer = Mutex::new(LogWriter::open(
        &record.log_path,
        spec.log.max_size,
        spec.log.max_files,
    )?);
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("make a pipe"))?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("make a pipe"))?;
    let null = File::open("/dev/null")
        .map_err(|e| sys("open /dev/null")(nix::Error::from_raw(e.raw_os_error().unwrap_or(0))))?;
    let created = spec.runtime.create_with_stdio(
        &CreateOptions {
            id: spec.id.clone(),
            bundle: spec.bundle.clone(),
            ..Default::default()
        },
        [null.as_fd(), out_w.as_fd(), err_w.as_fd()],
    );
    // Only the container holds the write ends now: its end is their EOF.
    drop((out_w, err_w, null));
    let pid = created?;
    std::thread::scope(|s| {
        let copy = |from: OwnedFd, stream| {
            let writer = &writer;
            let max_line = spec.log.max_line;
            s.spawn(move || logs::copy_stream(File::from(from), stream, writer, max_line))
        };
        let out = copy(out_r, Stream::Stdout);
        let err = copy(err_r, Stream::Stderr);
        let exit = run_started(spec, pid);
        // Whatever happened, nothing of the container may outlive this.
        let _ = spec.runtime.delete(&spec.id, true);
        let copied = [out.join(), err.join()];
        let exit = exit?;
        for c in copied {
            c.unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        }
        writer.lock().unwrap_or_else(|p| p.into_inner()).sync()?;
        Ok(exit)
    })
}

/// Starts the created container, waits for it, and records its end.
fn run_started(spec: &RunSpec, pid: i32) -> Result<Exit, SupervisorError> {
    spec.runtime.start(&spec.id)?;
    let started_at = SystemTime::now();
    spec.store.update(&spec.id, |r| {
        r.state = State::Running { pid, started_at };
    })?;
    let status = pea_runtime::wait_pid(pid).map_err(sys("wait for the container"))?;
    let finished_at = SystemTime::now();
    let oom_killed = spec.runtime.oom_kill_count(&spec.id).unwrap_or(0) > 0;
    let exit = Exit {
        code: status.code(),
        oom_killed,
        ran_for: finished_at.duration_since(started_at).unwrap_or_default(),
    };
    spec.store.update(&spec.id, |r| {
        r.state = State::Exited {
            code: exit.code,
            oom_killed,
            finished_at,
        };
    })?;
    Ok(exit)
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
