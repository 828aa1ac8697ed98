//! Killing leftover processes and bounded waiting.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::error::{CgroupError, Result};

/// How long destroy waits for a cgroup to empty.
pub(crate) const EMPTY_BUDGET: Duration = Duration::from_secs(10);
/// How long freeze waits for the kernel to report the new state.
pub(crate) const FREEZE_BUDGET: Duration = Duration::from_secs(5);

/// Call `done` with growing pauses (1 ms up to 50 ms) until it returns true
/// or `budget` passes; returns whether it succeeded.
pub(crate) fn poll(budget: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() >= budget {
            return Ok(false);
        }
        thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// SIGKILL every pid `list` returns until it returns none, within
/// [`EMPTY_BUDGET`]. `path` names the cgroup in errors.
pub(crate) fn kill_all(path: &Path, mut list: impl FnMut() -> Result<Vec<i32>>) -> Result<()> {
    let mut last = Vec::new();
    let emptied = poll(EMPTY_BUDGET, || {
        last = list()?;
        for &pid in &last {
            if pid <= 0 {
                continue;
            }
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Kill {
                        pid,
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Ok(last.is_empty())
    })?;
    if emptied {
        Ok(())
    } else {
        Err(CgroupError::Timeout {
            path: path.to_path_buf(),
            what: format!("become empty after SIGKILL (still there: {last:?})"),
            waited: EMPTY_BUDGET,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_stops_on_success_and_times_out() {
        let mut n = 0;
        assert!(
            poll(Duration::from_secs(1), || {
                n += 1;
                Ok(n == 3)
            })
            .unwrap()
        );
        assert!(!poll(Duration::from_millis(5), || Ok(false)).unwrap());
    }

    #[test]
    fn kill_all_with_nothing_left_is_ok() {
        kill_all(Path::new("/x"), || Ok(Vec::new())).unwrap();
    }
}
