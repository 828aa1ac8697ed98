//! Performing the mounts a snapshotter describes.
//!
//! An overlay option string longer than a page (many or deep lowerdirs) cannot go through
//! mount(2); then the new mount API is used, which takes one `lowerdir+` per layer
//! (Linux 6.8+).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use super::SnapshotError;

/// One mount, as containerd describes it: `mount -t TYPE -o OPTIONS SOURCE TARGET`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub typ: String,
    pub source: String,
    pub options: Vec<String>,
}

impl Mount {
    pub fn bind(source: &Path, readonly: bool) -> Mount {
        Mount {
            typ: "bind".into(),
            source: source.to_string_lossy().into_owned(),
            options: vec!["rbind".into(), if readonly { "ro" } else { "rw" }.into()],
        }
    }

    /// The overlay lowerdirs (top first), if this is an overlay mount.
    pub fn lowerdirs(&self) -> Vec<String> {
        self.options
            .iter()
            .filter_map(|o| o.strip_prefix("lowerdir="))
            .flat_map(|l| l.split(':').map(str::to_string))
            .collect()
    }
}

/// Mounts `mounts` in order on `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), SnapshotError> {
    for m in mounts {
        match m.typ.as_str() {
            "bind" => mount_bind(m, target)?,
            "overlay" => mount_overlay(m, target)?,
            other => {
                return Err(SnapshotError::Mount {
                    what: format!("unsupported mount type {other}"),
                    target: target.to_path_buf(),
                    errno: Errno::EINVAL,
                });
            }
        }
    }
    Ok(())
}

/// Unmounts `target` (lazily, so a busy mount does not fail the cleanup).
pub fn unmount(target: &Path) -> Result<(), SnapshotError> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(SnapshotError::Mount {
            what: "unmount".into(),
            target: target.to_path_buf(),
            errno,
        }),
    }
}

fn mount_err(what: &str, target: &Path) -> impl FnOnce(Errno) -> SnapshotError {
    let (what, target) = (what.to_string(), target.to_path_buf());
    move |errno| SnapshotError::Mount {
        what,
        target,
        errno,
    }
}

fn mount_bind(m: &Mount, target: &Path) -> Result<(), SnapshotError> {
    let ro = m.options.iter().any(|o| o == "ro");
    let src = Path::new(&m.source);
    nix::mount::mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(mount_err(&format!("bind {}", m.source), target))?;
    if ro {
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(mount_err("read-only remount", target))?;
    }
    Ok(())
}

/// Whether the running kernel knows the overlay filesystem.
pub fn overlay_supported() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false)
}

fn mount_overlay(m: &Mount, target: &Path) -> Result<(), SnapshotError> {
    if !overlay_supported() {
        return Err(SnapshotError::OverlayUnavailable(
            "the kernel does not list overlay in /proc/filesystems".into(),
        ));
    }
    let data = m.options.join(",");
    // mount(2) copies at most one page of options.
    let result = if data.len() < 4000 {
        nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
    } else {
        mount_overlay_fsconfig(m, target)
    };
    result.map_err(|errno| match errno {
        Errno::ENODEV => SnapshotError::OverlayUnavailable("mount returned ENODEV".into()),
        Errno::EINVAL | Errno::EOPNOTSUPP => SnapshotError::OverlayUnavailable(format!(
            "mounting overlay on {} failed: {errno} (the filesystem under {} may not support overlay upper dirs)",
            target.display(),
            upper_of(m).display()
        )),
        errno => SnapshotError::Mount {
            what: "overlay".into(),
            target: target.to_path_buf(),
            errno,
        },
    })
}

fn upper_of(m: &Mount) -> PathBuf {
    m.options
        .iter()
        .find_map(|o| o.strip_prefix("upperdir="))
        .map(PathBuf::from)
        .unwrap_or_default()
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cstr(s: &str) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

fn fsconfig(
    fs: &OwnedFd,
    cmd: libc::c_uint,
    key: Option<&str>,
    value: Option<&str>,
) -> Result<(), Errno> {
    let key = key.map(cstr).transpose()?;
    let value = value.map(cstr).transpose()?;
    // SAFETY: fs is an open fs context fd; key and value are NUL-terminated strings (or
    // NULL where the command takes none) that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr()),
            value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// Builds the overlay with fsopen/fsconfig/fsmount: each lowerdir is its own `lowerdir+`
/// parameter, so the number of layers is not limited by the option page.
fn mount_overlay_fsconfig(m: &Mount, target: &Path) -> Result<(), Errno> {
    let name = cstr("overlay")?;
    // SAFETY: name is a NUL-terminated string; on success the kernel returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
    let fd = Errno::result(fd)? as i32;
    // SAFETY: fd was just returned by fsopen and is owned by nothing else.
    let fs = unsafe { OwnedFd::from_raw_fd(fd) };
    fsconfig(&fs, FSCONFIG_SET_STRING, Some("source"), Some("overlay"))?;
    for opt in &m.options {
        match opt.split_once('=') {
            Some(("lowerdir", list)) => {
                for dir in list.split(':') {
                    fsconfig(&fs, FSCONFIG_SET_STRING, Some("lowerdir+"), Some(dir))?;
                }
            }
            Some((k, v)) => fsconfig(&fs, FSCONFIG_SET_STRING, Some(k), Some(v))?,
            None => fsconfig(&fs, FSCONFIG_SET_FLAG, Some(opt), None)?,
        }
    }
    fsconfig(&fs, FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: fs is a configured fs context fd; on success the kernel returns a mount fd.
    let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    let mfd = Errno::result(mfd)? as i32;
    // SAFETY: mfd was just returned by fsmount and is owned by nothing else.
    let mnt = unsafe { OwnedFd::from_raw_fd(mfd) };
    let empty = cstr("")?;
    let to = cstr(&target.to_string_lossy())?;
    // SAFETY: mnt is a detached mount fd, the paths are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop)
}

/// The longest directory that every overlay path (lowerdirs, upperdir, workdir) is under.
fn common_parent(m: &Mount) -> Option<PathBuf> {
    let mut paths = m.lowerdirs();
    for o in &m.options {
        if let Some(p) = o
            .strip_prefix("upperdir=")
            .or_else(|| o.strip_prefix("workdir="))
        {
            paths.push(p.to_string());
        }
    }
    let first = PathBuf::from(paths.first()?);
    let mut parent = first.parent()?.to_path_buf();
    while !paths.iter().all(|p| Path::new(p).starts_with(&parent)) {
        parent = parent.parent()?.to_path_buf();
    }
    Some(parent)
}

/// mount(2) with every path made relative to their common parent, from a child process
/// that changes into it (the working directory is shared by all threads, so the parent's
/// is left alone). The child shares this thread's mount namespace.
pub fn mount_overlay_relative(m: &Mount, target: &Path) -> Result<(), Errno> {
    let parent = common_parent(m).ok_or(Errno::EINVAL)?;
    let rel = |p: &str| -> String {
        Path::new(p)
            .strip_prefix(&parent)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|_| p.to_string())
    };
    let options: Vec<String> = m
        .options
        .iter()
        .map(|o| match o.split_once('=') {
            Some(("lowerdir", list)) => format!(
                "lowerdir={}",
                list.split(':').map(rel).collect::<Vec<_>>().join(":")
            ),
            Some((k @ ("upperdir" | "workdir"), v)) => format!("{k}={}", rel(v)),
            _ => o.clone(),
        })
        .collect();
    let data = cstr(&options.join(","))?;
    if data.as_bytes().len() >= 4096 {
        return Err(Errno::E2BIG);
    }
    let dir = cstr(&parent.to_string_lossy())?;
    let target = cstr(
        &std::path::absolute(target)
            .map_err(|_| Errno::EINVAL)?
            .to_string_lossy(),
    )?;
    let fstype = cstr("overlay")?;
    // SAFETY: the child only makes raw syscalls (chdir, mount, _exit) on strings built
    // before the fork, so it touches no lock another thread may have held.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: NUL-terminated strings that live until _exit; only syscalls here.
            let rc = unsafe {
                let failed = libc::chdir(dir.as_ptr()) != 0
                    || libc::mount(
                        fstype.as_ptr(),
                        target.as_ptr(),
                        fstype.as_ptr(),
                        0,
                        data.as_ptr().cast(),
                    ) != 0;
                if failed { *libc::__errno_location() } else { 0 }
            };
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(rc.clamp(0, 255)) }
        }
        nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None)? {
            nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
            nix::sys::wait::WaitStatus::Exited(_, code) => Err(Errno::from_raw(code)),
            _ => Err(Errno::EINTR),
        },
    }
}
