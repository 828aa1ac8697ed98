//! `stop` and `kill`: the user's end of a container. Both mark it stopped
//! by the user, so its restart policy does not bring it back.

use std::time::{Duration, Instant, SystemTime};

use pea_runtime::SignalNumber;

use super::{Engine, EngineError, Status};
use crate::record::{Record, State};

/// How often a stop looks whether the container has ended.
const POLL: Duration = Duration::from_millis(10);
/// How long a container gets to end after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long the supervisor gets to finish after its container ended.
const SUPERVISOR_WAIT: Duration = Duration::from_secs(10);

fn signal(n: i32) -> SignalNumber {
    SignalNumber::parse(&n.to_string())
        .unwrap_or_else(|_| SignalNumber::parse("9").expect("SIGKILL is a valid signal"))
}

impl Engine {
    /// Sends the container's stop signal, waits `timeout` seconds (its own
    /// `--stop-timeout` when None), then SIGKILL. Stopping a container that
    /// is not running is not an error.
    pub fn stop(&self, key: &str, timeout: Option<u32>) -> Result<Record, EngineError> {
        let record = self.mark_stopped(key)?;
        let view = self.view(&record);
        match view.status {
            Status::Running { .. } => {
                let sig = match record.setup.stop_signal {
                    0 => libc::SIGTERM,
                    s => s,
                };
                let _ = self.runtime.kill(&record.id, signal(sig), false);
                let grace =
                    Duration::from_secs(u64::from(timeout.unwrap_or(record.setup.stop_timeout)));
                if !self.wait_ended(&record.id, grace, sig) {
                    let _ = self.runtime.kill(&record.id, signal(libc::SIGKILL), true);
                    self.wait_ended(&record.id, KILL_WAIT, libc::SIGKILL);
                }
            }
            Status::Restarting { .. } => self.wake_supervisor(&record),
            Status::Created | Status::Exited { .. } => {}
        }
        self.wait_supervisor(&record.id);
        Ok(self.store.load(&record.id).unwrap_or(record))
    }

    /// Sends `sig` to the container's main process.
    pub fn kill(&self, key: &str, sig: SignalNumber) -> Result<(), EngineError> {
        let record = self.mark_stopped(key)?;
        match self.view(&record).status {
            Status::Running { .. } => {
                self.runtime.kill(&record.id, sig, false)?;
                Ok(())
            }
            Status::Restarting { .. } => {
                self.wake_supervisor(&record);
                Ok(())
            }
            s => Err(EngineError::WrongState {
                name: record.name.clone(),
                state: s.word().into(),
                fix: "only a running container can be signalled",
            }),
        }
    }

    fn mark_stopped(&self, key: &str) -> Result<Record, EngineError> {
        let id = self.store.resolve(key)?.id;
        Ok(self.store.update(&id, |r| r.stopped_by_user = true)?.0)
    }

    /// Ends a supervisor waiting out a restart back-off.
    fn wake_supervisor(&self, record: &Record) {
        if let Some(s) = record.supervisor.filter(|s| s.alive()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(s.pid),
                nix::sys::signal::Signal::SIGUSR1,
            );
        }
    }

    /// Waits until the container is no longer running, at most `limit`.
    /// When nobody of peapod's watches it any more, records its end as
    /// killed by `sig` once the runtime sees it gone.
    pub(crate) fn wait_ended(&self, id: &str, limit: Duration, sig: i32) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let Ok(record) = self.store.load(id) else {
                return true;
            };
            let view = self.view(&record);
            if !matches!(record.state, State::Running { .. }) {
                return true;
            }
            if !view.monitor_alive
                && !view.supervisor_alive
                && !matches!(view.status, Status::Running { .. })
            {
                let _ = self.runtime.delete(id, true);
                let _ = self.store.update(id, |r| {
                    r.state = State::Exited {
                        code: 128 + sig,
                        oom_killed: false,
                        finished_at: SystemTime::now(),
                    };
                    r.monitor = None;
                });
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits (bounded) for the container's supervisor to finish.
    pub fn wait_supervisor(&self, id: &str) {
        let deadline = Instant::now() + SUPERVISOR_WAIT;
        while Instant::now() < deadline {
            match self.store.load(id) {
                Ok(r) if r.supervisor.is_some_and(|s| s.alive()) => std::thread::sleep(POLL),
                _ => return,
            }
        }
    }
}
