//! Garbage collection: remove blobs and layer snapshots that no image names, never one
//! that an image or a container (an active snapshot or view) still uses.

use std::collections::HashSet;

use crate::ImageError;
use crate::digest::Digest;
use crate::manifest::{self, Parsed};
use crate::service::ImageService;
use crate::snapshot::Kind;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: Vec<Digest>,
    pub snapshots_removed: Vec<String>,
    pub bytes_freed: u64,
    pub temp_files_removed: usize,
}

impl ImageService {
    /// Removes every blob and committed snapshot no image or container needs.
    pub fn gc(&self) -> Result<GcReport, ImageError> {
        let _lock = self.gc_lock(true)?;
        let mut report = GcReport::default();
        let mut blobs: HashSet<Digest> = HashSet::new();
        let mut snaps: HashSet<String> = HashSet::new();
        for rec in self.records()? {
            if let Some(ix) = &rec.index {
                blobs.insert(ix.digest.clone());
            }
            blobs.insert(rec.target.digest.clone());
            let Ok(bytes) = self.store().read(&rec.target.digest) else {
                continue;
            };
            if let Ok(Parsed::Manifest(m)) = manifest::parse(Some(&rec.target.media_type), &bytes) {
                blobs.insert(m.config.digest.clone());
                blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
                if let Ok(img) = self.load_record(&rec) {
                    snaps.extend(img.chain_ids().iter().map(|c| c.to_string()));
                }
            }
        }
        for d in self.store().list()? {
            if !blobs.contains(&d) {
                report.bytes_freed += self.store().size(&d).unwrap_or(0);
                self.store().delete(&d)?;
                report.blobs_removed.push(d);
            }
        }
        // Half-done layer extractions of a crashed unpack (none runs while we hold the lock).
        for info in self.snapshots().walk()? {
            if info.kind == Kind::Active && info.key.starts_with("extract-") {
                self.snapshots().remove(&info.key)?;
                report.snapshots_removed.push(info.key);
            }
        }
        // Snapshots: remove unreferenced committed leaves until none is left; a
        // container's snapshot (active or view) keeps its whole parent chain.
        loop {
            let all = self.snapshots().walk()?;
            let parents: HashSet<&str> = all.iter().filter_map(|i| i.parent.as_deref()).collect();
            let doomed: Vec<String> = all
                .iter()
                .filter(|i| {
                    i.kind == Kind::Committed
                        && !snaps.contains(&i.key)
                        && !parents.contains(i.key.as_str())
                })
                .map(|i| i.key.clone())
                .collect();
            if doomed.is_empty() {
                break;
            }
            for key in doomed {
                self.snapshots().remove(&key)?;
                report.snapshots_removed.push(key);
            }
        }
        report.temp_files_removed =
            self.store().clean_ingest()? + self.snapshots().clean_staging()?;
        Ok(report)
    }
}
