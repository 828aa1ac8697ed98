//! `pea`: peapod's OCI runtime, a drop-in for runc's command line.

mod args;
mod cgroup_cmds;
mod commands;
#[path = "../../edge.rs"]
mod edge;
mod features;
mod logging;
mod time;
mod tty;

use std::process::ExitCode;

fn main() -> ExitCode {
    // CVE-2019-5736: every process that joins a container must run a binary
    // the container cannot write; only these verbs make such processes.
    let sealed = std::env::args_os()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("create" | "run" | "exec")))
        .then(pea_runtime::exe_seal::reexec_read_only);
    let cli: args::Cli = match edge::parse("pea", 1) {
        Ok(c) => c,
        Err(code) => return code,
    };
    logging::init(&cli);
    if let Some(Err(e)) = sealed {
        tracing::warn!("{e}");
    }
    let logs_to_file = cli.log.is_some();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = edge::one_line(&e);
            if logs_to_file {
                tracing::error!("{msg}");
            }
            eprintln!("pea: {msg}");
            ExitCode::from(1)
        }
    }
}
