//! Applying a layer tar stream to a directory.
//!
//! Whiteouts (`.wh.NAME`, `.wh..wh..opq`) become overlayfs whiteouts (a 0/0 character
//! device, the `trusted.overlay.opaque` xattr) for a layer that is its own overlay lowerdir,
//! or deletions for a layer applied on top of a copy of the layers under it. Every entry is
//! confined to the target directory: see [`fsops`].

mod entry;
pub mod fsops;

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use fsops::LayerPath;

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(
        "refusing layer entry {path:?}: {reason} (a layer may only write inside its own directory)"
    )]
    Escape { path: PathBuf, reason: &'static str },
    #[error("layer entry {path:?}: {what}: {errno}")]
    Sys {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("reading layer tar: {0}")]
    Read(#[source] io::Error),
    #[error("writing {path:?}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("layer entry {0:?}: unsupported tar entry type {1:?}")]
    Unsupported(PathBuf, tar::EntryType),
}

impl UnpackError {
    pub(crate) fn escape(path: &Path, reason: &'static str) -> Self {
        UnpackError::Escape {
            path: path.to_path_buf(),
            reason,
        }
    }

    pub(crate) fn sys(what: &'static str, path: &Path, errno: Errno) -> Self {
        UnpackError::Sys {
            what,
            path: path.to_path_buf(),
            errno,
        }
    }
}

/// What to do with whiteout entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// Write overlayfs whiteouts: the directory is a layer of its own.
    Overlay,
    /// Delete what they name: the directory already holds the layers below.
    Apply,
}

/// Counts of what an unpack did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub file_bytes: u64,
}

/// Unpacks the uncompressed layer tar `reader` into `dest` (an existing directory).
pub fn unpack(reader: impl Read, dest: &Path, mode: Whiteouts) -> Result<UnpackStats, UnpackError> {
    let root = open(
        dest,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::sys("opening the layer directory", dest, e))?;
    let mut ctx = Ctx {
        root,
        mode,
        is_root: nix::unistd::geteuid().is_root(),
        written: HashSet::new(),
        dirs: Vec::new(),
        stats: UnpackStats::default(),
        buf: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let entry = entry.map_err(UnpackError::Read)?;
        ctx.apply(entry)?;
    }
    ctx.finish_dirs()?;
    Ok(ctx.stats)
}

pub(crate) struct Ctx {
    pub root: OwnedFd,
    pub mode: Whiteouts,
    pub is_root: bool,
    /// Paths this layer wrote, so an opaque whiteout keeps them (Apply mode).
    pub written: HashSet<LayerPath>,
    /// Directories whose times are set last, after their children are written.
    pub dirs: Vec<(LayerPath, u64)>,
    pub stats: UnpackStats,
    /// The file data copy buffer, reused across entries.
    pub buf: Vec<u8>,
}

impl Ctx {
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        // Deepest first, so setting a child's times does not disturb its parent's.
        self.dirs
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.as_path().components().count()));
        for (path, mtime) in std::mem::take(&mut self.dirs) {
            let fd = match fsops::open_dir(self.root.as_fd(), &path) {
                Ok(fd) => fd,
                // A later entry replaced or whited out the directory.
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(e) => return Err(fsops::resolve_error(&path, e)),
            };
            let ts = nix::sys::time::TimeSpec::new(mtime as i64, 0);
            nix::sys::stat::futimens(&fd, &ts, &ts)
                .map_err(|e| UnpackError::sys("setting times", path.as_path(), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_escape;
