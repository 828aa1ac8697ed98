//! `listenerPath`: the seccomp agent's socket, connected by the runtime
//! before fork (so the path is the host's), which receives the notify
//! descriptor by SCM_RIGHTS with the container process state (runtime-spec
//! config-linux.md "The Container Process State").

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, sendmsg, socket,
};
use serde::Serialize;

use super::SeccompError;
use crate::state::{OCI_VERSION, OciState};

/// A connection to the seccomp agent, used once.
#[derive(Debug)]
pub struct Listener {
    socket: OwnedFd,
    path: PathBuf,
    metadata: Option<String>,
    state: OciState,
}

/// The message the agent gets (runtime-spec "containerProcessState").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerProcessState<'a> {
    oci_version: &'static str,
    fds: [&'static str; 1],
    pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a str>,
    state: &'a OciState,
}

impl Listener {
    /// Connects to the agent at `path`. `state` is the container's state;
    /// a pid of 0 in it is filled in with the process's own when sending.
    pub fn connect(
        path: &Path,
        metadata: Option<String>,
        state: OciState,
    ) -> Result<Self, SeccompError> {
        let err = |source: nix::Error| SeccompError::Listener {
            path: path.display().to_string(),
            what: format!("{source}; is the seccomp agent listening there?"),
        };
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(err)?;
        let addr = UnixAddr::new(path).map_err(err)?;
        connect(fd.as_raw_fd(), &addr).map_err(err)?;
        Ok(Listener {
            socket: fd,
            path: path.to_path_buf(),
            metadata,
            state,
        })
    }

    /// Sends `notify_fd` of the process `pid` (in the runtime's pid
    /// namespace) with the state, then closes the connection.
    pub fn send(self, pid: i32, notify_fd: BorrowedFd<'_>) -> Result<(), SeccompError> {
        let mut state = self.state.clone();
        if state.pid == 0 {
            state.pid = pid;
        }
        let msg = ContainerProcessState {
            oci_version: OCI_VERSION,
            fds: ["seccompFd"],
            pid,
            metadata: self.metadata.as_deref(),
            state: &state,
        };
        let json = serde_json::to_vec(&msg).map_err(|e| SeccompError::Listener {
            path: self.path.display().to_string(),
            what: e.to_string(),
        })?;
        let err = |source: nix::Error| SeccompError::Listener {
            path: self.path.display().to_string(),
            what: format!("sending the notify descriptor: {source}"),
        };
        let fds = [notify_fd.as_raw_fd()];
        let mut sent = 0;
        while sent < json.len() {
            // The descriptor goes with the first part only (runtime-spec).
            let cmsg = [ControlMessage::ScmRights(&fds)];
            let cmsgs: &[ControlMessage] = if sent == 0 { &cmsg } else { &[] };
            let iov = [IoSlice::new(&json[sent..])];
            match sendmsg::<()>(
                self.socket.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => sent += n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }
}
