//! `create`: everything set up, the init blocked before exec until `start`.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
};
use oci_spec::runtime::{Hook, LinuxIdMapping, Spec};

use super::{ContainerError, Runtime, oci_state};
use crate::cgroups::{self, CgroupManager};
use crate::config::Bundle;
use crate::console;
use crate::hooks;
use crate::namespaces::{self, Kind};
use crate::process::plan::{InitSetup, Plan, ProcessSpec};
use crate::process::spawn::{self, Observer, Until};
use crate::process::wait::start_time;
use crate::rootfs::{
    self, devices, idmap,
    mount::{CgroupBind, SpecMount},
};
use crate::state::{Record, StateDir, Status};
use crate::user;

/// What `create` needs besides the bundle.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Extra descriptors (3..3+n) passed to the container process.
    pub preserve_fds: u32,
    /// Number of socket-activation descriptors (LISTEN_FDS) passed on top.
    pub listen_fds: u32,
}

/// Undoes a half-made container unless disarmed.
struct Cleanup<'a> {
    dir: Option<StateDir>,
    cgroup: Option<&'a dyn CgroupManager>,
    pid: Option<i32>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if let Some(pid) = self.pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if let Some(cg) = self.cgroup {
                let _ = cgroups::destroy_container_cgroup(cg);
            }
            let _ = dir.remove();
        }
    }
}

impl Runtime {
    /// Creates container `opts.id` from its bundle; returns init's pid.
    pub fn create(&self, opts: &CreateOptions) -> Result<i32, ContainerError> {
        self.create_with(opts, None)
    }

    /// `create`, with `stdio` as the container process's stdin, stdout and
    /// stderr instead of the caller's own (an engine hands it pipes to log).
    pub fn create_with_stdio(
        &self,
        opts: &CreateOptions,
        stdio: [BorrowedFd<'_>; 3],
    ) -> Result<i32, ContainerError> {
        self.create_with(opts, Some(stdio.map(|fd| fd.as_raw_fd())))
    }

    fn create_with(
        &self,
        opts: &CreateOptions,
        stdio: Option<[RawFd; 3]>,
    ) -> Result<i32, ContainerError> {
        let bundle = Bundle::load(&opts.bundle)?;
        let spec = &bundle.spec;
        let linux = spec.linux().clone().unwrap_or_default();
        crate::state::validate_id(&opts.id)?;
        // Before anything is made: an LSM profile or label this host cannot apply.
        let lsm = crate::lsm::Host::probe();
        lsm.exec_labels(bundle.process())
            .and(lsm.mount_label(linux.mount_label()))
            .map_err(|e| invalid(e.to_string()))?;
        let mut cgroup = Some(cgroups::manager(
            linux.cgroups_path().as_ref().and_then(|p| p.to_str()),
            &opts.id,
            self.systemd_cgroup,
        )?);
        let dir = StateDir::create(&self.root, &opts.id)?;
        let mut cleanup = Cleanup {
            dir: Some(dir),
            cgroup: None,
            pid: None,
        };
        let dir = cleanup.dir.as_ref().expect("state dir is set");
        let mut record = Record {
            id: opts.id.clone(),
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            pid: 0,
            pid_start_time: 0,
            cgroup_path: cgroup.as_ref().map(|c| c.path().to_path_buf()),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            annotations: spec.annotations().clone().unwrap_or_default(),
            created_done: false,
            process: bundle.process().clone(),
            poststart: hook_list(spec, |h| h.poststart()),
            poststop: hook_list(spec, |h| h.poststop()),
            seccomp: linux.seccomp().clone(),
        };
        // Persist the cgroup path before making it, so `delete --force` finds
        // everything a killed create leaves.
        dir.save(&record)?;
        if let Some(Err(e)) = cgroup.as_ref().map(|c| c.create()) {
            without_cgroup(e, &linux)?;
            cgroup = None;
            record.cgroup_path = None;
            dir.save(&record)?;
        }
        cleanup.cgroup = cgroup.as_deref();
        let mut plan = build_plan(&bundle, opts, dir, cgroup.as_deref())?;
        plan.stdio = stdio;
        if let (Some(res), Some(cgroup)) = (linux.resources(), cgroup.as_deref()) {
            let mut res = res.clone();
            if let Some(rules) = res.devices().clone() {
                // As runc: only the default devices a linux.devices entry
                // does not replace are allowed implicitly; access to
                // linux.devices entries needs rules of the spec's own.
                let mut defaults = devices::defaults();
                defaults.retain(|d| {
                    !linux
                        .devices()
                        .iter()
                        .flatten()
                        .any(|x| x.path() == &d.path)
                });
                let mut rules = rules;
                rules.extend(devices::cgroup_rules(&defaults));
                res.set_devices(Some(rules));
            }
            cgroup.apply(&res)?;
        }
        let mut observer = CreateObserver {
            dir,
            record: &mut record,
            spec,
            hooks_started: false,
        };
        let spawned = spawn::spawn(plan, cgroup.as_deref(), &mut observer, Until::Ready);
        let hooks_started = observer.hooks_started;
        let pid = match spawned {
            Ok(pid) => pid,
            Err(source) => {
                // runtime-spec runtime.md: a create that fails once its
                // hooks began (a failing prestart, createRuntime or
                // createContainer hook, or a later setup step) destroys the
                // container and goes on with the poststop hooks, which undo
                // what the earlier hooks made (a network, say); as runc.
                let state = oci_state(&record, Status::Stopped);
                let poststop = std::mem::take(&mut record.poststop);
                drop(cleanup);
                if hooks_started {
                    for e in hooks::run_all("poststop", &poststop, &state) {
                        tracing::warn!(container = opts.id.as_str(), "{e}");
                    }
                }
                return Err(ContainerError::Spawn {
                    id: opts.id.clone(),
                    source,
                });
            }
        };
        cleanup.pid = Some(pid);
        record.pid = pid;
        record.pid_start_time = start_time(pid).unwrap_or(0);
        record.created_done = true;
        dir.save(&record)?;
        if let Some(f) = &opts.pid_file {
            write_pid_file(f, pid)?;
        }
        // Success: keep everything.
        cleanup.dir.take();
        Ok(pid)
    }
}

/// Whether a container may go on without a cgroup after making one failed
/// with `e`: as runc's rootless mode, only when an unprivileged caller cannot
/// write the cgroup tree and `linux.resources` asks for nothing but device
/// rules (which a user namespace cannot be given anyway).
fn without_cgroup(
    e: cgroups::CgroupError,
    linux: &oci_spec::runtime::Linux,
) -> Result<(), ContainerError> {
    let denied = match &e {
        cgroups::CgroupError::CreateDir { source, .. }
        | cgroups::CgroupError::Write { source, .. } => {
            matches!(
                source.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS)
            )
        }
        _ => false,
    };
    let uid = nix::unistd::geteuid();
    if !denied || uid.is_root() {
        return Err(e.into());
    }
    let mut asked = linux
        .resources()
        .as_ref()
        .and_then(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    asked.remove("devices");
    asked.retain(|_, v| match v {
        serde_json::Value::Null => false,
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
        _ => true,
    });
    if !asked.is_empty() {
        let fields: Vec<&str> = asked.keys().map(String::as_str).collect();
        return Err(invalid(format!(
            "linux.resources ({}) needs a cgroup, and uid {uid} cannot make one ({e}): run as root, point linux.cgroupsPath at a cgroup delegated to uid {uid}, or remove linux.resources for a rootless container",
            fields.join(", ")
        )));
    }
    tracing::debug!("rootless: no cgroup ({e})");
    Ok(())
}

fn hook_list(
    spec: &Spec,
    pick: impl Fn(&oci_spec::runtime::Hooks) -> &Option<Vec<Hook>>,
) -> Vec<Hook> {
    spec.hooks()
        .as_ref()
        .and_then(|h| pick(h).clone())
        .unwrap_or_default()
}

struct CreateObserver<'a> {
    dir: &'a StateDir,
    record: &'a mut Record,
    spec: &'a Spec,
    /// The create-phase hooks began: a failure from here on runs poststop.
    hooks_started: bool,
}

impl Observer for CreateObserver<'_> {
    fn pid_known(&mut self, pid: i32) {
        self.record.pid = pid;
        self.record.pid_start_time = start_time(pid).unwrap_or(0);
        let _ = self.dir.save(self.record);
    }

    fn runtime_ready(&mut self, _pid: i32) -> Result<(), String> {
        self.hooks_started = true;
        // runtime-spec runtime.md: "created" is the status once the create
        // operation's environment exists (after step 2); the hooks are
        // steps 3 to 5 (as crun and the runtime-tools suite's hooks_stdin).
        let state = oci_state(self.record, Status::Created);
        #[allow(deprecated)]
        let prestart = hook_list(self.spec, |h| h.prestart());
        hooks::run("prestart", &prestart, &state).map_err(|e| e.to_string())?;
        let create_runtime = hook_list(self.spec, |h| h.create_runtime());
        hooks::run("createRuntime", &create_runtime, &state).map_err(|e| e.to_string())
    }
}

fn invalid(what: String) -> ContainerError {
    ContainerError::Invalid(what)
}

/// As runc: a sysctl may only be written into a namespace of the container's
/// own, never into one shared with the runtime (that would change the host).
fn check_sysctl(key: &str, ns: &namespaces::Plan) -> Result<(), ContainerError> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let name = key.replace('/', ".");
    let kind = if IPC.contains(&name.as_str()) || name.starts_with("fs.mqueue.") {
        Kind::Ipc
    } else if name.starts_with("net.") {
        Kind::Net
    } else if name == "kernel.hostname" || name == "kernel.domainname" {
        Kind::Uts
    } else {
        return Err(invalid(format!(
            "linux.sysctl {key:?} is not in a namespace of the container: it would change the host; remove it"
        )));
    };
    let own = ns.creates(kind)
        || ns.join.iter().any(|j| {
            use std::os::unix::fs::MetadataExt;
            let host = std::fs::metadata(format!("/proc/self/ns/{}", kind.proc_name()));
            let joined = nix::sys::stat::fstat(&j.fd);
            j.kind == kind
                && match (host, joined) {
                    (Ok(h), Ok(j)) => h.ino() != j.st_ino || h.dev() != j.st_dev,
                    _ => false,
                }
        });
    if own {
        Ok(())
    } else {
        Err(invalid(format!(
            "linux.sysctl {key:?} needs a {kind} namespace of the container's own in linux.namespaces: it would change the host's"
        )))
    }
}

fn build_plan(
    bundle: &Bundle,
    opts: &CreateOptions,
    dir: &StateDir,
    cgroup: Option<&dyn CgroupManager>,
) -> Result<Plan, ContainerError> {
    let spec = &bundle.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let ns_list = linux.namespaces().clone().unwrap_or_default();
    let namespaces = namespaces::Plan::from_spec(&ns_list)
        .map_err(|e| invalid(format!("linux.namespaces: {e}")))?;
    let in_userns = namespaces.has(Kind::User);
    let uid_maps: Vec<LinuxIdMapping> = linux.uid_mappings().clone().unwrap_or_default();
    let gid_maps: Vec<LinuxIdMapping> = linux.gid_mappings().clone().unwrap_or_default();
    if namespaces.creates(Kind::User) && (uid_maps.is_empty() || gid_maps.is_empty()) {
        return Err(invalid(
            "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
        ));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !namespaces.creates(Kind::Uts) {
        return Err(invalid(
            "hostname is set but the container has no new uts namespace: add {\"type\": \"uts\"} to linux.namespaces".into(),
        ));
    }
    for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        check_sysctl(key, &namespaces)?;
    }
    let mut process = ProcessSpec::from_oci(
        bundle.process(),
        (opts.preserve_fds + opts.listen_fds) as i32,
    )
    .map_err(|e| invalid(e.to_string()))?;
    process.lsm = crate::lsm::Host::probe()
        .exec_labels(bundle.process())
        .map_err(|e| invalid(e.to_string()))?;
    if opts.listen_fds > 0 {
        process.env.push(format!("LISTEN_FDS={}", opts.listen_fds));
        process.env.push("LISTEN_PID=1".into());
    }
    user::check_rlimits(&process.rlimits).map_err(|e| invalid(e.to_string()))?;
    let console_socket = match (&opts.console_socket, process.terminal) {
        (Some(path), true) => Some(console::connect(path).map_err(|e| invalid(e.to_string()))?),
        (None, true) => {
            return Err(invalid(
                "process.terminal is true: pass --console-socket to receive the terminal, or set terminal to false".into(),
            ));
        }
        (Some(_), false) => {
            return Err(invalid(
                "--console-socket given but process.terminal is false: set terminal to true or drop the flag".into(),
            ));
        }
        (None, false) => None,
    };
    let mut rootfs_plan = rootfs_plan(bundle, opts, in_userns, cgroup)?;
    let annotations = spec.annotations().clone().unwrap_or_default();
    rootfs_plan.rootfs_idmap = idmap::rootfs_idmap(
        annotations
            .get(idmap::ROOTFS_ANNOTATION)
            .map(String::as_str),
        &bundle.rootfs,
        in_userns,
        namespaces.creates(Kind::User),
        &uid_maps,
    )
    .map_err(invalid)?;
    idmap::check(&rootfs_plan, in_userns).map_err(invalid)?;
    let reaper = crate::process::reaper::wanted(
        annotations
            .get(crate::process::reaper::INIT_ANNOTATION)
            .map(String::as_str),
    )
    .map_err(invalid)?;
    let start_listener = start_listener(&dir.start_socket())?;
    let state_json = {
        crate::state::OciState {
            oci_version: crate::state::OCI_VERSION.into(),
            id: opts.id.clone(),
            status: Status::Creating,
            pid: 0,
            bundle: bundle.dir.clone(),
            annotations: spec.annotations().clone().unwrap_or_default(),
        }
    };
    let (seccomp, seccomp_listener) = crate::seccomp::prepare(
        linux.seccomp().as_ref(),
        &state_json,
        dir.path().parent().map(super::seccomp_cache_dir).as_deref(),
    )
    .map_err(|e| invalid(e.to_string()))?;
    let sysctl = linux
        .sysctl()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let time_offsets = linux
        .time_offsets()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|(clock, off)| {
            format!(
                "{clock} {} {}\n",
                off.secs().unwrap_or(0),
                off.nanosecs().unwrap_or(0)
            )
        })
        .collect();
    Ok(Plan {
        namespaces,
        uid_maps,
        gid_maps,
        time_offsets,
        process,
        console_socket,
        init: Some(InitSetup {
            rootfs: rootfs_plan,
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            domainname: spec.domainname().clone().filter(|d| !d.is_empty()),
            sysctl,
            create_container_hooks: hook_list(spec, |h| h.create_container()),
            start_container_hooks: hook_list(spec, |h| h.start_container()),
            start_listener,
            keyring: (!opts.no_new_keyring).then(|| opts.id.clone()),
            // createContainer and startContainer hooks: see `runtime_ready`.
            state_json: crate::state::OciState {
                status: Status::Created,
                ..state_json
            },
            reaper,
        }),
        seccomp,
        seccomp_listener,
        stdio: None,
    })
}

fn rootfs_plan(
    bundle: &Bundle,
    opts: &CreateOptions,
    in_userns: bool,
    cgroup: Option<&dyn CgroupManager>,
) -> Result<rootfs::Plan, ContainerError> {
    let spec = &bundle.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let mut mounts: Vec<SpecMount> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| SpecMount::from_oci(m, &bundle.dir))
        .collect();
    let mount_label = crate::lsm::Host::probe()
        .mount_label(linux.mount_label())
        .map_err(|e| invalid(e.to_string()))?;
    for m in mounts.iter_mut() {
        if let Some(label) = &mount_label
            && crate::lsm::labels_mount(&m.fstype, m.options.is_bind())
        {
            m.options.data = crate::lsm::format_mount_label(&m.options.data, label);
        }
    }
    for m in &mounts {
        if !m.destination.is_absolute() {
            return Err(invalid(format!(
                "mount destination {:?} must be an absolute path",
                m.destination
            )));
        }
    }
    let mut devs = Vec::new();
    for d in linux.devices().iter().flatten() {
        devs.push(devices::Device::from_oci(d).map_err(|e| invalid(e.to_string()))?);
    }
    let mut all = devices::defaults();
    all.retain(|d| !devs.iter().any(|x| x.path == d.path));
    all.extend(devs);
    let propagation = rootfs::parse_propagation(linux.rootfs_propagation().as_deref())
        .map_err(|e| invalid(e.to_string()))?;
    let cgroups = cgroup
        .map(|c| c.mount_sources())
        .unwrap_or_default()
        .into_iter()
        .map(|(host_dir, name)| CgroupBind { host_dir, name })
        .collect();
    Ok(rootfs::Plan {
        rootfs: bundle.rootfs.clone(),
        mounts,
        devices: all,
        masked: linux
            .masked_paths()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        readonly: linux
            .readonly_paths()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        propagation,
        no_pivot: opts.no_pivot,
        in_userns,
        cgroups,
        rootfs_idmap: None,
    })
}

/// The socket `start` connects to; inherited by init, which accepts on it.
fn start_listener(path: &Path) -> Result<OwnedFd, ContainerError> {
    let err = |source: nix::Error| ContainerError::Io {
        what: "start socket",
        path: path.to_path_buf(),
        source: source.into(),
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err)?;
    // Long state roots would overflow sun_path: bind through /proc/self/fd of the directory.
    let dir = std::fs::File::open(path.parent().unwrap_or(Path::new("/"))).map_err(|e| {
        ContainerError::Io {
            what: "state directory",
            path: path.to_path_buf(),
            source: e,
        }
    })?;
    let short = PathBuf::from(format!(
        "/proc/self/fd/{}/{}",
        dir.as_raw_fd(),
        crate::state::START_SOCKET
    ));
    let target = if path.as_os_str().len() < 100 {
        path.to_path_buf()
    } else {
        short
    };
    let addr = UnixAddr::new(&target).map_err(err)?;
    bind(fd.as_raw_fd(), &addr).map_err(err)?;
    listen(&fd, Backlog::new(1).map_err(err)?).map_err(err)?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    Ok(fd)
}

fn write_pid_file(path: &Path, pid: i32) -> Result<(), ContainerError> {
    let err = |source| ContainerError::Io {
        what: "pid file",
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("pea-tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
