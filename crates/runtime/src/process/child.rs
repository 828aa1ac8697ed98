//! The forked side: enter namespaces, become the container's process.
//!
//! Runs in a child of `spawn`; reports failures over the channel as one line
//! and exits. See the module docs of `process` for why allocation is safe here.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::socket::accept;
use nix::unistd::{ForkResult, Gid, Uid, fork, getpid, setresgid, setresuid};

use super::channel::{Channel, ChannelError, ToChild, ToParent};
use super::plan::{InitSetup, Plan, ProcessSpec};
use crate::capabilities::CapabilityError;
use crate::console::{self, ConsoleError};
use crate::hooks::{self, HookError};
use crate::namespaces::Kind;
use crate::rootfs::{self, RootfsError};
use crate::user::{self, UserError};

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("{step}: {source}")]
    Sys { step: String, source: nix::Error },
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("process.cwd {0}: {1}")]
    Cwd(PathBuf, nix::Error),
    #[error("exec {0:?}: executable file not found in $PATH (or not executable)")]
    NotFound(String),
    #[error("exec {path}: {source}")]
    Exec { path: String, source: nix::Error },
    #[error("linux.sysctl {key}: {source}")]
    Sysctl { key: String, source: std::io::Error },
}

fn sys(step: impl Into<String>) -> impl FnOnce(nix::Error) -> ChildError {
    let step = step.into();
    move |source| ChildError::Sys { step, source }
}

/// Entry point of the forked child. Never returns.
pub fn run(plan: Plan, chan: Channel) -> ! {
    let mut keep = plan.own_fds();
    keep.push(chan.raw());
    close_inherited(&keep, plan.process.extra_fds);
    let err = match enter(plan, &chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = chan.send(&ToParent::Failed {
        error: err.to_string(),
    });
    // SAFETY: _exit ends the process without running the parent's atexit
    // handlers or flushing its stdio buffers, which belong to the parent.
    unsafe { libc::_exit(1) }
}

enum Never {}

fn enter(mut plan: Plan, chan: &Channel) -> Result<Never, ChildError> {
    reset_signals();
    if let Some(fds) = plan.stdio {
        install_stdio(fds).map_err(sys("set up the container's stdio"))?;
    }
    let ns = &plan.namespaces;
    // A killed runtime must not leave a half-made container behind.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Written while still the runtime's own process on the host (inherited
    // by fork): non-dumpable in a user namespace, /proc/self/oom_score_adj
    // would not be ours to write (and runc does it here, too).
    if let Some(adj) = plan.process.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            ChildError::Sys {
                step: format!("process.oomScoreAdj {adj} (lowering it needs CAP_SYS_RESOURCE)"),
                source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EPERM)),
            }
        })?;
    }
    set_dumpable(false);

    // With a user namespace, the namespaces joined by path are joined
    // before it, with this process's privileges: after it, only those
    // owned by that user namespace could be (never any, for a new one; not
    // a pod's, owned by the host's, for one joined by exec). Those that
    // refuse (EPERM) are tried again inside a joined user namespace.
    let early = |k: Kind| !matches!(k, Kind::User | Kind::Pid | Kind::Time | Kind::Cgroup);
    let mut later = vec![!ns.has(Kind::User); ns.join.len()];
    if ns.has(Kind::User) {
        for (i, j) in ns.join.iter().enumerate().filter(|(_, j)| early(j.kind)) {
            match setns(j.fd.as_fd(), j.kind.flag()) {
                Ok(()) => {}
                Err(nix::Error::EPERM) if !ns.creates(Kind::User) => later[i] = true,
                Err(e) => return Err(sys(format!("join {} namespace", j.kind))(e)),
            }
        }
    }
    for j in ns.join.iter().filter(|j| j.kind == Kind::User) {
        setns(j.fd.as_fd(), CloneFlags::CLONE_NEWUSER).map_err(sys("join user namespace"))?;
    }
    if ns.creates(Kind::User) {
        unshare(CloneFlags::CLONE_NEWUSER).map_err(sys("new user namespace"))?;
        // An unprivileged runtime can write our maps only while we are
        // dumpable; harmless here: we are in no pid namespace of a container.
        set_dumpable(true);
        chan.send(&ToParent::MapRequest {
            pid: getpid().as_raw(),
        })?;
        match chan.expect::<ToChild>("uid/gid maps")? {
            ToChild::MapsWritten => {}
            other => return Err(unexpected("MapsWritten", other)),
        }
        set_dumpable(false);
    }
    if ns.has(Kind::User) {
        // Become root of the namespace (the mapped uid on the host).
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(sys("setresgid in user namespace"))?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(sys("setresuid in user namespace"))?;
    }
    for (i, j) in ns.join.iter().enumerate() {
        if !later[i] || !early(j.kind) {
            continue;
        }
        setns(j.fd.as_fd(), j.kind.flag()).map_err(sys(format!("join {} namespace", j.kind)))?;
    }
    let mut flags = CloneFlags::empty();
    for k in &ns.new {
        if !matches!(k, Kind::User | Kind::Pid | Kind::Time | Kind::Cgroup) {
            flags |= k.flag();
        }
    }
    if !flags.is_empty() {
        unshare(flags).map_err(sys("new namespaces"))?;
    }
    if ns.needs_second_fork() {
        let mut later = CloneFlags::empty();
        for k in [Kind::Pid, Kind::Time] {
            if ns.creates(k) {
                later |= k.flag();
            }
        }
        if !later.is_empty() {
            unshare(later).map_err(sys("new pid/time namespace"))?;
        }
        for j in ns
            .join
            .iter()
            .filter(|j| matches!(j.kind, Kind::Pid | Kind::Time))
        {
            setns(j.fd.as_fd(), j.kind.flag())
                .map_err(sys(format!("join {} namespace", j.kind)))?;
        }
        if ns.creates(Kind::Time) && !plan.time_offsets.is_empty() {
            // Ours to write in a user namespace only while dumpable; we are
            // not in the container's pid namespace (only our child will be).
            set_dumpable(true);
            std::fs::write("/proc/self/timens_offsets", &plan.time_offsets).map_err(|e| {
                ChildError::Sys {
                    step: "write linux.timeOffsets".into(),
                    source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)),
                }
            })?;
            set_dumpable(false);
        }
        // SAFETY: this process is single-threaded (a fork child), so fork is sound.
        match unsafe { fork() }.map_err(sys("fork container process"))? {
            ForkResult::Parent { child } => {
                chan.send(&ToParent::InitPid {
                    pid: child.as_raw(),
                })?;
                // SAFETY: see `run`.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Child => {}
        }
    } else {
        chan.send(&ToParent::InitPid {
            pid: getpid().as_raw(),
        })?;
    }
    become_process(&mut plan, chan)
}

/// PR_SET_DUMPABLE. Non-dumpable, this process's /proc/PID entries (exe: the
/// runtime binary, CVE-2019-5736; fd, cwd, root, mem: CVE-2016-9962) are out
/// of reach of the container's processes unless they have CAP_SYS_PTRACE
/// (against which `exe_seal` protects the binary). The execve of the
/// container's program makes it dumpable again.
fn set_dumpable(on: bool) {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) };
}

/// Makes `fds` descriptors 0, 1 and 2. They are first copied above 2, so one
/// that is itself 0, 1 or 2 is not overwritten before it is used.
fn install_stdio(fds: [std::os::fd::RawFd; 3]) -> Result<(), nix::Error> {
    let mut high = [0; 3];
    for (slot, fd) in high.iter_mut().zip(fds) {
        // SAFETY: the caller keeps these descriptors open through the fork.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        *slot = nix::fcntl::fcntl(b, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    }
    for (target, fd) in high.into_iter().enumerate() {
        // SAFETY: dup2 onto this process's standard descriptors, then close
        // the temporary copy; no memory is involved.
        let rc = unsafe { libc::dup2(fd, target as i32) };
        nix::errno::Errno::result(rc)?;
        // SAFETY: `fd` is the temporary copy made above.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Closes every descriptor above stdio that is neither passed on
/// (3..3+extra) nor one of `keep`.
fn close_inherited(keep: &[std::os::fd::RawFd], extra: i32) {
    let first = 3 + extra.max(0);
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd >= first && !keep.contains(&fd) {
            // SAFETY: closing a descriptor this process no longer uses; the
            // directory stream's own descriptor is already closed.
            unsafe { libc::close(fd) };
        }
    }
}

/// The container starts with default dispositions and nothing blocked,
/// whatever the runtime's caller had (Rust ignores SIGPIPE, for one).
fn reset_signals() {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
    for sig in Signal::iterator() {
        if !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            // SAFETY: installing SIG_DFL runs no handler code.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

fn unexpected(expected: &'static str, got: ToChild) -> ChildError {
    ChildError::Channel(ChannelError::Unexpected {
        expected,
        got: format!("{got:?}"),
    })
}

/// From here on this is the process that will exec the user's program.
fn become_process(plan: &mut Plan, chan: &Channel) -> Result<Never, ChildError> {
    match chan.expect::<ToChild>("cgroup placement")? {
        ToChild::CgroupJoined => {}
        other => return Err(unexpected("CgroupJoined", other)),
    }
    let ns = &plan.namespaces;
    if ns.creates(Kind::Cgroup) {
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(sys("new cgroup namespace"))?;
    }
    for j in ns.join.iter().filter(|j| j.kind == Kind::Cgroup) {
        setns(j.fd.as_fd(), CloneFlags::CLONE_NEWCGROUP).map_err(sys("join cgroup namespace"))?;
    }
    let in_userns = ns.has(Kind::User);
    if let Some(init) = &plan.init {
        chan.send(&ToParent::RuntimeReady)?;
        let trees = receive_idmapped(chan)?;
        setup_init(init, trees)?;
    }
    let proc_ = &plan.process;
    user::set_rlimits(&proc_.rlimits)?;
    if proc_.terminal {
        let pty = console::open_pty(proc_.console_size)?;
        if let Some(sock) = &plan.console_socket {
            console::send_master(sock, &pty.master, &pty.name)?;
        }
        console::become_console(&pty.slave)?;
    }
    plan.console_socket = None;
    let exe = resolve_executable(proc_)?;
    // AppArmor profile / SELinux label of the execve (as runc: before the
    // capabilities are dropped).
    proc_.lsm.apply()?;
    // Without no_new_privileges a filter needs CAP_SYS_ADMIN: load it while
    // the process still has it (as runc does), else as late as possible.
    if !proc_.no_new_privileges
        && let Some(program) = &plan.seccomp
    {
        install_seccomp(program, chan)?;
    }
    switch_user(proc_, in_userns)?;
    enter_cwd(&proc_.cwd)?;
    let args = proc_.c_args();
    let env = environment(proc_);
    if proc_.no_new_privileges
        && let Some(program) = &plan.seccomp
    {
        install_seccomp(program, chan)?;
    }
    match &plan.init {
        Some(init) => {
            chan.send(&ToParent::Ready)?;
            wait_for_start_and_exec(init, &exe, &args, &env, proc_)
        }
        None => {
            chan.send(&ToParent::Ready)?;
            let e = exec(&exe, &args, &env, proc_.extra_fds);
            Err(e)
        }
    }
}

/// Loads the seccomp filter; a notify descriptor goes to the runtime (for
/// the agent), and this waits until the agent has it: the syscalls from
/// here to exec may already be the agent's to answer.
fn install_seccomp(program: &crate::seccomp::Program, chan: &Channel) -> Result<(), ChildError> {
    let Some(notify_fd) = program.load()? else {
        return Ok(());
    };
    chan.send_with_fd(&ToParent::SeccompFd, Some(notify_fd.as_fd()))?;
    drop(notify_fd);
    match chan.expect::<ToChild>("seccomp agent")? {
        ToChild::SeccompFdSent => Ok(()),
        other => Err(unexpected("SeccompFdSent", other)),
    }
}

/// The id-mapped mounts the runtime made after the prestart/createRuntime
/// hooks, up to `HooksDone`.
fn receive_idmapped(chan: &Channel) -> Result<rootfs::idmap::Trees, ChildError> {
    let mut trees = rootfs::idmap::Trees::default();
    loop {
        match chan.recv_with_fd::<ToChild>()? {
            None => return Err(ChannelError::Closed("prestart/createRuntime hooks").into()),
            Some((ToChild::HooksDone, _)) => return Ok(trees),
            Some((ToChild::IdmappedMount { target }, Some(fd))) => trees.add(target, fd),
            Some((other, _)) => return Err(unexpected("HooksDone", other)),
        }
    }
}

fn setup_init(init: &InitSetup, trees: rootfs::idmap::Trees) -> Result<(), ChildError> {
    if let Some(name) = &init.keyring {
        join_session_keyring(name);
    }
    rootfs::prepare(&init.rootfs, trees)?;
    hooks::run(
        "createContainer",
        &init.create_container_hooks,
        &init.state_json,
    )?;
    rootfs::enter(&init.rootfs)?;
    if let Some(h) = &init.hostname {
        nix::unistd::sethostname(h).map_err(sys(format!("hostname {h:?}")))?;
    }
    if let Some(d) = &init.domainname {
        let c = CString::new(d.as_str()).unwrap_or_default();
        // SAFETY: setdomainname reads `len` bytes of a valid C string.
        let rc = unsafe { libc::setdomainname(c.as_ptr(), d.len()) };
        nix::errno::Errno::result(rc).map_err(sys(format!("domainname {d:?}")))?;
    }
    for (key, value) in &init.sysctl {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|source| ChildError::Sysctl {
            key: key.clone(),
            source,
        })?;
    }
    rootfs::protect(&init.rootfs)?;
    Ok(())
}

/// A new session keyring so the container does not see the runtime's keys.
fn join_session_keyring(name: &str) {
    let c = CString::new(name).unwrap_or_default();
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl reads a valid C string; failure (no keyring support) is not fatal.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr()) };
}

fn switch_user(p: &ProcessSpec, in_userns: bool) -> Result<(), ChildError> {
    if let Some(caps) = &p.caps {
        caps.apply_bounding()?;
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1) };
    let setgroups_ok = !in_userns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(true);
    p.identity.switch(setgroups_ok)?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0) };
    if let Some(caps) = &p.caps {
        caps.apply_rest()?;
    }
    if p.no_new_privileges {
        // SAFETY: as above.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        nix::errno::Errno::result(rc).map_err(sys("no_new_privs"))?;
    }
    Ok(())
}

fn enter_cwd(cwd: &Path) -> Result<(), ChildError> {
    nix::unistd::chdir(cwd).map_err(|e| ChildError::Cwd(cwd.to_path_buf(), e))?;
    // A directory reached through a leaked descriptor would show as unreachable
    // (CVE-2024-21626): refuse to start there.
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(_) | Err(_) => Err(ChildError::Cwd(cwd.to_path_buf(), nix::Error::ENOENT)),
    }
}

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn environment(p: &ProcessSpec) -> Vec<CString> {
    let mut env: Vec<String> = p.env.clone();
    if env_value(&env, "HOME").is_none() {
        env.push(format!("HOME={}", home_of(p.identity.uid)));
    }
    env.into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect()
}

/// The home directory of `uid` from the container's /etc/passwd, else "/".
fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into())
}

fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
        && std::fs::metadata(path)
            .map(|m| m.is_file())
            .unwrap_or(false)
}

/// The program to exec, found through the process's PATH like execvp would.
fn resolve_executable(p: &ProcessSpec) -> Result<CString, ChildError> {
    let name = p.args.first().cloned().unwrap_or_default();
    let found = if name.contains('/') {
        let path = if Path::new(&name).is_absolute() {
            PathBuf::from(&name)
        } else {
            p.cwd.join(&name)
        };
        if !is_executable(&path) {
            // As runc: a path that is there but not an executable file is a
            // permission error (clients such as Podman map it to exit 126).
            let source = match std::fs::metadata(&path) {
                Ok(_) => nix::Error::EACCES,
                Err(e) => nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)),
            };
            return Err(ChildError::Exec { path: name, source });
        }
        Some(path)
    } else {
        let path_var = env_value(&p.env, "PATH")
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path_var
            .split(':')
            .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(&name))
            .find(|c| is_executable(c))
    };
    let found = found.ok_or_else(|| ChildError::NotFound(name.clone()))?;
    CString::new(found.into_os_string().into_encoded_bytes())
        .map_err(|_| ChildError::NotFound(name))
}

/// Marks every descriptor above the passed ones close-on-exec, then execs.
fn exec(exe: &CString, args: &[CString], env: &[CString], extra_fds: i32) -> ChildError {
    let first = 3 + extra_fds.max(0) as u32;
    // SAFETY: close_range with CLOEXEC only flags descriptors; no memory involved.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    for fd in 3..first as i32 {
        // The passed descriptors must survive exec.
        let _ = nix::fcntl::fcntl(
            // SAFETY: fd is one of the caller's preserved descriptors.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        );
    }
    match nix::unistd::execve(exe, args, env) {
        Ok(never) => match never {},
        Err(source) => ChildError::Exec {
            path: exe.to_string_lossy().into_owned(),
            source,
        },
    }
}

/// Blocks until `start` connects, runs startContainer hooks, execs (with
/// `init.reaper`: forks first, the child execs and this process reaps).
fn wait_for_start_and_exec(
    init: &InitSetup,
    exe: &CString,
    args: &[CString],
    env: &[CString],
    proc_: &ProcessSpec,
) -> Result<Never, ChildError> {
    // SAFETY: prctl with integer arguments; from here the runtime is gone and
    // the init lives on its own until start.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0) };
    // Only a connection that says "start" starts the container.
    let conn = loop {
        let fd = match accept(init.start_listener.as_raw_fd()) {
            Ok(fd) => fd,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(sys("wait for start")(e)),
        };
        // SAFETY: accept returned a new descriptor we own.
        let conn = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut byte = [0u8; 1];
        if matches!(nix::unistd::read(&conn, &mut byte), Ok(1)) && byte[0] == b's' {
            break conn;
        }
    };
    let _ = nix::fcntl::fcntl(
        &conn,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let report = |msg: String| {
        let _ = nix::unistd::write(&conn, msg.as_bytes());
    };
    if let Err(e) = hooks::run(
        "startContainer",
        &init.start_container_hooks,
        &init.state_json,
    ) {
        report(e.to_string());
        // SAFETY: see `run`.
        unsafe { libc::_exit(1) }
    }
    let mut own_env = None;
    if init.reaper {
        if let Err(e) = super::reaper::fork_child(proc_.terminal, conn.as_raw_fd()) {
            report(sys("fork the process of the init reaper")(e).to_string());
            // SAFETY: see `run`.
            unsafe { libc::_exit(1) }
        }
        own_env = super::reaper::own_listen_pid(env);
    }
    let e = exec(
        exe,
        args,
        own_env.as_deref().unwrap_or(env),
        proc_.extra_fds,
    );
    report(e.to_string());
    // SAFETY: see `run`.
    unsafe { libc::_exit(127) }
}
