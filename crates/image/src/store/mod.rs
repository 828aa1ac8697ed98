//! The content store: blobs addressed by digest under `<root>/blobs/<alg>/<hex>`.
//!
//! Every blob is written to `<root>/ingest/` first, hashed while written, verified against
//! the digest the caller expects, fsynced and only then renamed to its real name. A crash or
//! a wrong digest never leaves a partial blob under its real name. Downloads keep their
//! bytes under a name derived from the digest instead (`<alg>-<hex>.partial`), so an
//! interrupted one can be resumed.

mod partial;
mod writer;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use partial::PartialBlob;
pub use writer::BlobWriter;

use crate::digest::{Algorithm, Digest};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {0} is not in the local store")]
    NotFound(Digest),
    #[error("digest mismatch: expected {expected}, got {actual} ({what})")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        what: String,
    },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error(
        "partial download {path} cannot be continued ({detail}); it was deleted, pull again to download it from the start"
    )]
    BadPartial { path: PathBuf, detail: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io { what, path, source }
    }
}

/// A content-addressed blob store rooted at a directory.
#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for sub in ["blobs/sha256", "blobs/sha512", "ingest"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(StoreError::io("creating", &dir))?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(digest.clone()))
            }
            Err(e) => Err(StoreError::io("reading", &self.blob_path(digest))(e)),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound(digest.clone())
            } else {
                StoreError::io("opening", &path)(e)
            }
        })
    }

    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut data = Vec::new();
        let path = self.blob_path(digest);
        self.open_blob(digest)?
            .read_to_end(&mut data)
            .map_err(StoreError::io("reading", &path))?;
        Ok(data)
    }

    /// A writer for a new blob; `expected` (digest and optional size) is checked on commit.
    pub fn writer(
        &self,
        algorithm: Algorithm,
        expected: Option<(Digest, Option<u64>)>,
    ) -> Result<BlobWriter, StoreError> {
        BlobWriter::create(self.clone(), algorithm, expected)
    }

    /// Stores `data` (sha256) and returns its digest.
    pub fn put(&self, data: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::sha256_of(data);
        self.put_verified(data, &digest)?;
        Ok(digest)
    }

    /// Stores `data`, which must hash to `digest`.
    pub fn put_verified(&self, data: &[u8], digest: &Digest) -> Result<(), StoreError> {
        if self.exists(digest) {
            return Ok(());
        }
        let mut w = self.writer(
            digest.algorithm(),
            Some((digest.clone(), Some(data.len() as u64))),
        )?;
        io::Write::write_all(&mut w, data)
            .map_err(StoreError::io("writing", &self.ingest_dir()))?;
        w.commit()?;
        Ok(())
    }

    /// Copies everything `reader` yields into the store, verifying it against `digest`.
    pub fn ingest(
        &self,
        reader: &mut dyn Read,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut w = self.writer(digest.algorithm(), Some((digest.clone(), size)))?;
        io::copy(reader, &mut w).map_err(StoreError::io("writing", &self.ingest_dir()))?;
        w.commit().map(|_| ())
    }

    /// Every blob in the store.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.name());
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("listing", &dir)(e)),
            };
            for entry in rd {
                let entry = entry.map_err(StoreError::io("listing", &dir))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if let Ok(d) = format!("{}:{name}", alg.name()).parse() {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("removing", &path)(e)),
        }
    }

    /// Removes leftover temp files of interrupted writes; returns how many.
    pub fn clean_ingest(&self) -> Result<usize, StoreError> {
        let dir = self.ingest_dir();
        let mut n = 0;
        for entry in fs::read_dir(&dir).map_err(StoreError::io("listing", &dir))? {
            let entry = entry.map_err(StoreError::io("listing", &dir))?;
            if fs::remove_file(entry.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
