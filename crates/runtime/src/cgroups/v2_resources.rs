//! cgroup v2: converting the (v1-shaped) OCI resource fields to unified
//! hierarchy files, and reading statistics back.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::controller::{Controller, invalid, unsupported};
use super::devices;
use super::devices_bpf;
use super::error::Result;
use super::fs::{CgroupDir, key};
use super::stats::{self, MemoryEntry, Stats};
use super::v1_resources::{check_usage, hugetlb, pids_value, rdma};

/// cpu.shares (2..=262144, default 1024) → cpu.weight (1..=10000, default
/// 100), using the quadratic-in-log mapping current runc and crun use, which
/// maps the minimum, default and maximum onto each other exactly.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// blkio weight (10..=1000) → io.weight (1..=10000), linear as in runc.
pub(crate) fn blkio_weight_to_io(field: &str, w: u16) -> Result<u64> {
    if !(10..=1000).contains(&w) {
        return Err(invalid(field, w, "blkio weights range from 10 to 1000"));
    }
    Ok(1 + (u64::from(w) - 10) * 9999 / 990)
}

/// OCI memory.swap is memory+swap; v2 memory.swap.max is swap alone.
/// Returns the value to write, or None to leave the file alone.
pub(crate) fn swap_max(swap: Option<i64>, limit: Option<i64>) -> Result<Option<String>> {
    let limit = limit.filter(|l| *l != 0);
    match swap.filter(|s| *s != 0) {
        // Unlimited memory with unset swap means unlimited swap as on v1.
        None if limit == Some(-1) => Ok(Some("max".into())),
        None => Ok(None),
        Some(-1) => Ok(Some("max".into())),
        Some(s) if s < 0 => Err(invalid("memory.swap", s, "use -1 for unlimited")),
        Some(s) => match limit {
            None | Some(-1) => Err(invalid(
                "memory.swap",
                s,
                "a swap limit needs a finite memory.limit on cgroup v2 (swap.max = swap - limit)",
            )),
            Some(l) if s < l => Err(invalid(
                "memory.swap",
                s,
                &format!("memory+swap must be at least memory.limit ({l})"),
            )),
            Some(l) => Ok(Some((s - l).to_string())),
        },
    }
}

/// "max" for -1, the number otherwise.
fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Apply the fields of `r` for controller `c` in the unified directory `dir`.
pub(crate) fn apply(c: Controller, base: &CgroupDir, r: &LinuxResources) -> Result<()> {
    let dir = |controller| CgroupDir::new(base.path.clone(), controller);
    match c {
        Controller::Cpuset => r.cpu().as_ref().map_or(Ok(()), |cpu| {
            let d = dir("cpuset");
            if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                d.set("cpu.cpus", "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                d.set("cpu.mems", "cpuset.mems", mems)?;
            }
            Ok(())
        }),
        Controller::Cpu => r
            .cpu()
            .as_ref()
            .map_or(Ok(()), |cpu| self::cpu(&dir("cpu"), cpu)),
        Controller::Memory => r
            .memory()
            .as_ref()
            .map_or(Ok(()), |m| memory(&dir("memory"), m)),
        Controller::Pids => r.pids().as_ref().map_or(Ok(()), |p| {
            dir("pids").set("pids.limit", "pids.max", &pids_value(p.limit()))
        }),
        Controller::Blkio => r.block_io().as_ref().map_or(Ok(()), |b| io(&dir("io"), b)),
        Controller::Hugetlb => r
            .hugepage_limits()
            .as_ref()
            .map_or(Ok(()), |h| hugetlb(&dir("hugetlb"), h, ".max", ".rsvd.max")),
        Controller::Rdma => r.rdma().as_ref().map_or(Ok(()), |m| rdma(&dir("rdma"), m)),
        Controller::Devices => r.devices().as_ref().map_or(Ok(()), |d| {
            devices_bpf::apply(&dir("devices").path, &devices::normalize(d)?)
        }),
        Controller::NetCls => Err(unsupported(
            "network.classID",
            "net_cls",
            "cgroup v2 has no net_cls controller (use eBPF or nftables cgroup matching instead)",
        )),
        Controller::NetPrio => Err(unsupported(
            "network.priorities",
            "net_prio",
            "cgroup v2 has no net_prio controller",
        )),
        Controller::Cpuacct => Ok(()),
    }
}

fn cpu(dir: &CgroupDir, cpu: &LinuxCpu) -> Result<()> {
    if cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some() {
        let field = if cpu.realtime_runtime().is_some() {
            "cpu.realtimeRuntime"
        } else {
            "cpu.realtimePeriod"
        };
        return Err(unsupported(
            field,
            "cpu",
            "cgroup v2 has no realtime CPU budget (cpu.rt_* exists only on v1)",
        ));
    }
    if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
        let w = shares_to_weight(shares);
        dir.set("cpu.shares", "cpu.weight", &w.to_string())?;
    }
    let quota = cpu.quota().filter(|q| *q != 0);
    let period = cpu.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let q = match quota {
            Some(q) => max_or(q),
            None => dir
                .read("cpu.max")?
                .split_whitespace()
                .next()
                .unwrap_or("max")
                .to_string(),
        };
        let line = match period {
            Some(p) => format!("{q} {p}"),
            None => q,
        };
        let field = if quota.is_some() {
            "cpu.quota"
        } else {
            "cpu.period"
        };
        dir.set(field, "cpu.max", &line)?;
    }
    if let Some(b) = cpu.burst() {
        dir.set("cpu.burst", "cpu.max.burst", &b.to_string())?;
    }
    if let Some(idle) = cpu.idle() {
        dir.set("cpu.idle", "cpu.idle", &idle.to_string())?;
    }
    Ok(())
}

fn memory(dir: &CgroupDir, m: &LinuxMemory) -> Result<()> {
    #[allow(deprecated)]
    let kernel = m.kernel();
    for (v, field) in [
        (kernel, "memory.kernel"),
        (m.kernel_tcp(), "memory.kernelTCP"),
    ] {
        if v.is_some_and(|v| v > 0) {
            return Err(unsupported(
                field,
                "memory",
                "cgroup v2 has no separate kernel memory limit (it is part of memory.max)",
            ));
        }
    }
    if m.swappiness().is_some() {
        return Err(unsupported(
            "memory.swappiness",
            "memory",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported(
            "memory.disableOOMKiller",
            "memory",
            "cgroup v2 cannot disable the OOM killer",
        ));
    }
    if m.use_hierarchy() == Some(false) {
        return Err(unsupported(
            "memory.useHierarchy",
            "memory",
            "cgroup v2 accounting is always hierarchical",
        ));
    }
    let limit = m.limit().filter(|l| *l != 0);
    if m.check_before_update() == Some(true)
        && let Some(l) = limit
    {
        check_usage(dir, "memory.current", l)?;
    }
    if let Some(v) = swap_max(m.swap(), limit)? {
        let field = if m.swap().is_some() {
            "memory.swap"
        } else {
            "memory.limit"
        };
        dir.set(field, "memory.swap.max", &v)?;
    }
    if let Some(l) = limit {
        dir.set("memory.limit", "memory.max", &max_or(l))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        dir.set("memory.reservation", "memory.low", &max_or(r))?;
    }
    Ok(())
}

fn io(dir: &CgroupDir, b: &LinuxBlockIo) -> Result<()> {
    if b.leaf_weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        return Err(unsupported(
            "blockIO.leafWeight",
            "io",
            "cgroup v2 has no leaf weights",
        ));
    }
    // BFQ takes the v1 scale; the iocost io.weight takes 1..=10000.
    let bfq = dir.exists("io.bfq.weight");
    if let Some(w) = b.weight() {
        if bfq {
            dir.set("blockIO.weight", "io.bfq.weight", &w.to_string())?;
        } else {
            let v = blkio_weight_to_io("blockIO.weight", w)?;
            dir.set("blockIO.weight", "io.weight", &format!("default {v}"))?;
        }
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let dev = format!("{}:{}", d.major(), d.minor());
            if bfq {
                dir.set(
                    "blockIO.weightDevice",
                    "io.bfq.weight",
                    &format!("{dev} {w}"),
                )?;
            } else {
                let v = blkio_weight_to_io("blockIO.weightDevice", w)?;
                dir.set("blockIO.weightDevice", "io.weight", &format!("{dev} {v}"))?;
            }
        }
    }
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blockIO.throttleReadBpsDevice",
            "rbps",
        ),
        (
            b.throttle_write_bps_device(),
            "blockIO.throttleWriteBpsDevice",
            "wbps",
        ),
        (
            b.throttle_read_iops_device(),
            "blockIO.throttleReadIOPSDevice",
            "riops",
        ),
        (
            b.throttle_write_iops_device(),
            "blockIO.throttleWriteIOPSDevice",
            "wiops",
        ),
    ];
    for (list, field, k) in throttles {
        for d in list.iter().flatten() {
            let line = format!("{}:{} {k}={}", d.major(), d.minor(), d.rate());
            dir.set(field, "io.max", &line)?;
        }
    }
    Ok(())
}

/// Fill `s` with what controller `c` reports in the unified directory `dir`.
pub(crate) fn stats(c: Controller, dir: &CgroupDir, s: &mut Stats) -> Result<()> {
    match c {
        Controller::Cpuacct => {
            let st = dir.read_flat_keyed("cpu.stat")?;
            let us = |k| key(&st, k).unwrap_or(0).saturating_mul(1000);
            s.cpu.usage.total = us("usage_usec");
            s.cpu.usage.user = us("user_usec");
            s.cpu.usage.kernel = us("system_usec");
        }
        Controller::Cpu => {
            let st = dir.read_flat_keyed("cpu.stat")?;
            s.cpu.throttling.periods = key(&st, "nr_periods").unwrap_or(0);
            s.cpu.throttling.throttled_periods = key(&st, "nr_throttled").unwrap_or(0);
            s.cpu.throttling.throttled_time =
                key(&st, "throttled_usec").unwrap_or(0).saturating_mul(1000);
        }
        Controller::Memory => {
            let ev = dir.read_flat_keyed("memory.events")?;
            let m = &mut s.memory;
            m.usage = MemoryEntry {
                limit: dir.read_u64_opt("memory.max")?.unwrap_or(u64::MAX),
                usage: dir.read_u64_opt("memory.current")?.unwrap_or(0),
                max: dir.read_u64_opt("memory.peak")?.unwrap_or(0),
                failcnt: key(&ev, "max").unwrap_or(0),
            };
            // Report swap as memory+swap, like v1, so consumers see one meaning.
            let swap_cur = dir.read_u64_opt("memory.swap.current")?.unwrap_or(0);
            let swap_max = dir.read_u64_opt("memory.swap.max")?.unwrap_or(u64::MAX);
            m.swap = MemoryEntry {
                limit: swap_max.saturating_add(m.usage.limit),
                usage: swap_cur.saturating_add(m.usage.usage),
                max: 0,
                failcnt: 0,
            };
            m.raw = dir.read_flat_keyed("memory.stat")?.into_iter().collect();
            m.cache = m.raw.get("file").copied().unwrap_or(0);
            let e = &mut m.event_count;
            e.low = key(&ev, "low").unwrap_or(0);
            e.high = key(&ev, "high").unwrap_or(0);
            e.max = key(&ev, "max").unwrap_or(0);
            e.oom = key(&ev, "oom").unwrap_or(0);
            e.oom_kill = key(&ev, "oom_kill").unwrap_or(0);
        }
        Controller::Pids => {
            s.pids.current = dir.read_u64_opt("pids.current")?.unwrap_or(0);
            s.pids.limit = match dir.read_u64_opt("pids.max")? {
                Some(u64::MAX) | None => 0,
                Some(v) => v,
            };
        }
        Controller::Blkio => {
            if let Some(text) = dir.read_opt("io.stat")? {
                s.blkio = stats::parse_io_stat(&dir.file("io.stat"), &text)?;
            }
        }
        Controller::Hugetlb => {
            for size in stats::hugetlb_sizes(&dir.path, ".max") {
                let ev = dir.read_flat_keyed(&format!("hugetlb.{size}.events"))?;
                let h = stats::Hugetlb {
                    usage: dir
                        .read_u64_opt(&format!("hugetlb.{size}.current"))?
                        .unwrap_or(0),
                    max: 0,
                    failcnt: key(&ev, "max").unwrap_or(0),
                };
                s.hugetlb.insert(size, h);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_shares_to_weight() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(2048), 174);
        let mut prev = 0;
        for s in (2..262_144).step_by(97) {
            let w = shares_to_weight(s);
            assert!((1..=10_000).contains(&w) && w >= prev, "{s} -> {w}");
            prev = w;
        }
    }

    #[test]
    fn converts_blkio_weight() {
        assert_eq!(blkio_weight_to_io("w", 10).unwrap(), 1);
        assert_eq!(blkio_weight_to_io("w", 500).unwrap(), 4950);
        assert_eq!(blkio_weight_to_io("w", 1000).unwrap(), 10_000);
        assert!(blkio_weight_to_io("w", 5).is_err());
    }

    #[test]
    fn converts_swap() {
        let m = 1 << 20;
        assert_eq!(
            swap_max(Some(3 * m), Some(m)).unwrap(),
            Some((2 * m).to_string())
        );
        assert_eq!(swap_max(Some(m), Some(m)).unwrap(), Some("0".into()));
        assert_eq!(swap_max(Some(-1), Some(m)).unwrap(), Some("max".into()));
        assert_eq!(swap_max(None, Some(-1)).unwrap(), Some("max".into()));
        assert_eq!(swap_max(None, Some(m)).unwrap(), None);
        assert_eq!(swap_max(Some(0), None).unwrap(), None);
        assert!(swap_max(Some(m), Some(2 * m)).is_err());
        assert!(swap_max(Some(m), None).is_err());
        assert!(swap_max(Some(m), Some(-1)).is_err());
    }
}
