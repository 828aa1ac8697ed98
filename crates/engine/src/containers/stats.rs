//! `stats`: CPU, memory and process counts of running containers from
//! their cgroups. CPU % needs two samples: the CPU time used between them
//! over the wall time between them (100% = one CPU busy, as Docker).

use std::time::Instant;

use serde::Serialize;

use super::{Engine, EngineError};
use crate::record::Record;

/// One reading of a container's cgroup.
#[derive(Debug, Clone)]
pub struct Sample {
    pub id: String,
    pub name: String,
    pub at: Instant,
    /// CPU time used so far, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, without the reclaimable page cache (as Docker).
    pub mem_usage: u64,
    /// The limit, or the host's memory when unlimited.
    pub mem_limit: u64,
    pub pids: u64,
}

/// What `stats` shows for one container (`--format json` keys as Docker's).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatsRow {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    #[serde(rename = "CPUPerc")]
    pub cpu_percent: f64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub mem_percent: f64,
    #[serde(rename = "PIDs")]
    pub pids: u64,
}

impl Engine {
    /// Reads the cgroup of `record`'s container (it must be running).
    pub fn stats_sample(&self, record: &Record) -> Result<Sample, EngineError> {
        let s = self.runtime.stats(&record.id)?;
        let raw = &s.memory.raw;
        let inactive = raw
            .get("inactive_file")
            .or_else(|| raw.get("total_inactive_file"))
            .copied()
            .unwrap_or(0);
        let mut limit = s.memory.usage.limit;
        let host = host_memory();
        if limit == 0 || limit == u64::MAX || (host > 0 && limit > host) {
            limit = host;
        }
        Ok(Sample {
            id: record.id.clone(),
            name: record.name.clone(),
            at: Instant::now(),
            cpu_ns: s.cpu.usage.total,
            mem_usage: s.memory.usage.usage.saturating_sub(inactive),
            mem_limit: limit,
            pids: s.pids.current,
        })
    }
}

/// The row of `now`, with CPU % since `before` (the same container).
pub fn stats_row(before: &Sample, now: &Sample) -> StatsRow {
    let wall = now.at.saturating_duration_since(before.at).as_nanos() as f64;
    let cpu = now.cpu_ns.saturating_sub(before.cpu_ns) as f64;
    let cpu_percent = if wall > 0.0 { cpu / wall * 100.0 } else { 0.0 };
    let mem_percent = if now.mem_limit > 0 {
        now.mem_usage as f64 / now.mem_limit as f64 * 100.0
    } else {
        0.0
    };
    StatsRow {
        id: now.id.clone(),
        name: now.name.clone(),
        cpu_percent,
        mem_usage: now.mem_usage,
        mem_limit: now.mem_limit,
        mem_percent,
        pids: now.pids,
    }
}

/// MemTotal of /proc/meminfo in bytes (0 when unreadable).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Docker's binary sizes: "1.5MiB", "64MiB", "512KiB", "10B".
pub fn binary_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    // Docker keeps 4 significant digits.
    let digits: String = s.chars().take(5).collect();
    format!("{}{}", digits.trim_end_matches('.'), UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cpu_and_memory_percentages() {
        let t = Instant::now();
        let a = Sample {
            id: "x".into(),
            name: "n".into(),
            at: t,
            cpu_ns: 1_000,
            mem_usage: 0,
            mem_limit: 0,
            pids: 1,
        };
        let b = Sample {
            at: t + Duration::from_secs(1),
            cpu_ns: 1_000 + 500_000_000,
            mem_usage: 16 << 20,
            mem_limit: 64 << 20,
            ..a.clone()
        };
        let r = stats_row(&a, &b);
        assert!((r.cpu_percent - 50.0).abs() < 0.01);
        assert!((r.mem_percent - 25.0).abs() < 0.01);
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(10), "10B");
        assert_eq!(binary_size(1_234_567), "1.177MiB");
    }
}
