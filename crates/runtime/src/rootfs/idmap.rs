//! Id-mapped mounts (mount_setattr(2) with MOUNT_ATTR_IDMAP): a bind mount,
//! or the rootfs itself, whose files show with their ids translated through
//! a user namespace's mappings, without anything being chown-ed.
//!
//! An on-disk id `n` shows as the host id the mapping gives the container id
//! `n` (the mapping read as `containerID -> hostID`), which the container's
//! own user namespace then shows as whatever it maps that host id to. With
//! the container's own mappings (`0 100000 65536`), a file owned by host root
//! shows as owned by the container's root, and what the container's root
//! creates there is owned by host root on disk.
//!
//! Which mounts are id-mapped:
//! * a mount with the option `idmap` (only its top mount) or `ridmap` (every
//!   mount of the tree), or with `uidMappings`/`gidMappings` (runtime-spec
//!   config.md, "Mounts"); bind mounts only. Without mappings of its own the
//!   mount uses the container's user namespace, which must then exist.
//! * the rootfs, when the annotation [`ROOTFS_ANNOTATION`] asks for it (the
//!   spec has no field for it): `true` always (the container needs a user
//!   namespace), `auto` when the container makes a new user namespace, its
//!   uidMappings do not map host uid 0, and `root.path` is owned by host uid 0.
//!   Without the annotation (or with `false`) the rootfs is not id-mapped, as
//!   in runc: the spec expects the rootfs to be owned by the mapped ids
//!   already, and an id-mapped rootfs lets the container write files owned by
//!   host root into the bundle.
//!
//! Making one needs CAP_SYS_ADMIN over the filesystem (the initial user
//! namespace for disk filesystems and the host's tmpfs) and over the user
//! namespace that gives the mapping, which the container's process does not
//! have. So the runtime (root on the host) makes them once the container's
//! user namespace has its maps and the prestart/createRuntime hooks have run:
//! it clones the source into a detached mount (open_tree OPEN_TREE_CLONE),
//! id-maps the clone with /proc/INIT/ns/user (or, for a mount with mappings
//! of its own, with a throwaway user namespace holding them), and passes the
//! descriptor to the init over the runtime channel. The init move_mount(2)s
//! it into place in its own mount namespace, where a bind would have gone.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxIdMapping;
use serde::{Deserialize, Serialize};

/// The annotation that asks for an id-mapped rootfs: `true`, `auto` or `false`.
pub const ROOTFS_ANNOTATION: &str = "io.peapod.rootfs.idmap";

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

#[derive(Debug, thiserror::Error)]
pub enum IdmapError {
    #[error("id-mapped mount of {source_path}: {step}: {errno}")]
    Sys {
        source_path: PathBuf,
        step: &'static str,
        errno: Errno,
    },
    #[error("user namespace for the id-mapped mount of {source_path}: {what}")]
    Userns { source_path: PathBuf, what: String },
}

/// A uid and a gid mapping.
pub type IdMaps = (Vec<LinuxIdMapping>, Vec<LinuxIdMapping>);

/// How a mount's ids are mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idmap {
    /// The mount's own uid and gid mappings; None: the container's user namespace.
    pub maps: Option<IdMaps>,
    /// `ridmap`: every mount of the tree is id-mapped, not only the top one.
    pub recursive: bool,
}

/// Where an id-mapped tree goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Rootfs,
    /// The spec mount with this index in the rootfs plan.
    Mount(usize),
}

/// An id-mapped tree the runtime makes for the init.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    pub source: PathBuf,
    /// Clone the source's submounts too (rbind).
    pub clone_recursive: bool,
    pub idmap: Idmap,
}

/// The id-mapped trees a rootfs plan needs (rootfs first, then mounts in order).
pub fn requests(plan: &super::Plan) -> Vec<Request> {
    let mut out = Vec::new();
    if let Some(idmap) = &plan.rootfs_idmap {
        out.push(Request {
            target: Target::Rootfs,
            source: plan.rootfs.clone(),
            clone_recursive: true,
            idmap: idmap.clone(),
        });
    }
    for (i, m) in plan.mounts.iter().enumerate() {
        if let (Some(idmap), Some(src)) = (&m.idmap, &m.source) {
            out.push(Request {
                target: Target::Mount(i),
                source: src.clone(),
                clone_recursive: m.options.flags.contains(nix::mount::MsFlags::MS_REC),
                idmap: idmap.clone(),
            });
        }
    }
    out
}

/// The detached id-mapped trees the init received, taken as they are mounted.
#[derive(Debug, Default)]
pub struct Trees {
    trees: Vec<(Target, OwnedFd)>,
}

impl Trees {
    pub fn add(&mut self, target: Target, tree: OwnedFd) {
        self.trees.push((target, tree));
    }

    pub fn take(&mut self, target: Target) -> Option<OwnedFd> {
        let i = self.trees.iter().position(|(t, _)| *t == target)?;
        Some(self.trees.swap_remove(i).1)
    }
}

/// Whether the kernel has mount_setattr(2) (Linux 5.12+).
pub fn supported() -> bool {
    // SAFETY: an invalid descriptor and null pointers: the kernel rejects the
    // call (EBADF/EINVAL/EFAULT) without touching memory, or has no such call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            std::ptr::null::<libc::c_char>(),
            0,
            std::ptr::null::<MountAttr>(),
            0,
        )
    };
    rc == 0 || Errno::last() != Errno::ENOSYS
}

fn maps_host_root(maps: &[LinuxIdMapping]) -> bool {
    // Host ids start at 0: host uid 0 is mapped exactly when a range starts there.
    maps.iter().any(|m| m.host_id() == 0 && m.size() > 0)
}

/// The rootfs's id mapping as [`ROOTFS_ANNOTATION`] asks (see the module docs).
pub fn rootfs_idmap(
    annotation: Option<&str>,
    rootfs: &Path,
    has_userns: bool,
    creates_userns: bool,
    uid_maps: &[LinuxIdMapping],
) -> Result<Option<Idmap>, String> {
    let own = Idmap {
        maps: None,
        recursive: true,
    };
    match annotation.map(str::trim) {
        None | Some("") | Some("false") => Ok(None),
        Some("true") => {
            if has_userns {
                Ok(Some(own))
            } else {
                Err(format!(
                    "annotation {ROOTFS_ANNOTATION}=true needs a user namespace in linux.namespaces"
                ))
            }
        }
        Some("auto") => {
            let owner = std::fs::metadata(rootfs).map(|m| m.uid()).ok();
            let idmap = creates_userns
                && owner == Some(0)
                && !maps_host_root(uid_maps)
                && nix::unistd::geteuid().is_root();
            Ok(idmap.then_some(own))
        }
        Some(other) => Err(format!(
            "annotation {ROOTFS_ANNOTATION}={other:?}: use true, auto or false"
        )),
    }
}

/// Checks the id-mapped mounts of `plan` before anything is made.
pub fn check(plan: &super::Plan, has_userns: bool) -> Result<(), String> {
    let reqs = requests(plan);
    for m in plan.mounts.iter().filter(|m| m.idmap.is_some()) {
        let dest = m.destination.display();
        if !m.options.is_bind() {
            return Err(format!(
                "mount {dest}: idmap, ridmap, uidMappings and gidMappings work on bind mounts only"
            ));
        }
        match &m.idmap.as_ref().and_then(|i| i.maps.as_ref()) {
            Some((u, g)) if u.is_empty() || g.is_empty() => {
                return Err(format!(
                    "mount {dest}: an id-mapped mount needs both uidMappings and gidMappings"
                ));
            }
            None if !has_userns => {
                return Err(format!(
                    "mount {dest}: idmap/ridmap without uidMappings and gidMappings uses the container's user namespace, and there is none in linux.namespaces"
                ));
            }
            _ => {}
        }
    }
    if reqs.is_empty() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "id-mapped mounts need pea to run as root (CAP_SYS_ADMIN in the initial user namespace); drop idmap/ridmap and the mounts' uidMappings/gidMappings for a rootless container".into(),
        );
    }
    if !supported() {
        return Err("id-mapped mounts need Linux 5.12 or later (mount_setattr)".into());
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

/// Makes every tree of `reqs` for the container whose init is `pid`
/// (runtime side, root on the host).
pub fn make_all(reqs: &[Request], pid: i32) -> Result<Vec<(Target, OwnedFd)>, IdmapError> {
    let mut container_ns: Option<OwnedFd> = None;
    let mut helpers: Vec<(&IdMaps, OwnedFd)> = Vec::new();
    let mut out = Vec::new();
    for req in reqs {
        let userns = match &req.idmap.maps {
            None => {
                if container_ns.is_none() {
                    let path = format!("/proc/{pid}/ns/user");
                    let fd = open(
                        path.as_str(),
                        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| IdmapError::Userns {
                        source_path: req.source.clone(),
                        what: format!("{path}: {e}"),
                    })?;
                    container_ns = Some(fd);
                }
                container_ns.as_ref().expect("just set").as_fd()
            }
            Some(maps) => {
                let i = match helpers.iter().position(|(m, _)| *m == maps) {
                    Some(i) => i,
                    None => {
                        let fd =
                            userns_with(&maps.0, &maps.1).map_err(|what| IdmapError::Userns {
                                source_path: req.source.clone(),
                                what,
                            })?;
                        helpers.push((maps, fd));
                        helpers.len() - 1
                    }
                };
                helpers[i].1.as_fd()
            }
        };
        out.push((req.target, make(req, userns)?));
    }
    Ok(out)
}

/// A detached clone of `req.source`, id-mapped with `userns`.
fn make(req: &Request, userns: BorrowedFd<'_>) -> Result<OwnedFd, IdmapError> {
    let err = |step| {
        move |errno| IdmapError::Sys {
            source_path: req.source.clone(),
            step,
            errno,
        }
    };
    let path =
        CString::new(req.source.as_os_str().as_bytes()).map_err(|_| err("path")(Errno::EINVAL))?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if req.clone_recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: open_tree reads a valid C string and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(fd).map_err(err("open_tree"))?;
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut at = libc::AT_EMPTY_PATH as libc::c_uint;
    if req.idmap.recursive {
        at |= AT_RECURSIVE;
    }
    // SAFETY: mount_setattr reads `attr` (properly sized and initialised) and
    // the empty path; both descriptors are open for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map_err(err(
        "mount_setattr MOUNT_ATTR_IDMAP (does the filesystem support id-mapped mounts?)",
    ))?;
    Ok(tree)
}

/// A user namespace holding `uid`/`gid` (a throwaway child process makes it;
/// the descriptor keeps it alive after the child exits).
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd, String> {
    let (ready_r, ready_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (done_r, done_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the child only makes raw system calls (unshare, write, close,
    // read, _exit): nothing that could wait on a lock another thread held.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => unsafe {
            let ok: u8 = (libc::unshare(libc::CLONE_NEWUSER) == 0).into();
            libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            libc::close(done_w.as_raw_fd());
            let mut b = 0u8;
            libc::read(done_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0)
        },
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let result = (|| {
                let mut b = [0u8; 1];
                match nix::unistd::read(&ready_r, &mut b) {
                    Ok(1) if b[0] == 1 => {}
                    _ => return Err("unshare(CLONE_NEWUSER) failed".to_string()),
                }
                crate::user::write_id_maps(child.as_raw(), uid, gid).map_err(|e| e.to_string())?;
                let path = format!("/proc/{}/ns/user", child.as_raw());
                open(
                    path.as_str(),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| format!("{path}: {e}"))
            })();
            drop(done_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

/// Mounts the detached `tree` on `target` (an O_PATH descriptor), init side.
pub fn attach(tree: OwnedFd, target: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: move_mount with two open descriptors and empty paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(s)
            .build()
            .unwrap()
    }

    #[test]
    fn host_root_detection() {
        assert!(maps_host_root(&[map(0, 0, 1)]));
        assert!(!maps_host_root(&[map(0, 100000, 65536)]));
        assert!(!maps_host_root(&[map(0, 1000, 1), map(1, 100000, 65536)]));
    }

    #[test]
    fn annotation_values() {
        let dir = tempfile::tempdir().unwrap();
        let m = [map(0, 100000, 65536)];
        assert_eq!(rootfs_idmap(None, dir.path(), true, true, &m), Ok(None));
        assert_eq!(
            rootfs_idmap(Some("false"), dir.path(), true, true, &m),
            Ok(None)
        );
        assert!(
            rootfs_idmap(Some("true"), dir.path(), true, true, &m)
                .unwrap()
                .is_some()
        );
        assert!(rootfs_idmap(Some("true"), dir.path(), false, false, &m).is_err());
        assert!(rootfs_idmap(Some("yes"), dir.path(), true, true, &m).is_err());
        // auto: only a root-owned rootfs, a new user namespace, host root unmapped.
        let root_owned = std::fs::metadata(dir.path()).unwrap().uid() == 0;
        let auto = rootfs_idmap(Some("auto"), dir.path(), true, true, &m).unwrap();
        assert_eq!(
            auto.is_some(),
            root_owned && nix::unistd::geteuid().is_root()
        );
        assert_eq!(
            rootfs_idmap(Some("auto"), dir.path(), true, false, &m),
            Ok(None)
        );
        assert_eq!(
            rootfs_idmap(Some("auto"), dir.path(), true, true, &[map(0, 0, 65536)]),
            Ok(None)
        );
    }
}
