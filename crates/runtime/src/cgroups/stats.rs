//! Container statistics in the shape `runc events --stats` prints, and the
//! parsers for the multi-column stat files of v1 blkio and v2 io.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{CgroupError, Result};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Statistics of one container cgroup.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Keyed by page size ("2MB", "1GB").
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// All times in nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(default, rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// `u64::MAX` when unlimited.
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Counters from v2 memory.events (on v1: `max` is memory.failcnt and
/// `oom_kill` comes from memory.oom_control).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEventCount {
    pub low: u64,
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// memory+swap, as on v1 (v2 values are converted to this meaning).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    pub event_count: MemoryEventCount,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(
        default,
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioServicedRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Parse a v1 blkio stat file ("8:0 Read 4096" lines, plus a "Total" line).
pub(crate) fn parse_blkio_v1(path: &Path, text: &str) -> Result<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Total", _] => {}
            [dev, op, value] => {
                let (major, minor) = parse_dev(path, dev)?;
                out.push(BlkioEntry {
                    major,
                    minor,
                    op: (*op).to_string(),
                    value: parse_num(path, value)?,
                });
            }
            // blkio.sectors style: "8:0 1234"
            [dev, value] => {
                let (major, minor) = parse_dev(path, dev)?;
                out.push(BlkioEntry {
                    major,
                    minor,
                    op: String::new(),
                    value: parse_num(path, value)?,
                });
            }
            _ => {
                return Err(CgroupError::Parse {
                    path: path.to_path_buf(),
                    reason: format!("unexpected line {line:?}"),
                });
            }
        }
    }
    Ok(out)
}

/// Parse v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0")
/// into (bytes, ios) entries with runc's op names.
pub(crate) fn parse_io_stat(path: &Path, text: &str) -> Result<Blkio> {
    let mut b = Blkio::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let dev = it.next().unwrap_or_default();
        let (major, minor) = parse_dev(path, dev)?;
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(CgroupError::Parse {
                    path: path.to_path_buf(),
                    reason: format!("expected key=value, got {kv:?} in {line:?}"),
                });
            };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut b.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                "dios" => (&mut b.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: parse_num(path, v)?,
            });
        }
    }
    Ok(b)
}

fn parse_dev(path: &Path, dev: &str) -> Result<(u64, u64)> {
    let bad = || CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("expected major:minor, got {dev:?}"),
    };
    let (a, b) = dev.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn parse_num(path: &Path, v: &str) -> Result<u64> {
    v.parse().map_err(|e| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("expected a number, got {v:?}: {e}"),
    })
}

/// Page size suffix of hugetlb files ("hugetlb.2MB.max" → "2MB") found in `dir`.
pub(crate) fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut sizes: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let rest = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
                    (!rest.contains('.')).then(|| rest.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blkio_v1() {
        let p = Path::new("blkio.throttle.io_service_bytes_recursive");
        let e = parse_blkio_v1(
            p,
            "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n",
        )
        .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
        assert!(parse_blkio_v1(p, "x y z w").is_err());
    }

    #[test]
    fn parses_io_stat() {
        let p = Path::new("io.stat");
        let b = parse_io_stat(
            p,
            "259:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
        )
        .unwrap();
        assert_eq!(b.io_service_bytes_recursive.len(), 3);
        assert_eq!(b.io_service_bytes_recursive[1].value, 200);
        assert_eq!(b.io_serviced_recursive[0].op, "Read");
        assert!(parse_io_stat(p, "8:0 junk").is_err());
    }

    #[test]
    fn serializes_like_runc() {
        let mut s = Stats::default();
        s.memory.usage.limit = 10;
        s.pids.current = 2;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["memory"]["usage"]["limit"], 10);
        assert_eq!(v["pids"]["current"], 2);
        assert!(v["pids"].get("limit").is_none(), "omitempty like runc");
        assert!(v["memory"].get("kernelTCP").is_some());
        assert!(v["cpu"]["throttling"].get("throttledTime").is_none());
    }
}
