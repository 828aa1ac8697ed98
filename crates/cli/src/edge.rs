//! What both binaries do at their edge: parse the command line and turn an
//! error into one line on stderr.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

/// Parses the command line; help and version print and exit 0, a bad flag
/// or value prints one line naming it and exits with `usage_code`.
pub fn parse<C: Parser>(bin: &str, usage_code: u8) -> Result<C, ExitCode> {
    C::try_parse().map_err(|e| {
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // One line: clap's first line names the bad flag or value.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid arguments");
        eprintln!(
            "{bin}: {}; see `{bin} --help`",
            first.trim_start_matches("error: ")
        );
        ExitCode::from(usage_code)
    })
}

/// The error and its causes on one line, skipping causes the message already shows.
pub fn one_line(e: &anyhow::Error) -> String {
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
