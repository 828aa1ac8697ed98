//! Credentials saved by `peapod login`: `<root>/auth.json`, mode 0600, in the format of
//! Docker's config.json (`{"auths": {"HOST": {"auth": base64("user:pass")}}}`).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::RegistryError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    auth: String,
}

#[derive(Clone, Debug)]
pub struct Credentials {
    path: PathBuf,
}

fn err(path: &Path, detail: impl ToString) -> RegistryError {
    RegistryError::Credentials {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

impl Credentials {
    pub fn new(path: PathBuf) -> Self {
        Credentials { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<AuthFile, RegistryError> {
        match fs::read(&self.path) {
            Ok(d) => serde_json::from_slice(&d).map_err(|e| err(&self.path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
            Err(e) => Err(err(&self.path, e)),
        }
    }

    fn save(&self, f: &AuthFile) -> Result<(), RegistryError> {
        let tmp = self.path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(f).map_err(|e| err(&self.path, e))?;
        let _ = fs::remove_file(&tmp);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| err(&tmp, e))?;
        out.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| err(&tmp, e))?;
        out.write_all(&data).map_err(|e| err(&tmp, e))?;
        out.sync_all().map_err(|e| err(&tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| err(&self.path, e))
    }

    /// The user and password saved for `host`.
    pub fn get(&self, host: &str) -> Result<Option<(String, String)>, RegistryError> {
        let f = self.load()?;
        let Some(entry) = f.auths.get(host) else {
            return Ok(None);
        };
        let raw = STANDARD
            .decode(&entry.auth)
            .map_err(|e| err(&self.path, e))?;
        let s = String::from_utf8(raw).map_err(|e| err(&self.path, e))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| err(&self.path, format!("entry for {host} is not user:password")))?;
        Ok(Some((u.to_string(), p.to_string())))
    }

    pub fn set(&self, host: &str, user: &str, password: &str) -> Result<(), RegistryError> {
        let mut f = self.load()?;
        f.auths.insert(
            host.to_string(),
            AuthEntry {
                auth: STANDARD.encode(format!("{user}:{password}")),
            },
        );
        self.save(&f)
    }

    /// Forgets `host`; returns whether there was anything to forget.
    pub fn remove(&self, host: &str) -> Result<bool, RegistryError> {
        let mut f = self.load()?;
        let had = f.auths.remove(host).is_some();
        if had {
            self.save(&f)?;
        }
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let c = Credentials::new(dir.path().join("auth.json"));
        assert_eq!(c.get("h:1").unwrap(), None);
        c.set("h:1", "user", "pa:ss").unwrap();
        assert_eq!(c.get("h:1").unwrap(), Some(("user".into(), "pa:ss".into())));
        let mode = fs::metadata(c.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(c.remove("h:1").unwrap());
        assert!(!c.remove("h:1").unwrap());
        assert_eq!(c.get("h:1").unwrap(), None);
    }
}
