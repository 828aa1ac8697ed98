//! User-namespace id mappings: the allocator of private host id ranges for
//! `--userns auto`, and the `--userns keep-id` mapping.
//!
//! Auto: each container gets 65536 host ids (the same range for uids and
//! gids) starting at `100000 + k * 65536`, k < [`MAX_RANGES`]. A range is
//! claimed by creating the file `<dir>/<start>` with `create_new` (atomic
//! between engines sharing the directory); the file holds the container id.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::request::UsernsMode;

/// Ids per container.
pub const RANGE_SIZE: u32 = 65536;
/// The first host id handed out.
pub const FIRST_HOST_ID: u32 = 100_000;
/// How many ranges the allocator hands out at most.
pub const MAX_RANGES: u32 = 1000;

/// One line of a uid_map/gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// The uid and gid mappings of a user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl IdMapping {
    /// The same single range for uids and gids.
    pub fn uniform(container_id: u32, host_id: u32, size: u32) -> Self {
        let r = IdRange {
            container_id,
            host_id,
            size,
        };
        IdMapping {
            uids: vec![r],
            gids: vec![r],
        }
    }

    /// The host uid that container uid `id` is, if mapped.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        map(&self.uids, id)
    }

    /// The host gid that container gid `id` is, if mapped.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        map(&self.gids, id)
    }

    /// Gives the new user namespace of process `pid` these mappings (as
    /// root, from the parent user namespace).
    pub fn write_for(&self, pid: i32) -> std::io::Result<()> {
        let text = |ranges: &[IdRange]| {
            ranges
                .iter()
                .map(|r| format!("{} {} {}\n", r.container_id, r.host_id, r.size))
                .collect::<String>()
        };
        fs::write(format!("/proc/{pid}/uid_map"), text(&self.uids))?;
        fs::write(format!("/proc/{pid}/gid_map"), text(&self.gids))
    }
}

fn map(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.container_id && id - r.container_id < r.size)
        .map(|r| r.host_id + (id - r.container_id))
}

/// `--userns keep-id` for the caller `uid`/`gid` (use
/// [`keep_id_for_caller`] for this process). Kept simple:
/// * as root (0/0): container ids 0..65536 map to the same host ids, so the
///   caller's id is itself inside (a user namespace, not id isolation);
/// * otherwise: only the caller's id, mapped to itself (an unprivileged
///   process may map just its own id; more needs newuidmap and /etc/subuid,
///   which this does not use).
pub fn keep_id(uid: u32, gid: u32) -> IdMapping {
    let one = |id: u32| {
        if id == 0 {
            IdRange {
                container_id: 0,
                host_id: 0,
                size: RANGE_SIZE,
            }
        } else {
            IdRange {
                container_id: id,
                host_id: id,
                size: 1,
            }
        }
    };
    IdMapping {
        uids: vec![one(uid)],
        gids: vec![one(gid)],
    }
}

/// [`keep_id`] for this process's real uid and gid.
pub fn keep_id_for_caller() -> IdMapping {
    keep_id(
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("--userns auto: all {MAX_RANGES} id ranges are in use; remove containers to free some")]
    Exhausted,
    #[error("--userns auto: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The allocator of `--userns auto` ranges over one directory.
#[derive(Debug, Clone)]
pub struct UsernsAllocator {
    dir: PathBuf,
}

impl UsernsAllocator {
    /// The allocator over `dir` (usually `Paths::userns()`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        UsernsAllocator { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The range of `container_id`: the one it already holds, else the
    /// first free one, claimed atomically.
    pub fn allocate(&self, container_id: &str) -> Result<IdMapping, UsernsError> {
        if let Some(start) = self.start_of(container_id)? {
            return Ok(IdMapping::uniform(0, start, RANGE_SIZE));
        }
        fs::create_dir_all(&self.dir).map_err(|source| UsernsError::Io {
            what: "creating",
            path: self.dir.clone(),
            source,
        })?;
        for k in 0..MAX_RANGES {
            let start = FIRST_HOST_ID + k * RANGE_SIZE;
            let path = self.dir.join(start.to_string());
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(container_id.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|source| UsernsError::Io {
                            what: "writing",
                            path: path.clone(),
                            source,
                        })?;
                    return Ok(IdMapping::uniform(0, start, RANGE_SIZE));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(UsernsError::Io {
                        what: "claiming",
                        path,
                        source,
                    });
                }
            }
        }
        Err(UsernsError::Exhausted)
    }

    /// Frees every range `container_id` holds (none is fine).
    pub fn release(&self, container_id: &str) -> Result<(), UsernsError> {
        for (start, owner) in self.claims()? {
            if owner == container_id {
                let path = self.dir.join(start.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(UsernsError::Io {
                            what: "releasing",
                            path,
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The container holding the range that starts at host id `start`.
    pub fn owner_of(&self, start: u32) -> Option<String> {
        fs::read_to_string(self.dir.join(start.to_string())).ok()
    }

    /// The start of the range `container_id` holds.
    pub fn start_of(&self, container_id: &str) -> Result<Option<u32>, UsernsError> {
        Ok(self
            .claims()?
            .into_iter()
            .find(|(_, owner)| owner == container_id)
            .map(|(s, _)| s))
    }

    fn claims(&self) -> Result<Vec<(u32, String)>, UsernsError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(UsernsError::Io {
                    what: "listing",
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let Some(start) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(owner) = self.owner_of(start) {
                out.push((start, owner));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The mapping `--userns MODE` gives container `container_id`: none for
/// host, a claimed range for auto, the caller's ids for keep-id.
pub fn mapping_for(
    mode: UsernsMode,
    allocator: &UsernsAllocator,
    container_id: &str,
) -> Result<Option<IdMapping>, UsernsError> {
    Ok(match mode {
        UsernsMode::Host => None,
        UsernsMode::Auto => Some(allocator.allocate(container_id)?),
        UsernsMode::KeepId => Some(keep_id_for_caller()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_release_reuse() {
        let d = tempfile::tempdir().unwrap();
        let a = UsernsAllocator::new(d.path().join("userns"));
        let m1 = a.allocate("c1").unwrap();
        assert_eq!(m1, IdMapping::uniform(0, 100_000, 65536));
        assert_eq!(a.allocate("c1").unwrap(), m1, "idempotent");
        let m2 = a.allocate("c2").unwrap();
        assert_eq!(m2.uids[0].host_id, 165_536);
        assert_eq!(a.owner_of(165_536).as_deref(), Some("c2"));
        assert_eq!(a.start_of("c1").unwrap(), Some(100_000));
        a.release("c1").unwrap();
        assert_eq!(a.owner_of(100_000), None);
        a.release("c1").unwrap();
        let m3 = a.allocate("c3").unwrap();
        assert_eq!(m3.uids[0].host_id, 100_000, "the freed range is reused");
        assert_eq!(m3.host_uid(0), Some(100_000));
        assert_eq!(m3.host_gid(65535), Some(165_535));
        assert_eq!(m3.host_uid(65536), None);
    }

    #[test]
    fn modes() {
        let d = tempfile::tempdir().unwrap();
        let a = UsernsAllocator::new(d.path());
        assert_eq!(mapping_for(UsernsMode::Host, &a, "c").unwrap(), None);
        let m = mapping_for(UsernsMode::Auto, &a, "c").unwrap().unwrap();
        assert_eq!(m.host_uid(0), Some(FIRST_HOST_ID));
        assert_eq!(
            mapping_for(UsernsMode::KeepId, &a, "c").unwrap(),
            Some(keep_id_for_caller())
        );
    }

    #[test]
    fn exhausted() {
        let d = tempfile::tempdir().unwrap();
        for k in 0..MAX_RANGES {
            fs::write(
                d.path().join((FIRST_HOST_ID + k * RANGE_SIZE).to_string()),
                "x",
            )
            .unwrap();
        }
        let a = UsernsAllocator::new(d.path());
        assert!(matches!(a.allocate("y"), Err(UsernsError::Exhausted)));
    }

    #[test]
    fn keep_id_maps_the_caller_to_itself() {
        let root = keep_id(0, 0);
        assert_eq!(root.host_uid(0), Some(0));
        assert_eq!(root.host_uid(1000), Some(1000));
        let user = keep_id(1000, 100);
        assert_eq!(user.host_uid(1000), Some(1000));
        assert_eq!(user.host_gid(100), Some(100));
        assert_eq!(user.host_uid(0), None);
        let me = keep_id_for_caller();
        let uid = nix::unistd::getuid().as_raw();
        assert_eq!(me.host_uid(uid), Some(uid));
    }
}
