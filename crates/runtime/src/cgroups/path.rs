//! Parsing of linux.cgroupsPath: absolute, relative, or systemd "slice:prefix:name".

use std::path::{Component, Path, PathBuf};

use super::error::{CgroupError, Result};

/// What a cgroupsPath asks for, before it is placed in a hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpecPath {
    /// Relative to the hierarchy mount points; always starts with "/".
    Absolute(PathBuf),
    /// Relative to the caller's own cgroup; never starts with "/".
    Relative(PathBuf),
    /// The systemd driver form.
    Systemd {
        slice: String,
        prefix: String,
        name: String,
    },
}

/// Parse `cgroups_path` (None or "" → "/pea/<id>").
pub(crate) fn parse(cgroups_path: Option<&str>, container_id: &str) -> Result<SpecPath> {
    let raw = match cgroups_path {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            validate_id(container_id)?;
            format!("/pea/{container_id}")
        }
    };
    if let Some(sd) = parse_systemd(&raw) {
        return Ok(sd);
    }
    let normalized = normalize(&raw)?;
    if raw.starts_with('/') {
        Ok(SpecPath::Absolute(Path::new("/").join(normalized)))
    } else {
        Ok(SpecPath::Relative(normalized))
    }
}

/// Validate a persisted (resolved) path for `open`: absolute, not the root.
pub(crate) fn parse_resolved(path: &Path) -> Result<PathBuf> {
    let raw = path.to_string_lossy().into_owned();
    if !raw.starts_with('/') {
        return Err(invalid(
            &raw,
            "a persisted cgroup path must be absolute (as returned by CgroupManager::path)",
        ));
    }
    Ok(Path::new("/").join(normalize(&raw)?))
}

/// "slice:prefix:name" with no "/" anywhere is the systemd form.
fn parse_systemd(raw: &str) -> Option<SpecPath> {
    if raw.starts_with('/') || raw.contains('/') {
        return None;
    }
    let parts: Vec<&str> = raw.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    Some(SpecPath::Systemd {
        slice: parts[0].to_string(),
        prefix: parts[1].to_string(),
        name: parts[2].to_string(),
    })
}

/// Drop "." and empty components; refuse "..", NUL and the bare root.
fn normalize(raw: &str) -> Result<PathBuf> {
    if raw.contains('\0') {
        return Err(invalid(raw, "contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(invalid(raw, "\"..\" would escape the cgroup hierarchy"));
            }
            Component::Prefix(_) => return Err(invalid(raw, "unexpected path prefix")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(invalid(
            raw,
            "names the root cgroup, which a container must not own; use e.g. \"/pea/<id>\"",
        ));
    }
    Ok(out)
}

fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(invalid(
            &format!("/pea/{id}"),
            "the container id cannot be used as a cgroup name (empty, \".\", \"..\", or contains \"/\")",
        ));
    }
    Ok(())
}

fn invalid(path: &str, reason: &str) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// Is systemd the init of this host? (/run/systemd/system exists and
/// /proc/1/comm says "systemd").
pub(crate) fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && std::fs::read_to_string("/proc/1/comm")
            .map(|c| c.trim() == "systemd")
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_absolute_relative_and_systemd() {
        assert_eq!(
            parse(None, "abc").unwrap(),
            SpecPath::Absolute("/pea/abc".into())
        );
        assert_eq!(
            parse(Some(""), "abc").unwrap(),
            SpecPath::Absolute("/pea/abc".into())
        );
        assert_eq!(
            parse(Some("//a/./b//"), "x").unwrap(),
            SpecPath::Absolute("/a/b".into())
        );
        assert_eq!(
            parse(Some("a/b"), "x").unwrap(),
            SpecPath::Relative("a/b".into())
        );
        assert_eq!(
            parse(Some("system.slice:docker:abc"), "x").unwrap(),
            SpecPath::Systemd {
                slice: "system.slice".into(),
                prefix: "docker".into(),
                name: "abc".into()
            }
        );
        // A colon inside a plain path is just a name.
        assert_eq!(
            parse(Some("/a:b:c"), "x").unwrap(),
            SpecPath::Absolute("/a:b:c".into())
        );
    }

    #[test]
    fn rejects_escapes_root_and_bad_ids() {
        for bad in ["/", "/../etc", "a/../../b", ".", "/a\0b"] {
            let err = parse(Some(bad), "x").unwrap_err();
            assert!(
                err.to_string().contains("linux.cgroupsPath"),
                "{bad:?}: {err}"
            );
        }
        assert!(parse(None, "a/b").is_err());
        assert!(parse(None, "..").is_err());
        assert!(parse_resolved(Path::new("rel")).is_err());
        assert!(parse_resolved(Path::new("/")).is_err());
        assert_eq!(
            parse_resolved(Path::new("/pea/x")).unwrap(),
            PathBuf::from("/pea/x")
        );
    }
}
