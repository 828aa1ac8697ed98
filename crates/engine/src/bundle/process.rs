//! The process: args, environment, working directory, hostname, stop signal.

use peapod_image::config::ContainerConfig;

use super::{BundleContext, BundleError};
use crate::request::ContainerRequest;

/// Docker's PATH when the image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Entrypoint (the request's or the image's) + Cmd (the request's command,
/// else the image's, which `--entrypoint` drops as Docker does).
pub fn args(req: &ContainerRequest, img: &ContainerConfig) -> Result<Vec<String>, BundleError> {
    let (entry, image_cmd) = match &req.entrypoint {
        Some(e) => (e.clone(), Vec::new()),
        None => (
            img.entrypoint.clone().unwrap_or_default(),
            img.cmd.clone().unwrap_or_default(),
        ),
    };
    let cmd = if req.command.is_empty() {
        image_cmd
    } else {
        req.command.clone()
    };
    let args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(BundleError::NoCommand);
    }
    Ok(args)
}

fn key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

fn set(env: &mut Vec<String>, entry: String) {
    let k = key(&entry).to_string();
    match env.iter_mut().find(|e| key(e) == k) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// PATH (unless the image has one), the image's env, HOSTNAME, TERM with a
/// tty, HOME from passwd when not set, then the request's env by key.
pub fn env(
    req: &ContainerRequest,
    img: &ContainerConfig,
    hostname: &str,
    home: &str,
) -> Vec<String> {
    let mut env = vec![DEFAULT_PATH.to_string()];
    for e in img.env.iter().flatten() {
        set(&mut env, e.clone());
    }
    set(&mut env, format!("HOSTNAME={hostname}"));
    if req.tty {
        set(&mut env, "TERM=xterm".into());
    }
    if !env.iter().any(|e| key(e) == "HOME") {
        env.push(format!("HOME={home}"));
    }
    for e in &req.env {
        set(&mut env, e.clone());
    }
    env
}

/// `-w` (absolute, as Docker requires), else the image's WorkingDir (a
/// relative one is taken from "/"), else "/".
pub fn cwd(req: &ContainerRequest, img: &ContainerConfig) -> Result<String, BundleError> {
    if let Some(w) = req.workdir.as_ref().filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            return Err(BundleError::flag(
                "--workdir",
                w,
                "the working directory must be an absolute path",
            ));
        }
        return Ok(w.clone());
    }
    let w = img
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(if w.starts_with('/') {
        w
    } else {
        format!("/{w}")
    })
}

/// `--hostname`, else the first 12 characters of the id.
pub fn hostname(req: &ContainerRequest, ctx: &BundleContext) -> String {
    match &req.hostname {
        Some(h) if !h.is_empty() => h.clone(),
        // Sharing the host's UTS namespace: the host's name (as Docker).
        _ if ctx.namespaces.uts == super::NsChoice::Host => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
        _ => ctx.id.chars().take(12).collect(),
    }
}

/// `--stop-signal`, else the image's StopSignal, else SIGTERM.
pub fn stop_signal(req: &ContainerRequest, img: &ContainerConfig) -> Result<i32, BundleError> {
    let (flag, text) = match (&req.stop_signal, &img.stop_signal) {
        (Some(s), _) => ("--stop-signal", s),
        (None, Some(s)) if !s.is_empty() => ("the image's StopSignal", s),
        _ => return Ok(libc::SIGTERM),
    };
    pea_runtime::SignalNumber::parse(text)
        .map(|s| s.raw())
        .map_err(|_| {
            BundleError::flag(
                flag,
                text,
                "expected a signal name like SIGTERM or TERM, or a number 1-64",
            )
        })
}
