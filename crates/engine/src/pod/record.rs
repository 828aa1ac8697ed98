//! The pod record at `<root>/pods/<id>/pod.json`: the plan, the manifest it
//! came from, and the status the supervisor keeps. Written temp + fsync +
//! rename under a lock, like container records.

use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ContainerKind, PodPlan};
use crate::record::{ProcRef, RecordError};
use crate::restart::Backoff;

const RECORD: &str = "pod.json";
const LOCK: &str = "lock";

/// The pod's phase, as Kubernetes names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Phase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// A container's state, as Kubernetes names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerState {
    Waiting {
        reason: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: Option<String>,
        finished_at: String,
    },
}

/// One container's status in its pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub kind: ContainerKind,
    /// The engine's container record.
    pub container_id: Option<String>,
    pub image: String,
    pub restart_count: u32,
    pub state: ContainerState,
    pub last_state: Option<ContainerState>,
    pub ready: bool,
    #[serde(default)]
    pub backoff: Backoff,
    /// When each run started (RFC 3339), oldest first.
    #[serde(default)]
    pub starts: Vec<String>,
}

/// Something that happened to the pod (`describe`'s events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: String,
    /// Normal or Warning.
    pub kind: String,
    pub reason: String,
    pub message: String,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// 64 hex digits: also the id of its network attachment.
    pub id: String,
    /// Kubernetes' metadata.uid (UUID form).
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub created: String,
    /// The object that made it (`Job/NAME`), if any.
    pub owner: Option<String>,
    pub plan: PodPlan,
    /// The Pod as applied (with defaults), for `-o yaml` and `apply`.
    pub manifest: serde_json::Value,
    pub phase: Phase,
    pub ip: Option<IpAddr>,
    pub netns: Option<PathBuf>,
    pub infra: Option<ProcRef>,
    pub supervisor: Option<ProcRef>,
    pub containers: Vec<ContainerStatus>,
    pub events: Vec<Event>,
    /// A delete was asked for: the supervisor stops everything.
    pub deleting: bool,
    /// A stop was asked for (`pod stop`): the supervisor stops the
    /// containers and tears the pod down; the pod stays defined.
    #[serde(default)]
    pub stopping: bool,
    /// When the pod ended (RFC 3339).
    pub finished: Option<String>,
}

impl PodRecord {
    pub fn event(&mut self, kind: &str, reason: &str, message: impl Into<String>) {
        self.events.push(Event {
            time: crate::time::format_rfc3339_nano(std::time::SystemTime::now()),
            kind: kind.into(),
            reason: reason.into(),
            message: message.into(),
        });
        // Enough for describe; a crash loop must not grow it forever.
        if self.events.len() > 200 {
            self.events.drain(..self.events.len() - 200);
        }
    }

    pub fn container_mut(&mut self, name: &str) -> Option<&mut ContainerStatus> {
        self.containers.iter_mut().find(|c| c.name == name)
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RecordError + 'a {
    move |source| RecordError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A directory of pod records.
#[derive(Debug, Clone)]
pub struct PodStore {
    root: PathBuf,
}

impl PodStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        PodStore { root: root.into() }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Saves a new record; refuses a name already used in its namespace.
    pub fn create(&self, record: &PodRecord) -> Result<(), RecordError> {
        if let Some(other) = self.find(&record.namespace, &record.name)? {
            return Err(RecordError::NameInUse {
                name: format!("{}/{}", record.namespace, record.name),
                id: other.id[..12].to_string(),
            });
        }
        let dir = self.dir(&record.id);
        fs::create_dir_all(&dir).map_err(io("pod directory", &dir))?;
        self.save(record)
    }

    /// Writes `record` durably (as made by `create`).
    pub fn save(&self, record: &PodRecord) -> Result<(), RecordError> {
        self.write(record, true)
    }

    fn write(&self, record: &PodRecord, sync: bool) -> Result<(), RecordError> {
        crate::record::validate_id(&record.id)?;
        let path = self.dir(&record.id).join(RECORD);
        let data = serde_json::to_vec_pretty(record).expect("a pod record always serializes");
        crate::durable::write(&path, &data, sync).map_err(io("pod record", &path))
    }

    pub fn load(&self, id: &str) -> Result<PodRecord, RecordError> {
        crate::record::validate_id(id)?;
        let path = self.dir(id).join(RECORD);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(RecordError::NotFound(id.into()));
            }
            Err(e) => return Err(io("pod record", &path)(e)),
        };
        serde_json::from_slice(&data).map_err(|source| RecordError::Corrupt { path, source })
    }

    /// Read-modify-write under the pod's lock. The status the supervisor
    /// keeps is not flushed to disk each time: it is rebuilt from the live
    /// processes, and probes may change it every second.
    pub fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut PodRecord) -> T,
    ) -> Result<(PodRecord, T), RecordError> {
        crate::record::validate_id(id)?;
        let lock_path = self.dir(id).join(LOCK);
        let _lock = crate::durable::lock(&lock_path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => RecordError::NotFound(id.into()),
            _ => io("pod lock", &lock_path)(e),
        })?;
        let mut record = self.load(id)?;
        let out = change(&mut record);
        self.write(&record, false)?;
        Ok((record, out))
    }

    /// Every pod, oldest first.
    pub fn list(&self) -> Result<Vec<PodRecord>, RecordError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("pods directory", &self.root)(e)),
        };
        let mut out: Vec<PodRecord> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::record::validate_id(n).is_ok())
            .filter_map(|id| self.load(&id).ok())
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    pub fn find(&self, namespace: &str, name: &str) -> Result<Option<PodRecord>, RecordError> {
        Ok(self
            .list()?
            .into_iter()
            .find(|p| p.namespace == namespace && p.name == name))
    }

    /// Removes the record and its directory (volumes included; the caller
    /// unmounted what it mounted there).
    pub fn remove(&self, id: &str) -> Result<(), RecordError> {
        crate::record::validate_id(id)?;
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("pod directory", &dir)(e)),
        }
    }
}
