//! Snapshot metadata shared by the drivers: `<root>/metadata.json`, changed under an
//! exclusive lock and replaced atomically (temp + fsync + rename).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::{Info, Kind, SnapshotError, check_key};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    pub kind: Kind,
    pub parent: Option<String>,
    pub created: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Table {
    pub next_id: u64,
    pub snapshots: BTreeMap<String, Record>,
}

impl Table {
    pub fn get(&self, key: &str) -> Result<&Record, SnapshotError> {
        self.snapshots
            .get(key)
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))
    }

    /// `key`'s record, which must be an active (writable) snapshot.
    pub fn active(&self, key: &str) -> Result<&Record, SnapshotError> {
        let r = self.get(key)?;
        if r.kind != Kind::Active {
            return Err(SnapshotError::WrongKind {
                key: key.to_string(),
                actual: r.kind,
                wanted: Kind::Active,
            });
        }
        Ok(r)
    }

    /// The ids of `key`'s committed ancestors, nearest first.
    pub fn parent_ids(&self, key: &str) -> Result<Vec<u64>, SnapshotError> {
        let mut out = Vec::new();
        let mut cur = self.get(key)?.parent.clone();
        while let Some(p) = cur {
            let r = self.get(&p)?;
            out.push(r.id);
            cur = r.parent.clone();
        }
        Ok(out)
    }

    pub fn info(&self, key: &str) -> Result<Info, SnapshotError> {
        let r = self.get(key)?;
        Ok(Info {
            key: key.to_string(),
            parent: r.parent.clone(),
            kind: r.kind,
            created: r.created,
        })
    }

    /// Adds a new snapshot record; checks the key and that the parent is committed.
    pub fn add(
        &mut self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<u64, SnapshotError> {
        check_key(key)?;
        if self.snapshots.contains_key(key) {
            return Err(SnapshotError::AlreadyExists(key.to_string()));
        }
        if let Some(p) = parent {
            let pr = self.get(p)?;
            if pr.kind != Kind::Committed {
                return Err(SnapshotError::WrongKind {
                    key: p.to_string(),
                    actual: pr.kind,
                    wanted: Kind::Committed,
                });
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        self.snapshots.insert(
            key.to_string(),
            Record {
                id,
                kind,
                parent: parent.map(str::to_string),
                created: now(),
            },
        );
        Ok(id)
    }

    pub fn children(&self, key: &str) -> Vec<String> {
        self.snapshots
            .iter()
            .filter(|(_, r)| r.parent.as_deref() == Some(key))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The metadata file and its lock.
#[derive(Clone, Debug)]
pub struct MetaStore {
    root: PathBuf,
}

impl MetaStore {
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        let snaps = root.join("snapshots");
        fs::create_dir_all(&snaps).map_err(SnapshotError::io("creating", &snaps))?;
        Ok(MetaStore {
            root: root.to_path_buf(),
        })
    }

    /// Where layers are unpacked before they become snapshots; emptied by GC.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// The snapshot's filesystem tree (both drivers keep it at `<dir>/fs`).
    pub fn fs_dir(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// Disk usage of `key`'s own tree.
    pub fn usage(&self, key: &str) -> Result<super::Usage, SnapshotError> {
        let id = self.read(|t| Ok(t.get(key)?.id))?;
        super::tree_usage(&self.fs_dir(id))
    }

    pub fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    fn path(&self) -> PathBuf {
        self.root.join("metadata.json")
    }

    fn lock(&self) -> Result<Flock<File>, SnapshotError> {
        let p = self.root.join("metadata.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(SnapshotError::io("opening", &p))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| SnapshotError::io("locking", &p)(e.into()))
    }

    fn load(&self) -> Result<Table, SnapshotError> {
        let p = self.path();
        match fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data)
                .map_err(|source| SnapshotError::Metadata { path: p, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Table::default()),
            Err(e) => Err(SnapshotError::io("reading", &p)(e)),
        }
    }

    fn save(&self, t: &Table) -> Result<(), SnapshotError> {
        let p = self.path();
        let tmp = self.root.join("metadata.json.tmp");
        let data = serde_json::to_vec_pretty(t).map_err(|source| SnapshotError::Metadata {
            path: p.clone(),
            source,
        })?;
        let mut f = File::create(&tmp).map_err(SnapshotError::io("writing", &tmp))?;
        f.write_all(&data)
            .map_err(SnapshotError::io("writing", &tmp))?;
        f.sync_all().map_err(SnapshotError::io("syncing", &tmp))?;
        fs::rename(&tmp, &p).map_err(SnapshotError::io("renaming", &p))
    }

    /// Reads the table under the lock.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Table) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        let _lock = self.lock()?;
        f(&self.load()?)
    }

    /// Changes the table under the lock; saved only if `f` succeeds.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut Table) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        let _lock = self.lock()?;
        let mut t = self.load()?;
        let out = f(&mut t)?;
        self.save(&t)?;
        Ok(out)
    }

    /// Generic remove: checks children, drops the record, then deletes the directory.
    pub fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let id = self.update(|t| {
            let id = t.get(key)?.id;
            let children = t.children(key);
            if !children.is_empty() {
                return Err(SnapshotError::HasChildren(
                    key.to_string(),
                    children.join(", "),
                ));
            }
            t.snapshots.remove(key);
            Ok(id)
        })?;
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SnapshotError::io("removing", &dir)(e)),
        }
    }

    pub fn walk(&self) -> Result<Vec<Info>, SnapshotError> {
        self.read(|t| t.snapshots.keys().map(|k| t.info(k)).collect())
    }

    pub fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        self.update(|t| {
            check_key(name)?;
            let r = t.get(key)?.clone();
            if r.kind != Kind::Active {
                return Err(SnapshotError::WrongKind {
                    key: key.to_string(),
                    actual: r.kind,
                    wanted: Kind::Active,
                });
            }
            if t.snapshots.contains_key(name) {
                return Err(SnapshotError::AlreadyExists(name.to_string()));
            }
            t.snapshots.remove(key);
            t.snapshots.insert(
                name.to_string(),
                Record {
                    kind: Kind::Committed,
                    ..r
                },
            );
            Ok(())
        })
    }
}
