//! Filesystem operations confined to a layer directory.
//!
//! Every path is resolved from the layer's root fd with `openat2(RESOLVE_BENEATH)`, so
//! neither `..` nor a symlink (absolute or relative) can take resolution outside the
//! layer; the final component is always created or changed without following symlinks.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{FileStat, Mode, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::UnpackError;

/// A path inside the layer, made only of normal components.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerPath(PathBuf);

impl LayerPath {
    /// Checks an entry path (or hardlink target) from the tar: relative, no `..`.
    pub fn new(raw: &Path) -> Result<LayerPath, UnpackError> {
        let mut out = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(UnpackError::escape(raw, "absolute path"));
                }
                Component::ParentDir => {
                    return Err(UnpackError::escape(raw, "'..' component"));
                }
            }
        }
        Ok(LayerPath(out))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    /// The parent and the last component; `None` for the root itself.
    pub fn split(&self) -> Option<(LayerPath, &OsStr)> {
        let name = self.0.file_name()?;
        let parent = self.0.parent().unwrap_or(Path::new(""));
        Some((LayerPath(parent.to_path_buf()), name))
    }

    pub fn join(&self, name: &OsStr) -> LayerPath {
        LayerPath(self.0.join(name))
    }
}

fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn dir_flags() -> OFlag {
    OFlag::O_DIRECTORY | OFlag::O_RDONLY
}

/// Opens directory `rel` under `root` without leaving it; `rel` empty means `root`.
pub fn open_dir(root: BorrowedFd<'_>, rel: &LayerPath) -> Result<OwnedFd, Errno> {
    let p: &Path = if rel.is_root() {
        Path::new(".")
    } else {
        &rel.0
    };
    openat2(root, p, beneath(dir_flags()))
}

/// Opens directory `rel`, creating missing components (mode 0755) on the way.
pub fn open_or_create_dir(root: BorrowedFd<'_>, rel: &LayerPath) -> Result<OwnedFd, UnpackError> {
    match open_dir(root, rel) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(resolve_error(rel, e)),
    }
    let mut cur = LayerPath(PathBuf::new());
    let mut fd = open_dir(root, &cur).map_err(|e| resolve_error(rel, e))?;
    for comp in rel.0.iter() {
        let next = cur.join(comp);
        fd = match open_dir(root, &next) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match mkdirat(&fd, comp, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(UnpackError::sys("mkdir", next.as_path(), e)),
                }
                open_dir(root, &next).map_err(|e| resolve_error(&next, e))?
            }
            Err(e) => return Err(resolve_error(&next, e)),
        };
        cur = next;
    }
    Ok(fd)
}

/// Maps a failed resolution to an escape error when the kernel refused to leave the root.
pub fn resolve_error(rel: &LayerPath, e: Errno) -> UnpackError {
    match e {
        Errno::EXDEV | Errno::ELOOP => UnpackError::escape(
            rel.as_path(),
            "a symlink on the way leads outside the layer directory",
        ),
        Errno::ENOTDIR => {
            UnpackError::sys("resolving (a parent is not a directory)", rel.as_path(), e)
        }
        _ => UnpackError::sys("resolving", rel.as_path(), e),
    }
}

pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<FileStat>, Errno> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Removes `name` in `dir` (recursively for a directory); absent is fine.
pub fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        let sub = openat(
            dir,
            name,
            dir_flags() | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        clear_dir(sub.as_fd(), |_| false)?;
        unlinkat(dir, name, UnlinkatFlags::RemoveDir)
    } else {
        unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
    }
}

/// Removes every entry of `dir` for which `keep` is false.
pub fn clear_dir(dir: BorrowedFd<'_>, keep: impl Fn(&OsStr) -> bool) -> Result<(), Errno> {
    for name in list_dir(dir)? {
        if !keep(&name) {
            remove_at(dir, &name)?;
        }
    }
    Ok(())
}

/// The names in `dir` (without `.` and `..`).
pub fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<std::ffi::OsString>, Errno> {
    let fd = openat(dir, ".", dir_flags() | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// Sets extended attribute `key` on `name` in `dir`, not following a final symlink.
pub fn set_xattr(dir: BorrowedFd<'_>, name: &OsStr, key: &str, value: &[u8]) -> Result<(), Errno> {
    // The directory fd pins the parent; /proc/self/fd/N/NAME reaches NAME in it without
    // resolving any other path, and lsetxattr does not follow NAME if it is a symlink.
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both strings are NUL-terminated and live across the call; value is a valid
    // buffer of value.len() bytes that the kernel only reads.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// Sets extended attribute `key` on an open file or directory.
pub fn fset_xattr(fd: BorrowedFd<'_>, key: &str, value: &[u8]) -> Result<(), Errno> {
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    // SAFETY: fd is open for the duration of the call, key is NUL-terminated and value is
    // a valid buffer of value.len() bytes that the kernel only reads.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}
