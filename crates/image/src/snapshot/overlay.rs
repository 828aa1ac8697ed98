//! The overlay snapshotter: each snapshot directory holds `fs/` (its own changes: a layer,
//! or a container's upperdir) and `work/` (overlay's workdir). Committed snapshots are
//! never written again; an active one is mounted as overlay of its ancestors' `fs/`
//! (top first) under its own `fs/` as upperdir.

use std::fs;
use std::path::{Path, PathBuf};

use super::meta::{MetaStore, Table};
use super::{GraphDriver, Info, Kind, Mount, SnapshotError, Snapshotter, Usage, WriteTarget};
use crate::unpack::Whiteouts;

pub struct Overlay {
    meta: MetaStore,
}

impl Overlay {
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        Ok(Overlay {
            meta: MetaStore::open(root)?,
        })
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<Vec<Mount>, SnapshotError> {
        let id = self.meta.update(|t| t.add(key, parent, kind))?;
        let dir = self.meta.dir(id);
        let made =
            fs::create_dir_all(dir.join("fs")).and_then(|()| fs::create_dir_all(dir.join("work")));
        if let Err(e) = made {
            let _ = self.meta.remove(key);
            return Err(SnapshotError::io("creating", &dir)(e));
        }
        self.mounts(key)
    }

    fn mounts_of(&self, t: &Table, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let r = t.get(key)?;
        let lowers: Vec<PathBuf> = t
            .parent_ids(key)?
            .into_iter()
            .map(|id| self.meta.fs_dir(id))
            .collect();
        let join = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":")
        };
        Ok(match r.kind {
            Kind::Active if lowers.is_empty() => vec![Mount::bind(&self.meta.fs_dir(r.id), false)],
            Kind::Active => vec![Mount {
                typ: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    "index=off".into(),
                    format!("workdir={}", self.meta.dir(r.id).join("work").display()),
                    format!("upperdir={}", self.meta.fs_dir(r.id).display()),
                    format!("lowerdir={}", join(&lowers)),
                ],
            }],
            _ if lowers.is_empty() => vec![Mount::bind(&self.meta.fs_dir(r.id), true)],
            _ if lowers.len() == 1 => vec![Mount::bind(&lowers[0], true)],
            _ => vec![Mount {
                typ: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    "ro".into(),
                    "index=off".into(),
                    format!("lowerdir={}", join(&lowers)),
                ],
            }],
        })
    }
}

impl Snapshotter for Overlay {
    fn driver(&self) -> &'static str {
        "overlay"
    }

    fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        self.meta.read(|t| t.info(key))
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::Active)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::View)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        self.meta.read(|t| self.mounts_of(t, key))
    }

    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        self.meta.commit(name, key)
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        self.meta.remove(key)
    }

    fn walk(&self) -> Result<Vec<Info>, SnapshotError> {
        self.meta.walk()
    }

    fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        self.meta.usage(key)
    }

    fn write_target(&self, key: &str) -> Result<WriteTarget, SnapshotError> {
        let id = self.meta.read(|t| Ok(t.active(key)?.id))?;
        Ok(WriteTarget {
            dir: self.meta.fs_dir(id),
            whiteouts: Whiteouts::Overlay,
        })
    }

    fn staging_dir(&self) -> Result<Option<WriteTarget>, SnapshotError> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self
            .meta
            .staging()
            .join(format!("{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).map_err(SnapshotError::io("creating", &dir))?;
        Ok(Some(WriteTarget {
            dir,
            whiteouts: Whiteouts::Overlay,
        }))
    }

    fn clean_staging(&self) -> Result<usize, SnapshotError> {
        let dir = self.meta.staging();
        let mut n = 0;
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                fs::remove_dir_all(e.path()).map_err(SnapshotError::io("removing", &e.path()))?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn adopt(&self, key: &str, staged: &Path) -> Result<(), SnapshotError> {
        let target = self.write_target(key)?.dir;
        // The empty fs/ of the new snapshot is replaced by the staged tree (same filesystem).
        fs::remove_dir(&target).map_err(SnapshotError::io("replacing", &target))?;
        fs::rename(staged, &target).map_err(SnapshotError::io("moving staged layer to", &target))
    }

    fn graph_driver(&self, key: &str) -> Result<GraphDriver, SnapshotError> {
        self.meta.read(|t| {
            let r = t.get(key)?;
            let lowers: Vec<String> = t
                .parent_ids(key)?
                .into_iter()
                .map(|id| self.meta.fs_dir(id).to_string_lossy().into_owned())
                .collect();
            let mut data = std::collections::BTreeMap::new();
            let dir = self.meta.dir(r.id);
            if r.kind == Kind::Committed {
                data.insert("UpperDir".into(), dir.join("fs").display().to_string());
            } else {
                data.insert("UpperDir".into(), dir.join("fs").display().to_string());
                data.insert("WorkDir".into(), dir.join("work").display().to_string());
                data.insert("MergedDir".into(), dir.join("merged").display().to_string());
            }
            if !lowers.is_empty() {
                data.insert("LowerDir".into(), lowers.join(":"));
            }
            Ok(GraphDriver {
                name: "overlay".into(),
                data,
            })
        })
    }
}
