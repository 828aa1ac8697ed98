//! Foreground `run` and `exec`: signal forwarding, and the terminal when the
//! process has one and no --console-socket was given (pea is its own console).

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use pea_runtime::ExitStatus;

/// Whether the bundle's process asks for a terminal.
pub fn wants_terminal(bundle: &Path) -> Result<bool> {
    let data = std::fs::read(bundle.join("config.json")).with_context(|| {
        format!(
            "{}/config.json; create one with `pea spec`",
            bundle.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_slice(&data)
        .with_context(|| format!("{}/config.json is not valid JSON", bundle.display()))?;
    Ok(v["process"]["terminal"].as_bool().unwrap_or(false))
}

/// A console socket pea listens on itself.
pub struct ConsoleServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleServer {
    pub fn new(root: &Path, id: &str) -> Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("state root {}", root.display()))?;
        let path = root.join(format!(".console-{id}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("console socket {}", path.display()))?;
        Ok(Self { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receives the pty master the container sent.
    pub fn accept(self) -> Result<Terminal> {
        let (conn, _) = self
            .listener
            .accept()
            .context("accept console connection")?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receive the terminal")?;
        for c in msg.cmsgs().context("receive the terminal")? {
            if let ControlMessageOwned::ScmRights(fds) = c
                && let Some(fd) = fds.first()
            {
                // SAFETY: the kernel installed this descriptor for us.
                let master = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(*fd) };
                return Terminal::attach(master);
            }
        }
        Err(anyhow!(
            "the container sent no terminal over the console socket"
        ))
    }
}

impl Drop for ConsoleServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The pty master, with our own terminal in raw mode while attached.
pub struct Terminal {
    master: OwnedFd,
    saved: Option<Termios>,
}

impl Terminal {
    fn attach(master: OwnedFd) -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        let term = Terminal { master, saved };
        term.resize();
        Ok(term)
    }

    fn resize(&self) {
        let mut ws: libc::winsize = unsafe_zeroed_winsize();
        // SAFETY: TIOCGWINSZ writes a winsize struct we own; TIOCSWINSZ reads it.
        unsafe {
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }
}

fn unsafe_zeroed_winsize() -> libc::winsize {
    libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Signals pea receives while waiting are passed on to the container process.
pub struct SignalForwarder {
    fd: SignalFd,
}

const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

impl SignalForwarder {
    /// Blocks the forwarded signals (before the container is forked; the
    /// runtime resets the mask in the container).
    pub fn block() -> Result<Self> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(s);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("block signals")?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
        Ok(Self { fd })
    }

    /// Waits for `pid` to end, forwarding signals and copying terminal I/O.
    pub fn wait(self, pid: i32, terminal: Option<Terminal>) -> Result<ExitStatus> {
        if let Some(t) = &terminal {
            let master = t.master.try_clone().context("dup terminal")?;
            std::thread::spawn(move || copy_stdin(master));
        }
        let mut master_open = terminal.is_some();
        loop {
            if let Some(st) = reap(pid) {
                if let Some(t) = &terminal {
                    drain(&t.master);
                }
                return Ok(st);
            }
            let mut fds = vec![PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            if let (Some(t), true) = (&terminal, master_open) {
                fds.push(PollFd::new(t.master.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let sig_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            let pty_ready = fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
            if pty_ready && let Some(t) = &terminal {
                master_open = copy_out(&t.master);
            }
            if sig_ready && let Ok(Some(info)) = self.fd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    if let Some(t) = &terminal {
                        t.resize();
                    }
                } else if sig != libc::SIGCHLD {
                    // SAFETY: kill(2) with a pid and a signal number.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        }
    }
}

/// Reaps every ended child; returns the status of `pid` once it has ended.
fn reap(pid: i32) -> Option<ExitStatus> {
    loop {
        match waitpid(
            Pid::from_raw(-1),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => {
                return Some(ExitStatus::Exited(code));
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Some(ExitStatus::Signaled(sig as i32));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn copy_out(master: &OwnedFd) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(master, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut out = std::io::stdout();
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
            true
        }
    }
}

fn drain(master: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while copy_out(master) {}
}

fn copy_stdin(master: OwnedFd) {
    let mut buf = [0u8; 4096];
    let mut stdin = std::io::stdin();
    let mut file = std::fs::File::from(master);
    while let Ok(n) = stdin.read(&mut buf) {
        if n == 0 || file.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}
