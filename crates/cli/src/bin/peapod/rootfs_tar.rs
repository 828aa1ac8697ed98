//! Tar streams of trees inside a container's root filesystem, for `cp` and
//! `export`. Every file is reached through directory descriptors: a path
//! given by the user is resolved by the kernel inside the root (openat2
//! RESOLVE_IN_ROOT), a walk opens each name with O_NOFOLLOW, and nothing is
//! created except by a name under a descriptor resolved that way. So no
//! symlink in the container (`/etc/x -> /etc/shadow`, `up -> ../../..`) can
//! make peapod read or write a file of the host.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use pea_runtime::rootfs::resolve::{TargetKind, ensure_in_root, open_in_root};

/// Opens directory `dir` (a trusted host path) as the root of the lookups.
pub fn open_root(dir: &Path) -> Result<OwnedFd> {
    openat(
        nix::fcntl::AT_FDCWD,
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))
}

/// The path's normal components (`..` is resolved by the kernel later, in
/// the root); "." when none.
pub fn relative(path: &str) -> PathBuf {
    let rel: PathBuf = Path::new(path)
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Opens directory `path` inside `root`, symlinks resolved inside it.
pub fn open_dir_in(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, path, how)
}

/// What `path` inside `root` is, symlinks (the last one too) resolved
/// inside it; None when it does not exist.
pub fn stat_in(root: BorrowedFd<'_>, path: &Path) -> Result<Option<FileStat>, Errno> {
    match open_in_root(root, path, ResolveFlag::empty()) {
        Ok(fd) => fstat(&fd).map(Some),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The parent directory of `path` inside `root` and the last name (None
/// for the root itself: the name is then ".").
pub fn split_in(root: BorrowedFd<'_>, path: &str) -> Result<(OwnedFd, OsString), Errno> {
    let rel = relative(path);
    match rel.components().next_back() {
        Some(Component::Normal(name)) => {
            let parent = match rel.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            Ok((open_dir_in(root, parent)?, name.to_os_string()))
        }
        // The root, or `x/..`: the kernel resolves the whole path.
        _ => Ok((open_dir_in(root, &rel)?, ".".into())),
    }
}

pub fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// Writes trees to a tar stream without following any symlink.
pub struct TreeWriter<W: Write> {
    builder: tar::Builder<W>,
    /// First archive path of each (dev, inode) with more than one link.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TreeWriter<W> {
    pub fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        TreeWriter {
            builder,
            links: HashMap::new(),
        }
    }

    pub fn finish(self) -> Result<W> {
        self.builder.into_inner().context("writing the tar stream")
    }

    /// Appends `name` under directory `parent` as `archive`, and what is
    /// under it when it is a directory on the same filesystem as `dev`
    /// (the contents of mount points are left out).
    pub fn append(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        archive: &Path,
        dev: Option<u64>,
    ) -> Result<()> {
        let shown = || archive.display().to_string();
        let st = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .with_context(|| format!("reading {}", shown()))?;
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let t = kind(&st);
        if t == SFlag::S_IFDIR {
            h.set_entry_type(tar::EntryType::Directory);
            if archive != Path::new(".") {
                self.builder
                    .append_data(&mut h, archive, io::empty())
                    .with_context(|| format!("adding {}", shown()))?;
            }
            if dev.is_some_and(|d| d != st.st_dev) {
                return Ok(());
            }
            let fd = openat(
                parent,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("opening {}", shown()))?;
            let mut dir =
                nix::dir::Dir::from_fd(fd).with_context(|| format!("listing {}", shown()))?;
            let mut names: Vec<OsString> = dir
                .iter()
                .filter_map(|e| e.ok())
                .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
                .filter(|n| n != "." && n != "..")
                .collect();
            names.sort();
            let dev = Some(dev.unwrap_or(st.st_dev));
            for n in names {
                let child = if archive == Path::new(".") {
                    PathBuf::from(&n)
                } else {
                    archive.join(&n)
                };
                self.append(dir.as_fd(), &n, &child, dev)?;
            }
            return Ok(());
        }
        if t != SFlag::S_IFDIR && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                let first = first.clone();
                return self
                    .builder
                    .append_link(&mut h, archive, &first)
                    .with_context(|| format!("adding {}", shown()));
            }
            self.links.insert(key, archive.to_path_buf());
        }
        match t {
            SFlag::S_IFREG => {
                let fd = openat(
                    parent,
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("opening {}", shown()))?;
                let now = fstat(&fd).with_context(|| format!("reading {}", shown()))?;
                if kind(&now) != SFlag::S_IFREG || now.st_ino != st.st_ino {
                    bail!("{} changed while it was copied", shown());
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(now.st_size as u64);
                let file = std::fs::File::from(fd);
                self.builder
                    .append_data(&mut h, archive, file.take(now.st_size as u64))
                    .with_context(|| format!("adding {}", shown()))
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(parent, name)
                    .with_context(|| format!("reading link {}", shown()))?;
                h.set_entry_type(tar::EntryType::Symlink);
                self.builder
                    .append_link(&mut h, archive, Path::new(&target))
                    .with_context(|| format!("adding {}", shown()))
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
                h.set_entry_type(match t {
                    SFlag::S_IFCHR => tar::EntryType::Char,
                    SFlag::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                if t != SFlag::S_IFIFO {
                    h.set_device_major(nix::sys::stat::major(st.st_rdev) as u32)?;
                    h.set_device_minor(nix::sys::stat::minor(st.st_rdev) as u32)?;
                }
                self.builder
                    .append_data(&mut h, archive, io::empty())
                    .with_context(|| format!("adding {}", shown()))
            }
            // Sockets have no tar form.
            _ => Ok(()),
        }
    }
}

/// How entries are written into the container.
#[derive(Debug, Clone, Copy)]
pub struct Extract {
    /// Give files the archive's owners (else they stay the caller's).
    pub owners: bool,
}

/// Unpacks `archive` into directory `dest` inside `root`. Each entry's
/// parent is resolved inside the root (missing directories made there);
/// the entry itself replaces what had its name, never written through it.
pub fn extract(root: BorrowedFd<'_>, dest: &str, archive: impl Read, opts: Extract) -> Result<u64> {
    let mut ar = tar::Archive::new(archive);
    let mut count = 0;
    let dest = relative(dest);
    for entry in ar.entries().context("reading the tar stream")? {
        let mut entry = entry.context("reading the tar stream")?;
        let path = entry.path().context("reading the tar stream")?.into_owned();
        let mut rel = PathBuf::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => rel.push(n),
                Component::CurDir | Component::RootDir => {}
                _ => bail!(
                    "archive entry {} leads out of the destination: refused",
                    path.display()
                ),
            }
        }
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            continue;
        };
        let parent_rel = dest.join(rel.parent().unwrap_or(Path::new("")));
        let parent = ensure_in_root(root, &parent_rel, TargetKind::Dir, ResolveFlag::empty())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("making the directory of {}", path.display()))?;
        let parent = parent.as_fd();
        let h = entry.header().clone();
        let mode = Mode::from_bits_truncate(h.mode().unwrap_or(0o644) & 0o7777);
        let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let shown = path.display().to_string();
        let replace = |parent: BorrowedFd<'_>| match unlinkat(
            parent,
            name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => Err(anyhow::anyhow!(
                "cannot overwrite directory {shown} with a non-directory"
            )),
            Err(e) => Err(anyhow::anyhow!("replacing {shown}: {e}")),
        };
        let own = |fd: BorrowedFd<'_>| -> Result<()> {
            if opts.owners {
                fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .with_context(|| format!("setting the owner of {shown}"))?;
            }
            Ok(())
        };
        match h.entry_type() {
            tar::EntryType::Directory => {
                match mkdirat(parent, name.as_os_str(), mode) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => bail!("creating directory {shown}: {e}"),
                }
                // An existing symlink of that name is left as it is.
                if let Ok(fd) = openat(
                    parent,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) {
                    nix::sys::stat::fchmod(&fd, mode)
                        .with_context(|| format!("setting the mode of {shown}"))?;
                    own(fd.as_fd())?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                replace(parent)?;
                let fd = openat(
                    parent,
                    name.as_os_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    mode,
                )
                .with_context(|| format!("creating {shown}"))?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).with_context(|| format!("writing {shown}"))?;
                nix::sys::stat::fchmod(&file, mode)
                    .with_context(|| format!("setting the mode of {shown}"))?;
                own(file.as_fd())?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .context("reading the tar stream")?
                    .with_context(|| format!("symlink {shown} has no target"))?
                    .into_owned();
                replace(parent)?;
                symlinkat(&target, parent, name.as_os_str())
                    .with_context(|| format!("creating symlink {shown}"))?;
                if opts.owners {
                    fchownat(
                        parent,
                        name.as_os_str(),
                        Some(Uid::from_raw(uid)),
                        Some(Gid::from_raw(gid)),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .with_context(|| format!("setting the owner of {shown}"))?;
                }
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .context("reading the tar stream")?
                    .with_context(|| format!("hard link {shown} has no target"))?
                    .into_owned();
                let target = dest.join(relative(&target.to_string_lossy()));
                let old_name = target
                    .file_name()
                    .with_context(|| format!("hard link {shown}: bad target"))?;
                let old_parent = open_dir_in(root, target.parent().unwrap_or(Path::new(".")))
                    .with_context(|| format!("hard link {shown}: its target"))?;
                replace(parent)?;
                linkat(
                    &old_parent,
                    old_name,
                    parent,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .with_context(|| format!("creating hard link {shown}"))?;
            }
            t @ (tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) => {
                let (kind, dev) = match t {
                    tar::EntryType::Char => (SFlag::S_IFCHR, true),
                    tar::EntryType::Block => (SFlag::S_IFBLK, true),
                    _ => (SFlag::S_IFIFO, false),
                };
                let rdev = if dev {
                    nix::sys::stat::makedev(
                        u64::from(h.device_major()?.unwrap_or(0)),
                        u64::from(h.device_minor()?.unwrap_or(0)),
                    )
                } else {
                    0
                };
                replace(parent)?;
                mknodat(parent, name.as_os_str(), kind, mode, rdev)
                    .with_context(|| format!("creating {shown}"))?;
            }
            // Extension headers are read by the tar crate; others are skipped.
            _ => continue,
        }
        count += 1;
    }
    Ok(count)
}
