//! The command line's side of the attach socket: relays its own stdin (raw,
//! when it is a terminal) and the terminal's size to the container, and the
//! container's output to its stdout and stderr, until the container ends.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use nix::sys::termios::{self, SetArg, Termios};

use super::proto::{self, Kind};

/// How the client attaches.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    /// Send this process's stdin to the container.
    pub stdin: bool,
    /// The container has a terminal: put ours in raw mode and send its size.
    pub tty: bool,
}

/// How an attach ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container ended with this code.
    Exited(i32),
    /// The container could not start.
    Failed(String),
    /// The connection ended without either (the monitor went away).
    Lost,
}

/// Connects to the attach socket at `path`.
pub fn connect(path: &Path, opts: AttachOptions) -> io::Result<UnixStream> {
    let mut conn = UnixStream::connect(path)?;
    let hello = serde_json::json!({ "stdin": opts.stdin }).to_string();
    proto::write_frame(&mut conn, Kind::Hello, hello.as_bytes())?;
    Ok(conn)
}

/// Puts a terminal in raw mode until dropped.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    use std::os::fd::AsRawFd;
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize to the valid pointer given.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (r == 0 && size.ws_row > 0).then_some((size.ws_row, size.ws_col))
}

fn resize_frame(conn: &mut UnixStream, (rows, cols): (u16, u16)) -> io::Result<()> {
    let mut p = rows.to_be_bytes().to_vec();
    p.extend_from_slice(&cols.to_be_bytes());
    proto::write_frame(conn, Kind::Resize, &p)
}

/// Relays until the container ends (or the connection does). `started` is
/// called when the monitor says the container started.
pub fn relay(
    mut conn: UnixStream,
    opts: AttachOptions,
    started: &mut dyn FnMut(),
) -> io::Result<AttachEnd> {
    let stdin = io::stdin();
    let _raw = if opts.tty {
        RawMode::enter(stdin.as_fd())
    } else {
        None
    };
    if opts.tty {
        let mut conn = conn.try_clone()?;
        let mut last = window_size(stdin.as_fd());
        if let Some(size) = last {
            resize_frame(&mut conn, size)?;
        }
        // Terminal resizes, looked at twice a second.
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let now = window_size(io::stdin().as_fd());
                if now.is_some() && now != last {
                    last = now;
                    if resize_frame(&mut conn, now.unwrap_or_default()).is_err() {
                        return;
                    }
                }
            }
        });
    }
    if opts.stdin {
        let mut conn = conn.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut input = io::stdin().lock();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if proto::write_frame(&mut conn, Kind::Stdin, &buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = proto::write_frame(&mut conn, Kind::StdinClose, &[]);
        });
    }
    let mut out = io::stdout();
    let mut err = io::stderr();
    loop {
        match proto::read_frame(&mut conn)? {
            Some((Kind::Stdout, data)) => {
                out.write_all(&data)?;
                out.flush()?;
            }
            Some((Kind::Stderr, data)) => {
                err.write_all(&data)?;
                err.flush()?;
            }
            Some((Kind::Started, _)) => started(),
            Some((Kind::Exit, code)) => {
                let code = String::from_utf8_lossy(&code).trim().parse().unwrap_or(255);
                return Ok(AttachEnd::Exited(code));
            }
            Some((Kind::Error, reason)) => {
                return Ok(AttachEnd::Failed(String::from_utf8_lossy(&reason).into()));
            }
            Some(_) => {}
            None => return Ok(AttachEnd::Lost),
        }
    }
}
