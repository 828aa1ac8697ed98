//! The infra ("pause") process of a pod: it holds the pod's network (joined
//! from the pod's namespace file), IPC and UTS namespaces, and with a
//! shared PID namespace it is PID 1 there and reaps zombies. A pod with
//! its own ids (`hostUsers: false`) has its user namespace made here too:
//! the infra process's other namespaces belong to it, and it runs as the
//! pod's root, not the host's. It needs no
//! image: it is a fork of the pod's supervisor, which has one thread, and
//! it only makes system calls. SIGINT or SIGTERM end it cleanly.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, setresgid, setresuid};

use super::memory;
use crate::userns::IdMapping;

/// How the infra process is made.
pub struct InfraSpec<'a> {
    /// The pod's network namespace file; None: the host's network.
    pub netns: Option<&'a Path>,
    pub new_ipc: bool,
    pub share_pid: bool,
    pub hostname: &'a str,
    /// A user namespace of the pod's own, with these ids.
    pub userns: Option<&'a IdMapping>,
}

/// Starts the infra process; returns its pid (a child of the caller, or,
/// with a shared PID namespace, an orphan the caller, a subreaper, adopts).
pub fn start(spec: &InfraSpec) -> Result<i32, nix::Error> {
    let netns: Option<OwnedFd> = match spec.netns {
        Some(p) => Some(OwnedFd::from(std::fs::File::open(p).map_err(|e| {
            nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
        })?)),
        None => None,
    };
    let (read, write) = nix::unistd::pipe()?;
    // The child asks for its id maps on one pipe and learns they are
    // written on the other.
    let (ask_r, ask_w) = nix::unistd::pipe()?;
    let (done_r, done_w) = nix::unistd::pipe()?;
    let mut flags = CloneFlags::CLONE_NEWUTS;
    if spec.new_ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if spec.share_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    let hostname = spec.hostname.to_string();
    // SAFETY: the caller (the pod supervisor) has one thread; the child
    // only makes system calls before it pauses or exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop((read, ask_r, done_w));
            rename_as_pause();
            let ok = (|| -> Result<(), nix::Error> {
                if let Some(fd) = &netns {
                    setns(fd, CloneFlags::CLONE_NEWNET)?;
                }
                if spec.userns.is_some() {
                    unshare(CloneFlags::CLONE_NEWUSER)?;
                    nix::unistd::write(&ask_w, b"m")?;
                    let mut b = [0u8; 1];
                    if nix::unistd::read(&done_r, &mut b)? != 1 {
                        return Err(nix::Error::EPERM);
                    }
                    let root = Gid::from_raw(0);
                    setresgid(root, root, root)?;
                    let root = Uid::from_raw(0);
                    setresuid(root, root, root)?;
                }
                drop((ask_w, done_r));
                unshare(flags)?;
                nix::unistd::sethostname(&hostname)?;
                Ok(())
            })();
            if ok.is_err() {
                // SAFETY: _exit ends the child without running anything.
                unsafe { libc::_exit(1) };
            }
            drop(netns);
            if spec.share_pid {
                // SAFETY: still one thread here.
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => pause(Some(write)),
                    Ok(ForkResult::Parent { .. }) | Err(_) => {
                        // SAFETY: as above.
                        unsafe { libc::_exit(0) }
                    }
                }
            }
            pause(Some(write))
        }
        ForkResult::Parent { child } => {
            drop((write, ask_w, done_r));
            drop(netns);
            if let Some(ids) = spec.userns {
                let mut b = [0u8; 1];
                let asked = nix::unistd::read(&ask_r, &mut b).unwrap_or(0) == 1;
                let written = asked && ids.write_for(child.as_raw()).is_ok();
                if written {
                    let _ = nix::unistd::write(&done_w, b"d");
                }
                drop(done_w);
                if !written {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(child, Some(WaitPidFlag::__WALL));
                    return Err(nix::Error::EPERM);
                }
            }
            let mut buf = [0u8; 4];
            let n = nix::unistd::read(&read, &mut buf).unwrap_or(0);
            if spec.share_pid {
                // The middle process has exited; reap it.
                let _ = waitpid(child, Some(WaitPidFlag::__WALL));
            }
            if n == 4 {
                Ok(i32::from_ne_bytes(buf))
            } else {
                Err(nix::Error::ECHILD)
            }
        }
    }
}

/// The name the infra process shows (`ps`, /proc/PID/cmdline and comm).
pub const PAUSE_NAME: &str = "peapod-pause";

/// Tells the supervisor our pid, then pauses. It stays a fork of the
/// supervisor (no new program image: an exec'd one would relocate its own
/// copy of the libraries' tables), sharing its pages; the heap and the
/// stack below this frame are dropped so that it keeps no private copy of
/// the pages the supervisor writes later.
fn pause(ready: Option<OwnedFd>) -> ! {
    if let Some(fd) = ready {
        // The host's view of our pid: /proc here is the host's, so
        // /proc/self names us by our host pid.
        let host_pid = std::fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str().and_then(|s| s.parse::<i32>().ok()))
            .unwrap_or_else(|| nix::unistd::getpid().as_raw());
        let _ = nix::unistd::write(&fd, &host_pid.to_ne_bytes());
        drop(fd);
    }
    memory::release_unused_stack();
    // SAFETY: pause_main allocates nothing: it only makes system calls on
    // stack values.
    unsafe { memory::discard_heap() };
    pause_main()
}

/// Shows this process as [`PAUSE_NAME`]: its command line (the memory the
/// kernel reads /proc/PID/cmdline from, overwritten through /proc/self/mem)
/// and its name. Must run before the process changes its ids: /proc/self/mem
/// is then no longer its own to open.
fn rename_as_pause() {
    let range = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the name (which may hold spaces) start at the 3rd;
            // arg_start and arg_end are the 48th and 49th.
            let rest = &stat[stat.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((
                f.get(45)?.parse::<u64>().ok()?,
                f.get(46)?.parse::<u64>().ok()?,
            ))
        });
    if let Some((start, end)) = range {
        let len = (end.saturating_sub(start)) as usize;
        let name = PAUSE_NAME.as_bytes();
        if len > name.len() {
            let mut text = vec![0u8; len];
            text[..name.len()].copy_from_slice(name);
            if let Ok(mem) = std::fs::OpenOptions::new()
                .write(true)
                .open("/proc/self/mem")
            {
                let _ = std::os::unix::fs::FileExt::write_all_at(&mem, &text, start);
            }
        }
    }
    // SAFETY: prctl with a pointer to a NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"peapod-pause".as_ptr()) };
}

/// The pause loop: waits for signals; reaps children; ends on SIGINT or
/// SIGTERM. Every signal is blocked, so even as PID 1 of a namespace it
/// gets them (by waiting) instead of having them ignored.
fn pause_main() -> ! {
    let all = SigSet::all();
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None);
    close_others();
    loop {
        match all.wait() {
            Ok(Signal::SIGCHLD) => {
                while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    if matches!(s, nix::sys::wait::WaitStatus::StillAlive) {
                        break;
                    }
                }
            }
            Ok(Signal::SIGINT | Signal::SIGTERM) => {
                // SAFETY: _exit ends the process without running anything.
                unsafe { libc::_exit(0) }
            }
            _ => {}
        }
    }
}

/// Keeps nothing of the supervisor's open (its log, its sockets).
fn close_others() {
    let max = nix::unistd::sysconf(nix::unistd::SysconfVar::OPEN_MAX)
        .ok()
        .flatten()
        .unwrap_or(1024) as i32;
    for fd in 0..max.min(65536) {
        // SAFETY: closing descriptors this process does not use any more.
        unsafe { libc::close(fd) };
    }
}
