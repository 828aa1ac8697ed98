//! Paths inside the container's root, resolved by the kernel (openat2 with
//! RESOLVE_IN_ROOT) so that no symlink in the rootfs can lead a mount or a
//! file the runtime writes out to the host.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, mkdirat};

use super::RootfsError;

/// What to create when a mount target is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Dir,
    File,
}

/// `/proc/self/fd/N`: the path through which mount(2) reaches an open file.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn how(flags: OFlag, resolve: ResolveFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve | ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// Opens `path` (taken as inside `root`) as an O_PATH descriptor.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    extra: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    openat2(root, &rel, how(OFlag::O_PATH, extra))
}

/// Opens `path` inside `root`, creating it (and missing parents) when absent.
/// A dangling symlink on the way is followed the way the kernel would inside
/// `root`, and its target is created there (never outside).
pub fn ensure_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: TargetKind,
    extra: ResolveFlag,
) -> Result<OwnedFd, RootfsError> {
    let err = |source: Errno| RootfsError::Target {
        path: path.to_path_buf(),
        source,
    };
    let mut want = relative(path);
    // Bounded like the kernel's symlink limit.
    for _ in 0..40 {
        match open_in_root(root, &want, extra) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(err(e)),
        }
        match create_missing(root, &want, kind, extra).map_err(err)? {
            None => return open_in_root(root, &want, extra).map_err(err),
            Some(redirected) => want = redirected,
        }
    }
    Err(err(Errno::ELOOP))
}

/// Creates the missing components of `rel`. Returns the path to retry when a
/// component turned out to be a dangling symlink.
fn create_missing(
    root: BorrowedFd<'_>,
    rel: &Path,
    kind: TargetKind,
    extra: ResolveFlag,
) -> Result<Option<PathBuf>, Errno> {
    let comps: Vec<_> = rel.components().collect();
    let mut prefix = PathBuf::new();
    for (i, comp) in comps.iter().enumerate() {
        let parent = open_in_root(root, &prefix, extra)?;
        let parent_path = prefix.clone();
        prefix.push(comp);
        match open_in_root(root, &prefix, extra) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let last = i + 1 == comps.len();
        let name = comp.as_os_str();
        let made = if last && kind == TargetKind::File {
            nix::fcntl::openat(
                parent.as_fd(),
                name,
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC
                    | OFlag::O_WRONLY,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o755))
        };
        match made {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                if extra.contains(ResolveFlag::RESOLVE_NO_SYMLINKS) {
                    return Err(Errno::ELOOP);
                }
                // A dangling symlink: continue at its target, inside root.
                let target = nix::fcntl::readlinkat(parent.as_fd(), name)?;
                let target = Path::new(&target);
                let mut next = if target.is_absolute() {
                    relative(target)
                } else {
                    parent_path.join(target)
                };
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                return Ok(Some(next));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::open;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &Path) -> OwnedFd {
        open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn symlink_to_slash_stays_inside() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        symlink("/", root.path().join("evil")).unwrap();
        symlink(outside.path(), root.path().join("evil2")).unwrap();
        let fd = root_fd(root.path());
        ensure_in_root(
            fd.as_fd(),
            Path::new("/evil/made"),
            TargetKind::Dir,
            ResolveFlag::empty(),
        )
        .unwrap();
        assert!(root.path().join("made").is_dir());
        let rel_out = outside.path().strip_prefix("/").unwrap();
        ensure_in_root(
            fd.as_fd(),
            Path::new("/evil2/file"),
            TargetKind::File,
            ResolveFlag::empty(),
        )
        .unwrap();
        assert!(root.path().join(rel_out).join("file").is_file());
        assert!(!outside.path().join("file").exists());
    }

    #[test]
    fn dotdot_cannot_climb_out() {
        let root = tempfile::tempdir().unwrap();
        let fd = root_fd(root.path());
        symlink("../../../../..", root.path().join("up")).unwrap();
        let opened = ensure_in_root(
            fd.as_fd(),
            Path::new("/up/x/y"),
            TargetKind::Dir,
            ResolveFlag::empty(),
        )
        .unwrap();
        drop(opened);
        assert!(root.path().join("x/y").is_dir());
    }

    #[test]
    fn no_symlinks_flag_refuses_symlinked_proc() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        symlink("real", root.path().join("proc")).unwrap();
        let fd = root_fd(root.path());
        let r = ensure_in_root(
            fd.as_fd(),
            Path::new("/proc"),
            TargetKind::Dir,
            ResolveFlag::RESOLVE_NO_SYMLINKS,
        );
        assert!(r.is_err());
    }
}
