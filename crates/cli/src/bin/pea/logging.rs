//! `--log FILE`, `--log-format text|json`, `--debug`: runc's logging flags.
//! containerd's shim reads the last `{"level":"error","msg":...}` line of the
//! log file to report why the runtime failed, so the JSON shape is runc's.

use std::fmt::Write as _;
use std::fs::OpenOptions;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::args::{Cli, LogFormat};

/// Installs the subscriber: to the log file when one is given, else stderr.
/// main prints errors to stderr itself, and logs them only to a log file.
pub fn init(cli: &Cli) {
    let filter = || EnvFilter::new(if cli.debug { "debug" } else { "warn" });
    let file = cli
        .log
        .as_ref()
        .and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
    match file {
        Some(file) => {
            let b = tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file));
            match cli.log_format {
                LogFormat::Json => b.event_format(RuncJson).init(),
                LogFormat::Text => b.init(),
            }
        }
        None => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .init(),
    }
}

/// One JSON object per line: level, msg, time (runc's logrus shape).
struct RuncJson;

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, format!("{value:?}"));
    }
}

impl Message {
    fn add(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.0.insert_str(0, &value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
}

impl<S, N> FormatEvent<S, N> for RuncJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut msg = Message::default();
        event.record(&mut msg);
        let line = serde_json::json!({
            "level": event.metadata().level().as_str().to_ascii_lowercase(),
            "msg": msg.0,
            "time": crate::time::now_rfc3339(),
        });
        writeln!(writer, "{line}")
    }
}
