//! `peapod pull`: manifest (or index, then the platform's manifest), config, then the
//! missing layers concurrently, each verified while it streams into the store.

use std::sync::{Condvar, Mutex};

use super::RegistryError;
use super::client::{Client, ClientOptions, CopyError, copy_limited};
use super::progress::{Progress, ProgressMode};
use crate::digest::Digest;
use crate::error::ImageError;
use crate::manifest::{self, Descriptor, Parsed, Platform};
use crate::media;
use crate::reference::Reference;
use crate::service::{Image, ImageService, Staged};
use crate::store::StoreError;

#[derive(Clone, Debug)]
pub struct PullOptions {
    pub platform: Platform,
    pub client: ClientOptions,
    pub progress: ProgressMode,
    /// Layers downloaded at once.
    pub concurrency: usize,
    /// Unpack the layers into snapshots after downloading.
    pub unpack: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            client: ClientOptions::default(),
            progress: ProgressMode::Auto,
            concurrency: 3,
            unpack: true,
        }
    }
}

/// Checks fetched bytes against the digest they were asked by.
fn verify(client: &Client, bytes: &[u8], expected: &Digest) -> Result<(), RegistryError> {
    let actual = Digest::of(expected.algorithm(), bytes);
    if &actual != expected {
        return Err(RegistryError::Corrupt {
            host: client.host().to_string(),
            digest: expected.clone(),
            detail: format!("got {actual}"),
        });
    }
    Ok(())
}

impl ImageService {
    /// Pulls `reference` from its registry and names it locally.
    pub fn pull(&self, reference: &Reference, opts: &PullOptions) -> Result<Image, ImageError> {
        let _gc = self.gc_lock(false)?;
        let client = Client::with_root(reference, &opts.client, false, Some(self.root()));
        let progress = Progress::new(opts.progress);
        let (bytes, ct) = client.get_manifest(&reference.manifest_ref())?;
        let top_digest = match reference.digest() {
            Some(d) => {
                verify(&client, &bytes, d)?;
                d.clone()
            }
            None => Digest::sha256_of(&bytes),
        };
        let (target, manifest_bytes, index) = match manifest::parse(ct.as_deref(), &bytes)? {
            Parsed::Manifest(m) => {
                let mt = manifest::manifest_media_type(&m).to_string();
                let mt = if m.media_type.is_none() {
                    ct.clone().filter(|c| media::is_manifest(c)).unwrap_or(mt)
                } else {
                    mt
                };
                (
                    Descriptor::new(&mt, top_digest, bytes.len() as u64),
                    bytes,
                    None,
                )
            }
            Parsed::Index(ix) => {
                let mt = ix
                    .media_type
                    .clone()
                    .unwrap_or_else(|| media::OCI_INDEX.to_string());
                let index_desc = Descriptor::new(&mt, top_digest, bytes.len() as u64);
                let chosen = ix.select(&opts.platform)?.clone();
                progress.message(&format!(
                    "{}: selected {} for {}",
                    reference, chosen.digest, opts.platform
                ));
                self.store().put_verified(&bytes, &index_desc.digest)?;
                let (mbytes, _) = client.get_manifest(&chosen.digest.to_string())?;
                verify(&client, &mbytes, &chosen.digest)?;
                let target = Descriptor::new(
                    &chosen.media_type,
                    chosen.digest.clone(),
                    mbytes.len() as u64,
                );
                (target, mbytes, Some(index_desc))
            }
        };
        let m = match manifest::parse(Some(&target.media_type), &manifest_bytes)? {
            Parsed::Manifest(m) => m,
            Parsed::Index(_) => {
                return Err(ImageError::Other(format!(
                    "{reference}: the index points at another index; nested indexes are not supported"
                )));
            }
        };
        if !self.store().exists(&m.config.digest) {
            self.download(&client, &m.config, &Progress::new(ProgressMode::Quiet))?;
        }
        let config = self.read_config(&reference.to_string(), &m)?;
        for l in m.layers.iter().filter(|l| self.store().exists(&l.digest)) {
            progress.message(&format!("{}: already exists", l.digest.short()));
        }
        // Worker threads fetch the missing layers and, when the driver can stage layers
        // (overlay), unpack them too, in parallel; this thread commits them in order as
        // soon as each one and the layers under it are ready.
        let chain = crate::config::chain_ids(&config.rootfs.diff_ids);
        let stage = opts.unpack && self.snapshots().driver() == "overlay";
        let jobs: Vec<bool> = m
            .layers
            .iter()
            .zip(&chain)
            .map(|(l, c)| {
                !self.store().exists(&l.digest)
                    || (stage && self.snapshots().stat(&c.to_string()).is_err())
            })
            .collect();
        let pipeline = Pipeline::new(jobs);
        std::thread::scope(|s| -> Result<(), ImageError> {
            for _ in 0..opts.concurrency.max(1).min(pipeline.pending()) {
                s.spawn(|| {
                    while let Some(i) = pipeline.next_job() {
                        let layer = &m.layers[i];
                        let result = (|| {
                            if !self.store().exists(&layer.digest) {
                                self.download(&client, layer, &progress)?;
                            }
                            if stage && self.snapshots().stat(&chain[i].to_string()).is_err() {
                                return self.stage_layer(layer, &config.rootfs.diff_ids[i]);
                            }
                            Ok(None)
                        })();
                        pipeline.finish(i, result);
                    }
                });
            }
            let result = (|| {
                let mut parent: Option<String> = None;
                for (i, chain_id) in chain.iter().enumerate() {
                    let staged = pipeline.wait(i)?;
                    let name = chain_id.to_string();
                    if opts.unpack && self.snapshots().stat(&name).is_err() {
                        match staged {
                            Some(st) => self.commit_staged(st, &name, parent.as_deref())?,
                            None => self.unpack_layer(
                                &m.layers[i],
                                &config.rootfs.diff_ids[i],
                                &name,
                                parent.as_deref(),
                            )?,
                        }
                        progress.message(&format!("{}: unpacked", m.layers[i].digest.short()));
                    }
                    parent = Some(name);
                }
                Ok(())
            })();
            if result.is_err() {
                pipeline.abort();
            }
            result
        })?;
        // Stored last: a record is only written once everything it needs is there.
        self.store().put_verified(&manifest_bytes, &target.digest)?;
        let record = self.set_record(reference, target, index)?;
        let image = Image {
            record,
            manifest: m,
            config,
        };
        progress.message(&format!(
            "{}: pulled {}",
            reference, image.record.target.digest
        ));
        Ok(image)
    }

    /// Fetches one blob into the store, verified against its descriptor. The bytes go to
    /// the blob's partial file first: an interrupted download is resumed by the next pull.
    fn download(
        &self,
        client: &Client,
        desc: &Descriptor,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        let bar = progress.layer(&desc.digest, desc.size);
        bar.start();
        let fetch = |from_url: Option<&str>| -> Result<(), ImageError> {
            let Some(mut partial) = self.store().partial(&desc.digest, desc.size)? else {
                // Another pull stored it meanwhile.
                return Ok(());
            };
            let kept = partial.len();
            let resumed = |at: u64| {
                if at > 0 {
                    format!("; resumed at byte {at} of an earlier download, which was deleted")
                } else {
                    String::new()
                }
            };
            let corrupt = |e: StoreError, at: u64| -> ImageError {
                let detail = match e {
                    StoreError::DigestMismatch { actual, .. } => {
                        format!("its content hashes to {actual}")
                    }
                    StoreError::SizeMismatch {
                        expected, actual, ..
                    } => format!("{actual} bytes instead of {expected}"),
                    e => return e.into(),
                };
                RegistryError::Corrupt {
                    host: client.host().to_string(),
                    digest: desc.digest.clone(),
                    detail: format!("{detail}{}", resumed(at)),
                }
                .into()
            };
            if kept == desc.size {
                // Downloaded before, not stored yet (interrupted at the very end).
                bar.inc(kept);
                return partial.commit().map(drop).map_err(|e| corrupt(e, kept));
            }
            let body = match from_url {
                None => client.open_blob(&desc.digest, kept)?,
                Some(u) => client.open_url(u, kept)?,
            };
            if body.start == 0 && kept > 0 {
                tracing::debug!(digest = %desc.digest, kept, "the registry sent the whole blob again");
                partial.restart()?;
            } else if kept > 0 {
                tracing::debug!(digest = %desc.digest, kept, "resuming");
            }
            bar.inc(body.start);
            let inc = |n| bar.inc(n);
            let remaining = desc.size.saturating_sub(body.start);
            let interrupted = |detail: String, done: u64| RegistryError::Interrupted {
                host: client.host().to_string(),
                digest: desc.digest.clone(),
                done,
                size: desc.size,
                detail,
            };
            match copy_limited(body.reader, &mut partial, remaining, &inc) {
                Ok(_) => {}
                Err(CopyError::Read(e)) => {
                    return Err(interrupted(e.to_string(), partial.len()).into());
                }
                Err(CopyError::Write(e)) => {
                    return Err(StoreError::io("writing", partial.path())(e).into());
                }
            }
            if partial.len() < desc.size {
                return Err(interrupted("the response ended early".into(), partial.len()).into());
            }
            partial.commit().map_err(|e| corrupt(e, body.start))?;
            Ok(())
        };
        let mut result = fetch(None);
        // Non-distributable layers may live elsewhere: try the descriptor's URLs.
        if matches!(
            result,
            Err(ImageError::Registry(RegistryError::NotFound { .. }))
        ) {
            for url in &desc.urls {
                result = fetch(Some(url));
                if result.is_ok() {
                    break;
                }
            }
        }
        match &result {
            Ok(()) => bar.finish("done"),
            Err(_) => bar.finish("failed"),
        }
        result
    }
}

enum Slot {
    Todo,
    Working,
    Ready(Option<Staged>),
    Failed(ImageError),
    Taken,
}

/// Which layers are there, being fetched, or failed; the unpacking thread waits on it.
struct Pipeline {
    slots: Mutex<(Vec<Slot>, bool)>,
    changed: Condvar,
}

impl Pipeline {
    fn new(jobs: Vec<bool>) -> Pipeline {
        let slots = jobs
            .into_iter()
            .map(|j| if j { Slot::Todo } else { Slot::Ready(None) })
            .collect();
        Pipeline {
            slots: Mutex::new((slots, false)),
            changed: Condvar::new(),
        }
    }

    fn pending(&self) -> usize {
        let g = self.slots.lock().expect("pipeline lock");
        g.0.iter().filter(|s| matches!(s, Slot::Todo)).count()
    }

    /// The lowest layer still to fetch (so unpacking can start early), unless aborted.
    fn next_job(&self) -> Option<usize> {
        let mut g = self.slots.lock().expect("pipeline lock");
        if g.1 {
            return None;
        }
        let i = g.0.iter().position(|s| matches!(s, Slot::Todo))?;
        g.0[i] = Slot::Working;
        Some(i)
    }

    fn finish(&self, i: usize, result: Result<Option<Staged>, ImageError>) {
        let mut g = self.slots.lock().expect("pipeline lock");
        g.0[i] = match result {
            Ok(staged) => Slot::Ready(staged),
            Err(e) => {
                g.1 = true;
                Slot::Failed(e)
            }
        };
        self.changed.notify_all();
    }

    /// Waits for layer `i`; the first download error ends the pull.
    fn wait(&self, i: usize) -> Result<Option<Staged>, ImageError> {
        let mut g = self.slots.lock().expect("pipeline lock");
        loop {
            if let Some(pos) = g.0.iter().position(|s| matches!(s, Slot::Failed(_))) {
                let Slot::Failed(e) = std::mem::replace(&mut g.0[pos], Slot::Taken) else {
                    unreachable!()
                };
                return Err(e);
            }
            match &mut g.0[i] {
                Slot::Ready(staged) => return Ok(staged.take()),
                Slot::Taken => return Err(ImageError::Other("a layer failed".into())),
                _ => g = self.changed.wait(g).expect("pipeline lock"),
            }
        }
    }

    fn abort(&self) {
        self.slots.lock().expect("pipeline lock").1 = true;
    }
}
