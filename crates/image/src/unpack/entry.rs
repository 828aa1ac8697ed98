//! One tar entry: whiteouts, files, directories, links, devices, fifos, and metadata.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmodat, makedev, mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat, linkat, symlinkat};
use tar::EntryType;

use super::fsops::{self, LayerPath};
use super::{Ctx, OPAQUE_WHITEOUT, UnpackError, WHITEOUT_PREFIX, Whiteouts};

struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Ctx {
    pub(super) fn apply<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let raw = entry.path().map_err(UnpackError::Read)?.into_owned();
        let path = LayerPath::new(&raw)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            return Ok(());
        }
        self.stats.entries += 1;
        let Some((parent, name)) = path.split() else {
            // The layer root itself ("./"): keep the directory, ignore its metadata.
            return Ok(());
        };
        let name = name.to_owned();
        let dir = fsops::open_or_create_dir(self.root.as_fd(), &parent)?;
        let dir = dir.as_fd();

        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&path, &parent, dir, OsStr::from_bytes(hidden));
        }

        let meta = read_meta(&mut entry)?;
        let sys = |what, e| UnpackError::sys(what, path.as_path(), e);
        // Whatever is there is replaced, except a directory by a directory (merged).
        let existing = fsops::lstat_at(dir, &name).map_err(|e| sys("stat", e))?;
        let keep_dir = kind == EntryType::Directory && existing.as_ref().is_some_and(fsops::is_dir);
        if existing.is_some() && !keep_dir {
            fsops::remove_at(dir, &name).map_err(|e| sys("removing the old entry", e))?;
        }

        match kind {
            EntryType::Directory => {
                if !keep_dir {
                    mkdirat(dir, name.as_os_str(), Mode::from_bits_truncate(0o700))
                        .map_err(|e| sys("mkdir", e))?;
                }
                self.dirs.push((path.clone(), meta.mtime));
                self.set_meta(dir, &name, &path, &meta, false)?;
            }
            EntryType::Regular | EntryType::Continuous => {
                let fd = openat(
                    dir,
                    name.as_os_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| sys("creating", e))?;
                let mut file = File::from(fd);
                let n = copy_data(&mut entry, &mut file, &mut self.buf).map_err(|source| {
                    UnpackError::Write {
                        path: path.as_path().to_path_buf(),
                        source,
                    }
                })?;
                self.stats.file_bytes += n;
                self.set_meta(dir, &name, &path, &meta, false)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| {
                        UnpackError::escape(path.as_path(), "symlink without a target")
                    })?;
                symlinkat(target.as_ref(), dir, name.as_os_str()).map_err(|e| sys("symlink", e))?;
                self.set_meta(dir, &name, &path, &meta, true)?;
            }
            EntryType::Link => {
                let raw_target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| {
                        UnpackError::escape(path.as_path(), "hardlink without a target")
                    })?
                    .into_owned();
                let target = LayerPath::new(&raw_target)?;
                let (tparent, tname) = target.split().ok_or_else(|| {
                    UnpackError::escape(&raw_target, "hardlink to the layer root")
                })?;
                let tdir = fsops::open_dir(self.root.as_fd(), &tparent)
                    .map_err(|e| fsops::resolve_error(&target, e))?;
                linkat(tdir.as_fd(), tname, dir, name.as_os_str(), AtFlags::empty())
                    .map_err(|e| sys("hardlink", e))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, device(&entry)?),
                    EntryType::Block => (SFlag::S_IFBLK, device(&entry)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                mknodat(
                    dir,
                    name.as_os_str(),
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    dev,
                )
                .map_err(|e| sys("mknod", e))?;
                self.set_meta(dir, &name, &path, &meta, false)?;
            }
            other => {
                return Err(UnpackError::Unsupported(
                    path.as_path().to_path_buf(),
                    other,
                ));
            }
        }
        self.written.insert(path);
        Ok(())
    }

    fn whiteout(
        &mut self,
        path: &LayerPath,
        parent: &LayerPath,
        dir: BorrowedFd<'_>,
        hidden: &OsStr,
    ) -> Result<(), UnpackError> {
        let sys = |what, e| UnpackError::sys(what, path.as_path(), e);
        if path.as_path().file_name() == Some(OsStr::new(OPAQUE_WHITEOUT)) {
            match self.mode {
                Whiteouts::Overlay => fsops::fset_xattr(dir, "trusted.overlay.opaque", b"y")
                    .map_err(|e| sys("marking the directory opaque", e))?,
                Whiteouts::Apply => {
                    let written = &self.written;
                    fsops::clear_dir(dir, |n| written.contains(&parent.join(n)))
                        .map_err(|e| sys("clearing the opaque directory", e))?;
                }
            }
            return Ok(());
        }
        if hidden.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other .wh..wh.* entries are aufs metadata with no meaning here.
            return Ok(());
        }
        let target = LayerPath::new(std::path::Path::new(hidden))?;
        if target.as_path().components().count() != 1 {
            return Err(UnpackError::escape(
                path.as_path(),
                "whiteout of a name that is not a plain file name",
            ));
        }
        fsops::remove_at(dir, hidden).map_err(|e| sys("removing the whited-out entry", e))?;
        if self.mode == Whiteouts::Overlay {
            mknodat(dir, hidden, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| sys("creating the overlay whiteout", e))?;
        }
        Ok(())
    }

    /// Ownership, then mode (chown clears set-id bits), then xattrs, then times.
    fn set_meta(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &LayerPath,
        meta: &Meta,
        symlink: bool,
    ) -> Result<(), UnpackError> {
        let sys = |what, e| UnpackError::sys(what, path.as_path(), e);
        if self.is_root {
            let uid =
                u32::try_from(meta.uid).map_err(|_| sys("uid out of range", Errno::EINVAL))?;
            let gid =
                u32::try_from(meta.gid).map_err(|_| sys("gid out of range", Errno::EINVAL))?;
            fchownat(
                dir,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| sys("chown", e))?;
        }
        if !symlink {
            // The entry was just created by us (or is a directory we checked), not a symlink.
            fchmodat(
                dir,
                name,
                Mode::from_bits_truncate(meta.mode & 0o7777),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| sys("chmod", e))?;
        }
        for (key, value) in &meta.xattrs {
            match fsops::set_xattr(dir, name, key, value) {
                Ok(()) => {}
                // user.* xattrs cannot go on symlinks, and some filesystems lack them.
                Err(Errno::EPERM | Errno::EOPNOTSUPP) if symlink || !self.is_root => {}
                Err(e) => return Err(sys("setting an xattr", e)),
            }
        }
        let ts = TimeSpec::new(meta.mtime as i64, 0);
        utimensat(dir, name, &ts, &ts, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| sys("setting times", e))?;
        Ok(())
    }
}

/// Copies file data in large chunks: fewer, bigger writes than io::copy's 8 KiB.
fn copy_data(from: &mut impl Read, to: &mut File, buf: &mut Vec<u8>) -> io::Result<u64> {
    use std::io::Write;
    if buf.is_empty() {
        buf.resize(1 << 20, 0);
    }
    let mut total = 0u64;
    loop {
        // Fill the buffer as far as the reader allows before writing it out.
        let mut filled = 0;
        while filled < buf.len() {
            match from.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..filled])?;
        total += filled as u64;
        if filled < buf.len() {
            return Ok(total);
        }
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, UnpackError> {
    let h = entry.header();
    let mode = h.mode().map_err(UnpackError::Read)?;
    // Like Go's archive/tar, an empty numeric field reads as 0.
    let uid = h.uid().unwrap_or(0);
    let gid = h.gid().unwrap_or(0);
    let mtime = h.mtime().unwrap_or(0);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Read)? {
        for ext in exts {
            let ext = ext.map_err(UnpackError::Read)?;
            if let Ok(key) = ext.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            {
                xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

fn device<R: Read>(entry: &tar::Entry<'_, R>) -> Result<u64, UnpackError> {
    let h = entry.header();
    let major = h.device_major().map_err(UnpackError::Read)?.unwrap_or(0);
    let minor = h.device_minor().map_err(UnpackError::Read)?.unwrap_or(0);
    Ok(makedev(u64::from(major), u64::from(minor)))
}
