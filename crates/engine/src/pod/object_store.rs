//! A directory of records of named Kubernetes objects (Jobs, Deployments,
//! ReplicaSets): `<root>/<namespace>_<name>.json`, written durably, changed
//! under a per-object lock, with the object's controller log beside it.

use std::fs;
use std::io::ErrorKind;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::containers::{EngineError, io};

/// What a record is stored by.
pub trait Named {
    fn namespace(&self) -> &str;
    fn name(&self) -> &str;
}

/// The records of one kind of object.
#[derive(Debug)]
pub struct ObjectStore<T> {
    root: PathBuf,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for ObjectStore<T> {
    fn clone(&self) -> Self {
        ObjectStore {
            root: self.root.clone(),
            _records: PhantomData,
        }
    }
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}_{name}")
}

impl<T: Serialize + DeserializeOwned + Named> ObjectStore<T> {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ObjectStore {
            root: root.into(),
            _records: PhantomData,
        }
    }

    pub fn path(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(format!("{}.json", key(namespace, name)))
    }

    /// The object's controller log.
    pub fn log(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(format!("{}.log", key(namespace, name)))
    }

    fn lock_path(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(format!(".{}.lock", key(namespace, name)))
    }

    fn decode(path: &Path, data: &[u8]) -> Result<T, EngineError> {
        serde_json::from_slice(data)
            .map_err(|e| EngineError::Invalid(format!("record {}: {e}", path.display())))
    }

    pub fn load(&self, namespace: &str, name: &str) -> Result<Option<T>, EngineError> {
        let path = self.path(namespace, name);
        match fs::read(&path) {
            Ok(d) => Ok(Some(Self::decode(&path, &d)?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("record", &path)(e)),
        }
    }

    /// Writes `rec` (temp + fsync + rename).
    pub fn save(&self, rec: &T) -> Result<(), EngineError> {
        fs::create_dir_all(&self.root).map_err(io("records directory", &self.root))?;
        let path = self.path(rec.namespace(), rec.name());
        let data = serde_json::to_vec_pretty(rec).expect("a record always serializes");
        crate::durable::write(&path, &data, true).map_err(io("record", &path))
    }

    /// Read-modify-write under the record's lock; `change` gets None when
    /// there is no record yet and returns the record to save (None: save
    /// nothing).
    pub fn update<R>(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(Option<T>) -> (Option<T>, R),
    ) -> Result<R, EngineError> {
        fs::create_dir_all(&self.root).map_err(io("records directory", &self.root))?;
        let lock_path = self.lock_path(namespace, name);
        let _lock = crate::durable::lock(&lock_path).map_err(io("record lock", &lock_path))?;
        let (rec, out) = change(self.load(namespace, name)?);
        if let Some(rec) = rec {
            self.save(&rec)?;
        }
        Ok(out)
    }

    /// Every record, by namespace and name; unreadable ones are skipped.
    pub fn list(&self) -> Result<Vec<T>, EngineError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("records directory", &self.root)(e)),
        };
        let mut out: Vec<T> = entries
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.ends_with(".json") && !n.starts_with('.')
            })
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|d| serde_json::from_slice(&d).ok())
            .collect();
        out.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
        Ok(out)
    }

    /// Removes the record, its log and its lock.
    pub fn remove(&self, namespace: &str, name: &str) {
        let _ = fs::remove_file(self.path(namespace, name));
        let _ = fs::remove_file(self.log(namespace, name));
        let _ = fs::remove_file(self.lock_path(namespace, name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct R {
        ns: String,
        n: String,
        v: u32,
    }

    impl Named for R {
        fn namespace(&self) -> &str {
            &self.ns
        }
        fn name(&self) -> &str {
            &self.n
        }
    }

    #[test]
    fn update_load_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s: ObjectStore<R> = ObjectStore::new(dir.path().join("objs"));
        assert_eq!(s.load("default", "a").unwrap(), None);
        for (n, v) in [("b", 2), ("a", 1)] {
            s.update("default", n, |old| {
                assert!(old.is_none());
                (
                    Some(R {
                        ns: "default".into(),
                        n: n.into(),
                        v,
                    }),
                    (),
                )
            })
            .unwrap();
        }
        let names: Vec<_> = s.list().unwrap().into_iter().map(|r| r.n).collect();
        assert_eq!(names, ["a", "b"]);
        s.update("default", "a", |old| (old.map(|r| R { v: 9, ..r }), ()))
            .unwrap();
        assert_eq!(s.load("default", "a").unwrap().unwrap().v, 9);
        s.remove("default", "a");
        assert_eq!(s.list().unwrap().len(), 1);
    }
}
