//! `linux.maskedPaths` and `linux.readonlyPaths`, applied after pivot_root.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;

use super::RootfsError;
use super::mount::remount_bind;
use super::resolve::open_in_root;

fn root() -> Result<OwnedFd, RootfsError> {
    open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| RootfsError::Target {
        path: "/".into(),
        source,
    })
}

/// `path` opened without following symlinks; None when it is absent or a
/// symlink (a symlink is not what the spec asked to protect).
fn open_plain(root: &OwnedFd, path: &Path) -> Result<Option<OwnedFd>, RootfsError> {
    match open_in_root(root.as_fd(), path, ResolveFlag::RESOLVE_NO_SYMLINKS) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) | Err(Errno::ELOOP) => Ok(None),
        Err(source) => Err(RootfsError::Target {
            path: path.into(),
            source,
        }),
    }
}

/// Hides `path`: an empty read-only tmpfs over a directory, /dev/null over a file.
pub fn mask(path: &Path) -> Result<(), RootfsError> {
    let root = root()?;
    let Some(target) = open_plain(&root, path)? else {
        return Ok(());
    };
    let is_dir = nix::sys::stat::fstat(&target)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false);
    let res = if is_dir {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0,mode=755"),
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    res.map_err(|source| RootfsError::Masked {
        path: path.into(),
        source,
    })
}

/// Makes `path` read-only with a recursive bind onto itself.
pub fn readonly(path: &Path, in_userns: bool) -> Result<(), RootfsError> {
    let root = root()?;
    let Some(target) = open_plain(&root, path)? else {
        return Ok(());
    };
    drop(target);
    let err = |source| RootfsError::Readonly {
        path: path.into(),
        source,
    };
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err)?;
    // Reopen: the descriptor still points at the covered directory.
    let target = open_in_root(root.as_fd(), path, ResolveFlag::RESOLVE_NO_SYMLINKS).map_err(err)?;
    remount_bind(
        path,
        &target,
        MsFlags::MS_RDONLY,
        MsFlags::empty(),
        in_userns,
    )
    .map_err(err)
}

/// Remounts `/` read-only (root.readonly).
pub fn readonly_root(in_userns: bool) -> Result<(), RootfsError> {
    let root = root()?;
    remount_bind(
        Path::new("/"),
        &root,
        MsFlags::MS_RDONLY,
        MsFlags::empty(),
        in_userns,
    )
    .map_err(|source| RootfsError::Readonly {
        path: "/".into(),
        source,
    })
}
