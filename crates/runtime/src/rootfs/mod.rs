//! The container's root filesystem: spec mounts resolved inside the rootfs,
//! devices, pivot_root, masked and read-only paths.

mod copyup;
pub mod devices;
pub mod idmap;
pub mod mount;
pub mod options;
pub mod paths;
pub mod pivot;
pub mod resolve;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount as mount2};
use nix::sys::stat::Mode;

use devices::Device;
use mount::{CgroupBind, SpecMount};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("mount target {path} inside the rootfs: {source}")]
    Target { path: PathBuf, source: Errno },
    #[error("mount {fstype} on {destination}: {source}")]
    Mount {
        destination: PathBuf,
        fstype: String,
        source: Errno,
    },
    #[error("bind mount source {source_path} for {destination}: {error}")]
    BindSource {
        source_path: PathBuf,
        destination: PathBuf,
        error: std::io::Error,
    },
    #[error("device {path}: {what}")]
    Device { path: PathBuf, what: String },
    #[error("rootfs {path}: {source}")]
    Root { path: PathBuf, source: Errno },
    #[error("pivot into the rootfs ({step}): {source}")]
    Pivot { step: &'static str, source: Errno },
    #[error("masked path {path}: {source}")]
    Masked { path: PathBuf, source: Errno },
    #[error("read-only path {path}: {source}")]
    Readonly { path: PathBuf, source: Errno },
    #[error(
        "linux.rootfsPropagation {0:?} is not one of shared, slave, private, unbindable (optionally r-prefixed)"
    )]
    Propagation(String),
}

/// Everything the init needs to build the rootfs, computed before fork.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rootfs: PathBuf,
    pub mounts: Vec<SpecMount>,
    pub devices: Vec<Device>,
    pub masked: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
    pub readonly_root: bool,
    pub propagation: MsFlags,
    pub no_pivot: bool,
    pub in_userns: bool,
    pub cgroups: Vec<CgroupBind>,
    /// The rootfs itself is id-mapped (see `idmap`).
    pub rootfs_idmap: Option<idmap::Idmap>,
}

/// Parses `linux.rootfsPropagation`; runc's default is rslave.
pub fn parse_propagation(value: Option<&str>) -> Result<MsFlags, RootfsError> {
    let rec = MsFlags::MS_REC;
    Ok(match value.unwrap_or("") {
        "" => MsFlags::MS_SLAVE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        other => return Err(RootfsError::Propagation(other.to_string())),
    })
}

fn root_err(path: &Path) -> impl Fn(Errno) -> RootfsError + '_ {
    move |source| RootfsError::Root {
        path: path.to_path_buf(),
        source,
    }
}

/// Mounts, devices and links, in a fresh mount namespace, before pivot_root.
/// `trees` holds the id-mapped clones the runtime made for the plan.
pub fn prepare(plan: &Plan, mut trees: idmap::Trees) -> Result<(), RootfsError> {
    // Nothing done from here on may propagate back to the host.
    let slave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
    let first = if plan.propagation.contains(MsFlags::MS_SHARED) {
        plan.propagation
    } else {
        slave
    };
    mount2(None::<&str>, "/", None::<&str>, first, None::<&str>)
        .map_err(root_err(Path::new("/")))?;
    make_parent_private(&plan.rootfs)?;
    match trees.take(idmap::Target::Rootfs) {
        Some(tree) => {
            let at = open(
                &plan.rootfs,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(root_err(&plan.rootfs))?;
            idmap::attach(tree, at.as_fd()).map_err(root_err(&plan.rootfs))?;
        }
        None if plan.rootfs_idmap.is_some() => return Err(root_err(&plan.rootfs)(Errno::ENOENT)),
        None => mount2(
            Some(&plan.rootfs),
            &plan.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(root_err(&plan.rootfs))?,
    }
    let root = open(
        &plan.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(root_err(&plan.rootfs))?;
    for (i, m) in plan.mounts.iter().enumerate() {
        let tree = trees.take(idmap::Target::Mount(i));
        mount::mount_one(root.as_fd(), m, plan.in_userns, &plan.cgroups, tree)?;
    }
    for d in &plan.devices {
        devices::create(root.as_fd(), d, plan.in_userns)?;
    }
    devices::symlinks(root.as_fd())
}

/// pivot_root needs the rootfs's parent mount to be non-shared.
fn make_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let mut dir = rootfs.to_path_buf();
    loop {
        match mount2(
            None::<&str>,
            &dir,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            // Not a mount point: try its parent.
            Err(Errno::EINVAL) if dir.pop() => continue,
            Err(e) => return Err(root_err(&dir)(e)),
        }
    }
}

/// Makes the prepared rootfs the process's `/`.
pub fn enter(plan: &Plan) -> Result<(), RootfsError> {
    if plan.no_pivot {
        pivot::move_root(&plan.rootfs)
    } else {
        pivot::pivot(&plan.rootfs)
    }
}

/// Masked paths, read-only paths, read-only root, final propagation: the
/// last steps, after sysctls are written.
pub fn protect(plan: &Plan) -> Result<(), RootfsError> {
    for p in &plan.masked {
        paths::mask(p)?;
    }
    for p in &plan.readonly {
        paths::readonly(p, plan.in_userns)?;
    }
    if plan.readonly_root {
        paths::readonly_root(plan.in_userns)?;
    }
    if plan.propagation != (MsFlags::MS_SLAVE | MsFlags::MS_REC) {
        mount2(
            None::<&str>,
            "/",
            None::<&str>,
            plan.propagation,
            None::<&str>,
        )
        .map_err(root_err(Path::new("/")))?;
    }
    Ok(())
}
