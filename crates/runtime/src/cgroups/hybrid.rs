//! Hybrid hosts: cgroup v1 hierarchies for the controllers bound there, plus
//! the cgroup2 mount for controllers only it has (e.g. hugetlb). The
//! container gets a leaf in both, so v2 process-level features
//! (cgroup.kill, cgroup.freeze) cover it too.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::controller::{self, Backend};
use super::error::Result;
use super::stats::Stats;
use super::v1::V1;
use super::v2::V2;
use super::{CgroupManager, FreezerState};

#[derive(Debug)]
pub(crate) struct Hybrid {
    pub(crate) v1: V1,
    pub(crate) v2: V2,
}

impl Hybrid {
    /// v1 first: a controller bound to a v1 hierarchy is absent from the
    /// unified one, and the v1 device controller is preferred over eBPF.
    fn backends(&self) -> [&dyn Backend; 2] {
        [&self.v1, &self.v2]
    }
}

impl CgroupManager for Hybrid {
    fn create(&self) -> Result<()> {
        self.v1.create()?;
        self.v2.create()
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        self.v1.add_process(pid)?;
        self.v2.add_process(pid)
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        controller::apply_all(&self.backends(), resources)
    }

    /// The v1 freezer when mounted, else cgroup.freeze of the unified leaf.
    fn freeze(&self, state: FreezerState) -> Result<()> {
        if self.v1.has_freezer() {
            self.v1.freeze(state)
        } else {
            self.v2.freeze(state)
        }
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        if self.v1.has_freezer() {
            self.v1.freezer_state()
        } else {
            self.v2.freezer_state()
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = self.v1.pids()?;
        pids.extend(self.v2.pids()?);
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn stats(&self) -> Result<Stats> {
        controller::stats_all(&self.backends())
    }

    fn oom_kill_count(&self) -> Result<u64> {
        if self.v1.has_memory() {
            self.v1.oom_kill_count()
        } else {
            self.v2.oom_kill_count()
        }
    }

    /// Thaw (v1 frozen tasks cannot die), cgroup.kill the unified leaf, kill
    /// whatever is left in the v1 hierarchies, then remove every leaf.
    fn destroy(&self) -> Result<()> {
        self.v1.thaw_if_possible()?;
        self.v2.destroy()?;
        self.v1.destroy()
    }

    fn path(&self) -> &Path {
        self.v1.path()
    }

    fn mount_sources(&self) -> Vec<(PathBuf, String)> {
        let mut v = self.v1.mount_sources();
        v.push((self.v2.leaf().path, self.v2.mount_name()));
        v
    }
}
