//! Containers as the engine runs them: made from an image and a request
//! (`create`), run by a detached supervisor (`start`), stopped, removed,
//! and looked at (`status`). Each operation can be re-run or undone after a
//! crash; `reconcile` clears what a crash left.

mod create;
mod exec;
mod inspect;
mod launch;
mod prune;
mod reconcile;
mod remove;
mod stats;
mod status;
mod stop;
mod summary;
mod top;

use std::path::PathBuf;

use pea_runtime::Runtime;
use peapod_image::ImageService;

use crate::network::{NetworkError, Networks};
use crate::paths::Paths;
use crate::record::{RecordError, Store};
use crate::supervisor::SupervisorError;
use crate::userns::{UsernsAllocator, UsernsError};
use crate::volume::{VolumeError, VolumeStore};

pub use exec::{ExecRequest, exec};
pub use inspect::{NAMESPACES, TemplateError, namespaces, render_template};
pub use launch::{Launch, LaunchError, Launched, READY_FD, next_event};
pub use prune::Pruned;
pub use reconcile::Reconciled;
pub use stats::{Sample, StatsRow, binary_size, stats_row};
pub use status::{Status, View};
pub use summary::{Summary, human_duration, ports_text, status_text};
pub use top::{ProcessRow, TOP_TITLES};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Image(#[from] peapod_image::ImageError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Userns(#[from] UsernsError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    Runtime(#[from] pea_runtime::ContainerError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("container {name} is {state}: {fix}")]
    WrongState {
        name: String,
        state: String,
        fix: &'static str,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

pub fn io(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |source| EngineError::Io { what, path, source }
}

/// The cgroup containers' cgroups go under unless `--cgroup-parent` says
/// otherwise; removed again once no container uses it.
pub const CGROUP_PARENT: &str = "/peapod";

/// One engine: its roots, records, runtime state and networks.
#[derive(Debug, Clone)]
pub struct Engine {
    pub paths: Paths,
    pub store: Store,
    pub runtime: Runtime,
    pub networks: Networks,
    pub volumes: VolumeStore,
    pub userns: UsernsAllocator,
    /// The storage driver of container root filesystems (overlay or vfs).
    pub storage_driver: String,
    /// The program run as each container's supervisor (`peapod`).
    pub exe: PathBuf,
    /// Pod records.
    pub pods: crate::pod::PodStore,
}

impl Engine {
    pub fn new(paths: Paths, storage_driver: &str, exe: PathBuf) -> Engine {
        Engine {
            store: Store::new(paths.containers()),
            runtime: Runtime::new(paths.runtime()),
            networks: Networks::new(&paths),
            volumes: VolumeStore::new(paths.volumes()),
            userns: UsernsAllocator::new(paths.userns()),
            storage_driver: storage_driver.to_string(),
            exe,
            pods: crate::pod::PodStore::new(paths.root.join("pods")),
            paths,
        }
    }

    /// The image service over this engine's root.
    pub fn images(&self) -> Result<ImageService, EngineError> {
        Ok(ImageService::open(&self.paths.root, &self.storage_driver)?)
    }

    /// The attach socket of container `id`.
    pub fn socket(&self, id: &str) -> PathBuf {
        self.paths
            .sockets()
            .join(format!("{}.sock", &id[..id.len().min(32)]))
    }
}
