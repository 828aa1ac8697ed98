//! One entry of the spec's `mounts`, mounted inside the rootfs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::ResolveFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, fstatvfs};

use super::RootfsError;
use super::idmap::{self, Idmap};
use super::options::{MountOptions, RecursiveAttrs};
use super::resolve::{TargetKind, ensure_in_root, fd_path, open_in_root};

/// A mount of the spec, validated.
#[derive(Debug, Clone)]
pub struct SpecMount {
    pub destination: PathBuf,
    pub fstype: String,
    pub source: Option<PathBuf>,
    pub options: MountOptions,
    /// Id-mapped (`idmap`/`ridmap`, `uidMappings`/`gidMappings`): see `rootfs::idmap`.
    pub idmap: Option<Idmap>,
}

/// A host cgroup directory to show at `/sys/fs/cgroup/<name>` in the container.
#[derive(Debug, Clone)]
pub struct CgroupBind {
    pub host_dir: PathBuf,
    pub name: String,
}

impl SpecMount {
    pub fn from_oci(m: &oci_spec::runtime::Mount, bundle: &Path) -> Self {
        let options = MountOptions::parse(m.options().as_deref().unwrap_or_default());
        let mut fstype = m.typ().clone().unwrap_or_default();
        if fstype.is_empty() && options.is_bind() {
            fstype = "bind".into();
        }
        let source = m.source().as_ref().map(|s| {
            // Relative bind sources are relative to the bundle (runc behaviour).
            if options.is_bind() && s.is_relative() {
                bundle.join(s)
            } else {
                s.clone()
            }
        });
        let own = |v: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
            v.clone().filter(|v| !v.is_empty())
        };
        let maps = match (own(m.uid_mappings()), own(m.gid_mappings())) {
            (None, None) => None,
            (u, g) => Some((u.unwrap_or_default(), g.unwrap_or_default())),
        };
        let idmap = (options.idmap.is_some() || maps.is_some()).then(|| Idmap {
            maps,
            recursive: options.idmap == Some(true),
        });
        SpecMount {
            destination: m.destination().clone(),
            fstype,
            source,
            options,
            idmap,
        }
    }

    fn err(&self, source: Errno) -> RootfsError {
        RootfsError::Mount {
            destination: self.destination.clone(),
            fstype: self.fstype.clone(),
            source,
        }
    }
}

/// Mounts `m` under `root` (a directory descriptor of the rootfs); `tree` is
/// its id-mapped clone when `m.idmap` is set.
pub fn mount_one(
    root: BorrowedFd<'_>,
    m: &SpecMount,
    in_userns: bool,
    cgroups: &[CgroupBind],
    tree: Option<OwnedFd>,
) -> Result<(), RootfsError> {
    if m.fstype == "cgroup" || m.fstype == "cgroup2" {
        return mount_cgroups(root, m, in_userns, cgroups);
    }
    let kind = if m.options.is_bind() {
        let src = m.source.as_deref().ok_or_else(|| m.err(Errno::EINVAL))?;
        match std::fs::metadata(src) {
            Ok(md) if !md.is_dir() => TargetKind::File,
            Ok(_) => TargetKind::Dir,
            Err(e) => {
                return Err(RootfsError::BindSource {
                    source_path: src.to_path_buf(),
                    destination: m.destination.clone(),
                    error: e,
                });
            }
        }
    } else {
        TargetKind::Dir
    };
    // procfs and sysfs must never land on a symlink: a fake /proc could
    // intercept the runtime's own writes (CVE-2019-16884, CVE-2019-19921).
    let extra = if matches!(m.fstype.as_str(), "proc" | "sysfs") {
        ResolveFlag::RESOLVE_NO_SYMLINKS
    } else {
        ResolveFlag::empty()
    };
    let target = ensure_in_root(root, &m.destination, kind, extra)?;
    mount_at(root, &target, m, in_userns, tree)
}

/// Mounts `m` on the directory `target` refers to, then applies what needs
/// the new mount itself (remount flags, propagation, recursive attributes)
/// through a fresh descriptor of it.
fn mount_at(
    root: BorrowedFd<'_>,
    target: &OwnedFd,
    m: &SpecMount,
    in_userns: bool,
    tree: Option<OwnedFd>,
) -> Result<(), RootfsError> {
    let tpath = fd_path(target.as_fd());
    let opts = &m.options;
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    if let Some(tree) = tree {
        // The runtime made the id-mapped clone of the source: put it in place.
        idmap::attach(tree, target.as_fd()).map_err(|e| m.err(e))?;
    } else if m.idmap.is_some() {
        return Err(m.err(Errno::ENOENT));
    }
    if opts.is_bind() {
        if m.idmap.is_none() {
            let src = m.source.as_deref().ok_or_else(|| m.err(Errno::EINVAL))?;
            mount(
                Some(src),
                &tpath,
                None::<&str>,
                opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
                None::<&str>,
            )
            .map_err(|e| m.err(e))?;
        }
        // The bind ignores other flags: apply them with a remount of the bind.
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            let mounted = reopen(root, m)?;
            remount_bind(
                &fd_path(mounted.as_fd()),
                &mounted,
                extra,
                opts.cleared,
                in_userns,
            )
            .map_err(|e| m.err(e))?;
        }
    } else {
        let source = m
            .source
            .as_deref()
            .map(|p| p.as_os_str())
            .unwrap_or(m.fstype.as_ref());
        let below = (opts.copy_up && m.fstype == "tmpfs")
            .then(|| super::copyup::open_below(target.as_fd()))
            .transpose()
            .map_err(|e| m.err(e))?;
        mount(
            Some(source),
            &tpath,
            Some(m.fstype.as_str()),
            opts.flags,
            data,
        )
        .or_else(|e| {
            // A kernel may refuse a size/mode data option for devpts etc. in a
            // user namespace; runc retries without it for mqueue/sysfs failing EPERM.
            if e == Errno::EPERM && in_userns && m.fstype == "sysfs" {
                bind_host_sys(&tpath)
            } else {
                Err(e)
            }
        })
        .map_err(|e| m.err(e))?;
        if let Some(below) = below {
            let above = reopen(root, m)?;
            super::copyup::copy_up(&below, above.as_fd()).map_err(|e| m.err(e))?;
        }
    }
    if opts.propagation.is_empty() && opts.recursive == RecursiveAttrs::default() {
        return Ok(());
    }
    let mounted = reopen(root, m)?;
    propagate(&mounted, &opts.propagation).map_err(|e| m.err(e))?;
    set_recursive(&mounted, opts.recursive).map_err(|e| m.err(e))
}

/// A descriptor of the mount now on top of the destination.
fn reopen(root: BorrowedFd<'_>, m: &SpecMount) -> Result<OwnedFd, RootfsError> {
    open_in_root(root, &m.destination, ResolveFlag::empty()).map_err(|source| RootfsError::Target {
        path: m.destination.clone(),
        source,
    })
}

/// In a user namespace that does not own the network namespace sysfs cannot be
/// mounted; a recursive read-only bind of the host's /sys is runc's fallback.
fn bind_host_sys(target: &Path) -> Result<(), Errno> {
    mount(
        Some("/sys"),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
}

/// Remounts a bind mount with new flags, keeping the flags the kernel locks
/// in a user namespace (nodev/nosuid/noexec/ro of the source) unless asked off.
pub fn remount_bind(
    path: &Path,
    target: &OwnedFd,
    flags: MsFlags,
    cleared: MsFlags,
    in_userns: bool,
) -> Result<(), Errno> {
    let mut flags = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    if in_userns {
        let st = fstatvfs(target)?;
        let f = st.flags();
        for (fs, ms) in [
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        ] {
            if f.contains(fs) && !cleared.contains(ms) {
                flags |= ms;
            }
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

fn propagate(target: &OwnedFd, changes: &[MsFlags]) -> Result<(), Errno> {
    for p in changes {
        mount(
            None::<&str>,
            &fd_path(target.as_fd()),
            None::<&str>,
            *p,
            None::<&str>,
        )?;
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn set_recursive(target: &OwnedFd, attrs: RecursiveAttrs) -> Result<(), Errno> {
    if attrs == RecursiveAttrs::default() {
        return Ok(());
    }
    let attr = MountAttr {
        attr_set: attrs.set,
        attr_clr: attrs.clear,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: mount_setattr reads `attr` (a properly sized, initialised
    // struct) and the empty path; the descriptor is open for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(target),
            empty.as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// A `cgroup` mount: a tmpfs at the destination holding the container's own
/// cgroup directory of every hierarchy, bound from the host (as runc does on
/// v1 and hybrid hosts), read-only when the mount asks for it.
fn mount_cgroups(
    root: BorrowedFd<'_>,
    m: &SpecMount,
    in_userns: bool,
    cgroups: &[CgroupBind],
) -> Result<(), RootfsError> {
    let base = ensure_in_root(root, &m.destination, TargetKind::Dir, ResolveFlag::empty())?;
    let ro = m.options.flags.contains(MsFlags::MS_RDONLY);
    let fs_flags = m.options.flags & !(MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC);
    mount(
        Some("tmpfs"),
        &fd_path(base.as_fd()),
        Some("tmpfs"),
        fs_flags,
        Some("mode=755"),
    )
    .map_err(|e| m.err(e))?;
    for cg in cgroups {
        let dest = m.destination.join(&cg.name);
        let target = ensure_in_root(root, &dest, TargetKind::Dir, ResolveFlag::empty())?;
        let bind = SpecMount {
            destination: dest,
            fstype: "bind".into(),
            source: Some(cg.host_dir.clone()),
            // mount_at remounts the bind with these flags (read-only included).
            options: MountOptions {
                flags: MsFlags::MS_BIND
                    | MsFlags::MS_REC
                    | fs_flags
                    | (m.options.flags & MsFlags::MS_RDONLY),
                ..MountOptions::default()
            },
            idmap: None,
        };
        mount_at(root, &target, &bind, in_userns, None)?;
    }
    if ro {
        let mounted = reopen(root, m)?;
        remount_bind(
            &fd_path(mounted.as_fd()),
            &mounted,
            fs_flags | MsFlags::MS_RDONLY,
            MsFlags::empty(),
            in_userns,
        )
        .map_err(|e| m.err(e))?;
    }
    Ok(())
}
