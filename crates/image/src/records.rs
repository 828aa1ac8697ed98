//! Image records: which names (`name:tag`, `name@digest`) point at which manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::Descriptor;

/// One named image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// The normalized reference (`docker.io/library/busybox:latest`).
    pub name: String,
    /// The platform manifest this name resolves to.
    pub target: Descriptor,
    /// The index (manifest list) it was selected from, if any: its digest is the repo digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Descriptor>,
    /// When the name was set, in seconds since the epoch.
    pub updated: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Records {
    pub images: BTreeMap<String, ImageRecord>,
}
