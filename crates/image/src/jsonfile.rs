//! A small JSON state file changed under an exclusive flock and replaced atomically
//! (write temp, fsync, rename, fsync the directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum JsonFileError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> JsonFileError {
    let path = path.to_path_buf();
    move |source| JsonFileError::Io { what, path, source }
}

#[derive(Clone, Debug)]
pub struct JsonFile<T> {
    path: PathBuf,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + Default> JsonFile<T> {
    pub fn new(path: PathBuf) -> Self {
        JsonFile {
            path,
            _t: PhantomData,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self, how: FlockArg) -> Result<Flock<File>, JsonFileError> {
        let p = self.path.with_extension("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err("opening", &p))?;
        Flock::lock(f, how).map_err(|(_, e)| io_err("locking", &p)(e.into()))
    }

    fn load(&self) -> Result<T, JsonFileError> {
        match fs::read(&self.path) {
            Ok(d) => serde_json::from_slice(&d).map_err(|source| JsonFileError::Corrupt {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(io_err("reading", &self.path)(e)),
        }
    }

    pub fn read(&self) -> Result<T, JsonFileError> {
        let _l = self.lock(FlockArg::LockShared)?;
        self.load()
    }

    /// Changes the state under the lock; written only if `f` succeeds.
    pub fn update<R, E: From<JsonFileError>>(
        &self,
        f: impl FnOnce(&mut T) -> Result<R, E>,
    ) -> Result<R, E> {
        let _l = self.lock(FlockArg::LockExclusive)?;
        let mut state = self.load()?;
        let out = f(&mut state)?;
        self.save(&state)?;
        Ok(out)
    }

    fn save(&self, state: &T) -> Result<(), JsonFileError> {
        let tmp = self.path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(state).map_err(|source| JsonFileError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        let mut f = File::create(&tmp).map_err(io_err("writing", &tmp))?;
        f.write_all(&data).map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io_err("renaming", &self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("syncing", dir))?;
        }
        Ok(())
    }
}
