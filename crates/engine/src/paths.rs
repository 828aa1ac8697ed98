//! Where the engine keeps things. Everything lives under two roots so that
//! tests (and users) can run independent engines side by side: a persistent
//! one (records, volumes, network attachments) and a runtime one (sockets,
//! network namespace files, the runtime's state), which is lost at reboot.

use std::path::{Path, PathBuf};

/// The persistent root unless told otherwise (images live here too).
pub const DEFAULT_ROOT: &str = "/var/lib/peapod";
/// The runtime root unless told otherwise.
pub const DEFAULT_RUN_ROOT: &str = "/run/peapod";
/// Where network config lists are kept unless told otherwise. Networks are
/// host-wide (a bridge and its address range are), so this is not under the
/// root.
pub const DEFAULT_CNI_CONFIG_DIR: &str = "/etc/peapod/cni/net.d";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub root: PathBuf,
    pub run: PathBuf,
    pub cni_config: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            root: DEFAULT_ROOT.into(),
            run: DEFAULT_RUN_ROOT.into(),
            cni_config: DEFAULT_CNI_CONFIG_DIR.into(),
        }
    }
}

impl Paths {
    pub fn new(
        root: impl Into<PathBuf>,
        run: impl Into<PathBuf>,
        cni_config: impl Into<PathBuf>,
    ) -> Self {
        Paths {
            root: root.into(),
            run: run.into(),
            cni_config: cni_config.into(),
        }
    }

    /// Container records, one directory per container id.
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Named and anonymous volumes: `<volumes>/<name>/_data`.
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// The allocator of private uid/gid ranges (`--userns auto`).
    pub fn userns(&self) -> PathBuf {
        self.root.join("userns")
    }

    /// CNI results of this engine's attachments (used for DEL).
    pub fn cni_cache(&self) -> PathBuf {
        self.root.join("cni").join("results")
    }

    /// Network namespace files (bind mounts), one per bridged container.
    pub fn netns(&self) -> PathBuf {
        self.run.join("netns")
    }

    /// Markers of the networks whose host rules (NAT, FORWARD) are in place
    /// since boot.
    pub fn network_markers(&self) -> PathBuf {
        self.run.join("networks")
    }

    /// The runtime library's state directory for this engine's containers.
    pub fn runtime(&self) -> PathBuf {
        self.run.join("runtime")
    }

    /// Supervisor sockets.
    pub fn sockets(&self) -> PathBuf {
        self.run.join("sockets")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}
