//! `process.terminal`: a pseudo-terminal made inside the container, its
//! slave as the process's stdio and controlling terminal, its master sent to
//! the caller's console socket by SCM_RIGHTS (as containerd and Podman expect).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::stat::Mode;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console socket {path}: {source}; is something listening there?")]
    Connect { path: String, source: nix::Error },
    #[error("pseudo-terminal: {step}: {source}")]
    Pty {
        step: &'static str,
        source: nix::Error,
    },
}

/// Connects to the console socket (before pivot_root, while the path is visible).
pub fn connect(path: &Path) -> Result<OwnedFd, ConsoleError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let err = |source| ConsoleError::Connect {
        path: path.display().to_string(),
        source,
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
    Ok(fd)
}

fn pty(step: &'static str) -> impl Fn(nix::Error) -> ConsoleError {
    move |source| ConsoleError::Pty { step, source }
}

nix::ioctl_write_ptr_bad!(tiocsptlck, libc::TIOCSPTLCK, libc::c_int);
nix::ioctl_read_bad!(tiocgptn, libc::TIOCGPTN, libc::c_uint);
nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// A pseudo-terminal pair from the container's /dev/ptmx.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub name: String,
}

/// Opens a pty pair; `size` is (rows, cols) from `process.consoleSize`.
pub fn open_pty(size: Option<(u16, u16)>) -> Result<Pty, ConsoleError> {
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(pty("open /dev/ptmx"))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    unsafe { tiocsptlck(master.as_raw_fd(), &unlock) }.map_err(pty("unlock"))?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to a valid pointer.
    unsafe { tiocgptn(master.as_raw_fd(), &mut n) }.map_err(pty("pty number"))?;
    // SAFETY: the ioctl takes flags in the argument slot; we pass the open flags
    // through a direct libc call since the macro form takes none.
    let raw = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER as _,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave_raw = nix::errno::Errno::result(raw).map_err(pty("open peer"))?;
    // SAFETY: TIOCGPTPEER returned a new descriptor that we now own.
    let slave = unsafe { OwnedFd::from_raw_fd(slave_raw as RawFd) };
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize struct.
        unsafe { tiocswinsz(master.as_raw_fd(), &ws) }.map_err(pty("window size"))?;
    }
    Ok(Pty {
        master,
        slave,
        name: format!("/dev/pts/{n}"),
    })
}

/// Sends `fd` over the connected console socket with the pty's name as payload.
pub fn send_master(socket: &OwnedFd, master: &OwnedFd, name: &str) -> Result<(), ConsoleError> {
    let iov = [IoSlice::new(name.as_bytes())];
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(pty("send master to console socket"))?;
    Ok(())
}

/// Makes `slave` the controlling terminal and stdin/stdout/stderr.
pub fn become_console(slave: &OwnedFd) -> Result<(), ConsoleError> {
    nix::unistd::setsid().map_err(pty("setsid"))?;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY as _, 0) };
    nix::errno::Errno::result(rc).map_err(pty("set controlling terminal"))?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors of this process.
        let rc = unsafe { libc::dup2(slave.as_fd().as_raw_fd(), target) };
        nix::errno::Errno::result(rc).map_err(pty("dup2 onto stdio"))?;
    }
    Ok(())
}

/// The caller's side of the console socket: receives the pty master a
/// container sends on the accepted connection `conn`.
pub fn receive_master(conn: &impl AsRawFd) -> Result<OwnedFd, ConsoleError> {
    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(pty("receive the terminal"))?;
    let cmsgs = msg.cmsgs().map_err(pty("receive the terminal"))?;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel installed this descriptor for us just now;
            // nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(ConsoleError::Pty {
        step: "receive the terminal (none was sent)",
        source: nix::Error::EBADMSG,
    })
}
