//! Live cgroup operations on an existing container: `update` (change
//! resources), `pause` / `resume` (the freezer) and the numbers behind
//! `events` (statistics and the OOM kill count).

use oci_spec::runtime::LinuxResources;

use super::{ContainerError, Runtime, cgroup_of};
use crate::cgroups::{CgroupError, CgroupManager, FreezerState, Stats};
use crate::state::{StateDir, Status};

impl Runtime {
    /// Changes the resources of a created, running or paused container.
    ///
    /// As with `runc update`: device rules are never changed (a `devices`
    /// list is ignored), and a zero `pids.limit` or `blockIO.weight` means
    /// "leave as is". Kernel memory limits are obsolete and ignored with a
    /// warning.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<(), ContainerError> {
        let _lock = StateDir::open(&self.root, id)?;
        let cg = self.live_cgroup(
            id,
            &[Status::Created, Status::Running, Status::Paused],
            "only a created, running or paused container can be updated",
        )?;
        let r = for_update(id, resources);
        cg.apply(&r).map_err(cgroup_err(id, "update resources"))
    }

    /// Freezes every process of a created or running container; its status
    /// is `paused` until [`Runtime::resume`].
    pub fn pause(&self, id: &str) -> Result<(), ContainerError> {
        let _lock = StateDir::open(&self.root, id)?;
        let cg = self.live_cgroup(
            id,
            &[Status::Created, Status::Running],
            "only a created or running container can be paused",
        )?;
        cg.freeze(FreezerState::Frozen)
            .map_err(cgroup_err(id, "pause"))
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<(), ContainerError> {
        let _lock = StateDir::open(&self.root, id)?;
        let cg = self.live_cgroup(
            id,
            &[Status::Paused],
            "only a paused container can be resumed",
        )?;
        cg.freeze(FreezerState::Thawed)
            .map_err(cgroup_err(id, "resume"))
    }

    /// Usage statistics of a container that has not stopped, in the shape of
    /// `runc events --stats`.
    pub fn stats(&self, id: &str) -> Result<Stats, ContainerError> {
        let cg = self.live_cgroup(id, LIVE, "a stopped container has no statistics")?;
        cg.stats().map_err(cgroup_err(id, "read statistics"))
    }

    /// How many processes of the container the OOM killer has killed so far
    /// (what `events` watches to report `oom` events). Also answers for a
    /// stopped container until it is deleted, so that the OOM kill of its
    /// init can still be seen.
    pub fn oom_kill_count(&self, id: &str) -> Result<u64, ContainerError> {
        let any = &[LIVE, &[Status::Stopped]].concat();
        let cg = self.live_cgroup(id, any, "it has no cgroup to inspect")?;
        cg.oom_kill_count()
            .map_err(cgroup_err(id, "read the OOM kill count"))
    }

    /// The cgroup of container `id`, if its status is one of `allowed`.
    fn live_cgroup(
        &self,
        id: &str,
        allowed: &[Status],
        what: &'static str,
    ) -> Result<Box<dyn CgroupManager>, ContainerError> {
        let (record, status) = self.read(id)?;
        if !allowed.contains(&status) {
            return Err(ContainerError::WrongState {
                id: id.into(),
                status,
                what,
            });
        }
        cgroup_of(&record)
            .map_err(|e| match e {
                ContainerError::Cgroup(source) => ContainerError::Cgroups {
                    id: id.into(),
                    what: "open its cgroup",
                    source,
                },
                other => other,
            })?
            .ok_or_else(|| {
                ContainerError::Invalid(format!(
                    "container {id:?} has no cgroup recorded in its state; it cannot be \
                     updated, paused or inspected"
                ))
            })
    }
}

const LIVE: &[Status] = &[
    Status::Creating,
    Status::Created,
    Status::Running,
    Status::Paused,
];

fn cgroup_err(id: &str, what: &'static str) -> impl FnOnce(CgroupError) -> ContainerError {
    let id = id.to_string();
    move |source| ContainerError::Cgroups { id, what, source }
}

/// The resources `update` applies: `r` without what runc's update leaves alone.
fn for_update(id: &str, r: &LinuxResources) -> LinuxResources {
    let mut r = r.clone();
    r.set_devices(None);
    if r.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(b) = r.block_io().as_ref().filter(|b| b.weight() == Some(0)) {
        let mut b = b.clone();
        b.set_weight(None);
        r.set_block_io(Some(b));
    }
    if let Some(m) = r.memory().as_ref() {
        #[allow(deprecated)]
        let kernel = m.kernel();
        if kernel.is_some() || m.kernel_tcp().is_some() {
            tracing::warn!(
                container = id,
                "memory.kernel and memory.kernelTCP are obsolete and ignored"
            );
            let mut m = *m;
            #[allow(deprecated)]
            m.set_kernel(None);
            m.set_kernel_tcp(None);
            r.set_memory(Some(m));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    #[test]
    fn update_drops_what_runc_leaves_alone() {
        let r = LinuxResourcesBuilder::default()
            .devices(vec![
                LinuxDeviceCgroupBuilder::default()
                    .allow(false)
                    .build()
                    .unwrap(),
            ])
            .pids(LinuxPidsBuilder::default().limit(0).build().unwrap())
            .block_io(LinuxBlockIoBuilder::default().weight(0u16).build().unwrap())
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(1 << 20)
                    .kernel_tcp(5)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let u = for_update("x", &r);
        assert!(u.devices().is_none());
        assert!(u.pids().is_none());
        assert_eq!(u.block_io().as_ref().and_then(|b| b.weight()), None);
        let m = u.memory().as_ref().unwrap();
        assert_eq!(m.limit(), Some(1 << 20));
        assert_eq!(m.kernel_tcp(), None);
    }

    #[test]
    fn update_keeps_real_values() {
        let r = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(300u16)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let u = for_update("x", &r);
        assert_eq!(u.pids().as_ref().map(|p| p.limit()), Some(-1));
        assert_eq!(u.block_io().as_ref().and_then(|b| b.weight()), Some(300));
    }
}
