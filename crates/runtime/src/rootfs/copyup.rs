//! runc's `tmpcopyup` mount option: a tmpfs mounted over a directory starts
//! with a copy of what the directory held (Podman asks for it on the tmpfs
//! mounts of `--read-only` containers: /tmp, /run, /var/tmp).
//!
//! Everything goes through directory descriptors (`*at` calls, never
//! following symlinks), so nothing in the rootfs can redirect the copy.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstatat, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, fchown, fchownat, symlinkat};

/// Opens the directory `dir` (an O_PATH descriptor) for reading, before it
/// is mounted over: the descriptor still shows what lies below the mount.
pub fn open_below(dir: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    openat(
        dir,
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Copies the tree of `below` into the freshly mounted directory `above`
/// (an O_PATH descriptor of the mount's root), keeping modes and owners.
pub fn copy_up(below: &OwnedFd, above: BorrowedFd<'_>) -> Result<(), Errno> {
    let dst = open_below(above)?;
    let st = nix::sys::stat::fstat(below)?;
    fchown(
        &dst,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )?;
    copy_dir(below.as_fd(), dst.as_fd())
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn copy_dir(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut names: Vec<CString> = Vec::new();
    let mut dir = nix::dir::Dir::openat(src, c".", dir_flags(), Mode::empty())?;
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    for name in &names {
        copy_entry(src, dst, name)?;
    }
    Ok(())
}

fn copy_entry(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    let st = fstatat(src, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
    match kind {
        SFlag::S_IFDIR => {
            mkdirat(dst, name, Mode::from_bits_truncate(0o700))?;
            let from = openat(src, name, dir_flags(), Mode::empty())?;
            let to = openat(dst, name, dir_flags(), Mode::empty())?;
            copy_dir(from.as_fd(), to.as_fd())?;
            set_owner_mode(&to, &st, perm)
        }
        SFlag::S_IFREG => {
            let from = openat(
                src,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let to = openat(
                dst,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            let mut r = std::fs::File::from(from);
            let mut w = std::fs::File::from(to);
            std::io::copy(&mut r, &mut w)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            set_owner_mode(&w, &st, perm)
        }
        SFlag::S_IFLNK => {
            let target = readlinkat(src, name)?;
            symlinkat(target.as_os_str(), dst, name)?;
            fchownat(
                dst,
                name,
                Some(Uid::from_raw(st.st_uid)),
                Some(Gid::from_raw(st.st_gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
        }
        // A socket has no content to copy; its path would be dead.
        SFlag::S_IFSOCK => Ok(()),
        _ => {
            mknodat(dst, name, kind, perm, st.st_rdev)?;
            fchownat(
                dst,
                name,
                Some(Uid::from_raw(st.st_uid)),
                Some(Gid::from_raw(st.st_gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
            // mknod applied the umask: set the exact mode (the node is no symlink).
            nix::sys::stat::fchmodat(
                dst,
                name,
                perm,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        }
    }
}

/// Owner first: chown clears the set-id bits, which the mode then restores.
fn set_owner_mode(f: &impl AsFd, st: &FileStat, perm: Mode) -> Result<(), Errno> {
    fchown(
        f.as_fd(),
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )?;
    fchmod(f.as_fd(), perm)
}
