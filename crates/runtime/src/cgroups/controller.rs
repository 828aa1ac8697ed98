//! Which controller serves which resource field, and routing of `apply` and
//! `stats` to the backend (v1 hierarchies or the unified hierarchy) that has it.

use std::collections::HashMap;
use std::fmt::Debug;

use oci_spec::runtime::LinuxResources;

use super::error::{CgroupError, Result};
use super::stats::Stats;

/// A resource controller, named by its cgroup v1 subsystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    Cpuset,
    Cpu,
    Cpuacct,
    Memory,
    Pids,
    Blkio,
    Hugetlb,
    NetCls,
    NetPrio,
    Rdma,
    Devices,
}

impl Controller {
    /// Order in which resources are applied.
    pub(crate) const APPLY_ORDER: [Controller; 10] = [
        Controller::Cpuset,
        Controller::Cpu,
        Controller::Memory,
        Controller::Pids,
        Controller::Blkio,
        Controller::Hugetlb,
        Controller::NetCls,
        Controller::NetPrio,
        Controller::Rdma,
        Controller::Devices,
    ];

    /// Controllers that contribute to `Stats`.
    pub(crate) const STATS: [Controller; 6] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Memory,
        Controller::Pids,
        Controller::Blkio,
        Controller::Hugetlb,
    ];

    pub(crate) fn v1_name(self) -> &'static str {
        match self {
            Controller::Cpuset => "cpuset",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Blkio => "blkio",
            Controller::Hugetlb => "hugetlb",
            Controller::NetCls => "net_cls",
            Controller::NetPrio => "net_prio",
            Controller::Rdma => "rdma",
            Controller::Devices => "devices",
        }
    }

    /// Name in cgroup.controllers on v2, if the controller exists there.
    /// (devices is an eBPF program and cpuacct data is in cpu.stat: both
    /// are handled by the v2 backend without a listed controller.)
    pub(crate) fn v2_name(self) -> Option<&'static str> {
        match self {
            Controller::Cpuset => Some("cpuset"),
            Controller::Cpu => Some("cpu"),
            Controller::Memory => Some("memory"),
            Controller::Pids => Some("pids"),
            Controller::Blkio => Some("io"),
            Controller::Hugetlb => Some("hugetlb"),
            Controller::Rdma => Some("rdma"),
            Controller::Cpuacct | Controller::Devices => None,
            Controller::NetCls | Controller::NetPrio => None,
        }
    }
}

/// One place resources can be written: the v1 hierarchies or the unified one.
pub(crate) trait Backend: Debug + Send + Sync {
    /// Human description of what this backend has, for error messages.
    fn describe(&self) -> String;
    fn has(&self, c: Controller) -> bool;
    fn apply_controller(&self, c: Controller, r: &LinuxResources) -> Result<()>;
    /// Controller prefix of a `unified` key ("memory" for "memory.max") this
    /// backend can write, or false.
    fn has_unified_key(&self, _controller: &str) -> bool {
        false
    }
    fn apply_unified(&self, _map: &HashMap<String, String>) -> Result<()> {
        Ok(())
    }
    fn stats_controller(&self, c: Controller, s: &mut Stats) -> Result<()>;
}

fn nonempty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

/// The first field of `r` that needs controller `c`, if any is set.
pub(crate) fn first_field(c: Controller, r: &LinuxResources) -> Option<&'static str> {
    let set = |b: bool, f: &'static str| b.then_some(f);
    match c {
        Controller::Cpuset => r.cpu().as_ref().and_then(|cpu| {
            set(
                cpu.cpus().as_deref().is_some_and(|s| !s.is_empty()),
                "cpu.cpus",
            )
            .or(set(
                cpu.mems().as_deref().is_some_and(|s| !s.is_empty()),
                "cpu.mems",
            ))
        }),
        Controller::Cpu => r.cpu().as_ref().and_then(|cpu| {
            set(cpu.shares().is_some(), "cpu.shares")
                .or(set(cpu.quota().is_some(), "cpu.quota"))
                .or(set(cpu.period().is_some(), "cpu.period"))
                .or(set(cpu.burst().is_some(), "cpu.burst"))
                .or(set(cpu.realtime_runtime().is_some(), "cpu.realtimeRuntime"))
                .or(set(cpu.realtime_period().is_some(), "cpu.realtimePeriod"))
                .or(set(cpu.idle().is_some(), "cpu.idle"))
        }),
        Controller::Memory => r.memory().as_ref().and_then(|m| {
            #[allow(deprecated)]
            let kernel = m.kernel();
            set(m.limit().is_some(), "memory.limit")
                .or(set(m.reservation().is_some(), "memory.reservation"))
                .or(set(m.swap().is_some(), "memory.swap"))
                .or(set(kernel.is_some(), "memory.kernel"))
                .or(set(m.kernel_tcp().is_some(), "memory.kernelTCP"))
                .or(set(m.swappiness().is_some(), "memory.swappiness"))
                .or(set(
                    m.disable_oom_killer().is_some(),
                    "memory.disableOOMKiller",
                ))
                .or(set(m.use_hierarchy().is_some(), "memory.useHierarchy"))
        }),
        Controller::Pids => r.pids().as_ref().map(|_| "pids.limit"),
        Controller::Blkio => r.block_io().as_ref().and_then(|b| {
            set(b.weight().is_some(), "blockIO.weight")
                .or(set(b.leaf_weight().is_some(), "blockIO.leafWeight"))
                .or(set(nonempty(b.weight_device()), "blockIO.weightDevice"))
                .or(set(
                    nonempty(b.throttle_read_bps_device()),
                    "blockIO.throttleReadBpsDevice",
                ))
                .or(set(
                    nonempty(b.throttle_write_bps_device()),
                    "blockIO.throttleWriteBpsDevice",
                ))
                .or(set(
                    nonempty(b.throttle_read_iops_device()),
                    "blockIO.throttleReadIOPSDevice",
                ))
                .or(set(
                    nonempty(b.throttle_write_iops_device()),
                    "blockIO.throttleWriteIOPSDevice",
                ))
        }),
        Controller::Hugetlb => r
            .hugepage_limits()
            .as_ref()
            .and_then(|h| set(!h.is_empty(), "hugepageLimits")),
        Controller::NetCls => r
            .network()
            .as_ref()
            .and_then(|n| set(n.class_id().is_some(), "network.classID")),
        Controller::NetPrio => r.network().as_ref().and_then(|n| {
            set(
                n.priorities().as_ref().is_some_and(|p| !p.is_empty()),
                "network.priorities",
            )
        }),
        Controller::Rdma => r.rdma().as_ref().and_then(|m| set(!m.is_empty(), "rdma")),
        Controller::Devices => r.devices().as_ref().map(|_| "devices"),
        Controller::Cpuacct => None,
    }
}

/// Apply `r` through the first backend that has each needed controller.
/// Every needed controller is checked before anything is written, so an
/// unsupported field fails the whole call up front.
pub(crate) fn apply_all(backends: &[&dyn Backend], r: &LinuxResources) -> Result<()> {
    let mut plan: Vec<(Controller, &dyn Backend)> = Vec::new();
    for c in Controller::APPLY_ORDER {
        let Some(field) = first_field(c, r) else {
            continue;
        };
        match backends.iter().find(|b| b.has(c)) {
            Some(b) => plan.push((c, *b)),
            None => return Err(missing(field, c, backends)),
        }
    }
    let unified = r.unified().as_ref().filter(|m| !m.is_empty());
    let mut unified_backend = None;
    if let Some(map) = unified {
        for key in map.keys() {
            let prefix = key.split('.').next().unwrap_or_default();
            match backends.iter().find(|b| b.has_unified_key(prefix)) {
                Some(b) => unified_backend = Some(*b),
                None => {
                    return Err(CgroupError::Unsupported {
                        field: format!("unified[{key:?}]"),
                        controller: prefix.to_string(),
                        reason: format!(
                            "the unified hierarchy has no \"{prefix}\" controller for this cgroup \
                             ({})",
                            describe_all(backends)
                        ),
                    });
                }
            }
        }
    }
    for (c, b) in plan {
        b.apply_controller(c, r)?;
    }
    // Written last so that explicit unified values win over converted ones.
    if let (Some(map), Some(b)) = (unified, unified_backend) {
        b.apply_unified(map)?;
    }
    Ok(())
}

/// Collect statistics from whichever backend has each controller; controllers
/// the host lacks are left at zero.
pub(crate) fn stats_all(backends: &[&dyn Backend]) -> Result<Stats> {
    let mut s = Stats::default();
    for c in Controller::STATS {
        if let Some(b) = backends.iter().find(|b| b.has(c)) {
            b.stats_controller(c, &mut s)?;
        }
    }
    Ok(s)
}

fn describe_all(backends: &[&dyn Backend]) -> String {
    backends
        .iter()
        .map(|b| b.describe())
        .collect::<Vec<_>>()
        .join("; ")
}

fn missing(field: &str, c: Controller, backends: &[&dyn Backend]) -> CgroupError {
    CgroupError::Unsupported {
        field: field.to_string(),
        controller: c.v1_name().to_string(),
        reason: format!(
            "it needs the {} controller, which this host does not provide ({})",
            c.v1_name(),
            describe_all(backends)
        ),
    }
}

/// Shorthand for a field a backend cannot express at all.
pub(crate) fn unsupported(field: &str, controller: &str, reason: &str) -> CgroupError {
    CgroupError::Unsupported {
        field: field.to_string(),
        controller: controller.to_string(),
        reason: reason.to_string(),
    }
}

/// Shorthand for a value that cannot be used.
pub(crate) fn invalid(field: &str, value: impl ToString, reason: &str) -> CgroupError {
    CgroupError::InvalidValue {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Check a hugetlb page size such as "2MB" or "64KB" (`<digits><K|M|G>B`).
pub(crate) fn validate_page_size(field: &str, size: &str) -> Result<()> {
    let ok = size
        .strip_suffix('B')
        .and_then(|s| s.strip_suffix(['K', 'M', 'G']))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            size,
            "page sizes look like \"64KB\", \"2MB\" or \"1GB\"",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};

    #[test]
    fn first_field_names_the_set_field() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().swap(5i64).build().unwrap())
            .cpu(LinuxCpuBuilder::default().cpus("0-1").build().unwrap())
            .build()
            .unwrap();
        assert_eq!(first_field(Controller::Memory, &r), Some("memory.swap"));
        assert_eq!(first_field(Controller::Cpuset, &r), Some("cpu.cpus"));
        assert_eq!(first_field(Controller::Cpu, &r), None);
        assert_eq!(first_field(Controller::Pids, &r), None);
    }

    #[test]
    fn page_sizes() {
        for ok in ["2MB", "1GB", "64KB"] {
            validate_page_size("hugepageLimits", ok).unwrap();
        }
        for bad in ["2M", "MB", "2XB", "../x", "2 MB"] {
            assert!(validate_page_size("hugepageLimits", bad).is_err(), "{bad}");
        }
    }
}
