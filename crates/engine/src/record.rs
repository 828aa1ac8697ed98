//! The container record: what the engine knows about one container, kept at
//! `<root>/<id>/record.json` (default root `/var/lib/peapod/containers`).
//! Every write is temp + fsync + rename + fsync of the directory, so a crash
//! leaves the old record or the new one, never a torn one. Names are claimed
//! atomically under `<root>/.names/<name>` (a file holding the id).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::request::ContainerRequest;
use crate::restart::{Backoff, RestartPolicy};
use crate::time::serde_rfc3339;

/// Where container records live unless told otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/peapod/containers";
const RECORD: &str = "record.json";
const LOCK: &str = "lock";
const NAMES: &str = ".names";
/// Length of the short id shown by `ps`.
pub const SHORT_ID_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error(
        "container name {name:?} is already in use by container {id}: remove it or pick another name"
    )]
    NameInUse { name: String, id: String },
    #[error(
        "invalid container name {0:?}: use letters, digits and _ . - (starting with a letter or digit)"
    )]
    BadName(String),
    #[error("{0:?} matches more than one container: give more of the id")]
    Ambiguous(String),
    #[error("invalid container id {0:?}: expected 64 lowercase hex digits")]
    BadId(String),
    #[error("record {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RecordError + 'a {
    move |source| RecordError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum State {
    Created,
    Running {
        pid: i32,
        #[serde(with = "serde_rfc3339")]
        started_at: SystemTime,
    },
    /// Ended; the supervisor waits out the back-off before starting it again.
    Restarting {
        exit_code: i32,
        #[serde(with = "serde_rfc3339")]
        finished_at: SystemTime,
    },
    Exited {
        /// The process's code, or 128 + signal number.
        code: i32,
        oom_killed: bool,
        #[serde(with = "serde_rfc3339")]
        finished_at: SystemTime,
    },
}

/// One container's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    #[serde(with = "serde_rfc3339")]
    pub created: SystemTime,
    pub state: State,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub backoff: Backoff,
    /// Set by `stop`/`kill`: the supervisor must not restart it.
    #[serde(default)]
    pub stopped_by_user: bool,
    pub log_path: PathBuf,
    /// How the engine made it (empty for records made by `create` alone).
    #[serde(default)]
    pub setup: Setup,
    /// The supervisor process (restart policy), while it lives.
    #[serde(default)]
    pub supervisor: Option<ProcRef>,
    /// The monitor process (the container's parent for one run).
    #[serde(default)]
    pub monitor: Option<ProcRef>,
    /// When the last run started (RFC 3339), kept after it ends.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When each run started (RFC 3339), oldest first; the last
    /// `RUN_HISTORY` runs. Shows the restart back-off as it happened.
    #[serde(default)]
    pub runs: Vec<String>,
}

/// How many run start times a record keeps.
pub const RUN_HISTORY: usize = 32;

/// What the engine built for a container, kept for inspect, restarts and
/// removal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    pub request: ContainerRequest,
    /// The image's id (its config digest).
    pub image_id: String,
    /// The OCI bundle directory.
    pub bundle: PathBuf,
    /// Where the root filesystem is mounted on the host.
    pub rootfs: PathBuf,
    /// The image snapshot key of the writable layer.
    pub snapshot: String,
    pub hostname: String,
    /// The network attachment, when bridged.
    pub network: Option<crate::network::Attachment>,
    /// Mounts for inspect (type, source, destination, rw).
    pub mounts: Vec<serde_json::Value>,
    /// Volumes made for this container alone (removed with it on `--rm`).
    pub anonymous_volumes: Vec<String>,
    /// The signal `stop` sends first.
    pub stop_signal: i32,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: u32,
    pub tty: bool,
    pub interactive: bool,
    /// The host tmpfs bound as its /dev/shm (shared with containers that
    /// join its IPC namespace).
    #[serde(default)]
    pub shm: Option<PathBuf>,
    /// Private uid/gid range start, with `--userns auto`.
    pub userns_range: Option<u32>,
}

/// A process known by pid and start time, so a reused pid is not mistaken
/// for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcRef {
    /// This process, as seen now.
    pub fn current() -> Option<ProcRef> {
        let pid = std::process::id() as i32;
        Some(ProcRef {
            pid,
            start_time: pea_runtime::process::wait::start_time(pid)?,
        })
    }

    pub fn of(pid: i32) -> Option<ProcRef> {
        Some(ProcRef {
            pid,
            start_time: pea_runtime::process::wait::start_time(pid)?,
        })
    }

    /// Whether it still runs (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        pea_runtime::process::wait::start_time(self.pid) == Some(self.start_time)
            && !is_zombie(self.pid)
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

impl Record {
    pub fn short_id(&self) -> &str {
        self.id.get(..SHORT_ID_LEN).unwrap_or(&self.id)
    }

    /// Notes that a run started at `at` (RFC 3339): `started_at` and the
    /// run history, which keeps the last `RUN_HISTORY` starts.
    pub fn note_start(&mut self, at: String) {
        self.started_at = Some(at.clone());
        self.runs.push(at);
        let extra = self.runs.len().saturating_sub(RUN_HISTORY);
        self.runs.drain(..extra);
    }
}

/// What `create` needs to make a record.
#[derive(Debug, Clone, Default)]
pub struct NewContainer {
    /// None: `peapod_<short id>`.
    pub name: Option<String>,
    pub image: String,
    pub command: Vec<String>,
    pub restart_policy: RestartPolicy,
    pub setup: Setup,
}

/// A directory of container records.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(DEFAULT_ROOT)
    }
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of container `id` (its record, lock and logs).
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Makes a record in state Created with a fresh id and claims its name.
    pub fn create(&self, new: NewContainer) -> Result<Record, RecordError> {
        let id = new_id()?;
        let name = match new.name {
            Some(n) => {
                validate_name(&n)?;
                n
            }
            None => format!("peapod_{}", &id[..SHORT_ID_LEN]),
        };
        let dir = self.dir(&id);
        fs::create_dir_all(&self.root).map_err(io("records directory", &self.root))?;
        fs::create_dir(&dir).map_err(io("container directory", &dir))?;
        let record = Record {
            log_path: dir.join("container.log"),
            id: id.clone(),
            name: name.clone(),
            image: new.image,
            command: new.command,
            created: SystemTime::now(),
            state: State::Created,
            restart_policy: new.restart_policy,
            restart_count: 0,
            backoff: Backoff::default(),
            stopped_by_user: false,
            setup: new.setup,
            supervisor: None,
            monitor: None,
            started_at: None,
            runs: Vec::new(),
        };
        // The record exists before the name points at it: a name whose
        // record is missing is then always stale.
        let claimed = self
            .save(&record)
            .and_then(|()| self.claim_name(&name, &id));
        if let Err(e) = claimed {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(record)
    }

    fn claim_name(&self, name: &str, id: &str) -> Result<(), RecordError> {
        let names = self.root.join(NAMES);
        fs::create_dir_all(&names).map_err(io("names directory", &names))?;
        let path = names.join(name);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(id.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(io("name", &path))?;
                    return sync_dir(&names);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).unwrap_or_default();
                    if !owner.is_empty() && self.dir(&owner).join(RECORD).exists() {
                        return Err(RecordError::NameInUse {
                            name: name.into(),
                            id: owner[..SHORT_ID_LEN.min(owner.len())].into(),
                        });
                    }
                    // Left by a removal or create that was killed halfway.
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(io("name", &path)(e)),
            }
        }
        Err(RecordError::NameInUse {
            name: name.into(),
            id: "(being created)".into(),
        })
    }

    /// Writes `record` durably (temp + fsync + rename + fsync dir).
    pub fn save(&self, record: &Record) -> Result<(), RecordError> {
        self.write(record, true)
    }

    fn write(&self, record: &Record, sync: bool) -> Result<(), RecordError> {
        validate_id(&record.id)?;
        let path = self.dir(&record.id).join(RECORD);
        let data = serde_json::to_vec_pretty(record).expect("a record always serializes");
        crate::durable::write(&path, &data, sync).map_err(io("record", &path))
    }

    /// Reads the record of `id` (a full id).
    pub fn load(&self, id: &str) -> Result<Record, RecordError> {
        validate_id(id)?;
        let path = self.dir(id).join(RECORD);
        let mut data = Vec::new();
        match File::open(&path) {
            Ok(mut f) => f.read_to_end(&mut data).map_err(io("record", &path))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(RecordError::NotFound(id.into()));
            }
            Err(e) => return Err(io("record", &path)(e)),
        };
        serde_json::from_slice(&data).map_err(|source| RecordError::Corrupt { path, source })
    }

    /// Reads, changes and writes the record of `id` under its lock, so the
    /// supervisor and the command line do not overwrite each other.
    pub fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Record) -> T,
    ) -> Result<(Record, T), RecordError> {
        self.locked_update(id, change, true)
    }

    /// `update` without waiting for the disk: for bookkeeping a crash may
    /// lose (which process watches the container, that it started), where
    /// the processes themselves are the truth and are checked on every
    /// read. A crash leaves the old record or the new one, never a torn one.
    pub fn update_quick<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Record) -> T,
    ) -> Result<(Record, T), RecordError> {
        self.locked_update(id, change, false)
    }

    fn locked_update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Record) -> T,
        sync: bool,
    ) -> Result<(Record, T), RecordError> {
        validate_id(id)?;
        let lock_path = self.dir(id).join(LOCK);
        let _lock = crate::durable::lock(&lock_path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => RecordError::NotFound(id.into()),
            _ => io("lock", &lock_path)(e),
        })?;
        let mut record = self.load(id)?;
        let out = change(&mut record);
        self.write(&record, sync)?;
        Ok((record, out))
    }

    /// Every record, oldest first; unreadable ones are skipped.
    pub fn list(&self) -> Result<Vec<Record>, RecordError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("records directory", &self.root)(e)),
        };
        let mut out: Vec<Record> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| validate_id(n).is_ok())
            .filter_map(|id| self.load(&id).ok())
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Finds a container by full id, name, or unique id prefix (as Docker).
    pub fn resolve(&self, key: &str) -> Result<Record, RecordError> {
        if validate_id(key).is_ok() {
            return self.load(key);
        }
        if validate_name(key).is_ok()
            && let Ok(id) = fs::read_to_string(self.root.join(NAMES).join(key))
            && let Ok(r) = self.load(&id)
        {
            return Ok(r);
        }
        let is_hex = !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex {
            let mut hits = self.list()?.into_iter().filter(|r| r.id.starts_with(key));
            if let Some(r) = hits.next() {
                return match hits.next() {
                    None => Ok(r),
                    Some(_) => Err(RecordError::Ambiguous(key.into())),
                };
            }
        }
        Err(RecordError::NotFound(key.into()))
    }

    /// Removes the record, its directory (logs included) and its name.
    pub fn remove(&self, id: &str) -> Result<(), RecordError> {
        let record = self.load(id)?;
        let dir = self.dir(id);
        // The record goes first: from then on the name is stale either way.
        fs::remove_file(dir.join(RECORD)).map_err(io("record", &dir))?;
        let name = self.root.join(NAMES).join(&record.name);
        if fs::read_to_string(&name).is_ok_and(|owner| owner == id) {
            let _ = fs::remove_file(&name);
        }
        fs::remove_dir_all(&dir).map_err(io("container directory", &dir))
    }
}

/// A new random container id: 64 lowercase hex digits.
pub fn new_id() -> Result<String, RecordError> {
    let mut bytes = [0u8; 32];
    let path = Path::new("/dev/urandom");
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io("random source", path))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn validate_id(id: &str) -> Result<(), RecordError> {
    if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(RecordError::BadId(id.into()))
    }
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<(), RecordError> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RecordError::BadName(name.into()))
    }
}

fn sync_dir(dir: &Path) -> Result<(), RecordError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("directory", dir))
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
