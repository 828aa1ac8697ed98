//! Device nodes in the container's /dev: the defaults every container gets and
//! `linux.devices`, made with mknod (or bound from the host in a user
//! namespace, where mknod is not allowed), plus the standard /dev symlinks.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::ResolveFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, fchownat, symlinkat};

use super::RootfsError;
use super::resolve::{TargetKind, ensure_in_root, fd_path, open_in_root};

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Device {
    fn char(path: &str, major: u64, minor: u64) -> Self {
        Device {
            path: path.into(),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }
    }

    pub fn from_oci(d: &oci_spec::runtime::LinuxDevice) -> Result<Self, RootfsError> {
        use oci_spec::runtime::LinuxDeviceType as T;
        let kind = match d.typ() {
            T::C | T::U => SFlag::S_IFCHR,
            T::B => SFlag::S_IFBLK,
            T::P => SFlag::S_IFIFO,
            T::A => {
                return Err(RootfsError::Device {
                    path: d.path().clone(),
                    what: "type \"a\" is only valid in cgroup device rules; use c, b, u or p"
                        .into(),
                });
            }
        };
        Ok(Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        })
    }
}

/// The devices runtime-spec config-linux.md requires in every container.
pub fn defaults() -> Vec<Device> {
    vec![
        Device::char("/dev/null", 1, 3),
        Device::char("/dev/zero", 1, 5),
        Device::char("/dev/full", 1, 7),
        Device::char("/dev/random", 1, 8),
        Device::char("/dev/urandom", 1, 9),
        Device::char("/dev/tty", 5, 0),
    ]
}

/// Creates `dev` under `root`.
pub fn create(root: BorrowedFd<'_>, dev: &Device, in_userns: bool) -> Result<(), RootfsError> {
    let err = |what: String| RootfsError::Device {
        path: dev.path.clone(),
        what,
    };
    let parent = dev.path.parent().unwrap_or(Path::new("/"));
    let name = dev
        .path
        .file_name()
        .ok_or_else(|| err("device path has no file name".into()))?;
    let dir = ensure_in_root(root, parent, TargetKind::Dir, ResolveFlag::empty())?;
    if in_userns {
        // mknod is not permitted: bind the host's node onto an empty file.
        let target = ensure_in_root(root, &dev.path, TargetKind::File, ResolveFlag::empty())?;
        return mount(
            Some(&dev.path),
            &fd_path(target.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err(format!("bind from host: {e}")));
    }
    let dir_fd = nix::fcntl::openat(
        dir.as_fd(),
        ".",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(e.to_string()))?;
    match nix::unistd::unlinkat(
        dir_fd.as_fd(),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(err(format!("remove existing: {e}"))),
    }
    mknodat(
        dir_fd.as_fd(),
        name,
        dev.kind,
        Mode::from_bits_truncate(dev.mode & 0o7777),
        makedev(dev.major, dev.minor),
    )
    .map_err(|e| err(format!("mknod: {e}")))?;
    // mknod applies the umask; set the exact mode and owner asked for.
    nix::sys::stat::fchmodat(
        dir_fd.as_fd(),
        name,
        Mode::from_bits_truncate(dev.mode & 0o7777),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| {
        if e == Errno::EOPNOTSUPP {
            Ok(())
        } else {
            Err(e)
        }
    })
    .map_err(|e| err(format!("chmod: {e}")))?;
    fchownat(
        dir_fd.as_fd(),
        name,
        Some(Uid::from_raw(dev.uid)),
        Some(Gid::from_raw(dev.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err(format!("chown: {e}")))
}

/// /dev/fd, stdin, stdout, stderr, ptmx and core symlinks.
pub fn symlinks(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let dev = ensure_in_root(
        root,
        Path::new("/dev"),
        TargetKind::Dir,
        ResolveFlag::empty(),
    )?;
    let dev = nix::fcntl::openat(
        dev.as_fd(),
        ".",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::Device {
        path: "/dev".into(),
        what: e.to_string(),
    })?;
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        if name == "ptmx"
            && open_in_root(root, Path::new("/dev/pts"), ResolveFlag::empty()).is_err()
        {
            continue;
        }
        match symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(RootfsError::Device {
                    path: PathBuf::from("/dev").join(name),
                    what: format!("symlink: {e}"),
                });
            }
        }
    }
    Ok(())
}

/// Device-cgroup rules that let the container use `devs` (create passes the
/// default devices no `linux.devices` entry replaces, as runc does),
/// /dev/pts terminals, and mknod of any node (opening still needs a rule):
/// appended after the spec's own rules, as runc does, so a deny-all in the
/// spec still leaves these usable.
pub fn cgroup_rules(devs: &[Device]) -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType as T};
    let rule = |typ: T, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access.to_string());
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("all fields of a device rule are set")
    };
    let mut rules = vec![
        rule(T::C, None, None, "m"),
        rule(T::B, None, None, "m"),
        rule(T::C, Some(5), Some(1), "rwm"),
        rule(T::C, Some(5), Some(2), "rwm"),
        rule(T::C, Some(136), None, "rwm"),
    ];
    for d in devs {
        let typ = if d.kind == SFlag::S_IFBLK { T::B } else { T::C };
        if d.kind == SFlag::S_IFIFO {
            continue;
        }
        rules.push(rule(typ, Some(d.major as i64), Some(d.minor as i64), "rwm"));
    }
    rules
}
