//! A download that survives interruption: `<root>/ingest/<alg>-<hex>.partial`, named after
//! the digest it must hash to so a later pull finds it and continues where it stopped.
//!
//! The partial file is locked (flock) while one writer appends to it; a second pull of
//! the same blob waits, then finds the blob stored. Its bytes are hashed again when it is
//! reopened, so the digest is always checked over the whole content before the rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{ContentStore, StoreError};
use crate::digest::{Digest, Hasher};

/// A blob being downloaded into its partial file, which stays when this is dropped.
pub struct PartialBlob {
    store: ContentStore,
    path: PathBuf,
    file: Flock<File>,
    expected: Digest,
    size: u64,
    hasher: Hasher,
    len: u64,
}

/// Whether `path` still names the file `file` has open.
fn same_file(path: &Path, file: &File) -> io::Result<bool> {
    let ours = file.metadata()?;
    match fs::metadata(path) {
        Ok(m) => Ok(m.dev() == ours.dev() && m.ino() == ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl ContentStore {
    /// Where a download of `digest` keeps its bytes until they are verified.
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.ingest_dir().join(format!(
            "{}-{}.partial",
            digest.algorithm().name(),
            digest.hex()
        ))
    }

    /// Opens (creating or continuing) the partial download of `digest`, `size` bytes in
    /// all, waiting while another writer holds it. `None`: the blob is stored already.
    pub fn partial(&self, digest: &Digest, size: u64) -> Result<Option<PartialBlob>, StoreError> {
        let path = self.partial_path(digest);
        let file = loop {
            if self.exists(digest) {
                return Ok(None);
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .map_err(StoreError::io("opening", &path))?;
            let file = Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| StoreError::io("locking", &path)(e.into()))?;
            // The writer before us may have renamed it into place or deleted it.
            if same_file(&path, &file).map_err(StoreError::io("checking", &path))? {
                break file;
            }
        };
        if self.exists(digest) {
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        let len = file
            .metadata()
            .map_err(StoreError::io("checking", &path))?
            .len();
        if len > size {
            let _ = fs::remove_file(&path);
            return Err(StoreError::BadPartial {
                path,
                detail: format!("{len} bytes, more than the {size} of {digest}"),
            });
        }
        // The bytes there count towards the digest: hash them again.
        let mut hasher = digest.algorithm().hasher();
        let mut buf = vec![0u8; 256 * 1024];
        let mut hashed = 0u64;
        let mut reader = &*file;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(StoreError::io("reading", &path))?;
        while hashed < len {
            let n = reader
                .read(&mut buf)
                .map_err(StoreError::io("reading", &path))?;
            if n == 0 {
                break;
            }
            let n = n.min((len - hashed) as usize);
            hasher.update(&buf[..n]);
            hashed += n as u64;
        }
        (&*file)
            .seek(SeekFrom::Start(hashed))
            .map_err(StoreError::io("seeking", &path))?;
        Ok(Some(PartialBlob {
            store: self.clone(),
            path,
            file,
            expected: digest.clone(),
            size,
            hasher,
            len: hashed,
        }))
    }
}

impl PartialBlob {
    /// Bytes there so far (kept from an earlier attempt, then appended).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops the bytes kept so far (the server sent the whole blob again).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .and_then(|()| (&*self.file).seek(SeekFrom::Start(0)).map(drop))
            .map_err(StoreError::io("truncating", &self.path))?;
        self.hasher = self.expected.algorithm().hasher();
        self.len = 0;
        Ok(())
    }

    /// Deletes the partial file: its content cannot be right.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
    }

    /// Verifies size and digest over the whole content, makes it durable and gives it its
    /// real name. On a mismatch the partial file is deleted.
    pub fn commit(self) -> Result<Digest, StoreError> {
        if self.len != self.size {
            let err = StoreError::SizeMismatch {
                digest: self.expected.clone(),
                expected: self.size,
                actual: self.len,
            };
            self.discard();
            return Err(err);
        }
        let actual = self.hasher.clone().finish();
        if actual != self.expected {
            let err = StoreError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
                what: "content does not match the digest it was fetched by".into(),
            };
            self.discard();
            return Err(err);
        }
        self.file
            .sync_all()
            .map_err(StoreError::io("syncing", &self.path))?;
        let dest = self.store.blob_path(&self.expected);
        fs::rename(&self.path, &dest).map_err(StoreError::io("renaming into", &dest))?;
        if let Some(dir) = dest.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(StoreError::io("syncing", dir))?;
        }
        // Unlocked when the file closes, after the rename: a waiting writer then finds the
        // blob in place.
        Ok(actual)
    }
}

impl Write for PartialBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&*self.file).write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
