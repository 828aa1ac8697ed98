//! What a new container process must become, computed by the parent before
//! fork so the child only performs syscalls on ready data.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::{Hook, LinuxIdMapping, PosixRlimit, Process};

use crate::capabilities::{CapSets, CapabilityError};
use crate::namespaces;
use crate::rootfs;
use crate::user::Identity;

/// The process to exec and how it runs.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub identity: Identity,
    pub caps: Option<CapSets>,
    pub rlimits: Vec<PosixRlimit>,
    pub no_new_privileges: bool,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub oom_score_adj: Option<i32>,
    /// Descriptors 3..3+n are passed to the process (--preserve-fds, LISTEN_FDS).
    pub extra_fds: i32,
    /// AppArmor profile and SELinux label for the execve, checked against
    /// the host by the caller (empty from `from_oci`).
    pub lsm: crate::lsm::ExecLabels,
}

impl ProcessSpec {
    pub fn from_oci(p: &Process, extra_fds: i32) -> Result<Self, CapabilityError> {
        Ok(ProcessSpec {
            args: p.args().clone().unwrap_or_default(),
            env: p.env().clone().unwrap_or_default(),
            cwd: p.cwd().clone(),
            identity: Identity::from_oci(p.user()),
            caps: p
                .capabilities()
                .as_ref()
                .map(CapSets::from_oci)
                .transpose()?,
            rlimits: p.rlimits().clone().unwrap_or_default(),
            no_new_privileges: p.no_new_privileges().unwrap_or(false),
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16)),
            oom_score_adj: p.oom_score_adj(),
            extra_fds,
            lsm: Default::default(),
        })
    }

    pub fn c_args(&self) -> Vec<CString> {
        self.args
            .iter()
            .filter_map(|a| CString::new(a.as_str()).ok())
            .collect()
    }
}

/// What only a container's init does: build the rootfs, name the host, wait for start.
#[derive(Debug)]
pub struct InitSetup {
    pub rootfs: rootfs::Plan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(String, String)>,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    /// Listening socket `start` connects to.
    pub start_listener: OwnedFd,
    /// Session keyring name, unless --no-new-keyring.
    pub keyring: Option<String>,
    /// The state JSON handed to createContainer/startContainer hooks.
    pub state_json: crate::state::OciState,
    /// Stay as PID 1 and fork the user's process ([`super::reaper`]).
    pub reaper: bool,
}

/// Everything the forked side needs.
#[derive(Debug)]
pub struct Plan {
    pub namespaces: namespaces::Plan,
    pub uid_maps: Vec<LinuxIdMapping>,
    pub gid_maps: Vec<LinuxIdMapping>,
    /// Lines for /proc/self/timens_offsets.
    pub time_offsets: String,
    pub process: ProcessSpec,
    pub console_socket: Option<OwnedFd>,
    /// Some for a container's init, None for exec.
    pub init: Option<InitSetup>,
    /// The compiled `linux.seccomp`, loaded by the container process.
    pub seccomp: Option<crate::seccomp::Program>,
    /// The seccomp agent (`listenerPath`) when the filter notifies: kept by
    /// the runtime (`spawn` takes it before fork), never by the container.
    pub seccomp_listener: Option<crate::seccomp::Listener>,
    /// Descriptors to become the process's stdin, stdout and stderr; the
    /// caller keeps them open until `spawn` returns. None: the caller's own.
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
}

impl Plan {
    /// Descriptors the forked side must keep open (all others are closed
    /// there: a lock or socket of the runtime's must not live on in the container).
    pub fn own_fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        let mut fds: Vec<_> = self
            .namespaces
            .join
            .iter()
            .map(|j| j.fd.as_raw_fd())
            .collect();
        fds.extend(self.console_socket.as_ref().map(|f| f.as_raw_fd()));
        fds.extend(self.init.as_ref().map(|i| i.start_listener.as_raw_fd()));
        fds.extend(self.stdio.iter().flatten());
        fds
    }
}
