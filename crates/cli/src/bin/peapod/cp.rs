//! `peapod cp`: files and directories between a container's root
//! filesystem (mounted on the host while the container exists) and the
//! host, or a tar stream on stdin/stdout (`-`), as `docker cp`.
//!
//! Container paths are resolved inside the container's root (see
//! `rootfs_tar`). A path under a bind mount or volume of the container is
//! looked up in the mount's host source instead (by the path as written:
//! a symlink in the container leading into a volume is resolved in the
//! root filesystem, where the volume is not mounted); tmpfs mounts are not
//! reachable from the host.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use peapod_engine::containers::Engine;
use peapod_engine::record::Record;

use crate::rootfs_tar::{self, Extract, TreeWriter};

#[derive(Args, Debug)]
pub struct CpArgs {
    /// CONTAINER:PATH, a host path, or - (a tar stream on stdin).
    pub source: String,
    /// CONTAINER:PATH, a host path, or - (a tar stream on stdout).
    pub destination: String,
    /// Keep the archive's owners (uid/gid) on files copied into a container.
    #[arg(short = 'a', long)]
    pub archive: bool,
}

enum Side<'a> {
    Stdio,
    Host(&'a str),
    Container(&'a str, &'a str),
}

fn side(s: &str) -> Side<'_> {
    if s == "-" {
        return Side::Stdio;
    }
    if s.starts_with('/') || s.starts_with('.') {
        return Side::Host(s);
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() => Side::Container(c, p),
        _ => Side::Host(s),
    }
}

pub fn run(engine: &Engine, a: &CpArgs) -> Result<()> {
    match (side(&a.source), side(&a.destination)) {
        (Side::Container(c, p), Side::Host(h)) => copy_out(engine, c, p, Some(Path::new(h))),
        (Side::Container(c, p), Side::Stdio) => copy_out(engine, c, p, None),
        (Side::Host(h), Side::Container(c, p)) => copy_in(engine, Some(Path::new(h)), c, p, a),
        (Side::Stdio, Side::Container(c, p)) => copy_in(engine, None, c, p, a),
        (Side::Container(..), Side::Container(..)) => {
            bail!("copying between containers is not supported: copy to the host first")
        }
        _ => bail!(
            "one of SOURCE and DESTINATION must be CONTAINER:PATH (write ./name for a host path with a colon)"
        ),
    }
}

/// The host directory holding container path `path`, and the path inside
/// it: the root filesystem, or the source of the bind mount or volume the
/// path is under.
fn locate(record: &Record, path: &str) -> Result<(PathBuf, String)> {
    if path.is_empty() {
        bail!(
            "empty path in container {}: give CONTAINER:/PATH",
            record.name
        );
    }
    let norm = Path::new("/").join(rootfs_tar::relative(path));
    let mut best: Option<(&str, &serde_json::Value)> = None;
    for m in &record.setup.mounts {
        let Some(dest) = m["Destination"].as_str() else {
            continue;
        };
        if norm.starts_with(dest) && best.is_none_or(|(b, _)| dest.len() > b.len()) {
            best = Some((dest, m));
        }
    }
    if let Some((dest, m)) = best {
        let rest = norm.strip_prefix(dest).unwrap_or(Path::new(""));
        match (m["Type"].as_str(), m["Source"].as_str()) {
            (Some("bind" | "volume"), Some(src)) => {
                return Ok((PathBuf::from(src), format!("/{}", rest.display())));
            }
            _ => bail!(
                "{path} is on a {} mount of container {}: it is not reachable from the host; use `peapod exec {} cat` or tar instead",
                m["Type"].as_str().unwrap_or("special"),
                record.name,
                record.name
            ),
        }
    }
    if !record.setup.rootfs.is_dir() {
        bail!(
            "container {} has no root filesystem on the host: was it made by `peapod create`?",
            record.name
        );
    }
    Ok((record.setup.rootfs.clone(), path.to_string()))
}

fn no_such(container: &str, path: &str) -> anyhow::Error {
    anyhow::anyhow!("no such file or directory in container {container}: {path}")
}

/// Container → host directory (or stdout as a tar stream).
fn copy_out(engine: &Engine, container: &str, path: &str, dest: Option<&Path>) -> Result<()> {
    let record = engine.store.resolve(container)?;
    let (root_dir, rel) = locate(&record, path)?;
    let root = rootfs_tar::open_root(&root_dir)?;
    let (parent, name) = rootfs_tar::split_in(root.as_fd(), &rel).map_err(|e| match e {
        Errno::ENOENT | Errno::ENOTDIR => no_such(container, path),
        e => anyhow::anyhow!("resolving {container}:{path}: {e}"),
    })?;
    let st =
        fstatat(&parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| match e {
            Errno::ENOENT => no_such(container, path),
            e => anyhow::anyhow!("reading {container}:{path}: {e}"),
        })?;
    let src_is_dir = rootfs_tar::is_dir(&st);
    // `DIR/.`: what is in the directory, not the directory itself.
    let contents = src_is_dir && (path.ends_with("/.") || path == ".");
    let Some(dest) = dest else {
        let top = if name == "." || contents {
            PathBuf::from(".")
        } else {
            PathBuf::from(&name)
        };
        let out = std::io::stdout().lock();
        let mut w = TreeWriter::new(out);
        w.append(parent.as_fd(), &name, &top, None)?;
        w.finish()?.flush()?;
        return Ok(());
    };
    let (host_dir, top) = if contents && !dest.exists() {
        std::fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
        (dest.to_path_buf(), PathBuf::from("."))
    } else if dest.is_dir() {
        let top = if name == "." || contents {
            PathBuf::from(".")
        } else {
            PathBuf::from(&name)
        };
        (dest.to_path_buf(), top)
    } else {
        if src_is_dir && dest.exists() {
            bail!(
                "cannot copy directory {container}:{path} onto file {}: remove it or pick a directory",
                dest.display()
            );
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            bail!("no such directory on the host: {}", dir.display());
        }
        let top = dest
            .file_name()
            .map(PathBuf::from)
            .with_context(|| format!("invalid destination {}", dest.display()))?;
        (dir, top)
    };
    through_pipe(parent, name, top, |reader| {
        let mut ar = tar::Archive::new(reader);
        ar.set_preserve_permissions(true);
        ar.set_overwrite(true);
        ar.unpack(&host_dir)
            .with_context(|| format!("writing into {}", host_dir.display()))
    })
}

/// Streams the tree `name` under `parent` (as `top`) through a pipe to
/// `consume`.
fn through_pipe(
    parent: OwnedFd,
    name: OsString,
    top: PathBuf,
    consume: impl FnOnce(std::io::PipeReader) -> Result<()>,
) -> Result<()> {
    let (reader, writer) = std::io::pipe().context("making a pipe")?;
    let producer = std::thread::spawn(move || -> Result<()> {
        let mut w = TreeWriter::new(writer);
        w.append(parent.as_fd(), &name, &top, None)?;
        w.finish()?;
        Ok(())
    });
    let consumed = consume(reader);
    let produced = producer
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the copying thread panicked")));
    produced?;
    consumed
}

/// Host path (or a tar stream on stdin) → container.
fn copy_in(
    engine: &Engine,
    src: Option<&Path>,
    container: &str,
    path: &str,
    a: &CpArgs,
) -> Result<()> {
    let record = engine.store.resolve(container)?;
    let (root_dir, rel) = locate(&record, path)?;
    let root = rootfs_tar::open_root(&root_dir)?;
    let rel_path = rootfs_tar::relative(&rel);
    let found = rootfs_tar::stat_in(root.as_fd(), &rel_path)
        .map_err(|e| anyhow::anyhow!("resolving {container}:{path}: {e}"))?;
    let Some(src) = src else {
        if !found.as_ref().is_some_and(rootfs_tar::is_dir) {
            bail!(
                "destination {container}:{path} must be an existing directory to extract a tar stream into"
            );
        }
        let stdin = std::io::stdin().lock();
        rootfs_tar::extract(root.as_fd(), &rel, stdin, Extract { owners: true })?;
        return Ok(());
    };
    let meta = std::fs::symlink_metadata(src)
        .with_context(|| format!("no such file or directory on the host: {}", src.display()))?;
    let abs = std::path::absolute(src)?;
    let src_name = abs
        .file_name()
        .with_context(|| format!("cannot copy {}: name a file or directory", src.display()))?
        .to_os_string();
    let src_parent = rootfs_tar::open_root(abs.parent().unwrap_or(Path::new("/")))?;
    // `DIR/.`: what is in the directory, not the directory itself.
    let contents = meta.is_dir() && src.to_string_lossy().ends_with("/.");
    let (dest_dir, top) = match found {
        Some(st) if rootfs_tar::is_dir(&st) && contents => (rel.clone(), PathBuf::from(".")),
        Some(st) if rootfs_tar::is_dir(&st) => (rel.clone(), PathBuf::from(&src_name)),
        Some(_) if meta.is_dir() => bail!(
            "cannot copy directory {} onto file {container}:{path}: remove it or pick a directory",
            src.display()
        ),
        _ => {
            if path.ends_with('/') && found.is_none() {
                bail!("destination directory {container}:{path} does not exist: create it first");
            }
            let parent = rel_path.parent().unwrap_or(Path::new("."));
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            match rootfs_tar::stat_in(root.as_fd(), parent) {
                Ok(Some(st)) if rootfs_tar::is_dir(&st) => {}
                _ => bail!(
                    "no such directory in container {container}: {}",
                    Path::new("/").join(parent).display()
                ),
            }
            let top = rel_path
                .file_name()
                .map(PathBuf::from)
                .with_context(|| format!("invalid destination {container}:{path}"))?;
            (parent.to_string_lossy().into_owned(), top)
        }
    };
    let (src_parent, src_name) = if contents {
        (rootfs_tar::open_root(&abs)?, OsString::from("."))
    } else {
        (src_parent, src_name)
    };
    let owners = a.archive;
    through_pipe(src_parent, src_name, top, |reader| {
        rootfs_tar::extract(root.as_fd(), &dest_dir, reader, Extract { owners }).map(drop)
    })
}
