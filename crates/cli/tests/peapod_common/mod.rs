//! Shared harness for the `peapod` container integration tests (run the
//! real binary like a user).
//!
//! [`Peapod`] is one test's engine: its own `PEAPOD_ROOT` and
//! `PEAPOD_RUN_ROOT` in a temp dir (so tests run in parallel), unique
//! container names, and a Drop guard that runs `peapod rm -f -v` on every
//! container of its root (even after a panic), then checks that nothing is
//! mounted under the temp dir before it is deleted. If something still is,
//! the dir is kept (never removed under a mount) and the test fails.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

pub mod pods;

pub const BIN: &str = env!("CARGO_BIN_EXE_peapod");
/// Bound for one `peapod` invocation.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound for every "wait until" poll.
pub const TIMEOUT: Duration = Duration::from_secs(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Whether the host can run these tests (root, busybox); prints why not.
pub fn usable() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the peapod container tests need root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox is not installed (busybox-static)");
        return false;
    }
    true
}

/// Whether the CNI plugins the bridge networks need are installed.
pub fn have_cni() -> bool {
    let found = ["/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"]
        .iter()
        .any(|d| Path::new(d).join("bridge").exists());
    if !found {
        eprintln!("skipped: the CNI plugins (bridge, host-local, portmap) are not installed");
    }
    found
}

/// Polls `f` until true or `timeout` passes; returns the last result.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every mount point of this mount namespace.
pub fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Runs `cmd` with `stdin` fed to it, killing it after `timeout`.
pub fn output_within(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn peapod");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for peapod") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One test's engine.
pub struct Peapod {
    dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub run_root: PathBuf,
    tag: String,
    names: Mutex<Vec<String>>,
}

impl Peapod {
    /// A fresh engine; `tag` goes into its container names.
    pub fn new(tag: &str) -> Peapod {
        let dir = tempfile::Builder::new()
            .prefix(&format!("peapod-it-{tag}-"))
            .tempdir()
            .expect("temp dir");
        let root = dir.path().join("root");
        let run_root = dir.path().join("run");
        Peapod {
            root,
            run_root,
            tag: tag.to_string(),
            dir: Some(dir),
            names: Mutex::new(Vec::new()),
        }
    }

    /// The temp dir holding both roots.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("kept until drop").path()
    }

    /// A container name unique to this test run.
    pub fn name(&self, base: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("it-{}-{base}-{}-{n}", self.tag, std::process::id());
        self.names.lock().unwrap().push(name.clone());
        name
    }

    /// `peapod ARGS` with this engine's roots.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("PEAPOD_ROOT", &self.root)
            .env("PEAPOD_RUN_ROOT", &self.run_root)
            .env_remove("PEAPOD_STORAGE_DRIVER");
        c
    }

    pub fn output(&self, args: &[&str]) -> Output {
        output_within(self.command(args), None, CMD_TIMEOUT)
    }

    pub fn output_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        output_within(self.command(args), Some(stdin), CMD_TIMEOUT)
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "peapod {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs a command; its exit code, stdout and stderr.
    pub fn code(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.output(args);
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    /// Runs a command that must fail with one line of error: its code and
    /// that line. The progress note of a missing image ("not found locally:
    /// pulling it", as Docker's "Unable to find image") is not an error.
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let (code, _, err) = self.code(args);
        assert_ne!(code, 0, "peapod {args:?} should fail");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.contains(" not found locally: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one line of error from {args:?}, got: {err}"
        );
        (code, lines[0].to_string())
    }

    /// `run -d` with `args`: the new container's full id.
    pub fn run_d(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        let id = self.ok(&all).trim().to_string();
        assert_eq!(id.len(), 64, "run -d prints the id, got {id:?}");
        id
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The full id of container `name`, if its record exists.
    pub fn id_of(&self, name: &str) -> Option<String> {
        let id = std::fs::read_to_string(self.containers_dir().join(".names").join(name)).ok()?;
        self.containers_dir()
            .join(&id)
            .join("record.json")
            .exists()
            .then_some(id)
    }

    /// The record of container `id_or_name`.
    pub fn record(&self, id_or_name: &str) -> Value {
        let id = self
            .id_of(id_or_name)
            .unwrap_or_else(|| id_or_name.to_string());
        let path = self.containers_dir().join(id).join("record.json");
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&data).expect("record JSON")
    }

    /// The record's state word (running, exited, ...).
    pub fn status(&self, name: &str) -> String {
        self.record(name)["state"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the record of `name` says exited; its record.
    pub fn wait_exited(&self, name: &str, timeout: Duration) -> Value {
        assert!(
            wait_for(timeout, || self.status(name) == "exited"),
            "{name} did not exit within {timeout:?}: {}",
            self.record(name)
        );
        self.record(name)
    }

    /// Ids of every record under this root.
    pub fn ids(&self) -> Vec<String> {
        std::fs::read_dir(self.containers_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64)
            .collect()
    }

    /// Mount points under this test's temp dir, but for the engine's
    /// network namespace directory itself (a bind mount of itself).
    pub fn mounts(&self) -> Vec<String> {
        let dir = self.dir().to_string_lossy().into_owned();
        let netns = self.run_root.join("netns").to_string_lossy().into_owned();
        mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&dir) && *m != netns)
            .collect()
    }

    /// What is left of container `id` on the host: mounts, netns files,
    /// cgroups, its record dir, runtime state, CNI leases, processes.
    pub fn leftovers(&self, id: &str) -> Vec<String> {
        let mut out: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| m.contains(id))
            .map(|m| format!("mount {m}"))
            .collect();
        for dir in [
            self.containers_dir().join(id),
            self.run_root.join("netns").join(id),
            self.run_root.join("runtime").join(id),
        ] {
            if dir.exists() {
                out.push(format!("path {}", dir.display()));
            }
        }
        for entry in std::fs::read_dir(self.run_root.join("netns"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().contains(&id[..12]) {
                out.push(format!("netns {}", entry.path().display()));
            }
        }
        for ctl in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = ctl.path().join("peapod").join(id);
            if p.exists() {
                out.push(format!("cgroup {}", p.display()));
            }
        }
        let leases = Path::new("/var/lib/cni/networks");
        for net in std::fs::read_dir(leases).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if std::fs::read_to_string(f.path()).is_ok_and(|s| s.contains(id)) {
                    out.push(format!("lease {}", f.path().display()));
                }
            }
        }
        for pid in processes_mentioning(id) {
            out.push(format!("process {pid}"));
        }
        out
    }

    /// Removes every container of this root with `rm -f -v`.
    pub fn remove_all(&self) {
        let names: Vec<String> = self.names.lock().unwrap().clone();
        let mut keys: Vec<String> = names
            .into_iter()
            .filter(|n| self.id_of(n).is_some())
            .collect();
        keys.extend(self.ids());
        for k in keys {
            if self.containers_dir().join(&k).exists() || self.id_of(&k).is_some() {
                let _ = output_within(self.command(&["rm", "-f", "-v", &k]), None, CMD_TIMEOUT);
            }
        }
    }
}

/// Pids of processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

impl Drop for Peapod {
    fn drop(&mut self) {
        self.remove_all();
        // The engine's network namespace directory is a bind mount of
        // itself (as `ip netns` makes it): engine state, not a container's.
        // Unmounted once no namespace file is left in it.
        let netns = self.run_root.join("netns");
        let netns_s = netns.to_string_lossy().into_owned();
        let empty = std::fs::read_dir(&netns).is_ok_and(|mut d| d.next().is_none());
        if empty && mount_points().contains(&netns_s) {
            let _ = nix::mount::umount(&netns);
        }
        let mounts: Vec<String> = {
            let dir = self.dir().to_string_lossy().into_owned();
            mount_points()
                .into_iter()
                .filter(|m| m.starts_with(&dir))
                .collect()
        };
        let dir = self.dir.take().expect("dropped once");
        if mounts.is_empty() {
            drop(dir);
            return;
        }
        // Never remove a directory a mount may still be under.
        let kept = dir.keep();
        if !std::thread::panicking() {
            panic!(
                "mounts left under {} after removing every container: {mounts:?}",
                kept.display()
            );
        }
        eprintln!("mounts left under {}: {mounts:?}", kept.display());
    }
}

/// Seconds between two RFC 3339 times of a record.
pub fn secs_between(a: &str, b: &str) -> f64 {
    let (a, b) = (parse_rfc3339(a), parse_rfc3339(b));
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z` (what the engine writes).
pub fn parse_rfc3339(s: &str) -> SystemTime {
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T').expect("a T in an RFC 3339 time");
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().unwrap();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + t[0] * 3600 + t[1] * 60 + t[2];
    SystemTime::UNIX_EPOCH + Duration::new(secs as u64, nanos)
}

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) as u16;
        let port = 18000 + (std::process::id() as u16 % 900) + n * 7 % 900;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a free port");
    l.local_addr().unwrap().port()
}
