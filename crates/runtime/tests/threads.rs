//! The runtime library called from a multi-threaded program: containers are
//! created, started, waited for and deleted while other threads allocate
//! heavily and hold a Mutex in a tight loop. The forked setup process must
//! not deadlock on a lock another thread held at fork time; a watchdog fails
//! the test instead of letting it hang.
//!
//! Needs root and busybox-static at /bin/busybox (like the CLI tests).

use std::fs;
use std::hint::black_box;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pea_runtime::{CreateOptions, ExitStatus, Runtime};
use serde_json::json;

/// A bundle with a minimal busybox rootfs and a runc-like config.
fn make_bundle(dir: &Path) -> PathBuf {
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
    for applet in ["sh", "true", "cat", "echo", "sleep"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "read x < /proc/self/stat && exit 0"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "pea-threads",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"]
        }
    });
    fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    dir.to_path_buf()
}

/// Force-deletes every container it was told about, even when the test fails.
struct Cleanup<'a> {
    rt: &'a Runtime,
    ids: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            if self.rt.root().join(id).exists() {
                let _ = self.rt.delete(id, true);
            }
        }
    }
}

/// Allocation churn and a contended Mutex until `stop`.
fn churn(t: usize, stop: Arc<AtomicBool>, shared: Arc<Mutex<Vec<String>>>, rounds: Arc<AtomicU64>) {
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let mut v: Vec<String> = (0..64).map(|i| format!("{t}-{n}-{i}")).collect();
        v.sort_unstable();
        let big = vec![n as u8; 1 << (10 + n % 10)];
        black_box(&big);
        {
            // Hold the lock while allocating, so a fork often happens with
            // both the Mutex and malloc busy in this thread.
            let mut g = shared.lock().unwrap();
            g.extend(v.drain(..8));
            g.push(String::with_capacity(4096));
            if g.len() > 4096 {
                g.clear();
                g.shrink_to_fit();
            }
        }
        drop(big);
        n = n.wrapping_add(1);
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn lifecycle_from_a_busy_multithreaded_program() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runtime tests need root"
    );
    let tmp = tempfile::Builder::new()
        .prefix("pea-threads-")
        .tempdir()
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let bundle = make_bundle(&base.join("bundle"));
    let rt = Runtime::new(base.join("state"));
    pea_runtime::become_subreaper().expect("become subreaper");

    // Watchdog: a deadlock fails the whole test binary instead of hanging it.
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::Relaxed) {
                if Instant::now() >= deadline {
                    eprintln!("deadlock: the lifecycle loop did not finish within 60 s");
                    std::process::exit(101);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Vec::new()));
    let rounds = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (stop, shared, rounds) = (stop.clone(), shared.clone(), rounds.clone());
            std::thread::spawn(move || churn(t, stop, shared, rounds))
        })
        .collect();

    let mut cleanup = Cleanup {
        rt: &rt,
        ids: Vec::new(),
    };
    for i in 0..20 {
        let id = format!("threads-{}-{i}", std::process::id());
        cleanup.ids.push(id.clone());
        let pid = rt
            .create(&CreateOptions {
                id: id.clone(),
                bundle: bundle.clone(),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("create {id}: {e}"));
        rt.start(&id).unwrap_or_else(|e| panic!("start {id}: {e}"));
        let status = pea_runtime::wait_pid(pid).unwrap_or_else(|e| panic!("wait {id}: {e}"));
        assert_eq!(status, ExitStatus::Exited(0), "container {id}");
        rt.delete(&id, false)
            .unwrap_or_else(|e| panic!("delete {id}: {e}"));
        assert!(!rt.root().join(&id).exists(), "state of {id} left");
    }
    drop(cleanup);

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker panicked");
    }
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    assert!(
        rounds.load(Ordering::Relaxed) > 0,
        "the worker threads never ran"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(base.to_str().unwrap()),
        "host mounts left under {}",
        base.display()
    );
}
