//! CVE-2019-5736: a container must never be able to write the runtime's
//! binary through /proc/PID/exe of a runtime process: the one joining it
//! during `exec`, a waiting init, or the runtime itself run by the kernel as
//! the interpreter of a container file that starts with `#!/proc/self/exe`.
//!
//! [`reexec_read_only`] re-executes the current program from a read-only
//! view of its own binary, first thing in `main`:
//!
//! * a detached read-only bind mount of the file (`open_tree(OPEN_TREE_CLONE)`
//!   plus `mount_setattr(MOUNT_ATTR_RDONLY)`), attached to no mount
//!   namespace, so it costs one execve and nothing else (no copy, no mount
//!   propagation to the host);
//! * where making it is not permitted (no CAP_SYS_ADMIN: rootless), a
//!   sealed memfd copy (F_SEAL_WRITE, as runc's cloned binary).
//!
//! /proc/self/exe of this process and of every process it forks then names
//! that view: reopening it for writing fails (EROFS, or EPERM for the sealed
//! copy) whatever the opener's capabilities, CAP_SYS_PTRACE included, and
//! the view cannot be made writable from inside a container (that needs
//! CAP_SYS_ADMIN over a mount no container can reach). The forked child also
//! makes itself non-dumpable (see `process::child`), which keeps a
//! container without CAP_SYS_PTRACE away from its /proc/PID entries
//! altogether, also when the runtime is used as a library by a program that
//! does not call this.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{FsFlags, fstatvfs};

/// Set in the environment of the re-executed program: never re-execute twice.
pub const GUARD_ENV: &str = "_PEA_EXE_SEALED";

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

#[derive(Debug, thiserror::Error)]
pub enum ExeSealError {
    #[error("{step}: {source}")]
    Sys { step: &'static str, source: Errno },
    #[error("the runtime binary stays writable: read-only bind: {bind}; sealed copy: {copy}")]
    Unprotected {
        bind: Box<ExeSealError>,
        copy: Box<ExeSealError>,
    },
}

fn sys(step: &'static str) -> impl FnOnce(Errno) -> ExeSealError {
    move |source| ExeSealError::Sys { step, source }
}

/// How the running binary is protected (when [`reexec_read_only`] returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// On a read-only mount (ours, or the system's).
    ReadOnlyMount,
    /// A memfd with write seals.
    SealedCopy,
    /// [`GUARD_ENV`] is set: this is the re-executed program, trusted as is.
    Reexecuted,
}

/// Whether the running binary cannot be opened for writing.
pub fn current() -> Option<Sealed> {
    let exe = open(
        "/proc/self/exe",
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    if is_read_only(&exe) {
        return Some(Sealed::ReadOnlyMount);
    }
    let exe = open(
        "/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    // SAFETY: fcntl on a descriptor we own, integer arguments only.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    (seals >= 0 && seals & libc::F_SEAL_WRITE != 0).then_some(Sealed::SealedCopy)
}

fn is_read_only(fd: &OwnedFd) -> bool {
    fstatvfs(fd).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
}

/// Re-executes this program from a read-only view of its binary unless it
/// already runs from one; returns only when it does (or when neither view
/// can be made: the error says why). Call it first thing in `main`, before
/// any thread exists: argv, the environment and every descriptor without
/// close-on-exec are passed on unchanged (the pid too, so LISTEN_PID holds).
pub fn reexec_read_only() -> Result<Sealed, ExeSealError> {
    if std::env::var_os(GUARD_ENV).is_some() {
        return Ok(Sealed::Reexecuted);
    }
    if let Some(s) = current() {
        return Ok(s);
    }
    let argv = c_strings(std::env::args_os());
    let mut envp = c_strings(std::env::vars_os().map(|(k, v)| {
        let mut kv = k;
        kv.push("=");
        kv.push(v);
        kv
    }));
    envp.extend(CString::new(format!("{GUARD_ENV}=1")));
    let first = match read_only_bind(c"/proc/self/exe") {
        Ok(fd) => execveat(&fd, &argv, &envp),
        Err(e) => e,
    };
    let second = match sealed_copy() {
        Ok(fd) => execveat(&fd, &argv, &envp),
        Err(e) => e,
    };
    Err(ExeSealError::Unprotected {
        bind: Box::new(first),
        copy: Box::new(second),
    })
}

fn c_strings(items: impl Iterator<Item = OsString>) -> Vec<CString> {
    items
        .filter_map(|s| CString::new(s.as_bytes()).ok())
        .collect()
}

/// A detached read-only bind mount of `file` (an O_PATH descriptor).
fn read_only_bind(file: &std::ffi::CStr) -> Result<OwnedFd, ExeSealError> {
    // SAFETY: open_tree reads a valid C string; the result is a new descriptor.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            file.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let fd = Errno::result(fd).map_err(sys("open_tree of the binary"))? as i32;
    // SAFETY: open_tree returned a descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (initialised, its size passed) and
    // the empty path; the descriptor is open for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map_err(sys("mount_setattr read-only"))?;
    if !is_read_only(&fd) {
        return Err(ExeSealError::Sys {
            step: "read-only bind of the binary",
            source: Errno::EROFS,
        });
    }
    Ok(fd)
}

/// A memfd holding a copy of /proc/self/exe, sealed against writes.
fn sealed_copy() -> Result<OwnedFd, ExeSealError> {
    let name = c"pea";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create reads a valid C string.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | libc::MFD_EXEC) };
    if fd < 0 && Errno::last() == Errno::EINVAL {
        // Before Linux 6.3 there is no MFD_EXEC (memfds are executable).
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
    let fd = Errno::result(fd).map_err(sys("memfd_create"))?;
    // SAFETY: memfd_create returned a descriptor nobody else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let exe = open(
        "/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open /proc/self/exe"))?;
    let len = nix::sys::stat::fstat(&exe)
        .map_err(sys("stat /proc/self/exe"))?
        .st_size;
    let mut copied: libc::off_t = 0;
    while copied < len {
        // SAFETY: sendfile between two descriptors we own; no memory passed.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                (len - copied) as usize,
            )
        };
        match Errno::result(n) {
            Ok(0) => break,
            Ok(n) => copied += n as libc::off_t,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(sys("copy the binary")(e)),
        }
    }
    if copied != len {
        return Err(sys("copy the binary")(Errno::EIO));
    }
    // SAFETY: fcntl with integer arguments on a descriptor we own.
    let rc = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) };
    Errno::result(rc).map_err(sys("seal the copy"))?;
    Ok(memfd)
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH); returns only on failure.
fn execveat(fd: &OwnedFd, argv: &[CString], envp: &[CString]) -> ExeSealError {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of valid C strings
    // that outlive the call; on success the process image is replaced.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    sys("execveat the read-only binary")(Errno::last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_bind_refuses_writes_and_keeps_content() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        // Not the running binary: that would refuse with ETXTBSY first.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("binary");
        std::fs::write(&file, b"\x7fELF-ish").unwrap();
        let c = CString::new(file.as_os_str().as_bytes()).unwrap();
        let fd = read_only_bind(&c).expect("read-only bind");
        assert!(is_read_only(&fd));
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect_err("a read-only bind must refuse writes");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"\x7fELF-ish");
        // The file itself stays writable for its owner, outside the view.
        assert!(std::fs::OpenOptions::new().append(true).open(&file).is_ok());
    }

    #[test]
    fn sealed_copy_refuses_writes() {
        let fd = sealed_copy().expect("sealed memfd copy");
        // SAFETY: integer arguments on a descriptor we own.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(seals & SEALS, SEALS);
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let w = std::fs::OpenOptions::new().append(true).open(&path);
        let res = w.and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(res.is_err(), "a sealed copy must refuse writes");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            std::fs::metadata("/proc/self/exe").unwrap().len()
        );
    }
}
