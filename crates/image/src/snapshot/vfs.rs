//! The vfs snapshotter: every snapshot is a full copy of its parent in `fs/`. Slow and
//! large, but it needs nothing from the kernel or the filesystem beyond bind mounts.

use std::fs;
use std::path::Path;

use super::meta::MetaStore;
use super::{GraphDriver, Info, Kind, Mount, SnapshotError, Snapshotter, Usage, WriteTarget, copy};
use crate::unpack::Whiteouts;

pub struct Vfs {
    meta: MetaStore,
}

impl Vfs {
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        Ok(Vfs {
            meta: MetaStore::open(root)?,
        })
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<Vec<Mount>, SnapshotError> {
        let (id, parent_id) = self.meta.update(|t| {
            let parent_id = parent.map(|p| t.get(p).map(|r| r.id)).transpose()?;
            Ok((t.add(key, parent, kind)?, parent_id))
        })?;
        let dest = self.meta.fs_dir(id);
        let made = match parent_id {
            Some(pid) => copy::copy_tree(&self.meta.fs_dir(pid), &dest),
            None => fs::create_dir_all(&dest).map_err(SnapshotError::io("creating", &dest)),
        };
        if let Err(e) = made {
            let _ = self.meta.remove(key);
            return Err(e);
        }
        self.mounts(key)
    }
}

impl Snapshotter for Vfs {
    fn driver(&self) -> &'static str {
        "vfs"
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
        let r = self.meta.read(|t| Ok(t.get(key)?.clone()))?;
        Ok(vec![Mount::bind(
            &self.meta.fs_dir(r.id),
            r.kind != Kind::Active,
        )])
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
            whiteouts: Whiteouts::Apply,
        })
    }

    fn graph_driver(&self, key: &str) -> Result<GraphDriver, SnapshotError> {
        let id = self.meta.read(|t| Ok(t.get(key)?.id))?;
        let mut data = std::collections::BTreeMap::new();
        data.insert("Dir".into(), self.meta.fs_dir(id).display().to_string());
        Ok(GraphDriver {
            name: "vfs".into(),
            data,
        })
    }
}
