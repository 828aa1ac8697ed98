//! Files inside the container's rootfs, reached with openat2
//! RESOLVE_IN_ROOT so that no symlink in the image leads out to the host.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use pea_runtime::rootfs::resolve::{TargetKind, ensure_in_root, fd_path, open_in_root};

use super::BundleError;

fn open_root(rootfs: &Path) -> Result<OwnedFd, BundleError> {
    std::fs::File::open(rootfs)
        .map(OwnedFd::from)
        .map_err(BundleError::io("opening the rootfs", rootfs))
}

fn relative(path: &str) -> PathBuf {
    let rel: PathBuf = Path::new(path)
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// The contents of `path` inside the rootfs; None when it does not exist.
pub fn read_file(rootfs: &Path, path: &str) -> Result<Option<String>, BundleError> {
    let root = open_root(rootfs)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let shown = rootfs.join(relative(path));
    match openat2(root.as_fd(), &relative(path), how) {
        Ok(fd) => {
            let mut s = String::new();
            std::fs::File::from(fd)
                .read_to_string(&mut s)
                .map_err(BundleError::io("reading", &shown))?;
            Ok(Some(s))
        }
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(BundleError::io("opening", &shown)(e.into())),
    }
}

/// Creates directory `path` (and its parents) inside the rootfs when missing.
pub fn ensure_dir(rootfs: &Path, path: &str) -> Result<(), BundleError> {
    let root = open_root(rootfs)?;
    ensure_in_root(
        root.as_fd(),
        Path::new(path),
        TargetKind::Dir,
        ResolveFlag::empty(),
    )
    .map(drop)
    .map_err(|e| BundleError::Io {
        what: format!("creating the working directory {path} in"),
        path: rootfs.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// An O_PATH descriptor of `path` inside the rootfs, when it exists; its
/// [`fd_path`] reaches it without resolving the path again.
pub fn open_path(rootfs: &Path, path: &str) -> Result<Option<(OwnedFd, PathBuf)>, BundleError> {
    let root = open_root(rootfs)?;
    match open_in_root(root.as_fd(), Path::new(path), ResolveFlag::empty()) {
        Ok(fd) => {
            let p = fd_path(fd.as_fd());
            Ok(Some((fd, p)))
        }
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(BundleError::io("opening", &rootfs.join(relative(path)))(
            e.into(),
        )),
    }
}

/// Creates mount target `path` inside the rootfs (a file or a directory)
/// when missing, as the host's root: in a user namespace the container's
/// root may not be able to (its ids do not own the image's files).
/// Best effort: the runtime creates missing targets too, and reports what
/// it cannot create.
pub fn ensure_target(rootfs: &Path, path: &str, file: bool) {
    let Ok(root) = open_root(rootfs) else {
        return;
    };
    let kind = if file {
        TargetKind::File
    } else {
        TargetKind::Dir
    };
    let _ = ensure_in_root(root.as_fd(), Path::new(path), kind, ResolveFlag::empty());
}
