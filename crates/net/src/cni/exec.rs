//! Running one plugin binary with the CNI_* environment and its config on stdin.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{CniError, CniRuntime, RuntimeConf};

/// Run `plugin` for `command`; its stdout on success, a [`CniError::Plugin`]
/// built from its error JSON (or stderr) on failure.
pub(super) fn run(
    cni: &CniRuntime,
    plugin: &str,
    command: &'static str,
    rt: &RuntimeConf,
    stdin: &Value,
) -> Result<Vec<u8>, CniError> {
    let bin = cni.find_plugin(plugin)?;
    let input = serde_json::to_vec(stdin).expect("a JSON value serializes");
    let spawn_err = |e: std::io::Error| CniError::Io {
        what: "run CNI plugin",
        path: bin.clone(),
        source: e,
    };
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &rt.container_id)
        .env("CNI_NETNS", &rt.netns)
        .env("CNI_IFNAME", &rt.ifname)
        .env("CNI_ARGS", rt.cni_args())
        .env("CNI_PATH", cni.search_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    // A plugin may exit without reading stdin: a broken pipe is its answer.
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(&input);
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(plugin_error(
        plugin,
        command,
        &out.stdout,
        &out.stderr,
        out.status,
    ))
}

fn plugin_error(
    plugin: &str,
    command: &'static str,
    stdout: &[u8],
    stderr: &[u8],
    status: std::process::ExitStatus,
) -> CniError {
    let parsed: Option<Value> = serde_json::from_slice(stdout).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let mut msg = field("msg");
    let details = field("details");
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64);
    if msg.is_empty() {
        let text = String::from_utf8_lossy(if stdout.trim_ascii().is_empty() {
            stderr
        } else {
            stdout
        })
        .trim()
        .replace('\n', "; ");
        msg = if text.is_empty() {
            format!("exited with {status}")
        } else {
            text
        };
    }
    CniError::Plugin {
        plugin: plugin.to_string(),
        command,
        code,
        msg,
        details,
    }
}
