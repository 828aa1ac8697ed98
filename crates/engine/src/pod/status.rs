//! How a pod looks to `get pods`: READY, STATUS (Kubernetes' words:
//! Running, Completed, Error, CrashLoopBackOff, Init:N/M, Terminating,
//! OOMKilled), RESTARTS.

use super::ContainerKind;
use super::record::{ContainerState, Phase, PodRecord};

/// One row of `get pods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    pub ready: usize,
    pub total: usize,
    pub status: String,
    pub restarts: u32,
}

impl PodRecord {
    /// Its supervisor lives (the pod is being run).
    pub fn supervised(&self) -> bool {
        self.supervisor.is_some_and(|s| s.alive())
    }

    pub fn summary(&self) -> PodSummary {
        let apps: Vec<_> = self
            .containers
            .iter()
            .filter(|c| c.kind != ContainerKind::Init)
            .collect();
        let ready = apps.iter().filter(|c| c.ready).count();
        let restarts = self.containers.iter().map(|c| c.restart_count).sum();
        let reason = |s: &ContainerState| match s {
            ContainerState::Waiting { reason } => Some(reason.clone()),
            ContainerState::Terminated { reason, .. } => Some(reason.clone()),
            ContainerState::Running { .. } => None,
        };
        let status = if self.deleting {
            "Terminating".to_string()
        } else if let Some((n, c)) = self
            .containers
            .iter()
            .filter(|c| c.kind == ContainerKind::Init)
            .enumerate()
            .find(|(_, c)| !matches!(c.state, ContainerState::Terminated { exit_code: 0, .. }))
            && (self.phase == Phase::Pending
                || self.phase == Phase::Failed
                    && matches!(c.state, ContainerState::Terminated { .. }))
        {
            match &c.state {
                ContainerState::Waiting { reason } if reason == "CrashLoopBackOff" => {
                    format!("Init:{reason}")
                }
                // A failed init container failed the pod (Init:Error).
                ContainerState::Terminated { reason, .. } if self.phase == Phase::Failed => {
                    format!("Init:{reason}")
                }
                _ => format!(
                    "Init:{n}/{}",
                    self.containers
                        .iter()
                        .filter(|c| c.kind == ContainerKind::Init)
                        .count()
                ),
            }
        } else {
            match self.phase {
                Phase::Succeeded => "Completed".into(),
                Phase::Failed => apps
                    .iter()
                    .find_map(|c| reason(&c.state).filter(|r| r != "Completed"))
                    .unwrap_or_else(|| "Error".into()),
                Phase::Pending => apps
                    .iter()
                    .find_map(|c| reason(&c.state))
                    .unwrap_or_else(|| "Pending".into()),
                Phase::Running => apps
                    .iter()
                    .find_map(|c| match &c.state {
                        ContainerState::Waiting { reason } => Some(reason.clone()),
                        ContainerState::Terminated {
                            reason, exit_code, ..
                        } if *exit_code != 0 => Some(reason.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| {
                        if self.supervised() {
                            "Running".into()
                        } else {
                            "Unknown".into()
                        }
                    }),
            }
        };
        PodSummary {
            ready,
            total: apps.len(),
            status,
            restarts,
        }
    }
}
