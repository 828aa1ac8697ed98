//! The supervisor process of one detached container: forks a monitor for
//! each run, applies the restart policy with its back-off between runs, and
//! when the container is done for good, runs the caller's finish step (the
//! removal of a `--rm` container).
//!
//! It is a subreaper: if its monitor is killed, the container's processes
//! become its children and it records their end itself. It is a single
//! thread, so it may fork its monitors without exec. Signals: SIGUSR1,
//! SIGTERM or SIGINT during a back-off end the supervision (`stop`).

use std::collections::HashMap;
use std::fs::File;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::monitor::{self, MonitorSpec, Ready};
use crate::record::{ProcRef, State};
use crate::supervisor::{Exit, SupervisorError, supervise_with, sys};

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGUSR1,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Supervises the container of `spec` until it is done: returns its last
/// exit. `ready` (the launcher's pipe) is handed to the first monitor.
pub fn run(spec: &MonitorSpec, ready: Option<File>) -> Result<Exit, SupervisorError> {
    pea_runtime::become_subreaper().map_err(sys("become subreaper"))?;
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None).map_err(sys("block signals"))?;
    spec.store.update_quick(&spec.id, |r| {
        r.supervisor = ProcRef::current();
        r.stopped_by_user = false;
    })?;
    let mut ready = Some(ready);
    let reaped = std::cell::RefCell::new(HashMap::new());
    let result = supervise_with(
        &spec.store,
        &spec.id,
        &mut || run_monitor(spec, ready.take().flatten(), &mut reaped.borrow_mut()),
        &mut |delay| back_off(delay, &mut reaped.borrow_mut()),
    );
    let _ = spec.store.update_quick(&spec.id, |r| r.supervisor = None);
    result
}

/// Forks one monitor and waits for the run to end: recorded by the monitor,
/// or by us when the monitor died first.
fn run_monitor(
    spec: &MonitorSpec,
    ready: Option<File>,
    reaped: &mut HashMap<i32, i32>,
) -> Result<Exit, SupervisorError> {
    // SAFETY: this process has a single thread (see the module comment), so
    // the child may run any code after fork.
    let child = match unsafe { fork() }.map_err(sys("fork the monitor"))? {
        ForkResult::Child => {
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&handled()), None);
            let mut ready = Ready::new(ready);
            let code = match monitor::run(spec, &mut ready) {
                Ok(_) => 0,
                Err(e) => {
                    ready.send(serde_json::json!({
                        "event": "error", "message": e.to_string(), "code": 125
                    }));
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => child.as_raw(),
    };
    drop(ready);
    let started = Instant::now();
    wait_child(child, reaped)?;
    let record = spec.store.load(&spec.id)?;
    match record.state {
        State::Exited {
            code, oom_killed, ..
        } => Ok(Exit {
            code,
            oom_killed,
            ran_for: started.elapsed(),
        }),
        State::Running { pid, .. } => {
            // The monitor died with the container running: it is ours now.
            let code = match reaped.remove(&pid) {
                Some(code) => code,
                None if ProcRef::of(pid).is_some() => wait_child(pid, reaped)?,
                None => 255,
            };
            let _ = spec.runtime.delete(&spec.id, true);
            let finished_at = SystemTime::now();
            spec.store.update(&spec.id, |r| {
                r.state = State::Exited {
                    code,
                    oom_killed: false,
                    finished_at,
                };
                r.monitor = None;
            })?;
            Ok(Exit {
                code,
                oom_killed: false,
                ran_for: started.elapsed(),
            })
        }
        _ => {
            // The monitor failed before the container started.
            let _ = spec.runtime.delete(&spec.id, true);
            let finished_at = SystemTime::now();
            spec.store.update(&spec.id, |r| {
                r.state = State::Exited {
                    code: 125,
                    oom_killed: false,
                    finished_at,
                };
                r.monitor = None;
            })?;
            Ok(Exit {
                code: 125,
                oom_killed: false,
                ran_for: Duration::ZERO,
            })
        }
    }
}

/// Waits until `pid` ends, keeping the codes of other children reaped on
/// the way; returns its code (128 + N when killed by signal N).
fn wait_child(pid: i32, reaped: &mut HashMap<i32, i32>) -> Result<i32, SupervisorError> {
    if let Some(code) = reaped.remove(&pid) {
        return Ok(code);
    }
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(p, code)) => {
                if p.as_raw() == pid {
                    return Ok(code);
                }
                reaped.insert(p.as_raw(), code);
            }
            Ok(WaitStatus::Signaled(p, sig, _)) => {
                if p.as_raw() == pid {
                    return Ok(128 + sig as i32);
                }
                reaped.insert(p.as_raw(), 128 + sig as i32);
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(nix::Error::ECHILD) => return Ok(255),
            Err(e) => return Err(sys("wait for the monitor")(e)),
        }
    }
}

/// Sleeps `delay` unless a stop signal comes first; whether it slept.
fn back_off(delay: Duration, reaped: &mut HashMap<i32, i32>) -> bool {
    let deadline = Instant::now() + delay;
    let set = handled();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: sigtimedwait reads the valid set and timespec given and
        // writes nothing (a null siginfo pointer is allowed).
        let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
        match sig {
            libc::SIGCHLD => {
                while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    match status {
                        WaitStatus::Exited(p, c) => reaped.insert(p.as_raw(), c),
                        WaitStatus::Signaled(p, s, _) => reaped.insert(p.as_raw(), 128 + s as i32),
                        _ => break,
                    };
                }
            }
            libc::SIGUSR1 | libc::SIGTERM | libc::SIGINT => return false,
            _ => {}
        }
    }
}
