//! The parent side of starting a container process: fork, answer the child's
//! requests (id maps, cgroup placement, hooks) and learn its fate.

use nix::sys::signal::{Signal, kill};
use nix::unistd::{ForkResult, Pid, fork};

use super::channel::{self, ChannelError, ToChild, ToParent};
use super::plan::Plan;
use super::wait;
use crate::cgroups::{CgroupError, CgroupManager};
use crate::rootfs::idmap::{self, IdmapError};
use crate::user::{self, UserError};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("fork: {0}")]
    Fork(nix::Error),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Maps(#[from] UserError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    /// The child's own error line.
    #[error("{0}")]
    Child(String),
    #[error("container process exited during setup ({0})")]
    Died(String),
    #[error("{0}")]
    Hook(String),
    #[error(transparent)]
    Idmap(#[from] IdmapError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

/// Callbacks into the caller at the points the spec gives it a say.
pub trait Observer {
    /// The container process's pid is known (persist it before anything else).
    fn pid_known(&mut self, pid: i32);
    /// Namespaces exist, rootfs not yet built: prestart and createRuntime hooks.
    fn runtime_ready(&mut self, pid: i32) -> Result<(), String>;
}

/// What `spawn` waits for after `Ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Init is set up and waits for `start`.
    Ready,
    /// The process has exec'd (the channel closed on exec).
    Exec,
}

/// How far the child got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Forked,
    Pid(i32),
    Ready(i32),
}

impl Progress {
    fn pid(self) -> Option<i32> {
        match self {
            Progress::Forked => None,
            Progress::Pid(p) | Progress::Ready(p) => Some(p),
        }
    }
}

/// Id maps to write when the child asks.
pub struct Maps<'a> {
    pub uid: &'a [oci_spec::runtime::LinuxIdMapping],
    pub gid: &'a [oci_spec::runtime::LinuxIdMapping],
    /// Id-mapped mounts to make for the init after the hooks.
    pub idmapped: &'a [idmap::Request],
    /// The seccomp agent that gets the notify descriptor the child sends.
    pub seccomp_listener: std::cell::Cell<Option<crate::seccomp::Listener>>,
}

/// Forks and drives the child through `plan`. Returns the pid of the
/// container process in the caller's pid namespace.
pub fn spawn(
    mut plan: Plan,
    cgroup: Option<&dyn CgroupManager>,
    observer: &mut dyn Observer,
    until: Until,
) -> Result<i32, SpawnError> {
    let uid_maps = plan.uid_maps.clone();
    let gid_maps = plan.gid_maps.clone();
    let idmapped = plan
        .init
        .as_ref()
        .map(|i| idmap::requests(&i.rootfs))
        .unwrap_or_default();
    let maps = Maps {
        uid: &uid_maps,
        gid: &gid_maps,
        idmapped: &idmapped,
        // The agent's connection stays here; the child closes its copy.
        seccomp_listener: std::cell::Cell::new(plan.seccomp_listener.take()),
    };
    let (parent, child) = channel::pair()?;
    // SAFETY: glibc's fork resets malloc state in the child; the child only
    // runs `child::run`, which touches no lock other threads may hold.
    let first = match unsafe { fork() }.map_err(SpawnError::Fork)? {
        ForkResult::Child => {
            drop(parent);
            super::child::run(plan, child)
        }
        ForkResult::Parent { child: pid } => pid,
    };
    drop(child);
    drop(plan);
    let mut progress = Progress::Forked;
    let result = drive(
        &parent,
        first,
        &mut progress,
        &maps,
        cgroup,
        observer,
        until,
    );
    let pid = progress.pid();
    if result.is_err() {
        if let Some(p) = pid {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        let _ = kill(first, Signal::SIGKILL);
    }
    // The first child either is the process or exited after forking it.
    if pid != Some(first.as_raw()) || result.is_err() {
        let _ = wait::wait_pid(first.as_raw());
    }
    if let (Err(_), Some(p)) = (&result, pid)
        && p != first.as_raw()
    {
        // Reap it too when we are its reaper; harmless otherwise.
        let _ = wait::try_wait_pid(p);
    }
    result
}

fn drive(
    chan: &channel::Channel,
    first: Pid,
    progress: &mut Progress,
    maps: &Maps<'_>,
    cgroup: Option<&dyn CgroupManager>,
    observer: &mut dyn Observer,
    until: Until,
) -> Result<i32, SpawnError> {
    loop {
        let Some((msg, fd)) = chan.recv_with_fd::<ToParent>()? else {
            return match (until, *progress) {
                (Until::Exec, Progress::Ready(p)) => Ok(p),
                _ => Err(SpawnError::Died(died(first, progress.pid()))),
            };
        };
        match msg {
            ToParent::MapRequest { pid } => {
                user::write_id_maps(pid, maps.uid, maps.gid)?;
                chan.send(&ToChild::MapsWritten)?;
            }
            ToParent::InitPid { pid } => {
                *progress = Progress::Pid(pid);
                observer.pid_known(pid);
                if let Some(cg) = cgroup {
                    cg.add_process(pid)?;
                }
                chan.send(&ToChild::CgroupJoined)?;
            }
            ToParent::RuntimeReady => {
                let pid = progress.pid().unwrap_or(first.as_raw());
                observer.runtime_ready(pid).map_err(SpawnError::Hook)?;
                // The user namespace has its maps and the hooks have made
                // what they make: id-map the mounts that ask for it.
                for (target, tree) in idmap::make_all(maps.idmapped, pid)? {
                    chan.send_with_fd(
                        &ToChild::IdmappedMount { target },
                        Some(std::os::fd::AsFd::as_fd(&tree)),
                    )?;
                }
                chan.send(&ToChild::HooksDone)?;
            }
            ToParent::SeccompFd => {
                let pid = progress
                    .pid()
                    .ok_or_else(|| SpawnError::Died("no pid reported".into()))?;
                let (Some(listener), Some(fd)) = (maps.seccomp_listener.take(), fd) else {
                    return Err(SpawnError::Child(
                        "linux.seccomp: a notify descriptor came without a listener to send it to"
                            .into(),
                    ));
                };
                listener.send(pid, std::os::fd::AsFd::as_fd(&fd))?;
                chan.send(&ToChild::SeccompFdSent)?;
            }
            ToParent::Ready => {
                let pid = progress
                    .pid()
                    .ok_or_else(|| SpawnError::Died("no pid reported".into()))?;
                *progress = Progress::Ready(pid);
                if until == Until::Ready {
                    return Ok(pid);
                }
            }
            ToParent::Failed { error } => return Err(SpawnError::Child(error)),
        }
    }
}

fn died(first: Pid, pid: Option<i32>) -> String {
    let who = pid.unwrap_or(first.as_raw());
    match wait::try_wait_pid(who) {
        Ok(Some(st)) => format!("exit code {}", st.code()),
        _ => "no error was reported".into(),
    }
}
