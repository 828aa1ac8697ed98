//! The file tree of a layer built from host files: it mirrors the host's layout of every
//! path it holds, symlinks (such as a merged-/usr `/lib -> usr/lib`) included.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::HostBuildError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    /// A file whose content and mode come from this host path.
    File {
        host: PathBuf,
    },
    /// A regular file with fixed content.
    Data {
        content: Vec<u8>,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
    },
}

/// Paths are relative to the layer root, without a leading '/'.
#[derive(Debug, Default)]
pub struct Tree {
    pub nodes: BTreeMap<PathBuf, Node>,
}

fn rel(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

impl Tree {
    pub fn dir(&mut self, path: &str, mode: u32) {
        let p = rel(Path::new(path));
        self.parents(&p);
        self.nodes.entry(p).or_insert(Node::Dir { mode });
    }

    pub fn data(&mut self, path: &str, content: &[u8], mode: u32) {
        let p = rel(Path::new(path));
        self.parents(&p);
        self.nodes.insert(
            p,
            Node::Data {
                content: content.to_vec(),
                mode,
            },
        );
    }

    fn parents(&mut self, p: &Path) {
        let mut cur = PathBuf::new();
        if let Some(parent) = p.parent() {
            for c in parent.components() {
                cur.push(c);
                self.nodes
                    .entry(cur.clone())
                    .or_insert(Node::Dir { mode: 0o755 });
            }
        }
    }

    /// Adds host file `host` at the same path, with every symlink met on the way (in
    /// parent directories or the file itself) and what it points to.
    pub fn add_host_path(&mut self, host: &Path) -> Result<(), HostBuildError> {
        self.add_host_path_depth(host, 0)
    }

    fn add_host_path_depth(&mut self, host: &Path, depth: u32) -> Result<(), HostBuildError> {
        if depth > 32 {
            return Err(HostBuildError::SymlinkLoop(host.to_path_buf()));
        }
        let comps: Vec<_> = rel(host)
            .components()
            .map(|c| c.as_os_str().to_owned())
            .collect();
        let mut cur = PathBuf::from("/");
        for (i, c) in comps.iter().enumerate() {
            let next = cur.join(c);
            let meta = fs::symlink_metadata(&next).map_err(|e| HostBuildError::io(&next, e))?;
            let last = i + 1 == comps.len();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&next).map_err(|e| HostBuildError::io(&next, e))?;
                self.nodes.insert(
                    rel(&next),
                    Node::Symlink {
                        target: target.clone(),
                    },
                );
                let resolved = if target.is_absolute() {
                    target
                } else {
                    cur.join(target)
                };
                let rest: PathBuf = comps[i + 1..].iter().collect();
                let full = normalize(&resolved.join(rest));
                return self.add_host_path_depth(&full, depth + 1);
            }
            if last {
                if meta.is_dir() {
                    self.nodes
                        .entry(rel(&next))
                        .or_insert(Node::Dir { mode: 0o755 });
                } else {
                    self.nodes
                        .insert(rel(&next), Node::File { host: next.clone() });
                }
            } else {
                self.nodes
                    .entry(rel(&next))
                    .or_insert(Node::Dir { mode: 0o755 });
            }
            cur = next;
        }
        Ok(())
    }

    /// Resolves `path` through the tree's own symlinks (parents only), as a container would.
    pub fn resolve_parent(&self, path: &Path) -> PathBuf {
        let mut cur = PathBuf::new();
        let comps: Vec<_> = rel(path)
            .components()
            .map(|c| c.as_os_str().to_owned())
            .collect();
        for (i, c) in comps.iter().enumerate() {
            let next = cur.join(c);
            if i + 1 < comps.len()
                && let Some(Node::Symlink { target }) = self.nodes.get(&next)
            {
                let t = if target.is_absolute() {
                    rel(target)
                } else {
                    cur.join(target)
                };
                cur = rel(&normalize(&Path::new("/").join(t)));
            } else {
                cur = next;
            }
        }
        cur
    }
}

/// Removes `.` and `..` lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}
