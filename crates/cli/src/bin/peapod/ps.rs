//! `peapod ps`: containers as `docker ps` lists them.

use anyhow::Result;
use clap::Args;
use peapod_engine::containers::Engine;
use peapod_engine::record::SHORT_ID_LEN;

use crate::args::ListFormat;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default: only running and restarting ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
}

/// Docker's `Ellipsis`: at most `max` characters, the last one "…".
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

pub fn run(engine: &Engine, a: &PsArgs) -> Result<()> {
    let mut rows: Vec<_> = engine
        .store
        .list()?
        .iter()
        .map(|r| engine.summary(r))
        .filter(|s| a.all || s.active)
        .collect();
    // Newest first, as Docker.
    rows.reverse();
    if a.quiet {
        for s in &rows {
            let id = if a.no_trunc {
                &s.id[..]
            } else {
                &s.id[..SHORT_ID_LEN]
            };
            println!("{id}");
        }
        return Ok(());
    }
    if a.format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            let (id, command) = if a.no_trunc {
                (s.id.clone(), s.command.clone())
            } else {
                (s.id[..SHORT_ID_LEN].to_string(), ellipsis(&s.command, 20))
            };
            vec![
                id,
                s.image.clone(),
                format!("\"{command}\""),
                s.running_for.clone(),
                s.status.clone(),
                s.ports.clone(),
                s.names.clone(),
            ]
        })
        .collect();
    crate::table::print(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &table,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn commands_are_cut_like_dockers() {
        assert_eq!(super::ellipsis("sleep 100", 20), "sleep 100");
        assert_eq!(
            super::ellipsis("sh -c 'echo hello; sleep 1000'", 20),
            "sh -c 'echo hello; …"
        );
    }
}
