//! A full copy of a directory tree that keeps everything a layer can hold: file types,
//! hardlinks, ownership, modes, times and extended attributes.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, mknod, utimensat};
use nix::sys::time::TimeSpec;

use super::SnapshotError;

pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), SnapshotError> {
    let mut links = HashMap::new();
    fs::create_dir_all(dst).map_err(SnapshotError::io("creating", dst))?;
    copy_dir(src, dst, &mut links)?;
    let m = fs::symlink_metadata(src).map_err(SnapshotError::io("stat", src))?;
    finish(src, dst, &m)
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<(), SnapshotError> {
    for entry in fs::read_dir(src).map_err(SnapshotError::io("reading", src))? {
        let entry = entry.map_err(SnapshotError::io("reading", src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let m = fs::symlink_metadata(&from).map_err(SnapshotError::io("stat", &from))?;
        let ft = m.file_type();
        let io = |what| SnapshotError::io(what, &to);
        if ft.is_dir() {
            fs::create_dir(&to).map_err(io("creating"))?;
            copy_dir(&from, &to, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(SnapshotError::io("reading", &from))?;
            std::os::unix::fs::symlink(target, &to).map_err(io("symlink"))?;
        } else {
            if m.nlink() > 1 {
                if let Some(first) = links.get(&(m.dev(), m.ino())) {
                    fs::hard_link(first, &to).map_err(io("hardlink"))?;
                    continue;
                }
                links.insert((m.dev(), m.ino()), to.clone());
            }
            if ft.is_file() {
                fs::copy(&from, &to).map_err(io("copying to"))?;
            } else {
                let kind = if ft.is_char_device() {
                    SFlag::S_IFCHR
                } else if ft.is_block_device() {
                    SFlag::S_IFBLK
                } else if ft.is_fifo() {
                    SFlag::S_IFIFO
                } else {
                    continue; // sockets do not belong in a snapshot
                };
                mknod(&to, kind, Mode::from_bits_truncate(0o600), m.rdev())
                    .map_err(|e| io("mknod")(e.into()))?;
            }
        }
        finish(&from, &to, &m)?;
    }
    Ok(())
}

/// Ownership, mode, xattrs and times of `to`, copied from `from`.
fn finish(from: &Path, to: &Path, m: &fs::Metadata) -> Result<(), SnapshotError> {
    let io = |what| SnapshotError::io(what, to);
    let symlink = m.file_type().is_symlink();
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid())).map_err(io("chown"))?;
    if !symlink {
        fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(io("chmod"))?;
    }
    copy_xattrs(from, to).map_err(|e| io("copying xattrs")(e.into()))?;
    let atime = TimeSpec::new(m.atime(), m.atime_nsec());
    let mtime = TimeSpec::new(m.mtime(), m.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        to,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io("setting times")(e.into()))
}

fn cpath(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn copy_xattrs(from: &Path, to: &Path) -> Result<(), Errno> {
    let (src, dst) = (cpath(from)?, cpath(to)?);
    let mut names = vec![0u8; 4096];
    // SAFETY: src is NUL-terminated; names is a writable buffer of names.len() bytes.
    let n = unsafe { libc::llistxattr(src.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let n = match Errno::result(n) {
        Ok(n) => n as usize,
        Err(Errno::ENOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let key = CString::new(name).map_err(|_| Errno::EINVAL)?;
        let mut value = vec![0u8; 65536];
        // SAFETY: src and key are NUL-terminated; value is writable for value.len() bytes.
        let len = unsafe {
            libc::lgetxattr(
                src.as_ptr(),
                key.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        let len = Errno::result(len)? as usize;
        // SAFETY: dst and key are NUL-terminated; value holds len initialized bytes.
        let rc =
            unsafe { libc::lsetxattr(dst.as_ptr(), key.as_ptr(), value.as_ptr().cast(), len, 0) };
        match Errno::result(rc) {
            Ok(_) => {}
            // user.* cannot be set on symlinks; the source could not have had them either.
            Err(Errno::EPERM)
                if fs::symlink_metadata(to).is_ok_and(|m| m.file_type().is_symlink()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
