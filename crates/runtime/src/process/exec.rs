//! Building the plan for a process that joins a running container (`exec`).

use crate::namespaces;
use crate::process::plan::{Plan, ProcessSpec};

/// A plan that enters every namespace of `init_pid` that differs from ours.
pub fn plan_for(
    init_pid: i32,
    process: ProcessSpec,
    console_socket: Option<std::os::fd::OwnedFd>,
) -> Result<Plan, namespaces::NamespaceError> {
    Ok(Plan {
        namespaces: namespaces::Plan::join_process(init_pid)?,
        uid_maps: Vec::new(),
        gid_maps: Vec::new(),
        time_offsets: String::new(),
        process,
        console_socket,
        init: None,
        seccomp: None,
        seccomp_listener: None,
        stdio: None,
    })
}
