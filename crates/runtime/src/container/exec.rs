//! `exec`: a new process in a running container's namespaces and cgroup.

use std::path::PathBuf;

use oci_spec::runtime::Process;

use super::{ContainerError, Runtime, cgroup_of};
use crate::config::check_process;
use crate::console;
use crate::process::exec::plan_for;
use crate::process::plan::ProcessSpec;
use crate::process::spawn::{self, Observer, Until};
use crate::state::Status;

/// What `exec` runs and how.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

struct Quiet;

impl Observer for Quiet {
    fn pid_known(&mut self, _pid: i32) {}
    fn runtime_ready(&mut self, _pid: i32) -> Result<(), String> {
        Ok(())
    }
}

impl Runtime {
    /// The container's own process: the base that `exec` flags override.
    pub fn process_of(&self, id: &str) -> Result<Process, ContainerError> {
        Ok(self.read(id)?.0.process)
    }

    /// Starts `opts.process` inside container `opts.id`; returns its pid once
    /// it has exec'd. The caller waits for it (it is a child, or an adopted
    /// descendant when the caller is a subreaper).
    pub fn exec(&self, opts: &ExecOptions) -> Result<i32, ContainerError> {
        let (record, status) = self.read(&opts.id)?;
        if !matches!(status, Status::Running | Status::Created) {
            return Err(ContainerError::WrongState {
                id: opts.id.clone(),
                status,
                what: "exec needs a running container",
            });
        }
        check_process(&opts.process)
            .map_err(|e| ContainerError::Invalid(format!("exec process: {e}")))?;
        let mut spec = ProcessSpec::from_oci(&opts.process, opts.preserve_fds as i32)
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        spec.lsm = crate::lsm::Host::probe()
            .exec_labels(&opts.process)
            .map_err(|e| ContainerError::Invalid(format!("exec process: {e}")))?;
        let console_socket = match (&opts.console_socket, spec.terminal) {
            (Some(p), true) => {
                Some(console::connect(p).map_err(|e| ContainerError::Invalid(e.to_string()))?)
            }
            (None, true) => {
                return Err(ContainerError::Invalid(
                    "exec with a terminal needs --console-socket".into(),
                ));
            }
            _ => None,
        };
        let mut plan = plan_for(record.pid, spec, console_socket)
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        // The container's filter holds for every process in it (as runc).
        (plan.seccomp, plan.seccomp_listener) = crate::seccomp::prepare(
            record.seccomp.as_ref(),
            &super::oci_state(&record, status),
            Some(&super::seccomp_cache_dir(&self.root)),
        )
        .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let cgroup = cgroup_of(&record)?;
        let pid =
            spawn::spawn(plan, cgroup.as_deref(), &mut Quiet, Until::Exec).map_err(|source| {
                ContainerError::Spawn {
                    id: opts.id.clone(),
                    source,
                }
            })?;
        if let Some(f) = &opts.pid_file {
            std::fs::write(f, pid.to_string()).map_err(|source| ContainerError::Io {
                what: "pid file",
                path: f.clone(),
                source,
            })?;
        }
        Ok(pid)
    }
}
