//! Pods: containers that share the network and IPC namespaces (and the PID
//! namespace when asked) of an infra process, run and restarted by one
//! supervisor process per pod.
//!
//! The model is Kubernetes-agnostic: a [`PodPlan`] says what to run; the
//! `kube` module turns Kubernetes objects into plans.

pub mod apply;
mod cgroup;
mod controller;
pub mod deployment;
mod imperative;
pub mod infra;
pub mod job;
mod job_failure_policy;
pub mod job_index;
pub mod kube;
mod kube_probe;
mod launch;
mod memory;
pub mod object_store;
pub mod probe;
mod record;
pub mod revision;
pub mod revive;
mod run;
mod status;
mod supervisor;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::request::{ContainerRequest, PortMapping};

pub use controller::run as run_controller;
pub use imperative::{NAMESPACE as IMPERATIVE_NAMESPACE, POD_LABEL, PodOptions};
pub use job::run as run_job_controller;
pub use launch::PodLaunch;
pub use record::{ContainerState, ContainerStatus, Event, Phase, PodRecord, PodStore};
pub use status::PodSummary;
pub use supervisor::run as supervise;

/// When a pod's containers are started again after they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PodRestart {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// Where a container runs in its pod's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerKind {
    /// Runs to completion, in order, before the app containers.
    Init,
    /// An init container that keeps running (`restartPolicy: Always`).
    Sidecar,
    App,
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodContainer {
    pub name: String,
    pub kind: ContainerKind,
    /// What to run; its namespaces, hostname and cgroup parent are the
    /// pod's (set by the supervisor).
    pub request: ContainerRequest,
    /// `lifecycle.preStop.exec`.
    pub pre_stop: Option<Vec<String>>,
    /// `lifecycle.postStart.exec`.
    pub post_start: Option<Vec<String>>,
    /// `lifecycle.postStart` / `preStop` as httpGet or tcpSocket.
    #[serde(default)]
    pub post_start_net: Option<probe::Action>,
    #[serde(default)]
    pub pre_stop_net: Option<probe::Action>,
    #[serde(default)]
    pub liveness: Option<probe::Probe>,
    #[serde(default)]
    pub readiness: Option<probe::Probe>,
    #[serde(default)]
    pub startup: Option<probe::Probe>,
}

/// What to run as one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPlan {
    pub name: String,
    pub namespace: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub restart: PodRestart,
    pub containers: Vec<PodContainer>,
    /// `hostPort`s.
    pub ports: Vec<PortMapping>,
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    /// One PID namespace for the pod, with the infra process as PID 1.
    pub share_pid: bool,
    /// Seconds between the stop signal and SIGKILL on delete.
    pub grace_period: u32,
    /// Container restarts after which the pod fails (a Job's backoffLimit).
    pub max_restarts: Option<u32>,
    /// Pod-level memory limit and CPU quota (sums of the containers'
    /// limits when every container has them).
    pub memory_limit: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    /// Kubernetes QoS class name, for the cgroup path and `describe`.
    pub qos: String,
    /// emptyDir volumes with `medium: Memory`: a tmpfs mounted on each
    /// directory while the pod runs, with its size limit.
    pub memory_volumes: Vec<(std::path::PathBuf, Option<u64>)>,
    /// The pod stays up (its infra process running) while none of its
    /// containers run: an imperative pod (`pod create`), whose containers
    /// are added with `run --pod`. Cleared by `pod stop`.
    #[serde(default)]
    pub keep_running: bool,
    /// `hostUsers: false`: the pod gets a private range of host ids (held
    /// under the pod's id by the userns allocator), and each container a
    /// user namespace with that one mapping (the infra process stays in
    /// the host's user namespace).
    #[serde(default)]
    pub private_users: bool,
}

/// The text in a container's env that stands for the pod's IP (known only
/// once the pod's network is up).
pub const POD_IP: &str = "$(__PEAPOD_POD_IP__)";
