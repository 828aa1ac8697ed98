//! `start`: release the init blocked in `create` to exec the user's program.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use super::{ContainerError, Runtime, oci_state};
use crate::hooks;
use crate::state::{StateDir, Status};

impl Runtime {
    pub fn start(&self, id: &str) -> Result<(), ContainerError> {
        let dir = StateDir::open(&self.root, id)?;
        let (record, status) = self.read(id)?;
        if status != Status::Created {
            return Err(ContainerError::WrongState {
                id: id.into(),
                status,
                what: "only a created container can be started",
            });
        }
        let sock = dir.start_socket();
        let fail = |reason: String| ContainerError::StartFailed {
            id: id.into(),
            reason,
        };
        let mut conn = connect(&sock).map_err(|e| fail(format!("init is not waiting ({e})")))?;
        conn.write_all(b"s")
            .map_err(|e| fail(format!("signal init: {e}")))?;
        // The init closes the connection by exec; anything it writes is its error.
        let mut reply = String::new();
        let _ = conn.read_to_string(&mut reply);
        let _ = std::fs::remove_file(&sock);
        if !reply.is_empty() {
            return Err(fail(reply));
        }
        let state = oci_state(&record, Status::Running);
        // runtime-spec: a failing poststart hook is a warning only; the
        // ones after it still run.
        for e in hooks::run_all("poststart", &record.poststart, &state) {
            tracing::warn!(container = id, "{e}");
        }
        Ok(())
    }
}

/// Connects to the start socket, through /proc/self/fd when the path is long.
fn connect(path: &std::path::Path) -> std::io::Result<UnixStream> {
    if path.as_os_str().len() < 100 {
        return UnixStream::connect(path);
    }
    let dir = std::fs::File::open(path.parent().unwrap_or(std::path::Path::new("/")))?;
    let short = format!(
        "/proc/self/fd/{}/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir),
        crate::state::START_SOCKET
    );
    UnixStream::connect(short)
}
