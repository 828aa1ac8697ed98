//! cgroup v1: one directory per mounted hierarchy (co-mounted controllers
//! such as cpu,cpuacct share one; named hierarchies such as name=systemd
//! get the directory too, for process tracking only).

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::controller::{self, Backend, Controller};
use super::error::{CgroupError, Result};
use super::fs::{self, CgroupDir};
use super::kill;
use super::layout::{Layout, V1Mount};
use super::stats::Stats;
use super::{CgroupManager, FreezerState};

#[derive(Debug, Clone)]
pub(crate) struct V1 {
    hierarchies: Vec<V1Mount>,
    path: PathBuf,
}

impl V1 {
    pub(crate) fn new(layout: &Layout, path: PathBuf) -> Self {
        Self {
            hierarchies: layout.v1.clone(),
            path,
        }
    }

    fn mount(&self, controller: &str) -> Option<&V1Mount> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// The container's directory for `controller`, if that controller is mounted.
    pub(crate) fn dir(&self, c: Controller) -> Option<CgroupDir> {
        let name = c.v1_name();
        self.mount(name)
            .map(|m| CgroupDir::new(fs::join(&m.mount_point, &self.path), name))
    }

    /// The container's directory in every hierarchy.
    pub(crate) fn leaf_dirs(&self) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| fs::join(&h.mount_point, &self.path))
            .collect()
    }

    fn freezer(&self) -> Option<CgroupDir> {
        self.mount("freezer")
            .map(|m| CgroupDir::new(fs::join(&m.mount_point, &self.path), "freezer"))
    }

    pub(crate) fn has_freezer(&self) -> bool {
        self.freezer().is_some()
    }

    pub(crate) fn has_memory(&self) -> bool {
        self.mount("memory").is_some()
    }

    /// A new cpuset cgroup starts with no CPUs and no memory nodes, which
    /// makes joining it fail; give every level the parent's sets.
    fn init_cpuset(&self, mount: &Path) -> Result<()> {
        let mut dir = mount.to_path_buf();
        for comp in self.path.components().skip(1) {
            let parent = CgroupDir::new(dir.clone(), "cpuset");
            dir.push(comp);
            let child = CgroupDir::new(dir.clone(), "cpuset");
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if child.read(file)?.trim().is_empty() {
                    let value = parent.read(file)?;
                    child.write(file, value.trim())?;
                }
            }
        }
        Ok(())
    }

    /// Thaw the container if the freezer has its directory; else nothing.
    pub(crate) fn thaw_if_possible(&self) -> Result<()> {
        if let Some(f) = self.freezer()
            && f.exists("freezer.state")
        {
            self.freeze(FreezerState::Thawed)?;
        }
        Ok(())
    }
}

impl Backend for V1 {
    fn describe(&self) -> String {
        let names: Vec<String> = self
            .hierarchies
            .iter()
            .map(|h| h.controllers.join(","))
            .collect();
        format!("cgroup v1 hierarchies: {}", names.join(" "))
    }

    fn has(&self, c: Controller) -> bool {
        self.mount(c.v1_name()).is_some()
    }

    fn apply_controller(&self, c: Controller, r: &LinuxResources) -> Result<()> {
        match self.dir(c) {
            Some(dir) => super::v1_resources::apply(c, &dir, r),
            None => Ok(()),
        }
    }

    fn stats_controller(&self, c: Controller, s: &mut Stats) -> Result<()> {
        match self.dir(c) {
            Some(dir) => super::v1_resources::stats(c, &dir, s),
            None => Ok(()),
        }
    }
}

impl CgroupManager for V1 {
    fn create(&self) -> Result<()> {
        for h in &self.hierarchies {
            fs::create_dir_all(&fs::join(&h.mount_point, &self.path))?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                self.init_cpuset(&h.mount_point)?;
            }
        }
        Ok(())
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        for dir in self.leaf_dirs() {
            fs::add_pid(&dir, pid)?;
        }
        Ok(())
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        controller::apply_all(&[self], resources)
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        let Some(dir) = self.freezer() else {
            return Err(CgroupError::Unavailable {
                operation: "freeze or thaw the container",
                reason: "the freezer cgroup controller is not mounted".to_string(),
            });
        };
        let want = match state {
            FreezerState::Frozen => "FROZEN",
            FreezerState::Thawed => "THAWED",
        };
        // Writing FROZEN again helps the kernel past tasks that were busy
        // (e.g. in vfork) during the previous attempt.
        let done = kill::poll(kill::FREEZE_BUDGET, || {
            dir.write("freezer.state", want)?;
            Ok(dir.read("freezer.state")?.trim() == want)
        })?;
        if done {
            return Ok(());
        }
        if state == FreezerState::Frozen {
            // Do not leave the container half-frozen.
            let _ = dir.write("freezer.state", "THAWED");
        }
        Err(CgroupError::Timeout {
            path: dir.file("freezer.state"),
            what: format!("reach {want}"),
            waited: kill::FREEZE_BUDGET,
        })
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        let Some(dir) = self.freezer() else {
            return Ok(FreezerState::Thawed);
        };
        match dir.read("freezer.state")?.trim() {
            "THAWED" => Ok(FreezerState::Thawed),
            "FROZEN" | "FREEZING" => Ok(FreezerState::Frozen),
            other => Err(CgroupError::Parse {
                path: dir.file("freezer.state"),
                reason: format!("unknown freezer state {other:?}"),
            }),
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for dir in self.leaf_dirs() {
            fs::procs_recursive(&dir, &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn stats(&self) -> Result<Stats> {
        controller::stats_all(&[self])
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let Some(dir) = self.dir(Controller::Memory) else {
            return Err(CgroupError::Unavailable {
                operation: "count OOM kills",
                reason: "the memory cgroup controller is not mounted".to_string(),
            });
        };
        let oom = dir.read_flat_keyed("memory.oom_control")?;
        fs::key(&oom, "oom_kill").ok_or_else(|| CgroupError::Parse {
            path: dir.file("memory.oom_control"),
            reason: "no oom_kill line (kernel older than 4.13)".to_string(),
        })
    }

    fn destroy(&self) -> Result<()> {
        // Frozen tasks cannot die, so thaw before killing.
        self.thaw_if_possible()?;
        kill::kill_all(&self.path, || self.pids())?;
        for dir in self.leaf_dirs() {
            fs::remove_cgroup_dir(&dir, kill::EMPTY_BUDGET)?;
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn mount_sources(&self) -> Vec<(PathBuf, String)> {
        self.hierarchies
            .iter()
            .map(|h| {
                let name = h.mount_point.file_name().map_or_else(
                    || h.controllers.join(","),
                    |n| n.to_string_lossy().into_owned(),
                );
                (fs::join(&h.mount_point, &self.path), name)
            })
            .collect()
    }
}
