//! Lifecycle hooks (runtime-spec config.md "POSIX-platform Hooks"): each gets
//! the container's state JSON on stdin, runs with its own args and env, and
//! is killed after its timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::state::OciState;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{stage} hook {path}: {source}")]
    Spawn {
        stage: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{stage} hook {path} failed ({status}){stderr}")]
    Failed {
        stage: &'static str,
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("{stage} hook {path} timed out after {secs} s and was killed")]
    Timeout {
        stage: &'static str,
        path: PathBuf,
        secs: i64,
    },
}

/// Runs `hooks` in order; the first failure stops the rest.
pub fn run(stage: &'static str, hooks: &[Hook], state: &OciState) -> Result<(), HookError> {
    let json = serde_json::to_vec(state).unwrap_or_default();
    for hook in hooks {
        run_one(stage, hook, &json)?;
    }
    Ok(())
}

/// Runs every hook of `hooks` in order, even after one fails (runtime-spec
/// runtime.md, steps 9 and 13: a failing poststart or poststop hook is a
/// warning, "the remaining hooks and lifecycle continue as if the hook had
/// succeeded"); returns the failures.
pub fn run_all(stage: &'static str, hooks: &[Hook], state: &OciState) -> Vec<HookError> {
    let json = serde_json::to_vec(state).unwrap_or_default();
    hooks
        .iter()
        .filter_map(|hook| run_one(stage, hook, &json).err())
        .collect()
}

fn run_one(stage: &'static str, hook: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = hook.path().clone();
    let spawn_err = |source| HookError::Spawn {
        stage,
        path: path.clone(),
        source,
    };
    let mut cmd = Command::new(&path);
    if let Some(args) = hook.args()
        && let Some((argv0, rest)) = args.split_first()
    {
        cmd.arg0(argv0);
        cmd.args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| (t, Instant::now() + Duration::from_secs(t as u64)));
    let status = loop {
        match child.try_wait().map_err(spawn_err)? {
            Some(status) => break status,
            None => {
                if let Some((secs, at)) = deadline
                    && Instant::now() >= at
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HookError::Timeout { stage, path, secs });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let stderr = stderr.trim();
    Err(HookError::Failed {
        stage,
        path,
        status: status.to_string(),
        stderr: if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        },
    })
}
