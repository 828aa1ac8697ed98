//! A [`ContainerRequest`] plus its image's config, turned into an OCI bundle:
//! `config.json` (and the generated `/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf`) in the bundle directory, with Docker's semantics for
//! each flag. One concern per file:
//! * `process`: args, env, working directory, stop signal;
//! * `user`: `-u` resolved through the rootfs's /etc/passwd and /etc/group;
//! * `etc_files`: the generated /etc files;
//! * `mounts`: runc's default mounts, volumes (with Docker's copy-up), tmpfs;
//! * `namespaces`: the namespace plan and user-namespace mappings;
//! * `resources`: memory, CPU, pids;
//! * `security`: capabilities, seccomp, masked paths, rlimits, privileged.

mod etc_files;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod root;
mod security;
mod user;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::request::ContainerRequest;
use crate::userns::IdMapping;
use crate::volume::{VolumeError, VolumeStore};
use peapod_image::config::{ContainerConfig, ImageConfig};

pub use etc_files::resolv_conf;
pub use security::{ALL_CAPS, DEFAULT_CAPS};
pub use user::ResolvedUser;
pub use user::resolve as resolve_user;

/// The annotation asking the runtime to run its reaper as PID 1 (`--init`).
pub const INIT_ANNOTATION: &str = "org.peapod.init";

/// What to do with one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsChoice {
    /// A new one for the container.
    New,
    /// The host's (no namespace entry).
    Host,
    /// Join the namespace at this path (`/proc/PID/ns/net`, a netns file).
    Join(PathBuf),
}

/// The namespaces the caller decided on (from `--network/--ipc/--pid/--uts`
/// and the containers they name). Mount and cgroup namespaces are always new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePlan {
    pub net: NsChoice,
    pub ipc: NsChoice,
    pub pid: NsChoice,
    pub uts: NsChoice,
}

impl Default for NamespacePlan {
    fn default() -> Self {
        NamespacePlan {
            net: NsChoice::New,
            ipc: NsChoice::New,
            pid: NsChoice::New,
            uts: NsChoice::New,
        }
    }
}

pub struct BundleContext<'a> {
    /// The container's full id.
    pub id: &'a str,
    pub image: &'a ImageConfig,
    /// The container's mounted root filesystem, absolute.
    pub rootfs: &'a Path,
    /// Exists; config.json and the generated /etc files go here.
    pub bundle_dir: &'a Path,
    pub namespaces: NamespacePlan,
    /// The container's address, for /etc/hosts.
    pub ip: Option<IpAddr>,
    pub volumes: &'a VolumeStore,
    /// Already allocated by the caller ([`crate::userns`]).
    pub userns: Option<IdMapping>,
    /// The user namespace (made with `userns`) to join instead of making
    /// one: a pod's.
    pub userns_path: Option<PathBuf>,
    /// e.g. "/peapod/<id>".
    pub cgroups_path: String,
    /// A host directory (a tmpfs) to bind as /dev/shm, so that containers
    /// joining this one's IPC namespace share its POSIX shared memory.
    pub shm: Option<PathBuf>,
}

/// One mount as `inspect` shows it (Docker's "Mounts").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// "bind", "volume" or "tmpfs".
    #[serde(rename = "Type")]
    pub typ: String,
    /// The volume's name, for volumes.
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "Source")]
    pub source: PathBuf,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
}

/// What the caller needs to know about the bundle it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleOutput {
    /// The process's uid and gid inside the container.
    pub process_user: (u32, u32),
    pub mounts: Vec<MountPoint>,
    /// Anonymous volumes made for this container (removed with it on `--rm`).
    pub anonymous_volumes: Vec<String>,
    /// The signal `stop` sends: the request's, the image's, else SIGTERM.
    pub stop_signal: i32,
    pub tty: bool,
    /// The process's command line (entrypoint + command).
    pub args: Vec<String>,
    /// The container's host name.
    pub hostname: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "no command specified: the image has no Cmd or Entrypoint; give one after the image name"
    )]
    NoCommand,
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
    #[error("{flag} {value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("seccomp profile {path}: {reason}; give an OCI or Docker seccomp JSON profile")]
    Seccomp { path: PathBuf, reason: String },
    #[error("the generated config.json is not a valid runtime spec: {0} (a bug in peapod)")]
    Spec(String),
}

impl BundleError {
    pub(crate) fn io(what: impl Into<String>, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let (what, path) = (what.into(), path.to_path_buf());
        move |source| BundleError::Io { what, path, source }
    }

    pub(crate) fn flag(flag: &'static str, value: &str, reason: impl Into<String>) -> Self {
        BundleError::Flag {
            flag,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// The image's container config, or an empty one.
fn image_config(image: &ImageConfig) -> ContainerConfig {
    image.config.clone().unwrap_or_default()
}

/// Writes `<bundle_dir>/config.json` (and the /etc files it mounts) for
/// `req` and returns what the caller records about the container.
pub fn write_bundle(
    req: &ContainerRequest,
    ctx: &BundleContext,
) -> Result<BundleOutput, BundleError> {
    let img = image_config(ctx.image);
    let mut spec = pea_runtime::spec_default::default_spec(None);

    // Process.
    let args = process::args(req, &img)?;
    let user = user::resolve(ctx.rootfs, req.user.as_deref().or(img.user.as_deref()))?;
    let hostname = process::hostname(req, ctx);
    let env = process::env(req, &img, &hostname, &user.home);
    let cwd = process::cwd(req, &img)?;
    root::ensure_dir(ctx.rootfs, &cwd)?;
    let stop_signal = process::stop_signal(req, &img)?;
    let caps = security::capabilities(req)?;
    let rlimits = security::rlimits(&req.ulimits)?;
    spec["process"] = json!({
        "terminal": req.tty,
        "user": {
            "uid": user.uid,
            "gid": user.gid,
            "additionalGids": additional_gids(&user.additional_gids, &req.group_add),
        },
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],
            "ambient": [],
        },
        "rlimits": rlimits,
        "noNewPrivileges": req.security.no_new_privileges,
    });

    spec["root"] = json!({"path": ctx.rootfs, "readonly": req.read_only});
    match ctx.namespaces.uts {
        NsChoice::Host => {
            if let Some(o) = spec.as_object_mut() {
                o.remove("hostname");
            }
        }
        _ => spec["hostname"] = json!(hostname),
    }

    // Mounts.
    let etc = etc_files::write(ctx, req, &hostname)?;
    let planned = mounts::plan(req, &img, ctx, &etc)?;
    spec["mounts"] = Value::Array(planned.spec);

    // Linux.
    let linux = &mut spec["linux"];
    linux["namespaces"] = namespaces::namespaces(
        &ctx.namespaces,
        ctx.userns.as_ref().map(|_| ctx.userns_path.as_deref()),
    );
    if let Some(m) = &ctx.userns {
        linux["uidMappings"] = namespaces::mappings(&m.uids);
        linux["gidMappings"] = namespaces::mappings(&m.gids);
    }
    linux["resources"] = resources::resources(req)?;
    linux["cgroupsPath"] = json!(ctx.cgroups_path);
    security::apply(req, &caps, linux)?;
    if !req.sysctls.is_empty() {
        linux["sysctl"] = json!(req.sysctls);
    }

    // Annotations: labels, and the init request.
    let mut ann = serde_json::Map::new();
    for (k, v) in &req.labels {
        ann.insert(k.clone(), json!(v));
    }
    if req.init {
        ann.insert(INIT_ANNOTATION.into(), json!("true"));
    }
    if !ann.is_empty() {
        spec["annotations"] = Value::Object(ann);
    }

    // Check the result the way the runtime will read it.
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone())
        .map_err(|e| BundleError::Spec(e.to_string()))?;
    write_config(ctx.bundle_dir, &spec)?;

    Ok(BundleOutput {
        process_user: (user.uid, user.gid),
        mounts: planned.points,
        anonymous_volumes: planned.anonymous,
        stop_signal,
        tty: req.tty,
        args,
        hostname,
    })
}

/// The user's groups from /etc/group and `--group-add`'s, each once.
fn additional_gids(user: &[u32], added: &[u32]) -> Vec<u32> {
    let mut all = user.to_vec();
    for g in added {
        if !all.contains(g) {
            all.push(*g);
        }
    }
    all
}

/// Writes `<dir>/config.json` durably (temp + fsync + rename).
fn write_config(dir: &Path, spec: &Value) -> Result<(), BundleError> {
    let path = dir.join("config.json");
    let tmp = dir.join(".config.json.tmp");
    let data = serde_json::to_vec_pretty(spec).map_err(|e| BundleError::Spec(e.to_string()))?;
    let mut f = File::create(&tmp).map_err(BundleError::io("writing", &tmp))?;
    f.write_all(&data)
        .and_then(|()| f.sync_all())
        .map_err(BundleError::io("writing", &tmp))?;
    fs::rename(&tmp, &path).map_err(BundleError::io("writing", &path))
}
