//! After a crash: network attachments, namespaces, mounts and runtime state
//! whose container record is gone are released, and records whose
//! processes are all gone are marked exited. Root filesystem mounts,
//! snapshots (`ctr-<id>`) and attach sockets left by a container whose
//! record is gone are removed too.

use std::collections::HashSet;
use std::path::PathBuf;

use peapod_image::snapshot::mount;

use super::{Engine, EngineError, Status};
use crate::record::{State, validate_id};

/// How old a record-less container directory must be to be removed.
const FRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// What `reconcile` cleaned.
#[derive(Debug, Default, Clone)]
pub struct Reconciled {
    /// Network attachments released.
    pub networks: Vec<String>,
    /// Runtime containers deleted.
    pub runtime: Vec<String>,
    /// Records marked exited (their processes were gone).
    pub records: Vec<String>,
    /// Root filesystem mounts (and their directories) without a record.
    pub mounts: Vec<PathBuf>,
    /// Container snapshots without a record.
    pub snapshots: Vec<String>,
    /// Attach sockets without a record.
    pub sockets: Vec<PathBuf>,
}

impl Engine {
    /// Releases what no record owns any more, and settles records whose
    /// supervisor, monitor and process all died.
    pub fn reconcile(&self) -> Result<Reconciled, EngineError> {
        let records = self.store.list()?;
        let live: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut out = Reconciled {
            networks: self.networks.reconcile(&|id| live.contains(id))?,
            ..Default::default()
        };
        for c in self.runtime.list().unwrap_or_default() {
            if !live.contains(&c.id) {
                let _ = self.runtime.delete(&c.id, true);
                out.runtime.push(c.id);
            }
        }
        for r in &records {
            let view = self.view(r);
            if matches!(r.state, State::Running { .. } | State::Restarting { .. })
                && let Status::Exited {
                    code,
                    oom_killed,
                    finished_at,
                } = view.status
            {
                let _ = self.runtime.delete(&r.id, true);
                self.store.update(&r.id, |rec| {
                    rec.state = State::Exited {
                        code,
                        oom_killed,
                        finished_at,
                    };
                    rec.monitor = None;
                    rec.supervisor = None;
                })?;
                out.records.push(r.id.clone());
            }
        }
        out.mounts = self.reconcile_rootfs(&live)?;
        out.snapshots = self.reconcile_snapshots(&live)?;
        out.sockets = self.reconcile_sockets(&live);
        Ok(out)
    }

    /// Unmounts `<containers>/<id>/rootfs` (and `shm`) of ids without a record, then
    /// removes such directories once nothing is mounted under them.
    fn reconcile_rootfs(&self, live: &HashSet<String>) -> Result<Vec<PathBuf>, EngineError> {
        let root = self.store.root();
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let mut out = Vec::new();
        for target in mount_points() {
            let Ok(rest) = target.strip_prefix(&root) else {
                continue;
            };
            let mut parts = rest.components();
            let (Some(id), Some(leaf), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let id = id.as_os_str().to_string_lossy();
            if (leaf.as_os_str() == "rootfs" || leaf.as_os_str() == "shm")
                && validate_id(&id).is_ok()
                && !live.contains(&*id)
                && self.store.load(&id).is_err()
            {
                mount::unmount(&target).map_err(peapod_image::ImageError::from)?;
                out.push(target);
            }
        }
        // Directories of records deleted by hand or half removed.
        let mounted = mount_points();
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            // A directory younger than FRESH may be a `create` between
            // making it and writing its record (one whose root filesystem
            // was mounted had its record: it is a leftover at any age).
            let unmounted_here = out.iter().any(|m| m.starts_with(&dir));
            let young = !unmounted_here
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|age| age < FRESH);
            if validate_id(&name).is_err()
                || live.contains(&name)
                || young
                || self.store.load(&name).is_ok()
                || mounted.iter().any(|m| m.starts_with(&dir))
            {
                continue;
            }
            if std::fs::remove_dir_all(&dir).is_ok() && !out.iter().any(|m| m.starts_with(&dir)) {
                out.push(dir);
            }
        }
        Ok(out)
    }

    /// Removes snapshots `ctr-<id>` whose record is gone.
    fn reconcile_snapshots(&self, live: &HashSet<String>) -> Result<Vec<String>, EngineError> {
        let images = self.images()?;
        let mut out = Vec::new();
        for info in images
            .snapshots()
            .walk()
            .map_err(peapod_image::ImageError::from)?
        {
            let Some(id) = info.key.strip_prefix("ctr-") else {
                continue;
            };
            if validate_id(id).is_ok() && !live.contains(id) && self.store.load(id).is_err() {
                match images.snapshots().remove(&info.key) {
                    Ok(()) | Err(peapod_image::snapshot::SnapshotError::NotFound(_)) => {
                        out.push(info.key)
                    }
                    Err(e) => return Err(peapod_image::ImageError::from(e).into()),
                }
            }
        }
        Ok(out)
    }

    /// Removes attach sockets (`<id prefix>.sock`) of no record.
    fn reconcile_sockets(&self, live: &HashSet<String>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let dir = self.paths.sockets();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(prefix) = name.strip_suffix(".sock") else {
                continue;
            };
            let owned = live.iter().any(|id| id.starts_with(prefix))
                || self
                    .store
                    .list()
                    .is_ok_and(|all| all.iter().any(|r| r.id.starts_with(prefix)));
            if !owned && std::fs::remove_file(entry.path()).is_ok() {
                out.push(entry.path());
            }
        }
        out
    }
}

/// Every mount point of this mount namespace, deepest last.
fn mount_points() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

/// Mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
