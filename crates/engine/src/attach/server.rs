//! The monitor's side of the attach socket: a hub that sends the container's
//! output to every attached client and feeds the input of the one that
//! asked for stdin into the container.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::proto::{self, Kind};

/// How long one client may stall the container's output before it is dropped.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Shared {
    clients: Vec<UnixStream>,
    attached_once: bool,
    ended: bool,
}

/// Fans output out and input in. Cheap to share (`Arc`).
pub struct Hub {
    shared: Mutex<Shared>,
    attached: Condvar,
    /// Where client input goes: the write end of the container's stdin pipe
    /// or its terminal's master. `None` once closed (or never open).
    input: Mutex<Option<File>>,
    /// The terminal's master, for resizes.
    tty: Option<OwnedFd>,
}

impl Hub {
    /// `input`: where attached stdin goes; `tty`: the terminal master, when
    /// the container has one (a duplicate of it is fine).
    pub fn new(input: Option<File>, tty: Option<OwnedFd>) -> Arc<Hub> {
        Arc::new(Hub {
            shared: Mutex::new(Shared::default()),
            attached: Condvar::new(),
            input: Mutex::new(input),
            tty,
        })
    }

    /// Accepts clients on `listener` on a thread of its own, for as long as
    /// the process lives.
    pub fn serve(self: &Arc<Hub>, listener: UnixListener) {
        let hub = Arc::clone(self);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let hub = Arc::clone(&hub);
                std::thread::spawn(move || hub.client(conn));
            }
        });
    }

    fn client(&self, mut conn: UnixStream) {
        let wants_stdin = match proto::read_frame(&mut conn) {
            Ok(Some((Kind::Hello, payload))) => {
                serde_json::from_slice::<serde_json::Value>(&payload)
                    .ok()
                    .and_then(|v| v.get("stdin").and_then(|s| s.as_bool()))
                    .unwrap_or(false)
            }
            _ => return,
        };
        let Ok(out) = conn.try_clone() else { return };
        let _ = out.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
        {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            if s.ended {
                return;
            }
            s.clients.push(out);
            s.attached_once = true;
        }
        self.attached.notify_all();
        loop {
            match proto::read_frame(&mut conn) {
                Ok(Some((Kind::Stdin, data))) if wants_stdin => {
                    let mut input = self.input.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(f) = input.as_mut()
                        && f.write_all(&data).is_err()
                    {
                        *input = None;
                    }
                }
                Ok(Some((Kind::StdinClose, _))) if wants_stdin => {
                    // A terminal is not closed by one client's end of input.
                    if self.tty.is_none() {
                        *self.input.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    }
                }
                Ok(Some((Kind::Resize, data))) if data.len() == 4 => {
                    self.resize(
                        u16::from_be_bytes([data[0], data[1]]),
                        u16::from_be_bytes([data[2], data[3]]),
                    );
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        let Some(tty) = &self.tty else { return };
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer given;
        // the descriptor is a terminal master this hub owns.
        unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }

    /// Waits until a first client has attached, at most `timeout`; whether
    /// one did.
    pub fn wait_attached(&self, timeout: Duration) -> bool {
        let s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let (s, _) = self
            .attached
            .wait_timeout_while(s, timeout, |s| !s.attached_once)
            .unwrap_or_else(|p| p.into_inner());
        s.attached_once
    }

    /// Sends a frame to every client; drops those that fail or stall.
    pub fn broadcast(&self, kind: Kind, data: &[u8]) {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        s.clients
            .retain_mut(|c| proto::write_frame(c, kind, data).is_ok());
    }

    /// Sends the last frame and lets every client go; later clients are
    /// turned away.
    pub fn finish(&self, kind: Kind, data: &[u8]) {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        for c in &mut s.clients {
            let _ = proto::write_frame(c, kind, data);
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        s.clients.clear();
        s.ended = true;
    }
}
