//! The lifecycle operations of runtime-spec runtime.md as library calls:
//! create, start, state, kill, delete, plus exec, list and ps, and the live
//! cgroup operations update, pause, resume and stats.

mod cgroup_ops;
mod create;
mod delete;
mod exec;
mod start;

use std::path::{Path, PathBuf};

pub use create::CreateOptions;
pub use exec::ExecOptions;

use crate::cgroups::{self, CgroupError, CgroupManager};
use crate::config::ConfigError;
use crate::process::spawn::SpawnError;
use crate::process::wait::is_same_process;
use crate::signal::SignalNumber;
use crate::state::{self, OCI_VERSION, OciState, Record, StateDir, StateError, Status};

/// Every way a lifecycle operation can fail. Each message is one line that
/// names what failed and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A cgroup operation on an existing container failed.
    #[error("container {id:?}: cannot {what}: {source}")]
    Cgroups {
        id: String,
        what: &'static str,
        source: CgroupError,
    },
    #[error("container {id:?}: {source}")]
    Spawn { id: String, source: SpawnError },
    #[error("container {id:?} is {status}: {what}")]
    WrongState {
        id: String,
        status: Status,
        what: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("container {id:?}: {what}: {source}")]
    Sys {
        id: String,
        what: String,
        source: nix::Error,
    },
    #[error("container {id:?}: start failed: {reason}")]
    StartFailed { id: String, reason: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A state root (`--root`) holding containers. Cheap to make; holds no
/// global state, so several may be used from one program.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    systemd_cgroup: bool,
}

/// One row of `list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Seconds since the epoch.
    pub created: u64,
    pub annotations: std::collections::HashMap<String, String>,
    pub owner: String,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            root: root.into(),
            systemd_cgroup: false,
        }
    }

    /// Use systemd to manage cgroups (`--systemd-cgroup`).
    pub fn with_systemd_cgroup(mut self, on: bool) -> Self {
        self.systemd_cgroup = on;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The runtime-spec state of a container.
    pub fn state(&self, id: &str) -> Result<OciState, ContainerError> {
        let (record, status) = self.read(id)?;
        Ok(oci_state(&record, status))
    }

    /// Reads a record without taking the lock (state and list must not wait
    /// behind a slow create); the record is replaced atomically.
    fn read(&self, id: &str) -> Result<(Record, Status), ContainerError> {
        state::validate_id(id)?;
        let dir = self.root.join(id);
        let data = std::fs::read(dir.join("state.json")).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ContainerError::State(StateError::NotFound(id.to_string()))
            } else {
                ContainerError::Io {
                    what: "state",
                    path: dir.join("state.json"),
                    source: e,
                }
            }
        })?;
        let record: Record =
            serde_json::from_slice(&data).map_err(|source| StateError::Corrupt {
                id: id.to_string(),
                path: dir.join("state.json"),
                source,
            })?;
        let status = status_of(&record, &dir);
        Ok((record, status))
    }

    /// Every container under the root, with its status.
    pub fn list(&self) -> Result<Vec<ContainerInfo>, ContainerError> {
        let mut out = Vec::new();
        for id in state::list_ids(&self.root)? {
            let Ok((r, status)) = self.read(&id) else {
                continue;
            };
            let owner = owner_of(&self.root.join(&id));
            out.push(ContainerInfo {
                id: r.id,
                pid: if status == Status::Stopped { 0 } else { r.pid },
                status,
                bundle: r.bundle,
                rootfs: r.rootfs,
                created: r.created,
                annotations: r.annotations,
                owner,
            });
        }
        Ok(out)
    }

    /// Sends a signal to the init (or, with `all`, every process in its cgroup).
    pub fn kill(&self, id: &str, signal: SignalNumber, all: bool) -> Result<(), ContainerError> {
        let dir = StateDir::open(&self.root, id)?;
        let (record, status) = self.read(id)?;
        if !matches!(status, Status::Created | Status::Running | Status::Paused) {
            return Err(ContainerError::WrongState {
                id: id.into(),
                status,
                what: "only a created or running container can be signalled",
            });
        }
        let send = |pid: i32| -> Result<(), nix::Error> {
            // SAFETY: kill(2) with a plain pid and signal number (real-time
            // signals are not representable in nix's Signal type).
            let rc = unsafe { libc::kill(pid, signal.raw()) };
            nix::errno::Errno::result(rc).map(drop)
        };
        if all && let Some(cg) = cgroup_of(&record)? {
            for pid in cg.pids()? {
                let _ = send(pid);
            }
        }
        send(record.pid).map_err(|source| ContainerError::Sys {
            id: id.into(),
            what: format!("signal {}", signal.raw()),
            source,
        })?;
        drop(dir);
        Ok(())
    }

    /// Pids of every process in the container (its cgroup).
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, ContainerError> {
        let (record, status) = self.read(id)?;
        if status == Status::Stopped {
            return Ok(Vec::new());
        }
        match cgroup_of(&record)? {
            Some(cg) => {
                let mut pids = cg.pids()?;
                pids.sort_unstable();
                Ok(pids)
            }
            None => Ok(vec![record.pid]),
        }
    }
}

/// Where compiled seccomp filters are kept: inside the state root, under a
/// name no container id can take (`list` skips dot-directories).
pub(crate) fn seccomp_cache_dir(root: &Path) -> PathBuf {
    root.join(".cache").join("seccomp")
}

fn owner_of(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(dir).map(|m| m.uid()).unwrap_or(0);
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("#{uid}"))
}

pub(crate) fn cgroup_of(record: &Record) -> Result<Option<Box<dyn CgroupManager>>, ContainerError> {
    match &record.cgroup_path {
        Some(p) => Ok(Some(cgroups::open(p)?)),
        None => Ok(None),
    }
}

/// Derives the status from the live system, never from a stored field alone.
pub(crate) fn status_of(record: &Record, dir: &Path) -> Status {
    status_with(record, dir, || {
        cgroup_of(record)
            .ok()
            .flatten()
            .is_some_and(|cg| is_frozen(cg.as_ref()))
    })
}

fn is_frozen(cg: &dyn CgroupManager) -> bool {
    matches!(cg.freezer_state(), Ok(cgroups::FreezerState::Frozen))
}

/// `status_of`, asking `frozen` only when the answer matters, so an
/// operation that has the container's cgroup open already does not detect
/// the host's cgroup layout a second time.
pub(crate) fn status_with(record: &Record, dir: &Path, frozen: impl FnOnce() -> bool) -> Status {
    let alive = is_same_process(record.pid, record.pid_start_time);
    if !record.created_done {
        return if alive {
            Status::Creating
        } else {
            Status::Stopped
        };
    }
    if !alive {
        return Status::Stopped;
    }
    if frozen() {
        return Status::Paused;
    }
    if dir.join(state::START_SOCKET).exists() {
        Status::Created
    } else {
        Status::Running
    }
}

pub(crate) fn oci_state(record: &Record, status: Status) -> OciState {
    OciState {
        oci_version: OCI_VERSION.into(),
        id: record.id.clone(),
        status,
        pid: if status == Status::Stopped {
            0
        } else {
            record.pid
        },
        bundle: record.bundle.clone(),
        annotations: record.annotations.clone(),
    }
}
