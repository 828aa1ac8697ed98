//! Named network namespaces, kept alive by a bind mount of `/proc/PID/ns/net`
//! onto a file under a runtime directory (default `/run/peapod/netns/NAME`).
//!
//! The directory is first made a private mount of itself (`mount --bind DIR
//! DIR; mount --make-private DIR`) so the per-namespace bind mounts neither
//! propagate to nor receive events from the host's shared `/run`. A copy held
//! by another mount namespace does not block deletion: since Linux 3.18
//! unlinking a mount point detaches the mounts on it in other namespaces.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork, pipe2};

/// Where the engine keeps its network namespace files.
pub const DEFAULT_NETNS_DIR: &str = "/run/peapod/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("invalid network namespace name {0:?}: use [A-Za-z0-9_.-], not starting with '.'")]
    InvalidName(String),
    #[error("network namespace {0} already exists")]
    Exists(PathBuf),
    #[error("network namespace {0} does not exist")]
    NotFound(PathBuf),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what} {path}: {errno}")]
    Sys {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NetnsError {
    let path = path.to_path_buf();
    move |source| NetnsError::Io { what, path, source }
}

fn sys_err(what: &'static str, path: &Path) -> impl FnOnce(Errno) -> NetnsError {
    let path = path.to_path_buf();
    move |errno| NetnsError::Sys { what, path, errno }
}

/// A directory of named network namespace files.
#[derive(Debug, Clone)]
pub struct NetnsDir {
    root: PathBuf,
}

impl Default for NetnsDir {
    fn default() -> Self {
        Self::new(DEFAULT_NETNS_DIR)
    }
}

impl NetnsDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of namespace `name` (whether or not it exists).
    pub fn path(&self, name: &str) -> Result<PathBuf, NetnsError> {
        validate_name(name)?;
        Ok(self.root.join(name))
    }

    /// Create the directory and make it a private mount of itself (idempotent).
    pub fn prepare(&self) -> Result<(), NetnsError> {
        fs::create_dir_all(&self.root).map_err(io_err("create", &self.root))?;
        let private = MsFlags::MS_PRIVATE | MsFlags::MS_REC;
        match mount(
            None::<&str>,
            &self.root,
            None::<&str>,
            private,
            None::<&str>,
        ) {
            // Already a mount point: now private.
            Ok(()) => return Ok(()),
            // Not a mount point yet: bind it onto itself first.
            Err(Errno::EINVAL) => {}
            Err(e) => return Err(sys_err("make private", &self.root)(e)),
        }
        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(
            Some(&self.root),
            &self.root,
            None::<&str>,
            bind,
            None::<&str>,
        )
        .map_err(sys_err("bind mount onto itself", &self.root))?;
        mount(
            None::<&str>,
            &self.root,
            None::<&str>,
            private,
            None::<&str>,
        )
        .map_err(sys_err("make private", &self.root))
    }

    /// Create a new network namespace named `name`, with its `lo` up, and
    /// return its file.
    pub fn create(&self, name: &str) -> Result<PathBuf, NetnsError> {
        let path = self.path(name)?;
        self.prepare()?;
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(NetnsError::Exists(path));
            }
            Err(e) => return Err(io_err("create", &path)(e)),
        }
        if let Err(e) = bind_new_netns(&path) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Open namespace `name` (for `setns` or to hand its path to CNI).
    pub fn open(&self, name: &str) -> Result<File, NetnsError> {
        let path = self.path(name)?;
        if !is_mount_point(&path) {
            return Err(NetnsError::NotFound(path));
        }
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err("open", &path))
    }

    /// Unmount and unlink namespace `name`; a missing one is not an error.
    pub fn delete(&self, name: &str) -> Result<(), NetnsError> {
        let path = self.path(name)?;
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys_err("unmount", &path)(e)),
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Names of the namespace files present (mounted or half-created leftovers).
    pub fn list(&self) -> Result<Vec<String>, NetnsError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &self.root)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read", &self.root))?;
            if let Some(name) = entry.file_name().to_str()
                && validate_name(name).is_ok()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Unmount the directory's own bind mount (tests; the engine keeps it).
    pub fn unmount_root(&self) -> Result<(), NetnsError> {
        loop {
            match umount2(&self.root, MntFlags::MNT_DETACH) {
                Ok(()) => continue,
                Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err(sys_err("unmount", &self.root)(e)),
            }
        }
    }
}

fn validate_name(name: &str) -> Result<(), NetnsError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NetnsError::InvalidName(name.to_string()))
    }
}

/// Whether `path` is the mount point of some mount in our mount namespace.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(canon) = fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.as_os_str().as_bytes();
    info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp).as_slice() == want)
    })
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// What the netns child was doing when it failed.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Step {
    Unshare = 1,
    LoopbackUp = 2,
    BindMount = 3,
}

impl Step {
    fn what(code: u8) -> &'static str {
        match code {
            1 => "unshare(CLONE_NEWNET) for",
            2 => "bring up lo in the new netns for",
            3 => "bind mount netns onto",
            _ => "netns child failed for",
        }
    }
}

/// Fork a child that unshares its network namespace, brings its `lo` up
/// (what the CNI loopback plugin would do, without executing it: the kernel
/// gives an `lo` that comes up 127.0.0.1/8 and ::1), and bind-mounts its own
/// `/proc/self/ns/net` onto `target` (same mount namespace as ours). On
/// failure the child writes the step and errno to a pipe and exits non-zero.
fn bind_new_netns(target: &Path) -> Result<(), NetnsError> {
    let target_c = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| NetnsError::InvalidName(target.display().to_string()))?;
    let source_c = c"/proc/self/ns/net";
    let (rd, wr) = pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe for", target))?;
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut lo: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in lo.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the child only makes async-signal-safe raw syscalls (unshare,
    // socket, ioctl, mount, write, _exit) on memory prepared before the fork,
    // and never returns.
    match unsafe { fork() }.map_err(sys_err("fork for", target))? {
        ForkResult::Child => {
            let fail = |step: Step| -> ! {
                let errno = Errno::last_raw().to_le_bytes();
                let msg = [step as u8, errno[0], errno[1], errno[2], errno[3]];
                // SAFETY: write of a local buffer to our pipe end, then
                // _exit, which skips the parent's destructors.
                unsafe {
                    libc::write(wr.as_raw_fd(), msg.as_ptr().cast(), msg.len());
                    libc::_exit(1)
                }
            };
            // SAFETY: plain syscalls on valid NUL-terminated strings and on
            // the ifreq prepared above.
            unsafe {
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    fail(Step::Unshare);
                }
                let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                if sock < 0 || libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut lo) != 0 {
                    fail(Step::LoopbackUp);
                }
                lo.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                if libc::ioctl(sock, libc::SIOCSIFFLAGS, &lo) != 0 {
                    fail(Step::LoopbackUp);
                }
                libc::close(sock);
                let rc = libc::mount(
                    source_c.as_ptr(),
                    target_c.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                );
                if rc != 0 {
                    fail(Step::BindMount);
                }
                libc::_exit(0);
            }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            let status = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(sys_err("wait for netns child of", target)(e)),
                    Ok(status) => break status,
                }
            };
            if status == WaitStatus::Exited(child, 0) {
                return Ok(());
            }
            let mut msg = [0u8; 5];
            let got = File::from(rd).read(&mut msg).unwrap_or(0);
            if got != msg.len() {
                return Err(sys_err("netns child died for", target)(Errno::EIO));
            }
            let errno = i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
            Err(sys_err(Step::what(msg[0]), target)(Errno::from_raw(errno)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("abc-1.2_x").is_ok());
        for bad in ["", ".", "..", "a/b", ".hidden", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), b"/a b");
        assert_eq!(unescape_mountinfo("/plain"), b"/plain");
    }
}
