//! Control groups: one manager interface, one implementation per host layout.
//!
//! * cgroup v1: a directory per mounted hierarchy (including named ones such
//!   as name=systemd and co-mounted ones such as cpu,cpuacct).
//! * cgroup v2: one directory in the unified hierarchy, controllers
//!   delegated through cgroup.subtree_control, devices as an eBPF program.
//! * hybrid: v1 for the controllers bound to v1 hierarchies, the unified
//!   mount for the rest (e.g. hugetlb) and for cgroup.kill.
//!
//! The host layout is read from /proc/self/mountinfo and /proc/self/cgroup
//! into a [`Layout`]; a `Layout` built from other text (pointing at a
//! temporary directory) drives the same code against fake files.

mod controller;
mod devices;
mod devices_bpf;
mod error;
mod fs;
mod hybrid;
mod kill;
mod layout;
mod path;
mod stats;
mod v1;
mod v1_resources;
mod v2;
mod v2_resources;

#[cfg(test)]
mod tests_fake_v1;
#[cfg(test)]
mod tests_fake_v2;
#[cfg(test)]
mod tests_host;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

pub use error::CgroupError;
pub use layout::{Layout, LayoutKind, OwnCgroup, UnifiedMount, V1Mount};
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuUsage, Hugetlb, Memory, MemoryEntry, MemoryEventCount, Pids, Stats,
    Throttling,
};

use path::SpecPath;

/// Whether the processes of a cgroup are frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Frozen,
    Thawed,
}

/// A container's cgroup, in every hierarchy of the host.
pub trait CgroupManager: Send + Sync + std::fmt::Debug {
    /// Create the cgroup directories (parents as needed) in every hierarchy used.
    fn create(&self) -> Result<(), CgroupError>;
    /// Move a process into the cgroup (every hierarchy).
    fn add_process(&self, pid: i32) -> Result<(), CgroupError>;
    /// Apply resources (used at create and by `update`). A field the host
    /// cannot honour (controller not mounted, kernel lacks the file) is an
    /// error naming the field and controller, unless that field is unset.
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Freeze or thaw every process in the cgroup, waiting until done.
    fn freeze(&self, state: FreezerState) -> Result<(), CgroupError>;
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// Pids of all processes in the cgroup (recursively).
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Usage statistics in the shape of `runc events --stats`.
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// How many processes the OOM killer has killed in this cgroup.
    fn oom_kill_count(&self) -> Result<u64, CgroupError>;
    /// Kill leftovers (cgroup.kill on v2; SIGKILL from cgroup.procs on v1,
    /// thawing first), wait until empty (bounded), then rmdir the leaf (and
    /// any sub-cgroups below it) in every hierarchy. Missing directories are
    /// fine; parents are never removed.
    fn destroy(&self) -> Result<(), CgroupError>;
    /// The resolved path (relative to hierarchy mount points, starting with
    /// "/"), to persist in state and give to [`open`] later.
    fn path(&self) -> &Path;
    /// The container's own directory in every hierarchy, with the name the
    /// hierarchy has below /sys/fs/cgroup on the host ("memory",
    /// "cpu,cpuacct", "systemd", "unified"; "" for a pure v2 host, whose
    /// hierarchy is /sys/fs/cgroup itself): what to bind into the container
    /// for a `cgroup` mount.
    fn mount_sources(&self) -> Vec<(PathBuf, String)>;
}

/// Build a manager for a container. `cgroups_path` is linux.cgroupsPath;
/// None (or "") means "/pea/<container_id>". Relative paths are relative to
/// the caller's own cgroup. The systemd driver (`systemd` or a
/// "slice:prefix:name" path) is refused: with [`CgroupError::SystemdUnavailable`]
/// when systemd is not PID 1, else [`CgroupError::SystemdNotImplemented`].
pub fn manager(
    cgroups_path: Option<&str>,
    container_id: &str,
    systemd: bool,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    Layout::detect()?.manager(cgroups_path, container_id, systemd)
}

/// The parent of containers' default cgroups (`/pea/<id>`): pea's own.
pub const DEFAULT_PARENT: &str = "/pea";

/// Removes [`DEFAULT_PARENT`] from every hierarchy once no container uses
/// it. rmdir(2) refuses a cgroup that still has children, so a parent in use
/// stays; a create racing with this makes it again (fs::create_dir_all).
/// Parents named by a spec's cgroupsPath are never removed: pea cannot know
/// who else configured them.
pub fn remove_default_parent_if_unused() {
    let parent = Path::new(DEFAULT_PARENT);
    remove_unused(parent, parent);
}

/// Removes cgroup `path`, then each of its ancestors up to and including
/// `top`, from every hierarchy, as long as they are unused: rmdir(2)
/// refuses a cgroup with children or processes, so one in use (and all
/// above it) stays. For a caller's own parents (an engine's `/peapod/...`).
pub fn remove_unused(path: &Path, top: &Path) {
    let Ok(layout) = Layout::detect() else {
        return;
    };
    let mounts: Vec<&std::path::PathBuf> = layout
        .v1
        .iter()
        .map(|m| &m.mount_point)
        .chain(layout.unified.iter().map(|u| &u.mount_point))
        .collect();
    for dir in path.ancestors() {
        if !dir.starts_with(top) {
            break;
        }
        for mount in &mounts {
            let _ = std::fs::remove_dir(fs::join(mount, dir));
        }
    }
}

/// Destroys a container's cgroup, then the default parent if it became unused.
pub fn destroy_container_cgroup(cg: &dyn CgroupManager) -> Result<(), CgroupError> {
    cg.destroy()?;
    if cg.path().parent() == Some(Path::new(DEFAULT_PARENT)) {
        remove_default_parent_if_unused();
    }
    Ok(())
}

/// Reopen a container's cgroup from a path persisted from
/// [`CgroupManager::path`]; the host layout is detected again.
pub fn open(path: &Path) -> Result<Box<dyn CgroupManager>, CgroupError> {
    Layout::detect()?.open(path)
}

impl Layout {
    /// [`manager`] for this layout.
    pub fn manager(
        &self,
        cgroups_path: Option<&str>,
        container_id: &str,
        systemd: bool,
    ) -> Result<Box<dyn CgroupManager>, CgroupError> {
        self.manager_with_probe(cgroups_path, container_id, systemd, path::systemd_running)
    }

    /// [`open`] for this layout.
    pub fn open(&self, path: &Path) -> Result<Box<dyn CgroupManager>, CgroupError> {
        Ok(self.build(path::parse_resolved(path)?))
    }

    fn manager_with_probe(
        &self,
        cgroups_path: Option<&str>,
        container_id: &str,
        systemd: bool,
        systemd_running: fn() -> bool,
    ) -> Result<Box<dyn CgroupManager>, CgroupError> {
        let spec = path::parse(cgroups_path, container_id)?;
        let systemd_form = matches!(spec, SpecPath::Systemd { .. });
        if systemd || systemd_form {
            if systemd_running() {
                return Err(CgroupError::SystemdNotImplemented);
            }
            let reason = if systemd {
                "the systemd cgroup option is set".to_string()
            } else {
                format!(
                    "cgroupsPath {:?} has the systemd \"slice:prefix:name\" form",
                    cgroups_path.unwrap_or_default()
                )
            };
            return Err(CgroupError::SystemdUnavailable { reason });
        }
        let resolved = match spec {
            SpecPath::Absolute(p) => p,
            SpecPath::Relative(rel) => self.resolve_relative(&rel)?,
            SpecPath::Systemd { .. } => return Err(CgroupError::SystemdNotImplemented),
        };
        Ok(self.build(resolved))
    }

    /// Place a relative path below the caller's own cgroup. On v1 and hybrid
    /// hosts every hierarchy must agree on where the caller is, because one
    /// path is used (and persisted) for all of them.
    fn resolve_relative(&self, rel: &Path) -> Result<PathBuf, CgroupError> {
        let mut bases: Vec<(String, Option<PathBuf>)> = Vec::new();
        if self.kind() != LayoutKind::V2 {
            for h in &self.v1 {
                bases.push((h.controllers.join(","), self.own_v1_path(h)));
            }
        }
        if self.kind() != LayoutKind::V1 {
            bases.push(("unified".to_string(), self.own_unified_path()));
        }
        let shown = rel.display().to_string();
        let mut base: Option<&PathBuf> = None;
        for (name, own) in &bases {
            let Some(own) = own else {
                return Err(CgroupError::InvalidPath {
                    path: shown,
                    reason: format!(
                        "the caller's own cgroup in the {name} hierarchy is missing from \
                         /proc/self/cgroup or outside the mounted part; use an absolute path"
                    ),
                });
            };
            match base {
                None => base = Some(own),
                Some(b) if b == own => {}
                Some(_) => {
                    let detail = bases
                        .iter()
                        .map(|(n, p)| {
                            let p = p.as_deref().map(|p| p.display().to_string());
                            format!("{n}: {}", p.unwrap_or_default())
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(CgroupError::AmbiguousRelativePath {
                        path: shown,
                        detail,
                    });
                }
            }
        }
        let base = base.cloned().unwrap_or_else(|| PathBuf::from("/"));
        Ok(base.join(rel))
    }

    fn build(&self, path: PathBuf) -> Box<dyn CgroupManager> {
        match (self.kind(), &self.unified) {
            (LayoutKind::V2, Some(u)) => Box::new(v2::V2::new(u, path)),
            (LayoutKind::Hybrid, Some(u)) => Box::new(hybrid::Hybrid {
                v1: v1::V1::new(self, path.clone()),
                v2: v2::V2::new(u, path),
            }),
            _ => Box::new(v1::V1::new(self, path)),
        }
    }
}
