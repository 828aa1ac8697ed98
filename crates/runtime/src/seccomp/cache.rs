//! Compiled filters kept by content, so a profile is compiled once.
//!
//! libseccomp needs tens of milliseconds to turn a Docker-sized profile into
//! BPF, more than the rest of a container start. The program depends only on
//! the `linux.seccomp` object, the libseccomp release (its syscall tables)
//! and this runtime's version, so the file name is a SHA-256 of those. A
//! cache entry is written through a temporary file and a rename; anything
//! unreadable is ignored and compiled again.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::SeccompError;
use super::bpf;
use super::compile::{Program, compile, libseccomp_version};

/// `compile`, answered from `dir` when the same filter was compiled before.
pub fn compile_cached(s: &LinuxSeccomp, dir: Option<&Path>) -> Result<Program, SeccompError> {
    let Some(dir) = dir else {
        return compile(s);
    };
    let Some(path) = entry(s, dir) else {
        return compile(s);
    };
    if let Some(p) = read(&path) {
        return Ok(p);
    }
    let program = compile(s)?;
    // A cache that cannot be written only costs the next start a compile.
    let _ = write(dir, &path, &program);
    Ok(program)
}

fn entry(s: &LinuxSeccomp, dir: &Path) -> Option<PathBuf> {
    let json = serde_json::to_vec(s).ok()?;
    let mut h = Sha256::new();
    h.update(b"pea-seccomp-1\0");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(b"\0");
    h.update(libseccomp_version().as_bytes());
    h.update(b"\0");
    h.update(&json);
    let name: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(dir.join(format!("{name}.bpf")))
}

/// File layout: flags (u32, native order), then the instructions as the
/// kernel reads them.
fn read(path: &Path) -> Option<Program> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 4 {
        return None;
    }
    let flags = u32::from_ne_bytes(bytes[..4].try_into().ok()?);
    let insns = bpf::parse(&bytes[4..])?;
    (!insns.is_empty()).then(|| Program::from_parts(insns, flags))
}

fn write(dir: &Path, path: &Path, p: &Program) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut bytes = p.flags().to_ne_bytes().to_vec();
    for i in p.instructions() {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.push(i.jt);
        bytes.push(i.jf);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_compile_comes_from_the_cache_and_matches() {
        let dir = tempfile::tempdir().unwrap();
        let profile = super::super::default_profile(&["CAP_KILL"]);
        let first = compile_cached(&profile, Some(dir.path())).unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        let second = compile_cached(&profile, Some(dir.path())).unwrap();
        assert_eq!(first.instructions(), second.instructions());
        assert_eq!(first.flags(), second.flags());
        assert_eq!(
            compile(&profile).unwrap().instructions(),
            second.instructions()
        );
    }

    #[test]
    fn a_corrupt_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let profile = super::super::default_profile(&["CAP_KILL"]);
        let path = entry(&profile, dir.path()).unwrap();
        std::fs::write(&path, b"xyz").unwrap();
        let p = compile_cached(&profile, Some(dir.path())).unwrap();
        assert_eq!(p.instructions(), compile(&profile).unwrap().instructions());
    }
}
