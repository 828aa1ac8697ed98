//! The error of the image service's operations: each module's error, plus what the user
//! asked for that does not exist.

use crate::digest::DigestError;
use crate::jsonfile::JsonFileError;
use crate::layer::LayerError;
use crate::manifest::ManifestError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "image {0:?} not found locally; pull it (peapod pull {0}) or list images with peapod images"
    )]
    NotFound(String),
    #[error("image ID prefix {0:?} matches more than one image; use more characters or the name")]
    Ambiguous(String),
    #[error("image {name}: {why}")]
    Invalid { name: String, why: String },
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    State(#[from] JsonFileError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl ImageError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let what = what.into();
        move |source| ImageError::Io { what, source }
    }
}
