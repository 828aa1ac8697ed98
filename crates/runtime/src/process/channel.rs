//! Typed messages between the runtime and the processes it forks, over a
//! SOCK_SEQPACKET socket pair: one message per packet, each an enum variant.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("runtime channel: {0}")]
    Sys(#[from] nix::Error),
    #[error("runtime channel: the other side closed before {0}")]
    Closed(&'static str),
    #[error("runtime channel: bad message: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("runtime channel: expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
}

/// From the container side to the runtime.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToParent {
    /// A new user namespace exists: write uid/gid maps for this pid.
    MapRequest { pid: i32 },
    /// The process that will become the container's init (runtime's pid ns).
    InitPid { pid: i32 },
    /// Namespaces exist, rootfs not yet pivoted: run prestart and createRuntime hooks.
    RuntimeReady,
    /// The seccomp filter is loaded; carries its notify descriptor for the
    /// agent at `listenerPath`. Answered by `SeccompFdSent`.
    SeccompFd,
    /// Everything is set up; init waits for `start` (or, for exec, about to exec).
    Ready,
    /// Setup failed; the text is the whole error line.
    Failed { error: String },
}

/// From the runtime to the container side.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    MapsWritten,
    CgroupJoined,
    /// Carries the descriptor of a detached id-mapped mount for `target`
    /// (sent after the hooks, before `HooksDone`).
    IdmappedMount {
        target: crate::rootfs::idmap::Target,
    },
    HooksDone,
    /// The seccomp agent has the notify descriptor.
    SeccompFdSent,
}

/// One end of the pair.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel), ChannelError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

const MAX_MESSAGE: usize = 64 * 1024;

impl Channel {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send<T: Serialize>(&self, msg: &T) -> Result<(), ChannelError> {
        self.send_with_fd(msg, None)
    }

    /// Sends a message carrying a file descriptor (SCM_RIGHTS).
    pub fn send_with_fd<T: Serialize>(
        &self,
        msg: &T,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(), ChannelError> {
        let data = serde_json::to_vec(msg)?;
        let iov = [IoSlice::new(&data)];
        let fds;
        let cmsg: Vec<ControlMessage> = match fd {
            Some(fd) => {
                fds = [fd.as_raw_fd()];
                vec![ControlMessage::ScmRights(&fds)]
            }
            None => Vec::new(),
        };
        sendmsg::<()>(self.raw(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
        Ok(())
    }

    /// Receives one message; `Ok(None)` when the peer closed its end.
    pub fn recv<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<T>, ChannelError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(self.raw(), &mut iov, None, MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(m) => break m.bytes,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&buf[..n])?))
    }

    /// Receives one message and the descriptor that came with it.
    pub fn recv_with_fd<T: for<'de> Deserialize<'de>>(
        &self,
    ) -> Result<Option<(T, Option<OwnedFd>)>, ChannelError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.raw(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => {
                    let mut got = None;
                    for c in m.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: the kernel just installed this descriptor for us.
                                let owned = unsafe {
                                    <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw)
                                };
                                got.get_or_insert(owned);
                            }
                        }
                    }
                    break (m.bytes, got);
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some((serde_json::from_slice(&buf[..n])?, fd)))
    }

    /// Receives a message that must arrive before `what`.
    pub fn expect<T: for<'de> Deserialize<'de>>(
        &self,
        what: &'static str,
    ) -> Result<T, ChannelError> {
        self.recv()?.ok_or(ChannelError::Closed(what))
    }
}
