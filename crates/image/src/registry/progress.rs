//! Download progress: a bar per layer on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::digest::Digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, else plain lines.
    Auto,
    /// One line per event on stderr.
    Plain,
    /// Nothing.
    Quiet,
}

#[derive(Clone)]
pub struct Progress {
    multi: Option<Arc<MultiProgress>>,
    plain: bool,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let tty = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
        Progress {
            multi: tty
                .then(|| Arc::new(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))),
            plain: matches!(mode, ProgressMode::Plain) || (mode == ProgressMode::Auto && !tty),
        }
    }

    /// A line of its own (above the bars on a terminal).
    pub fn message(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None if self.plain => eprintln!("{msg}"),
            None => {}
        }
    }

    pub fn layer(&self, digest: &Digest, size: u64) -> LayerProgress {
        let label = digest.short().to_string();
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(size));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix}: {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_prefix(label.clone());
            b
        });
        LayerProgress {
            bar,
            label,
            plain: self.plain,
            size,
        }
    }
}

pub struct LayerProgress {
    bar: Option<ProgressBar>,
    label: String,
    plain: bool,
    size: u64,
}

impl LayerProgress {
    pub fn start(&self) {
        if self.plain {
            eprintln!("{}: downloading ({})", self.label, human_size(self.size));
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn finish(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None if self.plain => eprintln!("{}: {msg}", self.label),
            None => {}
        }
    }
}

/// `12.3 MB`-style sizes (decimal units, as docker prints them).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[u]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(999), "999B");
        assert_eq!(super::human_size(1_234_000), "1.234MB");
        assert_eq!(super::human_size(5_000), "5kB");
    }
}
