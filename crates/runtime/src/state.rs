//! Container state on disk: `<root>/<id>/state.json`, written atomically and
//! guarded by an advisory lock so two operations on one id never interleave.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of the runtime spec this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
/// The socket `start` connects to; it exists only while the container is created.
pub const START_SOCKET: &str = "start.sock";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "container id {0:?} is not valid: use letters, digits, '.', '_', '-' and '+' (at most 1024 characters, not '.' or '..')"
    )]
    InvalidId(String),
    #[error("container {0:?} already exists: delete it first or choose another id")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("state root {path}: {source}; pass --root with a directory this user can write")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state of container {id:?} ({path}): {source}")]
    Io {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state of container {id:?} ({path}) is not valid JSON: {source}; `delete --force` removes it"
    )]
    Corrupt {
        id: String,
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The lifecycle status of a container (runtime-spec runtime.md, plus runc's `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state document of runtime-spec runtime.md ("State"), as `state` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    #[serde(default)]
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// What the runtime records about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Init's pid in the runtime's PID namespace; 0 before it exists.
    pub pid: i32,
    /// Field 22 of /proc/PID/stat, so a recycled pid is never mistaken for init.
    pub pid_start_time: u64,
    /// Cgroup path relative to the hierarchy roots.
    pub cgroup_path: Option<PathBuf>,
    /// Seconds since the epoch.
    pub created: u64,
    pub annotations: HashMap<String, String>,
    /// True once `create` finished (init waits for `start`).
    pub created_done: bool,
    /// The config's process: defaults for `exec`.
    pub process: oci_spec::runtime::Process,
    pub poststart: Vec<oci_spec::runtime::Hook>,
    pub poststop: Vec<oci_spec::runtime::Hook>,
    /// The config's `linux.seccomp`: `exec`'d processes get the same filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

/// Validates a container id the way runc does.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// The per-container state directory, held locked for the lifetime of this value.
#[derive(Debug)]
pub struct StateDir {
    id: String,
    dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates `<root>/<id>` exclusively and locks it.
    pub fn create(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(|source| StateError::Root {
                path: root.to_path_buf(),
                source,
            })?;
        let dir = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()));
            }
            Err(source) => {
                return Err(StateError::Io {
                    id: id.to_string(),
                    path: dir,
                    source,
                });
            }
        }
        Self::lock(id, dir, true)
    }

    /// Opens and locks the state directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        let dir = root.join(id);
        if !dir.is_dir() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Self::lock(id, dir, false)
    }

    /// Only `create` makes the lock file: re-creating it in a directory that
    /// a concurrent `delete` is removing would make that removal fail.
    fn lock(id: &str, dir: PathBuf, create: bool) -> Result<Self, StateError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(create)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| {
                if !create && source.kind() == std::io::ErrorKind::NotFound {
                    return StateError::NotFound(id.to_string());
                }
                StateError::Io {
                    id: id.to_string(),
                    path: path.clone(),
                    source,
                }
            })?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(StateError::Io {
                id: id.to_string(),
                path,
                source: std::io::Error::last_os_error(),
            });
        }
        // Deleted while we waited for the lock.
        if !create && file.metadata().map(|m| m.nlink() == 0).unwrap_or(true) {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(Self {
            id: id.to_string(),
            dir,
            _lock: file,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn start_socket(&self) -> PathBuf {
        self.dir.join(START_SOCKET)
    }

    fn err(&self, path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            id: self.id.clone(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// Writes the record through a temporary file and rename, so a reader or
    /// a killed runtime never sees half a record. No fsync: like the
    /// containers it describes, runtime state does not outlive the machine
    /// (it belongs on tmpfs), and an fsync costs more than a whole start.
    pub fn save(&self, record: &Record) -> Result<(), StateError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(record).map_err(|e| self.err(&path, e.into()))?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.err(&tmp, e))?;
        file.write_all(&data).map_err(|e| self.err(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| self.err(&path, e))
    }

    /// Reads the record; `Ok(None)` when `create` died before writing one.
    pub fn load(&self) -> Result<Option<Record>, StateError> {
        let path = self.dir.join(STATE_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(&path, e)),
        };
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| StateError::Corrupt {
                id: self.id.clone(),
                path,
                source,
            })
    }

    /// Removes the directory and everything in it; the lock goes with it.
    pub fn remove(self) -> Result<(), StateError> {
        fs::remove_dir_all(&self.dir).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(self.err(&self.dir, e))
            }
        })
    }
}

/// Ids of every container under `root` (directories only), sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>, StateError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Root {
                path: root.to_path_buf(),
                source,
            });
        }
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        // Dot-directories hold the runtime's own caches, not containers.
        .filter(|id| !id.starts_with('.') && validate_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated_like_runc() {
        assert!(validate_id("abc-1.2_3+x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn create_is_exclusive_and_state_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path(), "c1").unwrap();
        assert!(matches!(
            StateDir::create(root.path(), "c1"),
            Err(StateError::Exists(_))
        ));
        assert!(dir.load().unwrap().is_none());
        let rec = Record {
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            pid: 42,
            pid_start_time: 7,
            cgroup_path: Some("/pea/c1".into()),
            created: 1,
            annotations: HashMap::new(),
            created_done: true,
            process: Default::default(),
            poststart: Vec::new(),
            poststop: Vec::new(),
            seccomp: None,
        };
        dir.save(&rec).unwrap();
        assert_eq!(dir.load().unwrap().unwrap().pid, 42);
        assert_eq!(list_ids(root.path()).unwrap(), vec!["c1".to_string()]);
        dir.remove().unwrap();
        assert!(list_ids(root.path()).unwrap().is_empty());
    }
}
