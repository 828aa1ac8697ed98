//! `update`, `pause`, `resume` and `events`: runc's verbs over a
//! container's cgroup.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use pea_runtime::state::StateError;
use pea_runtime::{ContainerError, Runtime, Status};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A JSON LinuxResources file ("-" for stdin); all other options are then ignored.
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10..1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst in microseconds.
    #[arg(long)]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// Realtime period in microseconds.
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds per period.
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// SCHED_IDLE for the cgroup (1) or not (0).
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    /// CPUs to use (e.g. 0-2,4).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit in bytes (suffixes k, m, g, ...; -1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit in bytes (suffixes allowed).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit in bytes (suffixes allowed; -1: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Obsolete; ignored with a warning (as runc).
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Obsolete; ignored with a warning (as runc).
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of pids (-1: unlimited; 0: unchanged).
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print the statistics once and exit.
    #[arg(long)]
    pub stats: bool,
    /// Time between statistics (Go duration: 5s, 500ms, 1m30s).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    pub id: String,
}

pub fn update(rt: &Runtime, a: &UpdateArgs) -> Result<u8> {
    let r = match &a.resources {
        Some(path) => {
            if has_flags(a) {
                tracing::warn!("--resources is given: the other update options are ignored");
            }
            read_resources(path)?
        }
        None => resources_from_flags(a)?,
    };
    rt.update(&a.id, &r)?;
    Ok(0)
}

fn has_flags(a: &UpdateArgs) -> bool {
    a.blkio_weight.is_some()
        || a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_burst.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpu_idle.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
        || a.memory.is_some()
        || a.memory_reservation.is_some()
        || a.memory_swap.is_some()
        || a.pids_limit.is_some()
}

fn read_resources(path: &std::path::Path) -> Result<LinuxResources> {
    let (data, shown) = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("--resources -: read stdin")?;
        (buf, "stdin".to_string())
    } else {
        let d = std::fs::read(path).with_context(|| format!("--resources {}", path.display()))?;
        (d, path.display().to_string())
    };
    serde_json::from_slice(&data)
        .with_context(|| format!("--resources: {shown} is not a valid LinuxResources JSON"))
}

fn resources_from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = LinuxResources::default();
    let bytes =
        |flag: &str, v: &Option<String>| v.as_deref().map(|v| parse_bytes(flag, v)).transpose();
    let limit = bytes("--memory", &a.memory)?;
    let swap = bytes("--memory-swap", &a.memory_swap)?;
    let reservation = bytes("--memory-reservation", &a.memory_reservation)?;
    if limit.is_some() || swap.is_some() || reservation.is_some() {
        let mut m = LinuxMemory::default();
        m.set_limit(limit)
            .set_swap(swap)
            .set_reservation(reservation);
        r.set_memory(Some(m));
    }
    for (flag, value) in [
        ("--kernel-memory", &a.kernel_memory),
        ("--kernel-memory-tcp", &a.kernel_memory_tcp),
    ] {
        if value.is_some() {
            tracing::warn!("{flag} is obsolete and ignored");
        }
    }
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(a.cpu_share)
        .set_quota(a.cpu_quota)
        .set_period(a.cpu_period)
        .set_burst(a.cpu_burst)
        .set_realtime_period(a.cpu_rt_period)
        .set_realtime_runtime(a.cpu_rt_runtime)
        .set_idle(a.cpu_idle)
        .set_cpus(a.cpuset_cpus.clone())
        .set_mems(a.cpuset_mems.clone());
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(w) = a.blkio_weight.filter(|w| *w != 0) {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    if let Some(limit) = a.pids_limit.filter(|l| *l != 0) {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    Ok(r)
}

/// A size like docker's RAMInBytes: "1048576", "64m", "1g", "512KiB",
/// "1.5 GB" (binary multiples, case-insensitive); "-1" is unlimited.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let bad =
        || anyhow::anyhow!("{flag} {s:?}: expected a size such as 1048576, 512k, 64m or 1g, or -1");
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let v = num * (1u64 << shift) as f64;
    if !v.is_finite() || v >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as i64)
}

/// A Go duration ("5s", "100ms", "1m30s", "1.5h", "250us").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 5s, 500ms or 1m30s");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * secs;
        rest = &rest[u..];
    }
    if total <= 0.0 {
        return Err("the interval must be greater than 0".to_string());
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// One line of `events` output, as runc's types.Event.
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

fn emit<T: Serialize>(kind: &'static str, id: &str, data: Option<T>) -> Result<()> {
    let line = serde_json::to_string(&Event { kind, id, data })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .context("write event to stdout")
}

/// How often the OOM count and the status are looked at between statistics.
const POLL: Duration = Duration::from_millis(100);

pub fn events(rt: &Runtime, a: &EventsArgs) -> Result<u8> {
    let id = a.id.as_str();
    if rt.state(id)?.status == Status::Stopped {
        bail!("container {id:?} is stopped: events needs a running container");
    }
    if a.stats {
        emit("stats", id, Some(rt.stats(id)?))?;
        return Ok(0);
    }
    // Without a memory controller there is no OOM count: only statistics.
    let mut ooms = rt.oom_kill_count(id).ok();
    let mut next_stats = Instant::now() + a.interval;
    loop {
        let stopped = !matches!(rt.state(id), Ok(s) if s.status != Status::Stopped);
        if let Some(seen) = ooms
            && let Ok(now) = rt.oom_kill_count(id)
        {
            for _ in seen..now {
                emit::<()>("oom", id, None)?;
            }
            ooms = Some(now.max(seen));
        }
        if stopped {
            return Ok(0);
        }
        let now = Instant::now();
        if now >= next_stats {
            match rt.stats(id) {
                Ok(s) => emit("stats", id, Some(s))?,
                Err(ContainerError::State(StateError::NotFound(_))) => return Ok(0),
                Err(e) => tracing::warn!(container = id, "{e}"),
            }
            next_stats += a.interval;
            if next_stats < now {
                next_stats = now + a.interval;
            }
        }
        let until_stats = next_stats.saturating_duration_since(Instant::now());
        std::thread::sleep(until_stats.min(POLL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let p = |s| parse_bytes("--memory", s).ok();
        assert_eq!(p("1048576"), Some(1 << 20));
        assert_eq!(p("64m"), Some(64 << 20));
        assert_eq!(p("64M"), Some(64 << 20));
        assert_eq!(p("1g"), Some(1 << 30));
        assert_eq!(p("512KiB"), Some(512 << 10));
        assert_eq!(p("2 mb"), Some(2 << 20));
        assert_eq!(p("1.5k"), Some(1536));
        assert_eq!(p("-1"), Some(-1));
        for bad in ["", "m", "12x", "-5", "1..2m", "1e3"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).ok();
        assert_eq!(d("5s"), Some(Duration::from_secs(5)));
        assert_eq!(d("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(d("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("250us"), Some(Duration::from_micros(250)));
        for bad in ["", "5", "s", "0s", "5x", "-1s"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }
}
