//! The mount list: runc's default mounts (proc, /dev, devpts, /dev/shm,
//! mqueue, sysfs, cgroup), the generated /etc files, then the user's
//! volumes and tmpfs mounts (parents before children). Named and anonymous
//! volumes that are empty get the image's content at their target first
//! (Docker's copy-up).
//!
//! `--ipc host` binds the host's /dev/shm; joining another container's IPC
//! namespace keeps a private /dev/shm (its tmpfs is not known here).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use peapod_image::config::ContainerConfig;
use serde_json::{Value, json};

use super::etc_files::EtcFiles;
use super::{BundleContext, BundleError, MountPoint, NsChoice, root};
use crate::request::{ContainerRequest, TmpfsSpec, VolumeSource, VolumeSpec};
use crate::volume::{VolumeError, VolumeStore};

pub struct Planned {
    pub spec: Vec<Value>,
    pub points: Vec<MountPoint>,
    pub anonymous: Vec<String>,
}

fn set_ro(m: &mut Value, ro: bool) {
    if let Some(opts) = m["options"].as_array_mut() {
        opts.retain(|o| o != "ro" && o != "rw");
        if ro {
            opts.push(json!("ro"));
        }
    }
}

/// runc's defaults adapted: sysfs and cgroup read-write only when
/// privileged; /sys bound from the host in a user namespace without a
/// network namespace of its own (sysfs cannot be mounted there), no
/// mqueue in a user namespace without an IPC namespace of its own.
fn defaults(req: &ContainerRequest, ctx: &BundleContext) -> Vec<Value> {
    let spec = pea_runtime::spec_default::default_spec(None);
    let mut mounts = spec["mounts"].as_array().cloned().unwrap_or_default();
    for m in mounts.iter_mut() {
        match m["type"].as_str() {
            Some("sysfs") => {
                if ctx.userns.is_some() && ctx.namespaces.net != NsChoice::New {
                    *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
                }
                set_ro(m, !req.privileged);
            }
            Some("cgroup") => set_ro(m, !req.privileged),
            Some("devpts") => {
                // gid=5 (tty) only when that group exists in the namespace.
                let tty_ok = ctx.userns.as_ref().is_none_or(|u| u.host_gid(5).is_some());
                if !tty_ok && let Some(opts) = m["options"].as_array_mut() {
                    opts.retain(|o| o != "gid=5");
                }
            }
            _ => {}
        }
        if m["destination"] == "/dev/shm" && ctx.namespaces.ipc == NsChoice::Host {
            *m = json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                        "options": ["rbind", "nosuid", "noexec", "nodev"]});
        } else if m["destination"] == "/dev/shm"
            && let Some(shm) = &ctx.shm
        {
            *m = json!({"destination": "/dev/shm", "type": "bind", "source": shm,
                        "options": ["rbind", "nosuid", "noexec", "nodev"]});
        }
    }
    // mqueue can be mounted only by the user namespace owning the IPC
    // namespace: not by a container's own one in an IPC namespace it joins
    // (a hostUsers: false pod's); such a container has no /dev/mqueue.
    if ctx.userns.is_some() && ctx.namespaces.ipc != NsChoice::New {
        mounts.retain(|m| m["type"] != "mqueue");
    }
    mounts
}

fn bind(dest: &str, source: &Path, ro: bool) -> Value {
    json!({
        "destination": dest,
        "type": "bind",
        "source": source,
        "options": ["rbind", "rprivate", if ro { "ro" } else { "rw" }],
    })
}

fn is_empty_dir(dir: &Path) -> Result<bool, BundleError> {
    Ok(fs::read_dir(dir)
        .map_err(BundleError::io("reading the volume", dir))?
        .next()
        .is_none())
}

/// Copies the image's `target` (a directory) into the empty volume `data`.
fn copy_up(rootfs: &Path, target: &str, data: &Path) -> Result<(), BundleError> {
    if !is_empty_dir(data)? {
        return Ok(());
    }
    let Some((_fd, src)) = root::open_path(rootfs, target)? else {
        return Ok(());
    };
    let meta = match fs::metadata(&src) {
        Ok(m) if m.is_dir() => m,
        _ => return Ok(()),
    };
    let err = |e| BundleError::Io {
        what: format!("copying the image's {target} into the volume"),
        path: data.to_path_buf(),
        source: e,
    };
    copy_tree(&src, data).map_err(err)?;
    copy_owner_mode(&meta, data).map_err(err)
}

fn copy_owner_mode(meta: &fs::Metadata, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
}

/// Regular files, directories and symlinks, with their modes and owners.
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
            copy_owner_mode(&meta, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
            copy_owner_mode(&meta, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            use std::os::unix::fs::MetadataExt;
            lchown(&to, Some(meta.uid()), Some(meta.gid()))?;
        }
    }
    Ok(())
}

fn named_volume(store: &VolumeStore, name: &str) -> Result<PathBuf, BundleError> {
    match store.get(name) {
        Ok(v) => Ok(v.mountpoint),
        Err(VolumeError::NotFound(_)) => Ok(store.create(Some(name), BTreeMap::new())?.mountpoint),
        Err(e) => Err(e.into()),
    }
}

struct UserMount {
    spec: Value,
    point: MountPoint,
}

fn volume(
    v: &VolumeSpec,
    ctx: &BundleContext,
    anonymous: &mut Vec<String>,
) -> Result<UserMount, BundleError> {
    let (typ, name, source) = match &v.source {
        VolumeSource::Bind(path) => {
            if !path.exists() {
                fs::create_dir_all(path).map_err(|e| BundleError::Io {
                    what: format!(
                        "--volume {}:{}: creating the host directory",
                        path.display(),
                        v.target
                    ),
                    path: path.clone(),
                    source: e,
                })?;
            }
            ("bind", None, path.clone())
        }
        VolumeSource::Named(n) => {
            let data = named_volume(ctx.volumes, n)?;
            copy_up(ctx.rootfs, &v.target, &data)?;
            ("volume", Some(n.clone()), data)
        }
        VolumeSource::Anonymous => {
            let vol = ctx.volumes.create(None, BTreeMap::new())?;
            anonymous.push(vol.name.clone());
            copy_up(ctx.rootfs, &v.target, &vol.mountpoint)?;
            ("volume", Some(vol.name), vol.mountpoint)
        }
    };
    Ok(UserMount {
        spec: bind(&v.target, &source, v.read_only),
        point: MountPoint {
            typ: typ.into(),
            name,
            source,
            destination: v.target.clone(),
            rw: !v.read_only,
        },
    })
}

fn tmpfs(t: &TmpfsSpec) -> UserMount {
    let mut opts: Vec<String> = ["nosuid", "nodev", "noexec"]
        .into_iter()
        .filter(|d| {
            !t.options
                .iter()
                .any(|o| Some(o.as_str()) == d.strip_prefix("no"))
        })
        .map(str::to_string)
        .collect();
    opts.extend(t.options.iter().cloned());
    UserMount {
        spec: json!({"destination": t.target, "type": "tmpfs", "source": "tmpfs", "options": opts}),
        point: MountPoint {
            typ: "tmpfs".into(),
            name: None,
            source: PathBuf::new(),
            destination: t.target.clone(),
            rw: !t.options.iter().any(|o| o == "ro"),
        },
    }
}

fn depth(dest: &str) -> usize {
    Path::new(dest).components().count()
}

pub fn plan(
    req: &ContainerRequest,
    img: &ContainerConfig,
    ctx: &BundleContext,
    etc: &EtcFiles,
) -> Result<Planned, BundleError> {
    let mut anonymous = Vec::new();
    let planned = plan_with(req, img, ctx, etc, &mut anonymous);
    if planned.is_err() {
        // Made for this container alone: nothing else will remove them.
        for name in &anonymous {
            let _ = ctx.volumes.remove(name, true, &[]);
        }
    }
    planned
}

fn plan_with(
    req: &ContainerRequest,
    img: &ContainerConfig,
    ctx: &BundleContext,
    etc: &EtcFiles,
    anonymous: &mut Vec<String>,
) -> Result<Planned, BundleError> {
    let mut user: Vec<UserMount> = Vec::new();
    let clean = |d: &str| Path::new(d).components().collect::<PathBuf>();
    let taken = |user: &[UserMount], dest: &str| {
        user.iter()
            .any(|m| clean(&m.point.destination) == clean(dest))
    };
    for v in &req.volumes {
        if taken(&user, &v.target) {
            return Err(BundleError::flag(
                "--volume",
                &v.target,
                "duplicate mount point: give each container path once",
            ));
        }
        user.push(volume(v, ctx, anonymous)?);
    }
    for t in &req.tmpfs {
        if taken(&user, &t.target) {
            return Err(BundleError::flag(
                "--tmpfs",
                &t.target,
                "duplicate mount point: this path is already mounted by --volume or --tmpfs",
            ));
        }
        user.push(tmpfs(t));
    }
    // The image's VOLUMEs not covered by the user: anonymous volumes.
    for target in img.volumes.iter().flat_map(|v| v.keys()) {
        if !target.starts_with('/') || taken(&user, target) {
            continue;
        }
        let spec = VolumeSpec {
            source: VolumeSource::Anonymous,
            target: target.clone(),
            read_only: false,
        };
        user.push(volume(&spec, ctx, anonymous)?);
    }
    user.sort_by_key(|m| depth(&m.point.destination));

    let mut spec: Vec<Value> = defaults(req, ctx)
        .into_iter()
        .filter(|m| !m["destination"].as_str().is_some_and(|d| taken(&user, d)))
        .collect();
    for (dest, file) in [
        ("/etc/hostname", &etc.hostname),
        ("/etc/hosts", &etc.hosts),
        ("/etc/resolv.conf", &etc.resolv_conf),
    ] {
        if !taken(&user, dest) {
            root::ensure_target(ctx.rootfs, dest, true);
            spec.push(bind(dest, file, false));
        }
    }
    // The generated /etc files and the user's mounts (the defaults are
    // where every image has them, or under /dev's tmpfs).
    for m in &user {
        let file = m.point.typ == "bind" && m.point.source.is_file();
        root::ensure_target(ctx.rootfs, &m.point.destination, file);
    }
    let points = user.iter().map(|m| m.point.clone()).collect();
    spec.extend(user.into_iter().map(|m| m.spec));
    Ok(Planned {
        spec,
        points,
        anonymous: anonymous.clone(),
    })
}
