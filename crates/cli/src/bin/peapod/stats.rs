//! `peapod stats`: CPU, memory and process counts of running containers,
//! redrawn every second (or printed once with `--no-stream`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use peapod_engine::containers::{Engine, Sample, StatsRow, Status, binary_size, stats_row};
use peapod_engine::record::{Record, SHORT_ID_LEN};

use crate::args::ListFormat;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print once and exit (CPU % is still measured over a second).
    #[arg(long)]
    pub no_stream: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Containers (default: all running ones).
    pub containers: Vec<String>,
}

const INTERVAL: Duration = Duration::from_secs(1);

pub fn run(engine: &Engine, a: &StatsArgs) -> Result<()> {
    let records: Vec<Record> = if a.containers.is_empty() {
        engine
            .store
            .list()?
            .into_iter()
            .filter(|r| engine.view(r).status.is_active())
            .collect()
    } else {
        a.containers
            .iter()
            .map(|c| engine.store.resolve(c))
            .collect::<Result<_, _>>()?
    };
    let sample = |named: bool| -> Result<Vec<Sample>> {
        let mut out = Vec::new();
        for r in &records {
            let status = engine.view(r).status;
            if named && a.no_stream && !matches!(status, Status::Running { .. }) {
                anyhow::bail!(
                    "container {} is {}: start it first, only a running container has statistics",
                    r.name,
                    status.word()
                );
            }
            match engine.stats_sample(r) {
                Ok(s) => out.push(s),
                Err(e) if named && a.no_stream => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(out)
    };
    let named = !a.containers.is_empty();
    let mut before = sample(named)?;
    let redraw = !a.no_stream && std::io::stdout().is_terminal();
    let mut printed = false;
    loop {
        std::thread::sleep(INTERVAL);
        let now = sample(named)?;
        let rows: Vec<StatsRow> = now
            .iter()
            .filter_map(|n| {
                before
                    .iter()
                    .find(|b| b.id == n.id)
                    .map(|b| stats_row(b, n))
            })
            .collect();
        // Streaming ends once every container is gone (the last table
        // printed is the one before).
        if now.is_empty() && !a.no_stream && printed {
            return Ok(());
        }
        if redraw {
            print!("\x1b[2J\x1b[H");
        }
        print_rows(&rows, a.format)?;
        std::io::stdout().flush()?;
        printed = true;
        if a.no_stream || now.is_empty() {
            return Ok(());
        }
        before = now;
    }
}

fn print_rows(rows: &[StatsRow], format: ListFormat) -> Result<()> {
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string(rows)?);
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id[..SHORT_ID_LEN.min(r.id.len())].to_string(),
                r.name.clone(),
                format!("{:.2}%", r.cpu_percent),
                format!(
                    "{} / {}",
                    binary_size(r.mem_usage),
                    binary_size(r.mem_limit)
                ),
                format!("{:.2}%", r.mem_percent),
                r.pids.to_string(),
            ]
        })
        .collect();
    crate::table::print(
        &[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "PIDS",
        ],
        &table,
    );
    Ok(())
}
