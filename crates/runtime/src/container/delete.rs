//! `delete`: remove a stopped container's cgroup and state (killing it first
//! with --force), then run poststop hooks.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{ContainerError, Runtime, cgroup_of, oci_state, status_with};
use crate::hooks;
use crate::process::wait::{is_same_process, try_wait_pid};
use crate::state::{StateDir, StateError, Status};

impl Runtime {
    pub fn delete(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let dir = match StateDir::open(&self.root, id) {
            Ok(dir) => dir,
            Err(StateError::NotFound(n)) => {
                // A create killed right after making the directory leaves
                // it empty, without a lock file (rmdir only takes it empty).
                let _ = std::fs::remove_dir(self.root.join(id));
                return Err(StateError::NotFound(n).into());
            }
            Err(e) => return Err(e.into()),
        };
        let Some(record) = dir.load()? else {
            // create died before writing anything: only the directory is left.
            dir.remove()?;
            return Ok(());
        };
        // Opened once: for the status, the thaw and the removal.
        let cg = cgroup_of(&record).ok().flatten();
        let status = status_with(&record, dir.path(), || {
            cg.as_deref().is_some_and(super::is_frozen)
        });
        if status != Status::Stopped {
            // A created container never ran user code: delete may kill it (as runc).
            if !force && status != Status::Created {
                return Err(ContainerError::WrongState {
                    id: id.into(),
                    status,
                    what: "stop it first or use delete --force",
                });
            }
            if let Some(cg) = &cg {
                // Thaw so SIGKILL is acted on.
                let _ = cg.freeze(crate::cgroups::FreezerState::Thawed);
            }
            if is_same_process(record.pid, record.pid_start_time) {
                let _ = kill(Pid::from_raw(record.pid), Signal::SIGKILL);
            }
            wait_gone(record.pid, record.pid_start_time);
        }
        if let Some(cg) = &cg {
            crate::cgroups::destroy_container_cgroup(cg.as_ref())?;
        }
        let state = oci_state(&record, Status::Stopped);
        let poststop = record.poststop.clone();
        dir.remove()?;
        // runtime-spec: a failing poststop hook is a warning only; the ones
        // after it still run.
        for e in hooks::run_all("poststop", &poststop, &state) {
            tracing::warn!(container = id, "{e}");
        }
        Ok(())
    }
}

/// Waits (bounded) for a killed init to disappear, reaping it if it is ours.
fn wait_gone(pid: i32, start: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_same_process(pid, start) && Instant::now() < deadline {
        let _ = try_wait_pid(pid);
        std::thread::sleep(Duration::from_millis(1));
    }
}
