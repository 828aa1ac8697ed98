//! Making the prepared rootfs the process's `/`.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, chroot, pivot_root};

use super::RootfsError;

fn step(what: &'static str) -> impl Fn(nix::Error) -> RootfsError {
    move |source| RootfsError::Pivot { step: what, source }
}

/// pivot_root(2) into `rootfs`, then detach the old root.
pub fn pivot(rootfs: &Path) -> Result<(), RootfsError> {
    chdir(rootfs).map_err(step("chdir to rootfs"))?;
    // With new_root == put_old the old root ends up stacked on top of the new
    // one and can be detached without a directory inside the rootfs.
    pivot_root(".", ".").map_err(step("pivot_root"))?;
    // Keep the detach from propagating to the host's mounts.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step("make old root rslave"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("detach old root"))?;
    chdir("/").map_err(step("chdir to /"))
}

/// `--no-pivot`: move the rootfs over `/` and chroot (for ramfs roots).
pub fn move_root(rootfs: &Path) -> Result<(), RootfsError> {
    chdir(rootfs).map_err(step("chdir to rootfs"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(step("move rootfs to /"))?;
    chroot(".").map_err(step("chroot"))?;
    chdir("/").map_err(step("chdir to /"))
}
