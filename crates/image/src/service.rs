//! The image service: names, manifests, configs, blobs and snapshots under one root.

use std::fs;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::config::{ImageConfig, chain_ids};
use crate::digest::Digest;
use crate::error::ImageError;
use crate::jsonfile::JsonFile;
use crate::manifest::{self, Descriptor, Manifest, Parsed};
use crate::media;
use crate::records::{ImageRecord, Records};
use crate::reference::Reference;
use crate::snapshot::{self, Mount, Snapshotter};
use crate::store::ContentStore;

pub const DEFAULT_ROOT: &str = "/var/lib/peapod";

/// A manifest and config read from the store.
#[derive(Clone, Debug)]
pub struct Image {
    pub record: ImageRecord,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

impl Image {
    /// The image ID: the digest of its config.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }

    /// The chain ID of each layer; the last one names the image's top snapshot.
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.config.rootfs.diff_ids)
    }

    /// Compressed size of config and layers.
    pub fn size(&self) -> u64 {
        self.manifest.config.size + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// A unique key for the active snapshot a layer is extracted in (GC removes leftovers).
fn extract_key(what: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let hex = what.rsplit(':').next().unwrap_or(what);
    format!(
        "extract-{}-{n}-{}",
        std::process::id(),
        &hex[..hex.len().min(12)]
    )
}

/// A layer unpacked into a staging directory; removed on drop unless adopted.
pub(crate) struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

pub struct ImageService {
    root: PathBuf,
    store: ContentStore,
    records: JsonFile<Records>,
    snapshots: Box<dyn Snapshotter>,
}

impl ImageService {
    /// Opens the image state under `root` with storage driver `driver` (overlay or vfs).
    pub fn open(root: &Path, driver: &str) -> Result<Self, ImageError> {
        fs::create_dir_all(root).map_err(ImageError::io(format!("creating {}", root.display())))?;
        Ok(ImageService {
            root: root.to_path_buf(),
            store: ContentStore::open(&root.join("content"))?,
            records: JsonFile::new(root.join("images.json")),
            snapshots: snapshot::open(driver, &root.join("snapshots"))?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    pub fn snapshots(&self) -> &dyn Snapshotter {
        self.snapshots.as_ref()
    }

    /// Held shared by writers of content (pull, import, build) and exclusive by GC, so GC
    /// never removes a blob that a writer stored but has not named yet.
    pub fn gc_lock(&self, exclusive: bool) -> Result<Flock<fs::File>, ImageError> {
        let p = self.root.join("gc.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(ImageError::io(format!("opening {}", p.display())))?;
        let how = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        Flock::lock(f, how)
            .map_err(|(_, e)| ImageError::io(format!("locking {}", p.display()))(e.into()))
    }

    pub fn records(&self) -> Result<Vec<ImageRecord>, ImageError> {
        Ok(self.records.read()?.images.into_values().collect())
    }

    /// Finds an image by reference, or by (a prefix of) its ID.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, ImageError> {
        let records = self.records.read()?;
        if let Ok(r) = Reference::parse(name)
            && let Some(rec) = records.images.get(&r.to_string())
        {
            return Ok(rec.clone());
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found: Vec<&ImageRecord> = Vec::new();
            for rec in records.images.values() {
                if let Ok(img) = self.load_record(rec)
                    && img.id().hex().starts_with(hex)
                    && !found.iter().any(|f| f.target.digest == rec.target.digest)
                {
                    found.push(rec);
                }
            }
            match found.len() {
                0 => {}
                1 => return Ok(found[0].clone()),
                _ => return Err(ImageError::Ambiguous(name.to_string())),
            }
        }
        Reference::parse(name)?;
        Err(ImageError::NotFound(name.to_string()))
    }

    pub fn load(&self, name: &str) -> Result<Image, ImageError> {
        let rec = self.resolve(name)?;
        self.load_record(&rec)
    }

    pub fn load_record(&self, rec: &ImageRecord) -> Result<Image, ImageError> {
        let bytes = self.store.read(&rec.target.digest)?;
        let manifest = match manifest::parse(Some(&rec.target.media_type), &bytes)? {
            Parsed::Manifest(m) => m,
            Parsed::Index(_) => {
                return Err(ImageError::Invalid {
                    name: rec.name.clone(),
                    why: "its record points at an index, not a manifest".into(),
                });
            }
        };
        let config = self.read_config(&rec.name, &manifest)?;
        Ok(Image {
            record: rec.clone(),
            manifest,
            config,
        })
    }

    pub fn read_config(&self, name: &str, manifest: &Manifest) -> Result<ImageConfig, ImageError> {
        let bytes = self.store.read(&manifest.config.digest)?;
        let config: ImageConfig =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid {
                name: name.to_string(),
                why: format!("malformed image config: {e}"),
            })?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Invalid {
                name: name.to_string(),
                why: format!(
                    "the config lists {} layers (diff_ids) but the manifest has {}",
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                ),
            });
        }
        Ok(config)
    }

    /// Points `reference` at a manifest already in the store.
    pub fn set_record(
        &self,
        reference: &Reference,
        target: Descriptor,
        index: Option<Descriptor>,
    ) -> Result<ImageRecord, ImageError> {
        let rec = ImageRecord {
            name: reference.to_string(),
            target,
            index,
            updated: crate::snapshot_now(),
        };
        let r = rec.clone();
        self.records
            .update(|s: &mut Records| -> Result<(), ImageError> {
                s.images.insert(r.name.clone(), r);
                Ok(())
            })?;
        Ok(rec)
    }

    /// Gives the image `source` the extra name `target`.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageRecord, ImageError> {
        let rec = self.resolve(source)?;
        let reference = Reference::parse(target)?;
        if reference.digest().is_some() {
            return Err(ImageError::Other(format!(
                "cannot tag with a digest ({target}); a tag is NAME[:TAG]"
            )));
        }
        self.set_record(&reference, rec.target, rec.index)
    }

    /// Removes the names of an image (every name of it when given by ID). Content goes at
    /// the next [`ImageService::gc`].
    pub fn untag(&self, name: &str) -> Result<Vec<String>, ImageError> {
        let rec = self.resolve(name)?;
        let by_name = Reference::parse(name).is_ok_and(|r| r.to_string() == rec.name);
        self.records
            .update(|s: &mut Records| -> Result<Vec<String>, ImageError> {
                let names: Vec<String> = if by_name {
                    vec![rec.name.clone()]
                } else {
                    s.images
                        .values()
                        .filter(|r| r.target.digest == rec.target.digest)
                        .map(|r| r.name.clone())
                        .collect()
                };
                for n in &names {
                    s.images.remove(n);
                }
                Ok(names)
            })
    }

    /// Makes sure every layer of `image` is unpacked into a committed snapshot named by its
    /// chain ID; returns the top one (None for an image without layers).
    pub fn unpack(&self, image: &Image) -> Result<Option<String>, ImageError> {
        let _gc = self.gc_lock(false)?;
        let chain = image.chain_ids();
        let mut parent: Option<String> = None;
        for (i, (layer, chain_id)) in image.manifest.layers.iter().zip(&chain).enumerate() {
            let name = chain_id.to_string();
            if self.snapshots.stat(&name).is_err() {
                self.unpack_layer(
                    layer,
                    &image.config.rootfs.diff_ids[i],
                    &name,
                    parent.as_deref(),
                )?;
            }
            parent = Some(name);
        }
        Ok(parent)
    }

    pub(crate) fn unpack_layer(
        &self,
        layer: &Descriptor,
        diff_id: &Digest,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), ImageError> {
        let key = extract_key(&diff_id.to_string());
        self.snapshots.prepare(&key, parent)?;
        let result = (|| -> Result<(), ImageError> {
            let target = self.snapshots.write_target(&key)?;
            crate::layer::unpack_layer(&self.store, layer, diff_id, &target.dir, target.whiteouts)?;
            self.snapshots.commit(name, &key)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.snapshots.remove(&key);
            // Another process committed the same layer first: use theirs.
            if matches!(
                e,
                ImageError::Snapshot(snapshot::SnapshotError::AlreadyExists(_))
            ) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Unpacks `layer` into a staging directory of the snapshotter, if it has them (the
    /// layer does not depend on its parent then, so several unpack at once).
    pub(crate) fn stage_layer(
        &self,
        layer: &Descriptor,
        diff_id: &Digest,
    ) -> Result<Option<Staged>, ImageError> {
        let Some(target) = self.snapshots.staging_dir()? else {
            return Ok(None);
        };
        let staged = Staged(target.dir);
        crate::layer::unpack_layer(&self.store, layer, diff_id, &staged.0, target.whiteouts)?;
        Ok(Some(staged))
    }

    /// Commits a staged layer as snapshot `name` on top of `parent`.
    pub(crate) fn commit_staged(
        &self,
        staged: Staged,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), ImageError> {
        let key = extract_key(name);
        self.snapshots.prepare(&key, parent)?;
        let result = (|| -> Result<(), ImageError> {
            self.snapshots.adopt(&key, &staged.0)?;
            self.snapshots.commit(name, &key)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.snapshots.remove(&key);
            if matches!(
                e,
                ImageError::Snapshot(snapshot::SnapshotError::AlreadyExists(_))
            ) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    /// A writable snapshot `key` for a container of `image`: its rootfs mounts.
    pub fn prepare_rootfs(&self, image: &Image, key: &str) -> Result<Vec<Mount>, ImageError> {
        let top = self.unpack(image)?;
        Ok(self.snapshots.prepare(key, top.as_deref())?)
    }

    /// Stores `config` and a manifest of `layers` (already in the store) and names it.
    pub fn store_image(
        &self,
        reference: &Reference,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
    ) -> Result<Image, ImageError> {
        let bytes = serde_json::to_vec(config)
            .map_err(|e| ImageError::Other(format!("serializing the config: {e}")))?;
        let digest = self.store().put(&bytes)?;
        self.store_image_with_config(reference, &bytes, &digest, layers)
    }

    /// Like [`ImageService::store_image`] with config bytes already in the store as `digest`.
    pub fn store_image_with_config(
        &self,
        reference: &Reference,
        config_bytes: &[u8],
        digest: &Digest,
        layers: Vec<Descriptor>,
    ) -> Result<Image, ImageError> {
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor::new(media::OCI_CONFIG, digest.clone(), config_bytes.len() as u64),
            layers,
            annotations: None,
        };
        let config = self.read_config(&reference.to_string(), &manifest)?;
        let mbytes = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::Other(format!("serializing the manifest: {e}")))?;
        let mdigest = self.store().put(&mbytes)?;
        let record = self.set_record(
            reference,
            Descriptor::new(media::OCI_MANIFEST, mdigest, mbytes.len() as u64),
            None,
        )?;
        Ok(Image {
            record,
            manifest,
            config,
        })
    }
}
