//! Snapshotters, shaped like containerd's: a snapshot is a directory tree named by a key.
//! `prepare` makes a writable (active) one on top of a committed parent, `view` a
//! read-only one, `commit` freezes an active one under a name that others use as parent.
//! Image layers are committed snapshots named by their chain ID; a container's rootfs is
//! an active snapshot on top of its image's top layer.
//!
//! Two drivers: [`overlay::Overlay`] (each snapshot holds only its own changes; a rootfs is
//! an overlay mount of the parents as lowerdirs) and [`vfs::Vfs`] (each snapshot is a full
//! copy of its parent; works on any filesystem).

mod copy;
mod meta;
pub mod mount;
pub mod overlay;
pub mod vfs;

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use mount::Mount;

use crate::unpack::Whiteouts;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {0:?} does not exist")]
    NotFound(String),
    #[error("snapshot {0:?} already exists")]
    AlreadyExists(String),
    #[error("snapshot {key:?} is {actual}, but this needs it to be {wanted}")]
    WrongKind {
        key: String,
        actual: Kind,
        wanted: Kind,
    },
    #[error("snapshot {0:?} is the parent of {1}; remove those first")]
    HasChildren(String, String),
    #[error("invalid snapshot key {0:?}: use 1-200 characters of [A-Za-z0-9_.:-]")]
    BadKey(String),
    #[error("unknown storage driver {0:?}: use overlay or vfs")]
    UnknownDriver(String),
    #[error(
        "the overlay filesystem is not available here ({0}); use the full-copy fallback with --storage-driver vfs"
    )]
    OverlayUnavailable(String),
    #[error("mounting {what} on {target}: {errno}")]
    Mount {
        what: String,
        target: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("snapshot metadata {path}: {source}")]
    Metadata {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl SnapshotError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { what, path, source }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Read-only, made by `view`.
    View,
    /// Writable, made by `prepare`.
    Active,
    /// Frozen by `commit`; can be a parent.
    Committed,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::View => "a view",
            Kind::Active => "active",
            Kind::Committed => "committed",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub key: String,
    pub parent: Option<String>,
    pub kind: Kind,
    /// Seconds since the epoch.
    pub created: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub size: u64,
    pub inodes: u64,
}

/// Where the files of an active snapshot are written directly (to unpack a layer into it
/// without mounting), and how whiteouts must be written there.
#[derive(Clone, Debug)]
pub struct WriteTarget {
    pub dir: PathBuf,
    pub whiteouts: Whiteouts,
}

/// Overlay paths of a snapshot, as `docker inspect` shows them under GraphDriver.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: std::collections::BTreeMap<String, String>,
}

pub trait Snapshotter: Send + Sync {
    /// The driver's name (`overlay`, `vfs`).
    fn driver(&self) -> &'static str;
    fn stat(&self, key: &str) -> Result<Info, SnapshotError>;
    /// A new active snapshot `key` on top of committed `parent`; returns how to mount it.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;
    /// A new read-only snapshot `key` of committed `parent`.
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;
    /// How to mount an active snapshot or a view.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError>;
    /// Freezes active snapshot `key` as committed snapshot `name`.
    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError>;
    /// Removes a snapshot that is no snapshot's parent.
    fn remove(&self, key: &str) -> Result<(), SnapshotError>;
    /// Every snapshot.
    fn walk(&self) -> Result<Vec<Info>, SnapshotError>;
    /// Disk space and inodes the snapshot's own content uses.
    fn usage(&self, key: &str) -> Result<Usage, SnapshotError>;
    /// Where to write an active snapshot's files without mounting it.
    fn write_target(&self, key: &str) -> Result<WriteTarget, SnapshotError>;
    /// For drivers whose snapshots hold only their own changes (overlay): a new empty
    /// directory, on the snapshots' filesystem, where a layer can be unpacked before its
    /// parent is committed (so layers unpack in parallel). `None`: not supported.
    fn staging_dir(&self) -> Result<Option<WriteTarget>, SnapshotError> {
        Ok(None)
    }
    /// Removes leftover staging directories (of a crashed unpack); returns how many.
    fn clean_staging(&self) -> Result<usize, SnapshotError> {
        Ok(0)
    }
    /// Makes the content of a staging directory the content of active snapshot `key`
    /// (which must be empty), moving it there.
    fn adopt(&self, key: &str, staged: &Path) -> Result<(), SnapshotError> {
        let _ = staged;
        Err(SnapshotError::BadKey(format!(
            "{key} (this driver cannot adopt staged content)"
        )))
    }
    /// The overlay-style paths of a snapshot, for inspect.
    fn graph_driver(&self, key: &str) -> Result<GraphDriver, SnapshotError>;
}

/// Opens the snapshotter of `driver` (`overlay` or `vfs`) under `root`.
pub fn open(driver: &str, root: &Path) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    match driver {
        "overlay" | "overlayfs" | "overlay2" => {
            Ok(Box::new(overlay::Overlay::open(&root.join("overlay"))?))
        }
        "vfs" => Ok(Box::new(vfs::Vfs::open(&root.join("vfs"))?)),
        other => Err(SnapshotError::UnknownDriver(other.to_string())),
    }
}

pub(crate) fn check_key(key: &str) -> Result<(), SnapshotError> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::BadKey(key.to_string()))
    }
}

/// Sizes and inode counts of a directory tree (not following symlinks).
pub(crate) fn tree_usage(dir: &Path) -> Result<Usage, SnapshotError> {
    use std::os::unix::fs::MetadataExt;
    let mut usage = Usage::default();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(SnapshotError::io("reading", &d))? {
            let entry = entry.map_err(SnapshotError::io("reading", &d))?;
            let m = entry
                .metadata()
                .map_err(SnapshotError::io("stat", &entry.path()))?;
            if !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            usage.inodes += 1;
            usage.size += m.blocks() * 512;
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod testsuite;
