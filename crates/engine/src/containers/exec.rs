//! `exec`: another process in a running container, from the container's own
//! process settings with the request's changes.

use std::path::PathBuf;

use super::{Engine, EngineError, Status};

/// `peapod exec` flags.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub tty: bool,
    /// `-u USER[:GROUP]`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-e KEY=VALUE`, added to (or replacing in) the container's env.
    pub env: Vec<String>,
    /// Where the runtime sends the terminal's master (with `tty`).
    pub console_socket: Option<PathBuf>,
}

/// Starts `req` in container `key`; returns its pid. The caller (a child
/// subreaper or the parent) waits for it; without a terminal it has the
/// caller's stdio.
pub fn exec(engine: &Engine, key: &str, req: &ExecRequest) -> Result<i32, EngineError> {
    let record = engine.store.resolve(key)?;
    let view = engine.view(&record);
    if !matches!(view.status, Status::Running { .. }) {
        return Err(EngineError::WrongState {
            name: record.name.clone(),
            state: view.status.word().into(),
            fix: "exec needs a running container; start it first",
        });
    }
    if req.command.is_empty() {
        return Err(EngineError::Invalid(
            "exec needs a command: peapod exec CONTAINER COMMAND [ARG...]".into(),
        ));
    }
    let mut process = engine.runtime.process_of(&record.id)?;
    process.set_args(Some(req.command.clone()));
    process.set_terminal(Some(req.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for kv in &req.env {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    if let Some(w) = &req.workdir {
        process.set_cwd(w.into());
    }
    if let Some(u) = &req.user {
        let u = crate::bundle::resolve_user(&record.setup.rootfs, Some(u))?;
        let user = serde_json::from_value(serde_json::json!({
            "uid": u.uid,
            "gid": u.gid,
            "additionalGids": u.additional_gids,
        }))
        .map_err(|e| EngineError::Invalid(format!("exec --user: {e}")))?;
        process.set_user(user);
    }
    let pid = engine.runtime.exec(&pea_runtime::ExecOptions {
        id: record.id.clone(),
        process,
        console_socket: req.console_socket.clone(),
        pid_file: None,
        preserve_fds: 0,
    })?;
    Ok(pid)
}
