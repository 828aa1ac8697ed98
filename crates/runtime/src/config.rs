//! The bundle's config.json, loaded and checked once at the edge so the rest
//! of the runtime works on a spec it can trust.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "bundle {0}: no such directory; pass --bundle DIR pointing at a directory with config.json"
    )]
    NoBundle(PathBuf),
    #[error("{path}: {source}; create one with `pea spec`")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid runtime spec: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

/// A bundle whose config parsed and passed the runtime's checks.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    /// `root.path` resolved against the bundle, canonical.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Loads `<dir>/config.json` and validates what create needs.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let dir = std::fs::canonicalize(dir).map_err(|_| ConfigError::NoBundle(dir.into()))?;
        if !dir.is_dir() {
            return Err(ConfigError::NoBundle(dir));
        }
        let path = dir.join("config.json");
        let data = std::fs::read(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let spec: Spec = serde_json::from_slice(&data).map_err(|e| {
            // serde names a line and column; for seccomp constants say which field.
            let raw: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
            match crate::seccomp::check_names(&raw["linux"]["seccomp"]) {
                Err(what) => ConfigError::Invalid {
                    path: path.clone(),
                    what,
                },
                Ok(()) => ConfigError::Parse {
                    path: path.clone(),
                    reason: e.to_string(),
                },
            }
        })?;
        let invalid = |what: String| ConfigError::Invalid {
            path: path.clone(),
            what,
        };
        let root = spec.root().as_ref().ok_or_else(|| {
            invalid("root is missing: set root.path to the rootfs directory".into())
        })?;
        let rootfs = dir.join(root.path());
        let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| {
            invalid(format!(
                "root.path {}: {e}; point it at the container's root filesystem",
                rootfs.display()
            ))
        })?;
        if !rootfs.is_dir() {
            return Err(invalid(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| invalid("process is missing: create needs a process to run".into()))?;
        check_process(process).map_err(invalid)?;
        if let Some(linux) = spec.linux()
            && let Some(ns) = linux.namespaces()
        {
            let mut seen = Vec::new();
            for n in ns {
                if seen.contains(&n.typ()) {
                    return Err(invalid(format!(
                        "linux.namespaces lists {:?} twice",
                        n.typ()
                    )));
                }
                seen.push(n.typ());
            }
        }
        Ok(Self { dir, spec, rootfs })
    }

    pub fn process(&self) -> &Process {
        // Checked in `load`.
        self.spec
            .process()
            .as_ref()
            .expect("process checked in load")
    }
}

/// Checks a process object (config.json's, or one given to exec).
pub fn check_process(process: &Process) -> Result<(), String> {
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        return Err("process.args is empty: name the program to run".into());
    }
    if !process.cwd().is_absolute() {
        return Err(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        ));
    }
    if let Some(env) = process.env()
        && let Some(bad) = env.iter().find(|e| !e.contains('='))
    {
        return Err(format!("process.env entry {bad:?} is not KEY=VALUE"));
    }
    Ok(())
}
