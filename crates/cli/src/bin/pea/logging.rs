//! `--log FILE`, `--log-format text|json`, `--debug`: runc's logging flags.
//! containerd's shim reads the last JSON error line from the log file.

use std::fs::OpenOptions;

use tracing_subscriber::EnvFilter;

use crate::args::{Cli, LogFormat};

/// Installs the subscriber; messages go to the log file when one is given.
/// Errors are also printed to stderr by main, so without --log only warnings
/// and debug messages are logged to stderr here.
pub fn init(cli: &Cli) -> Option<()> {
    let level = if cli.debug { "debug" } else { "warn" };
    let filter = EnvFilter::new(level);
    match &cli.log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()?;
            let b = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file));
            match cli.log_format {
                LogFormat::Json => b.json().flatten_event(true).with_current_span(false).init(),
                LogFormat::Text => b.init(),
            }
        }
        None => {
            // Errors are printed by main; only warnings and debug go here.
            let filter = EnvFilter::new(if cli.debug { "debug" } else { "warn" });
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_target(false)
                .without_time()
                .init();
        }
    }
    Some(())
}
