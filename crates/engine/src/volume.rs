//! Named and anonymous volumes: a directory per volume under
//! `Paths::volumes()`, its data in `<name>/_data`, its metadata in
//! `<name>/volume.json` (written temp + fsync + rename).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::request_parse::valid_volume_name;

const META: &str = "volume.json";
const DATA: &str = "_data";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid volume name {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+ (2 or more characters)")]
    BadName(String),
    #[error("no such volume: {0} (list them with `peapod volume ls`)")]
    NotFound(String),
    #[error("volume {name} is in use by container {container}: remove the container first (or -f)")]
    InUse { name: String, container: String },
    #[error("volume {name}: {what} {path}: {source}")]
    Io {
        name: String,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("volume {name}: {path} is not valid volume metadata: {reason}; remove the directory")]
    Corrupt {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

/// A volume as `peapod volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// The directory containers see (`<volumes>/<name>/_data`).
    pub mountpoint: PathBuf,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub anonymous: bool,
}

/// The volumes of one engine.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    root: PathBuf,
}

impl VolumeStore {
    /// The store under `root` (usually `Paths::volumes()`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        VolumeStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The data directory of `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name).join(DATA)
    }

    /// Creates a volume (a random 64-hex name when `name` is None: an
    /// anonymous volume). Creating a named volume that exists returns it
    /// unchanged, as Docker does.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        let (name, anonymous) = match name {
            Some(n) => {
                if !valid_volume_name(n) {
                    return Err(VolumeError::BadName(n.into()));
                }
                (n.to_string(), false)
            }
            None => (random_name(&self.root)?, true),
        };
        let io = |what, path: &Path| {
            let (name, path) = (name.clone(), path.to_path_buf());
            move |source| VolumeError::Io {
                name,
                what,
                path,
                source,
            }
        };
        fs::create_dir_all(&self.root).map_err(io("creating", &self.root))?;
        let dir = self.root.join(&name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Ok(v) = self.get(&name) {
                    return Ok(v);
                }
                // A half-created volume (no metadata yet): finish it.
            }
            Err(e) => return Err(io("creating", &dir)(e)),
        }
        let data = dir.join(DATA);
        match fs::create_dir(&data) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("creating", &data)(e)),
        }
        let vol = Volume {
            name: name.clone(),
            created: crate::time::format_rfc3339_nano(SystemTime::now()),
            mountpoint: data,
            labels,
            anonymous,
        };
        let meta = dir.join(META);
        let tmp = dir.join(format!(".{META}.tmp"));
        let bytes = serde_json::to_vec_pretty(&vol).unwrap_or_default();
        let mut f = File::create(&tmp).map_err(io("writing", &tmp))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(io("writing", &tmp))?;
        fs::rename(&tmp, &meta).map_err(io("writing", &meta))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", &dir))?;
        Ok(vol)
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        if !valid_volume_name(name) {
            return Err(VolumeError::BadName(name.into()));
        }
        let path = self.root.join(name).join(META);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.into()));
            }
            Err(source) => {
                return Err(VolumeError::Io {
                    name: name.into(),
                    what: "reading",
                    path,
                    source,
                });
            }
        };
        serde_json::from_slice(&data).map_err(|e| VolumeError::Corrupt {
            name: name.into(),
            path,
            reason: e.to_string(),
        })
    }

    /// Every volume, sorted by name (directories without metadata skipped).
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(VolumeError::Io {
                    name: "*".into(),
                    what: "listing",
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            match self.get(&name) {
                Ok(v) => out.push(v),
                Err(VolumeError::NotFound(_) | VolumeError::BadName(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes `name` and its data. `in_use` names the containers using it:
    /// without `force` a volume in use is refused.
    pub fn remove(&self, name: &str, force: bool, in_use: &[String]) -> Result<(), VolumeError> {
        self.get(name)?;
        if !force && let Some(c) = in_use.first() {
            return Err(VolumeError::InUse {
                name: name.into(),
                container: c.clone(),
            });
        }
        let dir = self.root.join(name);
        // Drop the metadata first so a half-removed volume is not listed.
        let meta = dir.join(META);
        fs::remove_file(&meta).map_err(|source| VolumeError::Io {
            name: name.into(),
            what: "removing",
            path: meta,
            source,
        })?;
        fs::remove_dir_all(&dir).map_err(|source| VolumeError::Io {
            name: name.into(),
            what: "removing",
            path: dir,
            source,
        })
    }
}

fn random_name(root: &Path) -> Result<String, VolumeError> {
    crate::record::new_id().map_err(|e| VolumeError::Io {
        name: "(anonymous)".into(),
        what: "naming",
        path: root.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, VolumeStore) {
        let d = tempfile::tempdir().unwrap();
        let s = VolumeStore::new(d.path().join("volumes"));
        (d, s)
    }

    #[test]
    fn create_get_list_remove() {
        let (_d, s) = store();
        assert!(s.list().unwrap().is_empty());
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "b".to_string());
        let v = s.create(Some("data"), labels.clone()).unwrap();
        assert_eq!(v.name, "data");
        assert!(!v.anonymous);
        assert_eq!(v.mountpoint, s.path("data"));
        assert!(s.path("data").is_dir());
        assert!(v.created.ends_with('Z'));
        assert_eq!(s.get("data").unwrap(), v);
        // Creating again returns the same volume.
        assert_eq!(s.create(Some("data"), BTreeMap::new()).unwrap(), v);
        let a = s.create(None, BTreeMap::new()).unwrap();
        assert!(a.anonymous);
        assert_eq!(a.name.len(), 64);
        let names: Vec<_> = s.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"data".to_string()));
        s.remove("data", false, &[]).unwrap();
        assert!(matches!(s.get("data"), Err(VolumeError::NotFound(_))));
        assert!(!s.root().join("data").exists());
    }

    #[test]
    fn in_use_needs_force() {
        let (_d, s) = store();
        s.create(Some("v1"), BTreeMap::new()).unwrap();
        let users = vec!["web".to_string()];
        let e = s.remove("v1", false, &users).unwrap_err().to_string();
        assert_eq!(
            e,
            "volume v1 is in use by container web: remove the container first (or -f)"
        );
        s.remove("v1", true, &users).unwrap();
    }

    #[test]
    fn bad_names_and_missing() {
        let (_d, s) = store();
        for bad in ["a", "-x", "a/b", "..", "a b"] {
            assert!(matches!(
                s.create(Some(bad), BTreeMap::new()),
                Err(VolumeError::BadName(_))
            ));
        }
        assert!(matches!(s.get("nope"), Err(VolumeError::NotFound(_))));
        assert!(matches!(
            s.remove("nope", true, &[]),
            Err(VolumeError::NotFound(_))
        ));
        // A stray directory without metadata is not listed.
        fs::create_dir_all(s.root().join("stray")).unwrap();
        assert!(s.list().unwrap().is_empty());
    }
}
