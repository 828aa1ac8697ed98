//! `peapod image build-from-host NAME PROGRAM...`: a single-layer image of host programs
//! and every file they need to run (see [`elf`]); busybox also gets its applet links.

pub mod elf;
mod tree;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use tree::{Node, Tree};

use crate::config::{ContainerConfig, History, ImageConfig, RootFs, rfc3339};
use crate::digest::{Algorithm, HashingWriter};
use crate::error::ImageError;
use crate::manifest::{Descriptor, Platform};
use crate::media;
use crate::reference::Reference;
use crate::service::{Image, ImageService};

#[derive(Debug, thiserror::Error)]
pub enum HostBuildError {
    #[error("program {0:?} not found (give a path, or a name on PATH)")]
    ProgramNotFound(String),
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("{0}: not a valid ELF file: {1}")]
    Elf(PathBuf, String),
    #[error("{needed_by}: needs {library}, which is in none of the library directories")]
    MissingLibrary { library: String, needed_by: PathBuf },
    #[error("{0}: too many levels of symlinks")]
    SymlinkLoop(PathBuf),
}

impl HostBuildError {
    pub(crate) fn io(path: &Path, e: io::Error) -> Self {
        HostBuildError::Io(path.to_path_buf(), e)
    }
}

impl From<HostBuildError> for ImageError {
    fn from(e: HostBuildError) -> Self {
        ImageError::Other(e.to_string())
    }
}

/// A program given by path, or found on PATH.
fn find_program(p: &str) -> Result<PathBuf, HostBuildError> {
    if p.contains('/') {
        let path = PathBuf::from(p);
        return if path.is_file() {
            Ok(std::path::absolute(&path).unwrap_or(path))
        } else {
            Err(HostBuildError::ProgramNotFound(p.into()))
        };
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .map(|d| d.join(p))
        .find(|c| c.is_file())
        .ok_or_else(|| HostBuildError::ProgramNotFound(p.into()))
}

/// The interpreter of a `#!` script.
fn shebang(path: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let interp = String::from_utf8_lossy(line)
        .split_whitespace()
        .next()?
        .to_string();
    Some(PathBuf::from(interp))
}

/// busybox's applets as paths (`bin/ls`, `usr/bin/awk`).
fn busybox_applets(busybox: &Path) -> Vec<String> {
    for flag in ["--list-full", "--list"] {
        if let Ok(out) = Command::new(busybox).arg(flag).output()
            && out.status.success()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            return text
                .lines()
                .filter(|l| !l.is_empty() && !l.contains(".."))
                .map(|l| {
                    if flag == "--list" {
                        format!("bin/{l}")
                    } else {
                        l.trim_start_matches('/').to_string()
                    }
                })
                .collect();
        }
    }
    Vec::new()
}

fn base_tree() -> Tree {
    let mut t = Tree::default();
    for (d, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
    ] {
        t.dir(d, mode);
    }
    t.data(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    );
    t.data("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644);
    t
}

impl ImageService {
    /// Builds image `name` from host `programs` (the first is the default command).
    pub fn build_from_host(&self, name: &str, programs: &[String]) -> Result<Image, ImageError> {
        let reference = Reference::parse(name)?;
        if programs.is_empty() {
            return Err(ImageError::Other(
                "build-from-host needs at least one PROGRAM".into(),
            ));
        }
        let _gc = self.gc_lock(false)?;
        let mut tree = base_tree();
        let mut paths = Vec::new();
        for p in programs {
            let path = find_program(p)?;
            if let Some(interp) = shebang(&path) {
                paths.extend(elf::dependencies(&interp)?);
            }
            paths.extend(elf::dependencies(&path)?);
            let is_busybox = path.file_name().is_some_and(|n| n == "busybox");
            if is_busybox {
                for applet in busybox_applets(&path) {
                    let at = tree.resolve_parent(Path::new(&applet));
                    tree.nodes.entry(at).or_insert(Node::Symlink {
                        target: path.clone(),
                    });
                }
            }
            paths.push(path);
        }
        for p in &paths {
            tree.add_host_path(p)?;
        }
        // Applet links were placed before the tree knew the host's symlinked dirs: place
        // them again through the final tree.
        let links: Vec<(PathBuf, Node)> = tree
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::Symlink { target } if paths.contains(target)))
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        for (p, n) in links {
            let at = tree.resolve_parent(&p);
            if at != p {
                tree.nodes.remove(&p);
                tree.nodes.entry(at).or_insert(n);
            }
        }
        let cmd = programs[0].clone();
        let first = find_program(&cmd)?;
        let default_cmd = if first.file_name().is_some_and(|n| n == "busybox") {
            vec!["sh".to_string()]
        } else {
            vec![first.to_string_lossy().into_owned()]
        };
        self.write_single_layer_image(&reference, &tree, default_cmd, programs)
    }

    fn write_single_layer_image(
        &self,
        reference: &Reference,
        tree: &Tree,
        cmd: Vec<String>,
        programs: &[String],
    ) -> Result<Image, ImageError> {
        let blob = self.store().writer(Algorithm::Sha256, None)?;
        let gz = flate2::write::GzEncoder::new(blob, flate2::Compression::new(6));
        let mut tar = tar::Builder::new(HashingWriter::new(gz, Algorithm::Sha256));
        let io = |e: io::Error| ImageError::Io {
            what: "writing the layer".into(),
            source: e,
        };
        for (path, node) in &tree.nodes {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match node {
                Node::Dir { mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    tar.append_data(&mut h, path, io::empty()).map_err(io)?;
                }
                Node::Symlink { target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    tar.append_link(&mut h, path, target).map_err(io)?;
                }
                Node::Data { content, mode } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(content.len() as u64);
                    tar.append_data(&mut h, path, &content[..]).map_err(io)?;
                }
                Node::File { host } => {
                    use std::os::unix::fs::MetadataExt;
                    let f = File::open(host).map_err(ImageError::io(host.display().to_string()))?;
                    let m = f
                        .metadata()
                        .map_err(ImageError::io(host.display().to_string()))?;
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(m.mode() & 0o7777);
                    h.set_size(m.len());
                    h.set_mtime(m.mtime().max(0) as u64);
                    tar.append_data(&mut h, path, f).map_err(io)?;
                }
            }
        }
        let hashing = tar.into_inner().map_err(io)?;
        let (gz, diff_id, _) = hashing.finish();
        let mut blob = gz.finish().map_err(io)?;
        blob.flush().map_err(io)?;
        let size = blob.written();
        let layer_digest = blob.commit()?;
        let now = rfc3339(crate::snapshot_now());
        let platform = Platform::host();
        let config = ImageConfig {
            created: Some(now.clone()),
            author: None,
            architecture: platform.architecture,
            os: platform.os,
            variant: platform.variant,
            config: Some(ContainerConfig {
                env: Some(vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ]),
                cmd: Some(cmd),
                working_dir: Some("/".into()),
                ..ContainerConfig::default()
            }),
            rootfs: RootFs {
                typ: "layers".into(),
                diff_ids: vec![diff_id],
            },
            history: vec![History {
                created: Some(now),
                created_by: Some(format!(
                    "peapod image build-from-host {} {}",
                    reference,
                    programs.join(" ")
                )),
                comment: None,
                empty_layer: None,
            }],
        };
        self.store_image(
            reference,
            &config,
            vec![Descriptor::new(media::OCI_LAYER_GZIP, layer_digest, size)],
        )
    }
}

#[cfg(test)]
mod tests;
