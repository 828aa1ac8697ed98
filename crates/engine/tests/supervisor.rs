//! The supervisor runs a real busybox container through the runtime
//! library: its stdout and stderr end up in the CRI log with their stream
//! tags, and its exit code in the record.
//!
//! `run_once` (the monitor's code) makes its process a subreaper and reaps
//! every child, so the test runs it in a child: this test binary again,
//! told by an environment variable to run only `supervisor_child`.
//!
//! Needs root and busybox-static at /bin/busybox (like the runtime tests).

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pea_runtime::Runtime;
use peapod_engine::logs::{Entry, Stream, Tag};
use peapod_engine::record::{NewContainer, State, Store};
use peapod_engine::restart::RestartPolicy;
use peapod_engine::supervisor::{LogConfig, RunSpec, supervise};
use serde_json::json;

const CHILD_ENV: &str = "PEAPOD_TEST_SUPERVISOR_BASE";

/// A bundle with a minimal busybox rootfs running `args`.
fn make_bundle(dir: &Path, args: &[&str]) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "busybox-static must be installed at /bin/busybox"
    );
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "peapod-supervisor",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ]
        }
    });
    fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    dir.to_path_buf()
}

struct Paths {
    runtime: Runtime,
    store: Store,
    bundle: PathBuf,
}

fn paths(base: &Path) -> Paths {
    Paths {
        runtime: Runtime::new(base.join("state")),
        store: Store::new(base.join("containers")),
        bundle: base.join("bundle"),
    }
}

/// Force-deletes the runtime container even when the test fails.
struct Cleanup<'a> {
    rt: &'a Runtime,
    id: Option<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.id
            && self.rt.root().join(id).exists()
        {
            let _ = self.rt.delete(id, true);
        }
    }
}

/// The child's half: a no-op unless started by `records_exit_and_logs`.
#[test]
fn supervisor_child() {
    let Ok(base) = std::env::var(CHILD_ENV) else {
        return;
    };
    let base = PathBuf::from(base);
    let p = paths(&base);
    let id = p.store.list().unwrap().pop().expect("a record").id;
    let spec = RunSpec {
        runtime: p.runtime,
        store: p.store,
        id,
        bundle: p.bundle,
        log: LogConfig::default(),
    };
    // The back-off is recorded, not slept: the test must not depend on time.
    // With `always`, the user stops the container during the first wait.
    let stop_in_backoff =
        spec.store.load(&spec.id).unwrap().restart_policy == RestartPolicy::Always;
    let mut delays = Vec::new();
    let exit = supervise(&spec, &mut |d| {
        delays.push(d.as_secs().to_string());
        if stop_in_backoff {
            spec.store
                .update(&spec.id, |r| r.stopped_by_user = true)
                .unwrap();
        }
        true
    })
    .unwrap_or_else(|e| panic!("supervise: {e}"));
    fs::write(base.join("delays"), delays.join(",")).unwrap();
    eprintln!("supervisor child: exit {exit:?}");
}

/// Runs `supervisor_child` in a child process; kills it if it hangs (a
/// failure, not a timing check: a healthy run takes well under a second).
fn run_child(base: &Path) -> std::process::Output {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "supervisor_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, base)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "supervisor child hung; killed it: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs `sh -c 'echo out; echo err >&2; exit 3'` under `supervise` with
/// `policy`; checks the record and returns the log's entries and the delays
/// the supervisor asked to wait.
fn run_supervised(policy: RestartPolicy, want_restarts: u32) -> (Vec<Entry>, String) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the supervisor tests need root"
    );
    let tmp = tempfile::Builder::new()
        .prefix("peapod-supervisor-")
        .tempdir()
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let p = paths(&base);
    make_bundle(&p.bundle, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let record = p
        .store
        .create(NewContainer {
            name: Some("sup-test".into()),
            image: "busybox".into(),
            command: vec!["sh".into(), "-c".into(), "...".into()],
            restart_policy: policy,
            setup: Default::default(),
        })
        .unwrap();
    let _cleanup = Cleanup {
        rt: &p.runtime,
        id: Some(record.id.clone()),
    };

    let child = run_child(&base);
    assert!(
        child.status.success(),
        "supervisor child failed: {}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );

    let after = p.store.load(&record.id).unwrap();
    match after.state {
        State::Exited {
            code, oom_killed, ..
        } => {
            assert_eq!(code, 3);
            assert!(!oom_killed);
        }
        other => panic!("expected Exited, record says {other:?}"),
    }
    assert_eq!(after.restart_count, want_restarts);
    let text = fs::read_to_string(&after.log_path).unwrap();
    let entries: Vec<Entry> = text
        .lines()
        .map(|l| Entry::parse(l.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    // The runtime container is gone: the supervisor removed it.
    assert!(!p.runtime.root().join(&record.id).exists());
    let delays = fs::read_to_string(base.join("delays")).unwrap();
    (entries, delays)
}

#[test]
fn records_exit_and_logs() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let (entries, delays) = run_supervised(RestartPolicy::No, 0);
    let got: Vec<(Stream, Tag, &[u8])> = entries
        .iter()
        .map(|e| (e.stream, e.tag, e.content.as_slice()))
        .collect();
    // The two streams are copied by two threads: their order may vary.
    assert_eq!(got.len(), 2, "log: {got:?}");
    assert!(
        got.contains(&(Stream::Stdout, Tag::Full, &b"out"[..])),
        "log: {got:?}"
    );
    assert!(
        got.contains(&(Stream::Stderr, Tag::Full, &b"err"[..])),
        "log: {got:?}"
    );
    assert_eq!(delays, "");
}

#[test]
fn on_failure_restarts_exactly_n_times_with_growing_delay() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let policy = RestartPolicy::OnFailure {
        max_retries: Some(3),
    };
    let (entries, delays) = run_supervised(policy, 3);
    assert_eq!(delays, "10,20,40");
    // Four runs, each logging both lines, appended to one log.
    let count = |stream, content: &[u8]| {
        entries
            .iter()
            .filter(|e| e.stream == stream && e.tag == Tag::Full && e.content == content)
            .count()
    };
    assert_eq!(count(Stream::Stdout, b"out"), 4);
    assert_eq!(count(Stream::Stderr, b"err"), 4);
    assert_eq!(entries.len(), 8);
}

#[test]
fn stop_during_backoff_ends_the_restarts() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let (entries, delays) = run_supervised(RestartPolicy::Always, 0);
    assert_eq!(delays, "10");
    // One run: stopped while waiting to restart, it is not restarted.
    assert_eq!(entries.len(), 2, "{entries:?}");
}
