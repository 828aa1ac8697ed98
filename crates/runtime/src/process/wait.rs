//! Waiting for container processes and turning their end into an exit code.

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Waits for a child (or an adopted descendant, when the caller is a
/// subreaper) to end. Retries on EINTR.
pub fn wait_pid(pid: i32) -> Result<ExitStatus, nix::Error> {
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitStatus::Signaled(sig as i32)),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reaps `pid` if it has ended, without blocking.
pub fn try_wait_pid(pid: i32) -> Result<Option<ExitStatus>, nix::Error> {
    match waitpid(
        Pid::from_raw(pid),
        Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
    )? {
        WaitStatus::Exited(_, code) => Ok(Some(ExitStatus::Exited(code))),
        WaitStatus::Signaled(_, sig, _) => Ok(Some(ExitStatus::Signaled(sig as i32))),
        _ => Ok(None),
    }
}

/// Makes the calling process the reaper of its orphaned descendants, so a
/// container init whose forking parent exited is still waited for here.
pub fn become_subreaper() -> Result<(), nix::Error> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    nix::errno::Errno::result(rc).map(drop)
}

/// Field 22 of /proc/PID/stat (start time in clock ticks), or None when gone.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state).
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether `pid` is alive and still the process that started at `start`.
pub fn is_same_process(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}
