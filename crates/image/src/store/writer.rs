//! Writing one blob: temp file, hash while writing, verify, fsync, rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ContentStore, StoreError};
use crate::digest::{Algorithm, Digest, HashingWriter};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob being written. Dropping it without [`BlobWriter::commit`] removes the temp file.
pub struct BlobWriter {
    store: ContentStore,
    temp: PathBuf,
    out: Option<HashingWriter<io::BufWriter<File>>>,
    expected: Option<(Digest, Option<u64>)>,
}

impl BlobWriter {
    pub(super) fn create(
        store: ContentStore,
        algorithm: Algorithm,
        expected: Option<(Digest, Option<u64>)>,
    ) -> Result<Self, StoreError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let label = expected
            .as_ref()
            .map(|(d, _)| d.hex()[..16].to_string())
            .unwrap_or_else(|| "new".into());
        let temp = store
            .ingest_dir()
            .join(format!("{label}.{}.{n}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)
            .map_err(StoreError::io("creating", &temp))?;
        Ok(BlobWriter {
            store,
            temp,
            out: Some(HashingWriter::new(
                io::BufWriter::with_capacity(256 * 1024, file),
                algorithm,
            )),
            expected,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.out.as_ref().map(|o| o.count()).unwrap_or(0)
    }

    /// Verifies the content, makes it durable and gives it its real name.
    pub fn commit(mut self) -> Result<Digest, StoreError> {
        let out = self.out.take().expect("commit once");
        let (buf, digest, size) = out.finish();
        let file = buf
            .into_inner()
            .map_err(|e| StoreError::io("writing", &self.temp)(e.into_error()))?;
        if let Some((expected, expected_size)) = &self.expected {
            if *expected != digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                    what: "content does not match the digest it was fetched by".into(),
                });
            }
            if let Some(es) = expected_size
                && *es != size
            {
                return Err(StoreError::SizeMismatch {
                    digest,
                    expected: *es,
                    actual: size,
                });
            }
        }
        file.sync_all()
            .map_err(StoreError::io("syncing", &self.temp))?;
        drop(file);
        let dest = self.store.blob_path(&digest);
        fs::rename(&self.temp, &dest).map_err(StoreError::io("renaming into", &dest))?;
        if let Some(dir) = dest.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(StoreError::io("syncing", dir))?;
        }
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.as_mut().expect("not committed").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().expect("not committed").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Committed writers renamed the temp file away; this only removes abandoned ones.
        let _ = fs::remove_file(&self.temp);
    }
}
