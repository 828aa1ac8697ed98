//! peapod's image subsystem: a content store of blobs addressed by digest, image
//! references, manifests and configs, a registry client (OCI distribution spec),
//! safe layer unpacking, snapshotters (overlay and a full-copy fallback), import/export
//! and images built from host programs.

pub mod archive;
pub mod config;
pub mod digest;
pub mod error;
pub mod gc;
pub mod hostbuild;
pub mod jsonfile;
pub mod layer;
pub mod manifest;
pub mod media;
pub mod records;
pub mod reference;
pub mod registry;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use error::ImageError;
pub use service::{DEFAULT_ROOT, Image, ImageService};

/// Seconds since the epoch.
pub(crate) fn snapshot_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod testutil;
