//! cgroup v2: one directory in the unified hierarchy; controllers are
//! delegated down to it through cgroup.subtree_control.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::controller::{self, Backend, Controller};
use super::error::{CgroupError, Result};
use super::fs::{self, CgroupDir};
use super::kill;
use super::layout::UnifiedMount;
use super::stats::Stats;
use super::{CgroupManager, FreezerState};

#[derive(Debug, Clone)]
pub(crate) struct V2 {
    mount: PathBuf,
    path: PathBuf,
}

impl V2 {
    pub(crate) fn new(mount: &UnifiedMount, path: PathBuf) -> Self {
        Self {
            mount: mount.mount_point.clone(),
            path,
        }
    }

    pub(crate) fn leaf(&self) -> CgroupDir {
        CgroupDir::new(fs::join(&self.mount, &self.path), "unified")
    }

    /// Controllers usable in the container's cgroup: its own
    /// cgroup.controllers once it exists, else those of the hierarchy root.
    fn available(&self) -> Vec<String> {
        let leaf = self.leaf();
        let text = match leaf.read_opt("cgroup.controllers") {
            Ok(Some(t)) => t,
            _ => CgroupDir::new(self.mount.clone(), "unified")
                .read_opt("cgroup.controllers")
                .ok()
                .flatten()
                .unwrap_or_default(),
        };
        text.split_whitespace().map(str::to_string).collect()
    }

    /// Enable every available controller in each ancestor's subtree_control,
    /// from the hierarchy root down to the container's parent. Failures are
    /// left to surface later: a field needing a controller the leaf did not
    /// get is reported by `apply`.
    fn delegate(&self) -> Result<()> {
        let mut dir = self.mount.clone();
        let comps: Vec<_> = self.path.components().skip(1).collect();
        for comp in comps {
            let d = CgroupDir::new(dir.clone(), "unified");
            let have = d.read_opt("cgroup.controllers")?.unwrap_or_default();
            let enabled = d.read_opt("cgroup.subtree_control")?.unwrap_or_default();
            for c in have.split_whitespace() {
                if enabled.split_whitespace().any(|e| e == c) {
                    continue;
                }
                if let Err(e) = d.write("cgroup.subtree_control", &format!("+{c}")) {
                    tracing::debug!(error = %e, "cannot delegate cgroup controller {c}");
                }
            }
            dir.push(comp);
        }
        Ok(())
    }

    /// Name of the unified mount below /sys/fs/cgroup on a hybrid host.
    pub(crate) fn mount_name(&self) -> String {
        self.mount.file_name().map_or_else(
            || "unified".to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    pub(crate) fn freeze_supported(&self) -> bool {
        self.leaf().exists("cgroup.freeze")
    }
}

impl Backend for V2 {
    fn describe(&self) -> String {
        format!(
            "cgroup v2 at {} with controllers [{}]",
            self.mount.display(),
            self.available().join(" ")
        )
    }

    fn has(&self, c: Controller) -> bool {
        match c {
            // cpu.stat (usage) is a core file; devices are an eBPF program.
            Controller::Cpuacct | Controller::Devices => true,
            _ => c
                .v2_name()
                .is_some_and(|n| self.available().iter().any(|a| a == n)),
        }
    }

    fn apply_controller(&self, c: Controller, r: &LinuxResources) -> Result<()> {
        super::v2_resources::apply(c, &self.leaf(), r)
    }

    fn has_unified_key(&self, prefix: &str) -> bool {
        prefix == "cgroup" || self.available().iter().any(|a| a == prefix)
    }

    fn apply_unified(&self, map: &HashMap<String, String>) -> Result<()> {
        let leaf = self.leaf();
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in keys {
            let field = format!("unified[{k:?}]");
            if k.contains('/') || k.starts_with('.') || k.is_empty() {
                return Err(controller::invalid(&field, k, "keys are plain file names"));
            }
            let prefix = k.split('.').next().unwrap_or_default();
            let c = CgroupDir::new(leaf.path.clone(), "unified");
            c.set(&field, k, &map[k]).map_err(|e| match e {
                CgroupError::Unsupported { field, reason, .. } => CgroupError::Unsupported {
                    field,
                    controller: prefix.to_string(),
                    reason,
                },
                other => other,
            })?;
        }
        Ok(())
    }

    fn stats_controller(&self, c: Controller, s: &mut Stats) -> Result<()> {
        super::v2_resources::stats(c, &self.leaf(), s)
    }
}

impl CgroupManager for V2 {
    fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.leaf().path)?;
        self.delegate()
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        fs::add_pid(&self.leaf().path, pid)
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        controller::apply_all(&[self], resources)
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        let leaf = self.leaf();
        if !self.freeze_supported() {
            return Err(CgroupError::Unavailable {
                operation: "freeze or thaw the container",
                reason: format!(
                    "{} does not exist (kernel older than 5.2?)",
                    leaf.file("cgroup.freeze").display()
                ),
            });
        }
        let (value, want) = match state {
            FreezerState::Frozen => ("1", 1),
            FreezerState::Thawed => ("0", 0),
        };
        leaf.write("cgroup.freeze", value)?;
        let done = kill::poll(kill::FREEZE_BUDGET, || {
            let ev = leaf.read_flat_keyed("cgroup.events")?;
            Ok(fs::key(&ev, "frozen") == Some(want))
        })?;
        if done {
            return Ok(());
        }
        if state == FreezerState::Frozen {
            let _ = leaf.write("cgroup.freeze", "0");
        }
        Err(CgroupError::Timeout {
            path: leaf.file("cgroup.events"),
            what: format!("report frozen {want}"),
            waited: kill::FREEZE_BUDGET,
        })
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        match self
            .leaf()
            .read_opt("cgroup.freeze")?
            .as_deref()
            .map(str::trim)
        {
            Some("1") => Ok(FreezerState::Frozen),
            _ => Ok(FreezerState::Thawed),
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        fs::procs_recursive(&self.leaf().path, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn stats(&self) -> Result<Stats> {
        controller::stats_all(&[self])
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let leaf = self.leaf();
        let Some(text) = leaf.read_opt("memory.events")? else {
            return Err(CgroupError::Unavailable {
                operation: "count OOM kills",
                reason: format!(
                    "{} does not exist (memory controller not enabled)",
                    leaf.file("memory.events").display()
                ),
            });
        };
        let ev = fs::parse_flat_keyed(&leaf.file("memory.events"), &text)?;
        Ok(fs::key(&ev, "oom_kill").unwrap_or(0))
    }

    fn destroy(&self) -> Result<()> {
        let leaf = self.leaf();
        if leaf.exists("cgroup.kill") {
            // Kills the whole subtree atomically, frozen or not.
            match leaf.write("cgroup.kill", "1") {
                Ok(()) => {}
                Err(CgroupError::Write { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        kill::kill_all(&leaf.path, || self.pids())?;
        fs::remove_cgroup_dir(&leaf.path, kill::EMPTY_BUDGET)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn mount_sources(&self) -> Vec<(PathBuf, String)> {
        vec![(self.leaf().path, String::new())]
    }
}
