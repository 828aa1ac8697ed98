//! `--init` without a binary in the image: the container's init forks once
//! more right before its final exec, the child execs the user's program and
//! the init stays behind as a minimal PID 1 (the "reaper") that forwards
//! signals to that child, reaps every zombie handed to it and exits with the
//! child's status (128 + N when signal N killed it).
//!
//! Asked for with the annotation [`INIT_ANNOTATION`] = `"true"`.
//!
//! The fork happens after every restriction of the process is in place
//! (namespaces, rootfs, rlimits, LSM exec label, capabilities, user,
//! no_new_privs, seccomp), so the user's program gets exactly what it gets
//! without the annotation and the reaper runs under the same restrictions.
//! The reaper keeps the runtime's LSM label (labels are applied by the exec
//! it never makes) and stays non-dumpable, so the container's processes
//! cannot reach its /proc entries without CAP_SYS_PTRACE on the host.
//!
//! The reaper never allocates, takes no lock and touches no stdio: it runs
//! raw syscalls only (it is a fork child of a fork child of a possibly
//! multi-threaded program).

use std::ffi::CString;
use std::os::fd::RawFd;

/// The annotation that turns the reaper on: `true` or `false` (default).
pub const INIT_ANNOTATION: &str = "org.peapod.init";

/// The reaper's process name (/proc/PID/comm).
const NAME: &[u8] = b"peapod-init\0";

/// Whether [`INIT_ANNOTATION`]'s value asks for the reaper.
pub fn wanted(annotation: Option<&str>) -> Result<bool, String> {
    match annotation.map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!(
            "annotation {INIT_ANNOTATION}={other:?}: use true or false"
        )),
    }
}

/// Forks the process that will exec the user's program. Returns in that
/// child, with the signal mask it had on entry; in the parent, closes every
/// descriptor above stdio (`conn`, the start connection, among them, so
/// only the child's exec closes it) and becomes the reaper, never returning.
///
/// The caller must be single-threaded.
pub fn fork_child(terminal: bool, conn: RawFd) -> Result<(), nix::Error> {
    let mut all = empty_set();
    let mut old = empty_set();
    // SAFETY: sigfillset and sigprocmask write only the sigset_t values
    // passed by pointer, which live on this stack frame.
    let rc = unsafe {
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old)
    };
    nix::errno::Errno::result(rc)?;
    // SAFETY: getpid has no arguments.
    let reaper = unsafe { libc::getpid() };
    // SAFETY: the caller is single-threaded; the child only makes syscalls
    // until it returns to the caller, the parent never leaves `reap`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = nix::errno::Errno::last();
        // SAFETY: restores the mask saved above.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        return Err(e);
    }
    if pid > 0 {
        reap(pid, conn, reaper == 1, terminal)
    }
    if terminal {
        // The program gets the terminal's foreground process group to itself:
        // keys the terminal turns into signals go to it, not to the reaper.
        // SIGTTOU is blocked, so tcsetpgrp from the new (background) group works.
        // SAFETY: setpgid, getpid and tcsetpgrp take integers only.
        unsafe {
            if libc::setpgid(0, 0) == 0 {
                libc::tcsetpgrp(0, libc::getpid());
            }
        }
    }
    if reaper != 1 {
        // Not a pid namespace's init: the program's life must still end with
        // the reaper's (a SIGKILL to the container's pid cannot be forwarded).
        // SAFETY: prctl and getppid take integers only.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != reaper {
                libc::_exit(128 + libc::SIGKILL);
            }
        }
    }
    // SAFETY: restores the mask saved above.
    let rc = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    nix::errno::Errno::result(rc)?;
    Ok(())
}

/// Under the reaper the program is not PID 1: the `LISTEN_PID=1` of socket
/// activation (`create` with LISTEN_FDS) must name its own pid. Runs in the
/// forked child, before exec (a single-threaded process: it may allocate).
pub fn own_listen_pid(env: &[CString]) -> Option<Vec<CString>> {
    const ONE: &[u8] = b"LISTEN_PID=1";
    if !env.iter().any(|e| e.as_bytes() == ONE) {
        return None;
    }
    let mine = CString::new(format!("LISTEN_PID={}", std::process::id())).ok()?;
    Some(
        env.iter()
            .map(|e| {
                if e.as_bytes() == ONE {
                    mine.clone()
                } else {
                    e.clone()
                }
            })
            .collect(),
    )
}

fn empty_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; all zeroes is the empty set, and
    // sigemptyset writes only the value passed.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        s
    }
}

/// The reaper: every signal is blocked (by `fork_child`) and taken with
/// sigwaitinfo. SIGCHLD reaps; the main child's end is the reaper's end;
/// anything else is passed on to the main child.
fn reap(child: libc::pid_t, conn: RawFd, pid1: bool, child_has_pgrp: bool) -> ! {
    // SAFETY: closing descriptors this process never uses again; the
    // fallback loop bounds itself by the descriptor limit.
    unsafe {
        libc::close(conn);
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            let mut lim: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur.min(1 << 20) as RawFd
            } else {
                1024
            };
            for fd in 3..max {
                libc::close(fd);
            }
        }
    }
    // SAFETY: prctl with a NUL-terminated name (PR_SET_NAME reads at most
    // 16 bytes) and integer arguments; chdir with a NUL-terminated path.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr());
        // Outside a pid namespace of its own, orphans of the program come
        // here instead of to the host's init.
        if !pid1 {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        }
        // Do not pin the program's working directory.
        libc::chdir(c"/".as_ptr());
    }
    let mut all = empty_set();
    // SAFETY: writes only `all`.
    unsafe { libc::sigfillset(&mut all) };
    loop {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigwaitinfo reads `all` and writes `info`, both on this stack.
        let sig = unsafe { libc::sigwaitinfo(&all, &mut info) };
        if sig < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            // Signals cannot be taken (a seccomp filter?): still reap.
            wait_blocking(child)
        }
        if sig == libc::SIGCHLD {
            reap_ready(child);
            continue;
        }
        // A signal the kernel sent to the whole process group (a key on a
        // shared terminal) has reached the program already.
        if info.si_code == libc::SI_KERNEL && !child_has_pgrp {
            continue;
        }
        // SAFETY: kill takes integers only; the child is ours and not yet
        // reaped, so its pid cannot have been reused.
        unsafe { libc::kill(child, sig) };
    }
}

/// Reaps every child that has ended; exits when the main child is one.
fn reap_ready(child: libc::pid_t) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        if pid <= 0 {
            return;
        }
        if pid == child {
            exit_as(status)
        }
    }
}

fn wait_blocking(child: libc::pid_t) -> ! {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid == child {
            exit_as(status)
        }
        if pid < 0 && nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            // SAFETY: _exit ends the process without running anything else.
            unsafe { libc::_exit(1) }
        }
    }
}

/// Exits with the main child's code, 128 + N if signal N killed it.
fn exit_as(status: libc::c_int) -> ! {
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    };
    // SAFETY: _exit ends the process without running the runtime's atexit
    // handlers or flushing its stdio buffers.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_values() {
        assert_eq!(wanted(None), Ok(false));
        assert_eq!(wanted(Some("")), Ok(false));
        assert_eq!(wanted(Some("false")), Ok(false));
        assert_eq!(wanted(Some(" true ")), Ok(true));
        assert!(wanted(Some("yes")).unwrap_err().contains(INIT_ANNOTATION));
    }

    #[test]
    fn listen_pid_names_the_program() {
        let env =
            |v: &[&str]| -> Vec<CString> { v.iter().map(|s| CString::new(*s).unwrap()).collect() };
        assert_eq!(own_listen_pid(&env(&["A=1", "LISTEN_PID=12"])), None);
        let pid = format!("LISTEN_PID={}", std::process::id());
        assert_eq!(
            own_listen_pid(&env(&["LISTEN_FDS=1", "LISTEN_PID=1"])),
            Some(env(&["LISTEN_FDS=1", &pid]))
        );
    }
}
