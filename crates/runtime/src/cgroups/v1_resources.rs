//! cgroup v1: writing resource fields into controller files, and reading
//! statistics back.

use std::collections::HashMap;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
    LinuxRdma, LinuxResources,
};

use super::controller::{Controller, invalid, unsupported, validate_page_size};
use super::devices;
use super::error::{CgroupError, Result};
use super::fs::{CgroupDir, key};
use super::stats::{self, MemoryEntry, Stats};

/// Apply the fields of `r` that belong to controller `c` in `dir`.
pub(crate) fn apply(c: Controller, dir: &CgroupDir, r: &LinuxResources) -> Result<()> {
    match c {
        Controller::Cpuset => r.cpu().as_ref().map_or(Ok(()), |cpu| cpuset(dir, cpu)),
        Controller::Cpu => r.cpu().as_ref().map_or(Ok(()), |cpu| self::cpu(dir, cpu)),
        Controller::Memory => r.memory().as_ref().map_or(Ok(()), |m| memory(dir, m)),
        Controller::Pids => r.pids().as_ref().map_or(Ok(()), |p| {
            dir.set("pids.limit", "pids.max", &pids_value(p.limit()))
        }),
        Controller::Blkio => r.block_io().as_ref().map_or(Ok(()), |b| blkio(dir, b)),
        Controller::Hugetlb => r.hugepage_limits().as_ref().map_or(Ok(()), |h| {
            hugetlb(dir, h, ".limit_in_bytes", ".rsvd.limit_in_bytes")
        }),
        Controller::NetCls => r.network().as_ref().map_or(Ok(()), |n| net_cls(dir, n)),
        Controller::NetPrio => r.network().as_ref().map_or(Ok(()), |n| net_prio(dir, n)),
        Controller::Rdma => r.rdma().as_ref().map_or(Ok(()), |m| rdma(dir, m)),
        Controller::Devices => r.devices().as_ref().map_or(Ok(()), |d| devices_v1(dir, d)),
        Controller::Cpuacct => Ok(()),
    }
}

/// pids.max value: a positive limit, or "max" for 0 / -1 (unlimited).
pub(crate) fn pids_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

fn cpuset(dir: &CgroupDir, cpu: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
        dir.set("cpu.cpus", "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
        dir.set("cpu.mems", "cpuset.mems", mems)?;
    }
    Ok(())
}

fn is_einval(e: &CgroupError) -> bool {
    matches!(e, CgroupError::Write { source, .. } if source.raw_os_error() == Some(libc::EINVAL))
}

fn cpu(dir: &CgroupDir, cpu: &LinuxCpu) -> Result<()> {
    if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
        dir.set("cpu.shares", "cpu.shares", &shares.to_string())?;
        let got = dir.read_u64("cpu.shares")?;
        if got != shares {
            return Err(invalid(
                "cpu.shares",
                shares,
                &format!("the kernel clamped it to {got}; use a value in 2..=262144"),
            ));
        }
    }
    let quota = cpu.quota().filter(|q| *q != 0);
    match (cpu.period().filter(|p| *p != 0), quota) {
        (Some(period), Some(quota)) => {
            // A new period may be refused against the old quota; then the
            // quota has to go first.
            match dir.set("cpu.period", "cpu.cfs_period_us", &period.to_string()) {
                Err(e) if is_einval(&e) => {
                    dir.set("cpu.quota", "cpu.cfs_quota_us", &quota.to_string())?;
                    dir.set("cpu.period", "cpu.cfs_period_us", &period.to_string())?;
                }
                other => {
                    other?;
                    dir.set("cpu.quota", "cpu.cfs_quota_us", &quota.to_string())?;
                }
            }
        }
        (Some(period), None) => dir.set("cpu.period", "cpu.cfs_period_us", &period.to_string())?,
        (None, Some(quota)) => dir.set("cpu.quota", "cpu.cfs_quota_us", &quota.to_string())?,
        (None, None) => {}
    }
    if let Some(burst) = cpu.burst() {
        dir.set("cpu.burst", "cpu.cfs_burst_us", &burst.to_string())?;
    }
    if let Some(p) = cpu.realtime_period().filter(|p| *p != 0) {
        dir.set("cpu.realtimePeriod", "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(rt) = cpu.realtime_runtime() {
        dir.set("cpu.realtimeRuntime", "cpu.rt_runtime_us", &rt.to_string())?;
    }
    if let Some(idle) = cpu.idle() {
        dir.set("cpu.idle", "cpu.idle", &idle.to_string())?;
    }
    Ok(())
}

/// Check memory.checkBeforeUpdate: refuse a limit below current usage.
pub(crate) fn check_usage(dir: &CgroupDir, usage_file: &str, limit: i64) -> Result<()> {
    if limit > 0 {
        let usage = dir.read_u64(usage_file)?;
        if usage > limit as u64 {
            return Err(invalid(
                "memory.limit",
                limit,
                &format!(
                    "current usage is {usage} bytes ({}); checkBeforeUpdate refuses a lower limit",
                    dir.file(usage_file).display()
                ),
            ));
        }
    }
    Ok(())
}

fn memory(dir: &CgroupDir, m: &LinuxMemory) -> Result<()> {
    let limit = m.limit().filter(|v| *v != 0);
    let swap = m.swap().filter(|v| *v != 0);
    if let (Some(l), Some(s)) = (limit, swap)
        && s != -1
        && (l == -1 || s < l)
    {
        return Err(invalid(
            "memory.swap",
            s,
            "memory+swap must be at least memory.limit (or -1 for unlimited)",
        ));
    }
    if m.check_before_update() == Some(true)
        && let Some(l) = limit
    {
        check_usage(dir, "memory.usage_in_bytes", l)?;
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // memsw must stay >= limit at every step: raise memsw first when
            // it covers the current limit, else lower the limit first.
            let current = dir.read_u64("memory.limit_in_bytes")?;
            let memsw_first = s == -1 || (s as u64) >= current;
            if memsw_first {
                dir.set("memory.swap", "memory.memsw.limit_in_bytes", &s.to_string())?;
                dir.set("memory.limit", "memory.limit_in_bytes", &l.to_string())?;
            } else {
                dir.set("memory.limit", "memory.limit_in_bytes", &l.to_string())?;
                dir.set("memory.swap", "memory.memsw.limit_in_bytes", &s.to_string())?;
            }
        }
        (Some(l), None) => dir.set("memory.limit", "memory.limit_in_bytes", &l.to_string())?,
        (None, Some(s)) => dir.set("memory.swap", "memory.memsw.limit_in_bytes", &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        dir.set(
            "memory.reservation",
            "memory.soft_limit_in_bytes",
            &r.to_string(),
        )?;
    }
    #[allow(deprecated)]
    let kernel = m.kernel();
    if let Some(k) = kernel.filter(|v| *v != 0) {
        dir.set(
            "memory.kernel",
            "memory.kmem.limit_in_bytes",
            &k.to_string(),
        )?;
    }
    if let Some(k) = m.kernel_tcp().filter(|v| *v != 0) {
        dir.set(
            "memory.kernelTCP",
            "memory.kmem.tcp.limit_in_bytes",
            &k.to_string(),
        )?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(invalid("memory.swappiness", s, "must be between 0 and 100"));
        }
        dir.set("memory.swappiness", "memory.swappiness", &s.to_string())?;
    }
    if let Some(d) = m.disable_oom_killer() {
        dir.set(
            "memory.disableOOMKiller",
            "memory.oom_control",
            if d { "1" } else { "0" },
        )?;
    }
    if let Some(h) = m.use_hierarchy() {
        dir.set(
            "memory.useHierarchy",
            "memory.use_hierarchy",
            if h { "1" } else { "0" },
        )?;
    }
    Ok(())
}

fn blkio(dir: &CgroupDir, b: &LinuxBlockIo) -> Result<()> {
    // CFQ's blkio.weight is gone from modern kernels; BFQ offers the same scale.
    let weight_file = |plain: &'static str, bfq: &'static str| {
        if !dir.exists(plain) && dir.exists(bfq) {
            bfq
        } else {
            plain
        }
    };
    if let Some(w) = b.weight() {
        let f = weight_file("blkio.weight", "blkio.bfq.weight");
        dir.set("blockIO.weight", f, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        dir.set("blockIO.leafWeight", "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let f = weight_file("blkio.weight_device", "blkio.bfq.weight_device");
            let line = format!("{}:{} {w}", d.major(), d.minor());
            dir.set("blockIO.weightDevice", f, &line)?;
        }
        if let Some(w) = d.leaf_weight() {
            let line = format!("{}:{} {w}", d.major(), d.minor());
            dir.set(
                "blockIO.weightDevice.leafWeight",
                "blkio.leaf_weight_device",
                &line,
            )?;
        }
    }
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blockIO.throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blockIO.throttleWriteBpsDevice",
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blockIO.throttleReadIOPSDevice",
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blockIO.throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (list, field, file) in throttles {
        for d in list.iter().flatten() {
            dir.set(
                field,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

/// Write hugetlb limits (v1 and v2 differ only in file suffixes). The
/// reservation limit is written too where the kernel has it, as the spec asks.
pub(crate) fn hugetlb(
    dir: &CgroupDir,
    limits: &[LinuxHugepageLimit],
    limit_suffix: &str,
    rsvd_suffix: &str,
) -> Result<()> {
    for l in limits {
        let size = l.page_size();
        validate_page_size("hugepageLimits.pageSize", size)?;
        let file = format!("hugetlb.{size}{limit_suffix}");
        if !dir.exists(&file) {
            let have = stats::hugetlb_sizes(&dir.path, limit_suffix);
            return Err(unsupported(
                &format!("hugepageLimits[{size}]"),
                "hugetlb",
                &format!(
                    "{} does not exist; this host supports page sizes {have:?}",
                    dir.file(&file).display()
                ),
            ));
        }
        let value = match l.limit() {
            n if n >= 0 => n.to_string(),
            // Unlimited: v2 spells it "max", v1 accepts -1.
            _ if limit_suffix == ".max" => "max".to_string(),
            _ => "-1".to_string(),
        };
        let rsvd = format!("hugetlb.{size}{rsvd_suffix}");
        if dir.exists(&rsvd) {
            dir.set("hugepageLimits", &rsvd, &value)?;
        }
        dir.set("hugepageLimits", &file, &value)?;
    }
    Ok(())
}

fn net_cls(dir: &CgroupDir, n: &LinuxNetwork) -> Result<()> {
    match n.class_id() {
        Some(id) => dir.set("network.classID", "net_cls.classid", &id.to_string()),
        None => Ok(()),
    }
}

fn net_prio(dir: &CgroupDir, n: &LinuxNetwork) -> Result<()> {
    for p in n.priorities().iter().flatten() {
        let line = format!("{} {}", p.name(), p.priority());
        dir.set("network.priorities", "net_prio.ifpriomap", &line)?;
    }
    Ok(())
}

/// Write rdma.max lines (same format on v1 and v2).
pub(crate) fn rdma(dir: &CgroupDir, map: &HashMap<String, LinuxRdma>) -> Result<()> {
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    for name in names {
        let l = &map[name];
        let mut line = name.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if l.hca_handles().is_none() && l.hca_objects().is_none() {
            return Err(invalid(
                &format!("rdma[{name:?}]"),
                "{}",
                "set hcaHandles and/or hcaObjects",
            ));
        }
        dir.set(&format!("rdma[{name:?}]"), "rdma.max", &line)?;
    }
    Ok(())
}

/// Deny everything, then write each rule in order (as runc does).
fn devices_v1(dir: &CgroupDir, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules = devices::normalize(rules)?;
    dir.set("devices", "devices.deny", "a")?;
    for r in &rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        dir.set("devices", file, &r.v1_line())?;
    }
    Ok(())
}

/// Fill `s` with what controller `c` reports in `dir`.
pub(crate) fn stats(c: Controller, dir: &CgroupDir, s: &mut Stats) -> Result<()> {
    match c {
        Controller::Cpuacct => {
            let u = &mut s.cpu.usage;
            u.total = dir.read_u64_opt("cpuacct.usage")?.unwrap_or(0);
            let list = |name: &str| -> Result<Vec<u64>> {
                Ok(dir
                    .read_opt(name)?
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect())
            };
            u.percpu = list("cpuacct.usage_percpu")?;
            u.percpu_kernel = list("cpuacct.usage_percpu_sys")?;
            u.percpu_user = list("cpuacct.usage_percpu_user")?;
            let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()
                .filter(|t| *t > 0)
                .unwrap_or(100) as u64;
            let st = dir.read_flat_keyed("cpuacct.stat")?;
            u.user = key(&st, "user").unwrap_or(0) * (1_000_000_000 / tick);
            u.kernel = key(&st, "system").unwrap_or(0) * (1_000_000_000 / tick);
        }
        Controller::Cpu => {
            let st = dir.read_flat_keyed("cpu.stat")?;
            let t = &mut s.cpu.throttling;
            t.periods = key(&st, "nr_periods").unwrap_or(0);
            t.throttled_periods = key(&st, "nr_throttled").unwrap_or(0);
            t.throttled_time = key(&st, "throttled_time").unwrap_or(0);
        }
        Controller::Memory => {
            let entry = |prefix: &str| -> Result<MemoryEntry> {
                let f = |n: &str| dir.read_u64_opt(&format!("{prefix}.{n}"));
                Ok(MemoryEntry {
                    limit: f("limit_in_bytes")?.unwrap_or(0),
                    usage: f("usage_in_bytes")?.unwrap_or(0),
                    max: f("max_usage_in_bytes")?.unwrap_or(0),
                    failcnt: f("failcnt")?.unwrap_or(0),
                })
            };
            let m = &mut s.memory;
            m.usage = entry("memory")?;
            m.swap = entry("memory.memsw")?;
            m.kernel = entry("memory.kmem")?;
            m.kernel_tcp = entry("memory.kmem.tcp")?;
            m.raw = dir.read_flat_keyed("memory.stat")?.into_iter().collect();
            m.cache = m.raw.get("cache").copied().unwrap_or(0);
            let oom = dir.read_flat_keyed("memory.oom_control")?;
            m.event_count.oom_kill = key(&oom, "oom_kill").unwrap_or(0);
            m.event_count.max = m.usage.failcnt;
        }
        Controller::Pids => {
            s.pids.current = dir.read_u64_opt("pids.current")?.unwrap_or(0);
            s.pids.limit = match dir.read_u64_opt("pids.max")? {
                Some(u64::MAX) | None => 0,
                Some(v) => v,
            };
        }
        Controller::Blkio => {
            let candidates = [
                (
                    "blkio.io_service_bytes_recursive",
                    "blkio.io_serviced_recursive",
                ),
                (
                    "blkio.bfq.io_service_bytes_recursive",
                    "blkio.bfq.io_serviced_recursive",
                ),
                (
                    "blkio.throttle.io_service_bytes_recursive",
                    "blkio.throttle.io_serviced_recursive",
                ),
            ];
            for (bytes, ios) in candidates {
                let Some(text) = dir.read_opt(bytes)? else {
                    continue;
                };
                let parsed = stats::parse_blkio_v1(&dir.file(bytes), &text)?;
                if parsed.is_empty() && bytes != candidates[2].0 {
                    continue;
                }
                s.blkio.io_service_bytes_recursive = parsed;
                let text = dir.read_opt(ios)?.unwrap_or_default();
                s.blkio.io_serviced_recursive = stats::parse_blkio_v1(&dir.file(ios), &text)?;
                break;
            }
        }
        Controller::Hugetlb => {
            for size in stats::hugetlb_sizes(&dir.path, ".limit_in_bytes") {
                let f = |n: &str| dir.read_u64_opt(&format!("hugetlb.{size}.{n}"));
                let h = stats::Hugetlb {
                    usage: f("usage_in_bytes")?.unwrap_or(0),
                    max: f("max_usage_in_bytes")?.unwrap_or(0),
                    failcnt: f("failcnt")?.unwrap_or(0),
                };
                s.hugetlb.insert(size, h);
            }
        }
        _ => {}
    }
    Ok(())
}
