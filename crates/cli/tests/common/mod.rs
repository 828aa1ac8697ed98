//! Shared harness for the `pea` integration tests.
//!
//! The runtime under test is `$PEA_TEST_RUNTIME` when set (e.g. `/usr/sbin/runc`,
//! to validate the tests themselves), else the `pea` binary built by cargo.
//!
//! * [`Runtime`] is the per-test context: it owns one temp dir holding the
//!   runtime's `--root`, every bundle and every host-side scratch dir of the
//!   test, hands out unique container ids and, on drop, force-deletes every
//!   container it handed an id for, kills any leftover init, removes leftover
//!   cgroups named after the ids and only then removes the temp dir (unless a
//!   mount is still present under it, in which case it is kept and the test
//!   fails).
//! * [`Bundle`] is a bundle dir (rootfs + config.json) built from a copy of a
//!   busybox rootfs and a default config mirroring `runc spec`.
#![allow(dead_code)]

mod bundle;
pub mod clients;
mod host;

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use bundle::Bundle;
pub use host::*;

/// Bound for every "wait until" poll in the tests.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for a single runtime invocation.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Script for a container that runs until it gets SIGTERM (or SIGKILL).
pub const UNTIL_TERM: &str = "trap 'exit 0' TERM; sleep 100000 & wait";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next_n() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// The runtime binary under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("PEA_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_pea")),
    }
}

/// True when the runtime under test is runc (used only to document known runc deviations).
pub fn runtime_is_runc() -> bool {
    runtime_bin()
        .file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.contains("runc"))
}

/// Poll `f` until it returns true or `timeout` passes; returns the last result.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait (bounded) until the file at `path` exists and contains `needle`; returns its content.
#[track_caller]
pub fn wait_file_contains(path: &Path, needle: &str) -> String {
    let mut last = String::new();
    let ok = wait_for(TIMEOUT, || {
        last = fs::read_to_string(path).unwrap_or_default();
        last.contains(needle)
    });
    assert!(
        ok,
        "{} never contained {needle:?}; content: {last:?}",
        path.display()
    );
    last
}

// ---------------------------------------------------------------------------
// command output

/// Result of one runtime invocation.
pub struct Out {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` -> {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn success(&self) -> bool {
        self.status.success()
    }
    /// Assert exit status 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "expected success: {self:?}");
        self
    }
    /// Assert exit code `code`.
    #[track_caller]
    pub fn code_is(self, code: i32) -> Self {
        assert_eq!(self.code(), Some(code), "unexpected exit: {self:?}");
        self
    }
    /// Assert a clean failure: non-zero exit and exactly one non-empty stderr line.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(
            !self.success() && self.code().is_some(),
            "expected a non-zero exit: {self:?}"
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "expected exactly one stderr line: {self:?}");
        self
    }
    /// Assert stderr mentions one of `needles` (case-insensitive).
    #[track_caller]
    pub fn mentions_any(self, needles: &[&str]) -> Self {
        let e = self.stderr.to_lowercase();
        assert!(
            needles.iter().any(|n| e.contains(&n.to_lowercase())),
            "stderr should mention one of {needles:?}: {self:?}"
        );
        self
    }
    /// stdout lines, trimmed, empty lines dropped.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// A runtime invocation still in flight (e.g. a foreground `run`).
pub struct Running {
    child: Option<Child>,
    args: Vec<String>,
    out: PathBuf,
    err: PathBuf,
}

impl Running {
    fn finish(&mut self, status: ExitStatus) -> Out {
        Out {
            args: self.args.clone(),
            status,
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }
    fn try_wait_timeout(&mut self, timeout: Duration) -> Result<Out, String> {
        let child = self.child.as_mut().expect("already waited");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                self.child = None;
                return Ok(self.finish(st));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let st = child.wait().map_err(|e| e.to_string())?;
                self.child = None;
                let out = self.finish(st);
                return Err(format!("timed out after {timeout:?}: {out:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    /// Wait (bounded) for the invocation to finish.
    #[track_caller]
    pub fn wait(mut self) -> Out {
        self.try_wait_timeout(CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }
    /// What the invocation has written to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Runtime: the per-test context

pub struct Runtime {
    name: String,
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    base: PathBuf,
    ids: Mutex<Vec<String>>,
    pids: Mutex<Vec<(i32, u64)>>,
}

impl Runtime {
    /// New context; `name` (the test name) goes into container ids.
    pub fn new(name: &str) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the pea integration tests need root"
        );
        let dir = tempfile::Builder::new()
            .prefix("pea-test-")
            .tempdir()
            .expect("tempdir");
        // Traversable by mapped (user namespace) ids.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let base = dir.path().canonicalize().unwrap();
        for d in ["state", "bundles", "host", "io"] {
            fs::create_dir_all(base.join(d)).unwrap();
            fs::set_permissions(base.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        Runtime {
            name,
            bin: runtime_bin(),
            dir: Some(dir),
            base,
            ids: Mutex::new(Vec::new()),
            pids: Mutex::new(Vec::new()),
        }
    }

    /// The per-test temp dir (everything the test makes on the host lives below it).
    pub fn base(&self) -> &Path {
        &self.base
    }
    /// The runtime's `--root`.
    pub fn root(&self) -> PathBuf {
        self.base.join("state")
    }
    /// A fresh unique container id, registered for cleanup.
    pub fn id(&self) -> String {
        let id = format!("{}-{}-{}", self.name, std::process::id(), next_n());
        self.ids.lock().unwrap().push(id.clone());
        id
    }
    /// Register a hand-made id for cleanup (e.g. an id expected to be rejected).
    pub fn track(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_string());
    }
    /// A fresh host scratch dir (mode 0777) under the test dir.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let d = self.base.join("host").join(format!("{name}-{}", next_n()));
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        d
    }
    /// A fresh bundle with its own rootfs copy and the default config.
    pub fn bundle(&self) -> Bundle {
        let n = next_n();
        let dir = self.base.join("bundles").join(format!("b{n}"));
        Bundle::new(dir, &format!("pea-{}-{n}", std::process::id()))
    }

    /// Start `<runtime> --root <root> ARGS...` without waiting.
    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_with_fds(args, &[])
    }
    /// Like [`Runtime::spawn`], with `fds[i]` open as fd `3 + i` in the runtime
    /// (for `--preserve-fds`).
    pub fn spawn_with_fds(&self, args: &[&str], fds: &[&OwnedFd]) -> Running {
        let n = next_n();
        let out = self.base.join("io").join(format!("{n}.out"));
        let err = self.base.join("io").join(format!("{n}.err"));
        let root = self.root();
        let mut full: Vec<String> = vec!["--root".into(), root.to_string_lossy().into_owned()];
        full.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(&self.bin);
        cmd.args(&full)
            .current_dir(&self.base)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        if !fds.is_empty() {
            // Move them out of the way first so that dup2 cannot clobber a source.
            let high: Vec<OwnedFd> = fds
                .iter()
                .map(|f| {
                    let fd = nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100));
                    // SAFETY: a fresh fd that nothing else owns.
                    unsafe { OwnedFd::from_raw_fd(fd.expect("dup")) }
                })
                .collect();
            // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    for (i, fd) in high.iter().enumerate() {
                        if libc::dup2(fd.as_raw_fd(), 3 + i as i32) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let mut shown = vec![self.bin.to_string_lossy().into_owned()];
        shown.extend(full);
        Running {
            child: Some(child),
            args: shown,
            out,
            err,
        }
    }
    /// Run `<runtime> --root <root> ARGS...` to completion (bounded).
    #[track_caller]
    pub fn cmd(&self, args: &[&str]) -> Out {
        self.spawn(args).wait()
    }

    /// `create --bundle B ID` (config.json saved first).
    pub fn create(&self, b: &Bundle, id: &str) -> Out {
        b.save();
        self.cmd(&["create", "--bundle", b.path_str(), id])
    }
    pub fn start(&self, id: &str) -> Out {
        self.cmd(&["start", id])
    }
    pub fn kill(&self, id: &str, sig: &str) -> Out {
        self.cmd(&["kill", id, sig])
    }
    pub fn delete(&self, id: &str) -> Out {
        self.cmd(&["delete", id])
    }
    /// Foreground `run --bundle B ID`.
    pub fn run(&self, b: &Bundle, id: &str) -> Out {
        b.save();
        self.cmd(&["run", "--bundle", b.path_str(), id])
    }
    /// `exec ARGS...` (ARGS includes flags, the id and the command).
    pub fn exec(&self, args: &[&str]) -> Out {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        self.cmd(&full)
    }

    /// `state ID`, asserted successful and parsed.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.cmd(&["state", id]).ok();
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out:?}"));
        if let Some(pid) = v["pid"].as_i64().filter(|p| *p > 0)
            && let Some((_, start)) = proc_stat(pid as i32)
        {
            let mut pids = self.pids.lock().unwrap();
            if !pids.contains(&(pid as i32, start)) {
                pids.push((pid as i32, start));
            }
        }
        v
    }
    /// `state ID`'s status, or None when `state` fails.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.cmd(&["state", id]);
        if !out.success() {
            return None;
        }
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["status"].as_str().map(str::to_string)
    }
    /// Wait (bounded) until `state ID` reports `want`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let mut last = None;
        let ok = wait_for(TIMEOUT, || {
            last = self.status(id);
            last.as_deref() == Some(want)
        });
        assert!(ok, "container {id} never reached {want:?} (last: {last:?})");
    }
    /// create + start a bundle; returns (id, init pid on the host).
    #[track_caller]
    pub fn start_container(&self, b: &Bundle) -> (String, i32) {
        let id = self.id();
        self.create(b, &id).ok();
        self.start(&id).ok();
        let st = self.state(&id);
        let pid = st["pid"].as_i64().expect("state has no pid") as i32;
        (id, pid)
    }

    /// Assert nothing is left of container `id`: no state dir, `state` fails,
    /// no cgroup dir named after it, no live process in it or naming it, no host
    /// mount under the test dir or naming it.
    #[track_caller]
    pub fn assert_gone(&self, id: &str) {
        let sd = self.root().join(id);
        assert!(!sd.exists(), "state dir {} still exists", sd.display());
        let st = self.cmd(&["state", id]);
        assert!(!st.success(), "state of {id} still succeeds: {st:?}");
        let cg = cgroup_dirs_named(id);
        assert!(cg.is_empty(), "cgroups left for {id}: {cg:?}");
        let procs = processes_mentioning(id);
        assert!(procs.is_empty(), "processes left for {id}: {procs:?}");
        let m = mounts_under(&self.base);
        assert!(m.is_empty(), "host mounts left under the test dir: {m:?}");
        let m = host_mounts_mentioning(id);
        assert!(m.is_empty(), "host mounts naming {id}: {m:?}");
    }

    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let ids = std::mem::take(&mut *self.ids.lock().unwrap());
        for id in &ids {
            if self.root().join(id).exists() {
                let mut r = self.spawn(&["delete", "--force", id]);
                if let Err(e) = r.try_wait_timeout(Duration::from_secs(30)) {
                    problems.push(format!("delete --force {id}: {e}"));
                }
            }
        }
        for (pid, start) in std::mem::take(&mut *self.pids.lock().unwrap()) {
            if proc_alive(pid) && proc_stat(pid).map(|s| s.1) == Some(start) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for id in &ids {
            for pid in pids_in_cgroup_named(id) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for id in &ids {
            let mut dirs = cgroup_dirs_named(id);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                let ok = wait_for(Duration::from_secs(2), || {
                    fs::remove_dir(&d).is_ok() || !d.exists()
                });
                if !ok {
                    problems.push(format!("cannot remove cgroup {}", d.display()));
                }
            }
        }
        problems
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let problems = self.cleanup();
        let dir = self.dir.take().expect("dropped twice");
        let mounts = mounts_under(&self.base);
        if !mounts.is_empty() {
            // Never remove a tree that still holds mounts.
            let kept = dir.keep();
            eprintln!("keeping {} because of mounts {mounts:?}", kept.display());
            if !std::thread::panicking() {
                panic!("mounts left under the test dir: {mounts:?}");
            }
            return;
        }
        drop(dir);
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("cleanup problems: {problems:?}");
        }
    }
}
