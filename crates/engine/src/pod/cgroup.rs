//! The pod's cgroup: the parent of its containers' cgroups, placed by QoS
//! class as kubelet does (`kubepods/pod<uid>` for Guaranteed,
//! `kubepods/burstable|besteffort/pod<uid>` otherwise) under peapod's own
//! cgroup, with the pod-level limits.

use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};
use pea_runtime::cgroups::{self, CgroupError, CgroupManager};

use super::PodPlan;

/// The cgroup path of pod `uid` of `plan`.
pub fn path(plan: &PodPlan, uid: &str) -> String {
    let uid = uid.replace('-', "_");
    match plan.qos.as_str() {
        "Guaranteed" => format!("/peapod/kubepods/pod{uid}"),
        "BestEffort" => format!("/peapod/kubepods/besteffort/pod{uid}"),
        _ => format!("/peapod/kubepods/burstable/pod{uid}"),
    }
}

fn manager(plan: &PodPlan, uid: &str) -> Result<Box<dyn CgroupManager>, CgroupError> {
    cgroups::manager(Some(&path(plan, uid)), "pod", false)
}

/// Makes the pod's cgroup with its limits.
pub fn create(plan: &PodPlan, uid: &str) -> Result<(), CgroupError> {
    let m = manager(plan, uid)?;
    m.create()?;
    let mut res = LinuxResourcesBuilder::default();
    if let Some(limit) = plan.memory_limit
        && let Ok(mem) = LinuxMemoryBuilder::default().limit(limit as i64).build()
    {
        res = res.memory(mem);
    }
    if let Some(millis) = plan.cpu_limit_millis
        && let Ok(cpu) = LinuxCpuBuilder::default()
            .quota((millis * 100) as i64)
            .period(100_000u64)
            .build()
    {
        res = res.cpu(cpu);
    }
    if let Ok(res) = res.build() {
        m.apply(&res)?;
    }
    Ok(())
}

/// Puts `pid` (the infra process) in the pod's cgroup.
pub fn add(plan: &PodPlan, uid: &str, pid: i32) -> Result<(), CgroupError> {
    manager(plan, uid)?.add_process(pid)
}

/// Removes the pod's cgroup (its containers' are gone by then), then the
/// engine's parents above it (`kubepods/<qos>`, `kubepods`, `/peapod`) that
/// no other pod or container uses.
pub fn destroy(plan: &PodPlan, uid: &str) -> Result<(), CgroupError> {
    manager(plan, uid)?.destroy()?;
    let pod = path(plan, uid);
    let top = std::path::Path::new(crate::containers::CGROUP_PARENT);
    if let Some(parent) = std::path::Path::new(&pod).parent() {
        cgroups::remove_unused(parent, top);
    }
    Ok(())
}
