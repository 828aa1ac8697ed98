//! What a container's record says, checked against the processes that
//! should be behind it: a record that says running while neither its
//! supervisor nor its monitor lives is read as what the runtime sees.

use std::time::SystemTime;

use pea_runtime::Status as RtStatus;

use super::Engine;
use crate::record::{Record, State};

/// Where a container is, as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running {
        pid: i32,
        started_at: SystemTime,
    },
    Restarting {
        exit_code: i32,
        finished_at: SystemTime,
    },
    Exited {
        code: i32,
        oom_killed: bool,
        finished_at: SystemTime,
    },
}

impl Status {
    /// Docker's word for it (`docker inspect`'s State.Status).
    pub fn word(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running { .. } => "running",
            Status::Restarting { .. } => "restarting",
            Status::Exited { .. } => "exited",
        }
    }

    /// Running, or between runs of a restart policy.
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Running { .. } | Status::Restarting { .. })
    }
}

/// A record as seen now.
#[derive(Debug, Clone)]
pub struct View {
    pub status: Status,
    /// Its supervisor process lives.
    pub supervisor_alive: bool,
    /// The monitor of its current run lives.
    pub monitor_alive: bool,
}

impl View {
    /// Running with nobody of peapod's watching it.
    pub fn unsupervised(&self) -> bool {
        matches!(self.status, Status::Running { .. }) && !self.supervisor_alive
    }
}

impl Engine {
    /// The record of `record`'s container, checked against its processes.
    pub fn view(&self, record: &Record) -> View {
        let supervisor_alive = record.supervisor.is_some_and(|p| p.alive());
        let monitor_alive = record.monitor.is_some_and(|p| p.alive());
        let status = match record.state {
            State::Created => Status::Created,
            State::Running { pid, started_at } => {
                if monitor_alive || supervisor_alive || self.runtime_running(&record.id) {
                    Status::Running { pid, started_at }
                } else {
                    // Everyone who could have recorded its end is gone.
                    Status::Exited {
                        code: 255,
                        oom_killed: false,
                        finished_at: SystemTime::now(),
                    }
                }
            }
            State::Restarting {
                exit_code,
                finished_at,
            } => {
                if supervisor_alive {
                    Status::Restarting {
                        exit_code,
                        finished_at,
                    }
                } else {
                    Status::Exited {
                        code: exit_code,
                        oom_killed: false,
                        finished_at,
                    }
                }
            }
            State::Exited {
                code,
                oom_killed,
                finished_at,
            } => {
                // Between the monitor's record of a run's end and its
                // supervisor's decision: a run it will restart.
                let restarts = supervisor_alive
                    && record.restart_policy.should_restart(
                        code,
                        record.restart_count,
                        record.stopped_by_user,
                    );
                if restarts {
                    Status::Restarting {
                        exit_code: code,
                        finished_at,
                    }
                } else {
                    Status::Exited {
                        code,
                        oom_killed,
                        finished_at,
                    }
                }
            }
        };
        View {
            status,
            supervisor_alive,
            monitor_alive,
        }
    }

    fn runtime_running(&self, id: &str) -> bool {
        self.runtime
            .state(id)
            .is_ok_and(|s| matches!(s.status, RtStatus::Running | RtStatus::Paused))
    }
}
