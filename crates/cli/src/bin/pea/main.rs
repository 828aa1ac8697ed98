//! `pea`: peapod's OCI runtime, a drop-in for runc's command line.

mod args;
mod cgroup_cmds;
mod commands;
mod features;
mod logging;
mod time;
mod tty;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // CVE-2019-5736: every process that joins a container must run a binary
    // the container cannot write; only these verbs make such processes.
    let sealed = std::env::args_os()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("create" | "run" | "exec")))
        .then(pea_runtime::exe_seal::reexec_read_only);
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line names the bad flag or value.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "pea: {}; see `pea --help`",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(1);
        }
    };
    logging::init(&cli);
    if let Some(Err(e)) = sealed {
        tracing::warn!("{e}");
    }
    let logs_to_file = cli.log.is_some();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = one_line(&e);
            if logs_to_file {
                tracing::error!("{msg}");
            }
            eprintln!("pea: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, skipping causes the message already shows.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}
