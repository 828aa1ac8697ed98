//! Which namespaces a container gets: new ones, joined ones (by path), and the
//! order they must be entered in.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("namespace {kind} path {path}: {source}; the process holding it may have exited")]
    Open {
        kind: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error(
        "namespace {kind} path {path} is {what}, not a {kind} namespace; point it at /proc/PID/ns/{kind} or a bind mount of one"
    )]
    WrongType {
        kind: &'static str,
        path: PathBuf,
        what: String,
    },
    #[error("this kernel has no {0} namespaces (missing /proc/self/ns/{0})")]
    Unsupported(&'static str),
}

/// A namespace kind, in the order the runtime enters them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    User,
    Mount,
    Uts,
    Ipc,
    Net,
    Cgroup,
    Pid,
    Time,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::User,
        Kind::Mount,
        Kind::Uts,
        Kind::Ipc,
        Kind::Net,
        Kind::Cgroup,
        Kind::Pid,
        Kind::Time,
    ];

    /// The name under /proc/PID/ns.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Mount => "mnt",
            Kind::Uts => "uts",
            Kind::Ipc => "ipc",
            Kind::Net => "net",
            Kind::Cgroup => "cgroup",
            Kind::Pid => "pid",
            Kind::Time => "time",
        }
    }

    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::User => CloneFlags::CLONE_NEWUSER,
            Kind::Mount => CloneFlags::CLONE_NEWNS,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Kind::Pid => CloneFlags::CLONE_NEWPID,
            // nix does not name CLONE_NEWTIME.
            Kind::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        }
    }

    pub fn from_oci(t: LinuxNamespaceType) -> Self {
        match t {
            LinuxNamespaceType::User => Kind::User,
            LinuxNamespaceType::Mount => Kind::Mount,
            LinuxNamespaceType::Uts => Kind::Uts,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Network => Kind::Net,
            LinuxNamespaceType::Cgroup => Kind::Cgroup,
            LinuxNamespaceType::Pid => Kind::Pid,
            LinuxNamespaceType::Time => Kind::Time,
        }
    }

    pub fn from_proc_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.proc_name() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.proc_name())
    }
}

/// A namespace to join, opened by the parent before fork so a vanished holder
/// is reported before anything is made.
#[derive(Debug)]
pub struct Join {
    pub kind: Kind,
    pub fd: OwnedFd,
}

/// The namespaces of one container process: made new, or joined.
#[derive(Debug, Default)]
pub struct Plan {
    pub new: Vec<Kind>,
    pub join: Vec<Join>,
}

impl Plan {
    /// From `linux.namespaces`.
    pub fn from_spec(list: &[LinuxNamespace]) -> Result<Self, NamespaceError> {
        let mut plan = Plan::default();
        for ns in list {
            let kind = Kind::from_oci(ns.typ());
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => {
                    plan.join.push(open_ns(kind, path.clone())?)
                }
                _ => {
                    check_supported(kind)?;
                    plan.new.push(kind)
                }
            }
        }
        plan.new.sort();
        plan.join.sort_by_key(|j| j.kind);
        Ok(plan)
    }

    /// Joining every namespace of a running process that differs from ours.
    pub fn join_process(pid: i32) -> Result<Self, NamespaceError> {
        let mut plan = Plan::default();
        for kind in Kind::ALL {
            let theirs = PathBuf::from(format!("/proc/{pid}/ns/{}", kind.proc_name()));
            let ours = PathBuf::from(format!("/proc/self/ns/{}", kind.proc_name()));
            match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
                (Ok(a), Ok(b)) => {
                    use std::os::unix::fs::MetadataExt;
                    if a.ino() != b.ino() || a.dev() != b.dev() {
                        plan.join.push(open_ns(kind, theirs)?);
                    }
                }
                (Err(_), Ok(_)) => {
                    return Err(NamespaceError::Open {
                        kind: kind.proc_name(),
                        path: theirs,
                        source: nix::Error::ESRCH,
                    });
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.new.contains(&kind) || self.join.iter().any(|j| j.kind == kind)
    }

    pub fn creates(&self, kind: Kind) -> bool {
        self.new.contains(&kind)
    }

    pub fn joins(&self, kind: Kind) -> bool {
        self.join.iter().any(|j| j.kind == kind)
    }

    /// Whether the init must be a fresh child of the namespace-entering process:
    /// PID and time namespaces apply to children only.
    pub fn needs_second_fork(&self) -> bool {
        self.has(Kind::Pid) || self.has(Kind::Time)
    }
}

fn check_supported(kind: Kind) -> Result<(), NamespaceError> {
    if std::path::Path::new("/proc/self/ns")
        .join(kind.proc_name())
        .exists()
    {
        Ok(())
    } else {
        Err(NamespaceError::Unsupported(kind.proc_name()))
    }
}

fn open_ns(kind: Kind, path: PathBuf) -> Result<Join, NamespaceError> {
    let fd = open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|source| {
        NamespaceError::Open {
            kind: kind.proc_name(),
            path: path.clone(),
            source,
        }
    })?;
    // runtime-spec config-linux.md: a path of another namespace type is an
    // error; say so before anything is made (setns would only fail later).
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: an ioctl without arguments on a descriptor we own.
    let got = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), NS_GET_NSTYPE as _) };
    if got != kind.flag().bits() {
        let what = if got < 0 {
            "not a namespace file".to_string()
        } else {
            Kind::ALL
                .iter()
                .find(|k| k.flag().bits() == got)
                .map(|k| format!("a {} namespace", k.proc_name()))
                .unwrap_or_else(|| "another kind of namespace".into())
        };
        return Err(NamespaceError::WrongType {
            kind: kind.proc_name(),
            path,
            what,
        });
    }
    Ok(Join { kind, fd })
}
