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
        check_version(spec.version()).map_err(invalid)?;
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
        let linux = spec.linux().clone().unwrap_or_default();
        // Without a mount namespace of its own (new or joined) the rootfs
        // would be built, and pivot_root'ed into, in the runtime's mount
        // namespace: the host's.
        if !linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Mount)
        {
            return Err(invalid(
                "linux.namespaces has no mount namespace: the container's root filesystem \
                 is set up in a mount namespace of its own; add {\"type\": \"mount\"}"
                    .into(),
            ));
        }
        for (field, paths) in [
            ("linux.maskedPaths", linux.masked_paths()),
            ("linux.readonlyPaths", linux.readonly_paths()),
        ] {
            if let Some(bad) = paths.iter().flatten().find(|p| !p.starts_with('/')) {
                return Err(invalid(format!(
                    "{field} entry {bad:?} must be an absolute path in the container"
                )));
            }
        }
        if let Some(ns) = linux.namespaces() {
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

/// `ociVersion` must be SemVer 2.0.0 (config.md) of a major version this
/// runtime implements (1).
fn check_version(v: &str) -> Result<(), String> {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let rest = &v[core.len()..];
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |n: &&str| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    let ident = |part: &str| {
        !part.is_empty()
            && part
                .split('.')
                .all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let suffix_ok = match rest.split_once('+') {
        Some((pre, build)) => {
            (pre.is_empty() || ident(pre.trim_start_matches('-'))) && ident(build)
        }
        None => rest.is_empty() || (rest.starts_with('-') && ident(&rest[1..])),
    };
    if numbers.len() != 3 || !numbers.iter().all(numeric) || !suffix_ok {
        return Err(format!(
            "ociVersion {v:?} is not a SemVer version such as \"{}\"",
            crate::state::OCI_VERSION
        ));
    }
    if numbers[0] != "1" {
        return Err(format!(
            "ociVersion {v:?}: this runtime implements version 1 of the runtime spec"
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::check_version;

    #[test]
    fn oci_versions() {
        for ok in [
            "1.0.0",
            "1.0.2-dev",
            "1.2.0",
            "1.0.0-rc5",
            "1.1.0+dev.1",
            "1.0.0-rc.1+b",
        ] {
            assert!(check_version(ok).is_ok(), "{ok} refused");
        }
        for bad in [
            "", "invalid", "1.0", "1", "01.0.0", "2.0.0", "1.0.0-", "1.0.x", "v1.0.0",
        ] {
            assert!(check_version(bad).is_err(), "{bad} accepted");
        }
    }
}
