//! Small helpers to read and write cgroup files with errors that name the file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::error::{CgroupError, Result};

/// One cgroup directory of one controller (or of the unified hierarchy).
#[derive(Debug, Clone)]
pub(crate) struct CgroupDir {
    pub(crate) path: PathBuf,
    /// Controller name used in "unsupported" errors ("memory", "cpu", ...).
    pub(crate) controller: &'static str,
}

impl CgroupDir {
    pub(crate) fn new(path: PathBuf, controller: &'static str) -> Self {
        Self { path, controller }
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        self.file(name).exists()
    }

    /// Write `value` to `name`. A missing file is an error naming `field`
    /// (the OCI field that asked for the write) and this directory's controller.
    pub(crate) fn set(&self, field: &str, name: &str, value: &str) -> Result<()> {
        let path = self.file(name);
        match write_file(&path, value) {
            Err(CgroupError::Write { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Err(CgroupError::Unsupported {
                    field: field.to_string(),
                    controller: self.controller.to_string(),
                    reason: format!(
                        "{} does not exist (the {} controller of this kernel lacks that knob, \
                         or the cgroup was not created)",
                        path.display(),
                        self.controller
                    ),
                })
            }
            other => other,
        }
    }

    /// Write without field context (bookkeeping files such as cgroup.freeze).
    pub(crate) fn write(&self, name: &str, value: &str) -> Result<()> {
        write_file(&self.file(name), value)
    }

    pub(crate) fn read(&self, name: &str) -> Result<String> {
        read_file(&self.file(name))
    }

    /// Read a file that may legitimately be missing.
    pub(crate) fn read_opt(&self, name: &str) -> Result<Option<String>> {
        let path = self.file(name);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CgroupError::Read { path, source }),
        }
    }

    /// Read a single number; "max" reads as `u64::MAX`.
    pub(crate) fn read_u64(&self, name: &str) -> Result<u64> {
        let path = self.file(name);
        parse_u64(&path, &read_file(&path)?)
    }

    /// Like `read_u64`, but a missing file reads as `None`.
    pub(crate) fn read_u64_opt(&self, name: &str) -> Result<Option<u64>> {
        let path = self.file(name);
        match self.read_opt(name)? {
            Some(s) => parse_u64(&path, &s).map(Some),
            None => Ok(None),
        }
    }

    /// Read a "key value" per line file into pairs; a missing file is empty.
    pub(crate) fn read_flat_keyed(&self, name: &str) -> Result<Vec<(String, u64)>> {
        let path = self.file(name);
        match self.read_opt(name)? {
            Some(s) => parse_flat_keyed(&path, &s),
            None => Ok(Vec::new()),
        }
    }
}

/// Write `value` in a single write(2), as cgroup files require.
pub(crate) fn write_file(path: &Path, value: &str) -> Result<()> {
    let result = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| {
        let hint = match source.raw_os_error() {
            Some(libc::EINVAL) => " (the kernel rejected the value: out of range or malformed)",
            Some(libc::EBUSY) => " (the cgroup is busy: it has processes or children)",
            Some(libc::EPERM) | Some(libc::EACCES) => {
                " (permission denied: the parent cgroup does not allow it or we are not root)"
            }
            Some(libc::ENOSPC) => " (no CPUs or memory nodes assigned, or limit reached)",
            Some(libc::EOPNOTSUPP) => " (not supported by this kernel)",
            _ => "",
        };
        CgroupError::Write {
            path: path.to_path_buf(),
            value: value.trim_end().to_string(),
            source,
            hint,
        }
    })
}

pub(crate) fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    // v1 reports "unlimited" as a huge signed value or -1 in some files.
    if t.starts_with('-') {
        return Ok(u64::MAX);
    }
    t.parse::<u64>().map_err(|e| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("expected a number, got {t:?}: {e}"),
    })
}

pub(crate) fn parse_flat_keyed(path: &Path, text: &str) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            return Err(CgroupError::Parse {
                path: path.to_path_buf(),
                reason: format!("expected \"key value\", got {line:?}"),
            });
        };
        out.push((k.to_string(), parse_u64(path, v)?));
    }
    Ok(out)
}

/// Look a key up in parsed flat-keyed pairs.
pub(crate) fn key(pairs: &[(String, u64)], k: &str) -> Option<u64> {
    pairs.iter().find(|(n, _)| n == k).map(|(_, v)| *v)
}

/// Pids listed in `dir/cgroup.procs` and in every descendant cgroup.
/// A missing `dir` yields no pids.
pub(crate) fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(s) => {
            for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let pid = line.parse::<i32>().map_err(|e| CgroupError::Parse {
                    path: procs.clone(),
                    reason: format!("bad pid {line:?}: {e}"),
                })?;
                out.push(pid);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: procs,
                source,
            });
        }
    }
    for child in subdirs(dir)? {
        procs_recursive(&child, out)?;
    }
    Ok(())
}

/// Child directories of `dir` (a missing `dir` has none).
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// mkdir -p; returns the directories that did not exist before (outermost first).
/// A parent removed concurrently (an unused parent being pruned) is made again.
pub(crate) fn create_dir_all(path: &Path) -> Result<Vec<PathBuf>> {
    let mut attempts = 0;
    loop {
        match create_dir_all_once(path) {
            Err(CgroupError::CreateDir { source, .. })
                if source.kind() == io::ErrorKind::NotFound && attempts < 5 =>
            {
                attempts += 1;
            }
            other => return other,
        }
    }
}

fn create_dir_all_once(path: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    missing.reverse();
    for dir in &missing {
        match fs::create_dir(dir) {
            Ok(()) => {}
            // Another runtime instance may create a shared parent concurrently.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::CreateDir {
                    path: dir.clone(),
                    source,
                });
            }
        }
    }
    Ok(missing)
}

/// Remove a cgroup directory and its descendant cgroups (deepest first),
/// retrying EBUSY (the kernel releases an emptied cgroup asynchronously).
/// A missing directory is fine.
pub(crate) fn remove_cgroup_dir(path: &Path, budget: Duration) -> Result<()> {
    for child in subdirs(path)? {
        remove_cgroup_dir(&child, budget)?;
    }
    let start = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < budget => {
                thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(CgroupError::RemoveDir {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// Write `pid` to `dir/cgroup.procs`, retrying EINVAL a few times (a task that
/// is still being forked cannot be moved yet).
pub(crate) fn add_pid(dir: &Path, pid: i32) -> Result<()> {
    let path = dir.join("cgroup.procs");
    let mut last = None;
    for _ in 0..5 {
        let r = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(pid.to_string().as_bytes()));
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                last = Some(e);
                thread::sleep(Duration::from_millis(30));
            }
            Err(source) => return Err(CgroupError::AddProcess { pid, path, source }),
        }
    }
    Err(CgroupError::AddProcess {
        pid,
        path,
        source: last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)),
    })
}

/// Join a hierarchy mount point with a cgroup path given relative to it
/// (a leading "/" in `rel` is ignored, not treated as the filesystem root).
pub(crate) fn join(mount: &Path, rel: &Path) -> PathBuf {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    if rel.as_os_str().is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_missing_file_names_field_and_controller() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CgroupDir::new(tmp.path().to_path_buf(), "blkio");
        let err = dir
            .set("blockIO.weight", "blkio.weight", "100")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("linux.resources.blockIO.weight"), "{msg}");
        assert!(msg.contains("blkio.weight"), "{msg}");
        assert!(
            !tmp.path().join("blkio.weight").exists(),
            "must not create files"
        );
    }

    #[test]
    fn parses_numbers_and_keyed_files() {
        let p = Path::new("/x");
        assert_eq!(parse_u64(p, "max\n").unwrap(), u64::MAX);
        assert_eq!(parse_u64(p, "-1").unwrap(), u64::MAX);
        assert_eq!(parse_u64(p, " 42\n").unwrap(), 42);
        assert!(parse_u64(p, "abc").is_err());
        let kv = parse_flat_keyed(p, "oom 1\noom_kill 3\n").unwrap();
        assert_eq!(key(&kv, "oom_kill"), Some(3));
        assert!(parse_flat_keyed(p, "a b c").is_err());
    }

    #[test]
    fn join_ignores_leading_slash() {
        assert_eq!(
            join(Path::new("/sys/fs/cgroup/memory"), Path::new("/pea/a")),
            PathBuf::from("/sys/fs/cgroup/memory/pea/a")
        );
        assert_eq!(join(Path::new("/m"), Path::new("/")), PathBuf::from("/m"));
    }

    #[test]
    fn create_and_remove_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let leaf = tmp.path().join("a/b/c");
        let created = create_dir_all(&leaf).unwrap();
        assert_eq!(created.len(), 3);
        assert_eq!(created[0], tmp.path().join("a"));
        assert!(create_dir_all(&leaf).unwrap().is_empty());
        fs::create_dir(leaf.join("child")).unwrap();
        remove_cgroup_dir(&leaf, Duration::from_millis(10)).unwrap();
        assert!(!leaf.exists());
        remove_cgroup_dir(&leaf, Duration::from_millis(10)).unwrap();
    }
}
