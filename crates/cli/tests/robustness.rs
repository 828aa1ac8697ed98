//! Robustness: a `create` killed at any point leaves nothing `delete --force`
//! cannot clean; concurrent operations (many ids, and one id); every error
//! path leaves nothing behind; descriptor passing (--preserve-fds,
//! LISTEN_FDS) and no descriptor leaks (CVE-2024-21626); `spec` and
//! `features` output that other tools can consume.

mod common;

use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Bundle, Out, Running, Runtime, TIMEOUT, host_mounts_mentioning, pids_in_cgroup_named,
    proc_alive, proc_stat, processes_mentioning, runtime_bin, wait_file_contains, wait_for,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// helpers

/// Live processes (not this one) whose cwd or root is at or below `dir`.
fn procs_rooted_in(dir: &Path) -> Vec<String> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || !proc_alive(pid) {
            continue;
        }
        for link in ["cwd", "root"] {
            if let Ok(t) = fs::read_link(format!("/proc/{pid}/{link}"))
                && t.starts_with(dir)
            {
                out.push(format!("{pid}: {link} -> {}", t.display()));
            }
        }
    }
    out
}

/// Everything of container `id` (made from bundle `b`) is gone: no process
/// in a cgroup named after it, rooted in its rootfs or naming it (waited for,
/// bounded: a half-made init exits on its own once the runtime is gone), no
/// state dir, no cgroup dir, no host mount naming the bundle or the id.
#[track_caller]
fn assert_nothing_left(rt: &Runtime, id: &str, b: &Bundle) {
    let rootfs = b.rootfs();
    let mut left = Vec::new();
    let gone = wait_for(TIMEOUT, || {
        left = pids_in_cgroup_named(id)
            .iter()
            .map(|p| format!("{p}: in cgroup {id}"))
            .collect();
        left.extend(procs_rooted_in(&rootfs));
        left.extend(processes_mentioning(id));
        left.is_empty()
    });
    assert!(gone, "processes left for {id}: {left:?}");
    rt.assert_gone(id);
    let m = host_mounts_mentioning(b.path_str());
    assert!(m.is_empty(), "host mounts naming the bundle: {m:?}");
}

/// SIGKILL a runtime invocation in flight and collect it.
fn sigkill(r: Running) -> Out {
    let pid = r.pid() as i32;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    r.wait()
}

/// Kills (on drop) a host process that recorded its pid in a file, if it is
/// still the same process; for hooks orphaned by a killed runtime.
struct PidFileGuard(PathBuf, Option<(i32, u64)>);

impl PidFileGuard {
    fn new(path: PathBuf) -> Self {
        PidFileGuard(path, None)
    }
    /// Reads the pid (and start time) once the file is there.
    fn read(&mut self) -> Option<i32> {
        if self.1.is_none() {
            let pid: i32 = fs::read_to_string(&self.0).ok()?.trim().parse().ok()?;
            let (_, start) = proc_stat(pid)?;
            self.1 = Some((pid, start));
        }
        self.1.map(|p| p.0)
    }
    fn alive(&self) -> bool {
        self.1.is_some_and(|(pid, start)| {
            proc_alive(pid) && proc_stat(pid).map(|s| s.1) == Some(start)
        })
    }
}

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        let _ = self.read();
        if self.alive() {
            let (pid, _) = self.1.unwrap();
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A hook that records its host pid (the shell reads /proc/self/stat of the
/// host's procfs, which also works in a container's pid namespace before
/// pivot), touches `marker` and sleeps.
fn sleeping_hook(pid_file: &Path, marker: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "read pid rest < /proc/self/stat; echo $pid > {}; touch {}; exec sleep 1000",
            pid_file.display(),
            marker.display()
        ),
    ]
}

/// xorshift64: reproducible "random" delays without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Host-side list of the open descriptors of `pid`, sorted.
fn fds_of(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// Waits (bounded) until `pid` has exec'd a program whose argv[0] is `name`.
#[track_caller]
fn wait_exec(pid: i32, name: &str) {
    let mut last = String::new();
    let ok = wait_for(TIMEOUT, || {
        last = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        last.split(' ').next() == Some(name)
    });
    assert!(ok, "pid {pid} never exec'd {name} (cmdline {last:?})");
}

/// `ls -l /proc/self/fd` output: (fd, link target) pairs.
fn ls_fds(listing: &str) -> Vec<(i32, String)> {
    listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.trim().to_string()))
        })
        .collect()
}

/// Descriptors of an `ls -l /proc/self/fd` listing other than stdio, the
/// passed ones (3..3+passed) and ls's own handle on the directory.
fn unexpected_fds(listing: &str, passed: i32) -> Vec<(i32, String)> {
    ls_fds(listing)
        .into_iter()
        .filter(|(fd, target)| *fd >= 3 + passed && !target.starts_with("/proc/"))
        .collect()
}

/// Runs `sh -c SCRIPT <runtime> --root <root> ARGS...` (the runtime is "$0",
/// its arguments "$@") with `fd3` as descriptor 3, to completion (bounded).
fn runtime_via_sh(rt: &Runtime, script: &str, args: &[&str], fd3: &OwnedFd) -> Out {
    let io = rt.host_dir("io");
    let (out, err) = (io.join("out"), io.join("err"));
    let mut full: Vec<String> = vec![
        "-c".into(),
        script.into(),
        runtime_bin().to_string_lossy().into_owned(),
        "--root".into(),
        rt.root().to_string_lossy().into_owned(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let high = nix::fcntl::fcntl(fd3, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)).expect("dup");
    // SAFETY: a fresh descriptor nothing else owns.
    let high = unsafe { OwnedFd::from_raw_fd(high) };
    let mut cmd = Command::new("/bin/sh");
    cmd.args(&full)
        .current_dir(rt.base())
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(high.as_raw_fd(), 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn /bin/sh");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out: sh {full:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        args: full,
        status,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------
// a killed runtime

/// `create` killed while a hook of `stage` sleeps: `delete --force` cleans up.
fn kill_create_during_hook(stage: &str) {
    let rt = Runtime::new(&format!("rb-kill-{stage}"));
    let dir = rt.host_dir("hook");
    let marker = dir.join("reached");
    let mut hook = PidFileGuard::new(dir.join("hook.pid"));
    let mut b = rt.bundle();
    let args = sleeping_hook(&hook.0, &marker);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    b.long_running().hook(stage, "/bin/sh", &args);
    b.save();
    let id = rt.id();
    let create = rt.spawn(&["create", "--bundle", b.path_str(), &id]);
    let reached = wait_for(TIMEOUT, || marker.exists() && hook.read().is_some());
    let out = sigkill(create);
    assert!(reached, "the {stage} hook never ran: {out:?}");
    assert_eq!(
        out.status.signal(),
        Some(9),
        "create was not killed: {out:?}"
    );

    // `state` copes with the half-made container (or says it is gone).
    let st = rt.cmd(&["state", &id]);
    if st.success() {
        let v: Value = serde_json::from_str(&st.stdout).expect("state is JSON");
        assert!(
            matches!(v["status"].as_str(), Some("creating" | "stopped")),
            "{v}"
        );
    } else {
        st.failed();
    }
    rt.cmd(&["delete", "--force", &id]).ok();
    if matches!(stage, "createRuntime" | "prestart") {
        // Runs on the host, outside the container: orphaned like with runc.
        drop(hook);
    } else {
        // Runs inside the container's namespaces and cgroup: must be gone.
        assert!(
            wait_for(TIMEOUT, || !hook.alive()),
            "the {stage} hook outlived `delete --force`"
        );
    }
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn killed_create_during_create_runtime_hook() {
    kill_create_during_hook("createRuntime");
}

#[test]
fn killed_create_during_prestart_hook() {
    kill_create_during_hook("prestart");
}

#[test]
fn killed_create_during_create_container_hook() {
    kill_create_during_hook("createContainer");
}

#[test]
fn killed_start_during_start_container_hook() {
    let rt = Runtime::new("rb-kill-start");
    let dir = rt.host_dir("hook");
    let marker = dir.join("reached");
    let mut b = rt.bundle();
    // Runs inside the container (after pivot): paths are the container's.
    b.bind(&dir, "/hook", false).long_running().hook(
        "startContainer",
        "/bin/sh",
        &["sh", "-c", "touch /hook/reached; exec sleep 1000"],
    );
    let id = rt.id();
    rt.create(&b, &id).ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let start = rt.spawn(&["start", &id]);
    let reached = wait_for(TIMEOUT, || marker.exists());
    let out = sigkill(start);
    assert!(reached, "the startContainer hook never ran: {out:?}");
    rt.cmd(&["delete", "--force", &id]).ok();
    assert!(
        wait_for(TIMEOUT, || !proc_alive(pid)),
        "init {pid} survived"
    );
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn killed_create_at_random_points() {
    let rt = Runtime::new("rb-kill-random");
    let mut b = rt.bundle();
    b.long_running();
    b.save();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    for i in 0..12 {
        let id = rt.id();
        let create = rt.spawn(&["create", "--bundle", b.path_str(), &id]);
        let delay = if i < 2 { i } else { rng.below(50) };
        std::thread::sleep(Duration::from_millis(delay));
        let out = sigkill(create);
        let del = rt.cmd(&["delete", "--force", &id]);
        assert!(
            del.success(),
            "seed {seed:#x}, iteration {i}, killed after {delay} ms ({out:?}): {del:?}"
        );
        assert_nothing_left(&rt, &id, &b);
    }
}

// ---------------------------------------------------------------------------
// concurrency

#[test]
fn many_containers_concurrently() {
    let rt = Runtime::new("rb-many");
    std::thread::scope(|s| {
        for t in 0..8 {
            let rt = &rt;
            s.spawn(move || {
                let out = rt.host_dir(&format!("t{t}"));
                let mut b = rt.bundle();
                b.bind(&out, "/out", false).sh("echo $$ >> /out/ran");
                for _ in 0..5 {
                    let id = rt.id();
                    rt.create(&b, &id).ok();
                    rt.start(&id).ok();
                    rt.wait_status(&id, "stopped");
                    rt.delete(&id).ok();
                    rt.assert_gone(&id);
                }
                let ran = fs::read_to_string(out.join("ran")).unwrap();
                assert_eq!(ran.lines().collect::<Vec<_>>(), ["1"; 5], "thread {t}");
            });
        }
    });
}

#[test]
fn concurrent_creates_of_one_id() {
    let rt = Runtime::new("rb-same-create");
    let outs = [rt.host_dir("a"), rt.host_dir("b")];
    let bundles: Vec<Bundle> = outs
        .iter()
        .map(|o| {
            let mut b = rt.bundle();
            b.bind(o, "/out", false).sh("echo ran >> /out/ran");
            b.save();
            b
        })
        .collect();
    for round in 0..5 {
        let id = rt.id();
        let runs: Vec<Running> = bundles
            .iter()
            .map(|b| rt.spawn(&["create", "--bundle", b.path_str(), &id]))
            .collect();
        let results: Vec<Out> = runs.into_iter().map(Running::wait).collect();
        let winners: Vec<usize> = (0..2).filter(|i| results[*i].success()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let (w, l) = (winners[0], 1 - winners[0]);
        let mut results = results;
        let loser = results.remove(l);
        loser.failed().mentions_any(&["exist", "in use"]);
        let st = rt.state(&id);
        assert_eq!(st["status"], "created", "{st}");
        assert_eq!(st["bundle"], bundles[w].path_str(), "{st}");
        rt.start(&id).ok();
        rt.wait_status(&id, "stopped");
        rt.delete(&id).ok();
        rt.assert_gone(&id);
        let ran = |i: usize| fs::read_to_string(outs[i].join("ran")).unwrap_or_default();
        assert_eq!(ran(w).lines().count(), 1, "round {round}");
        assert_eq!(ran(l), "", "round {round}: the losing bundle ran");
        fs::remove_file(outs[w].join("ran")).unwrap();
    }
}

#[test]
fn concurrent_starts_of_one_id() {
    let rt = Runtime::new("rb-same-start");
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.bind(&out, "/out", false).sh("echo ran >> /out/ran");
    for round in 0..5 {
        let id = rt.id();
        rt.create(&b, &id).ok();
        let runs: Vec<Running> = (0..2).map(|_| rt.spawn(&["start", &id])).collect();
        let results: Vec<Out> = runs.into_iter().map(Running::wait).collect();
        let ok = results.iter().filter(|o| o.success()).count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        for r in results.into_iter().filter(|o| !o.success()) {
            r.failed();
        }
        rt.wait_status(&id, "stopped");
        rt.delete(&id).ok();
        rt.assert_gone(&id);
        let ran = fs::read_to_string(out.join("ran")).unwrap();
        assert_eq!(
            ran, "ran\n",
            "round {round}: the process ran more than once"
        );
        fs::remove_file(out.join("ran")).unwrap();
    }
}

#[test]
fn concurrent_force_deletes_of_one_id() {
    let rt = Runtime::new("rb-same-delete");
    let mut b = rt.bundle();
    b.long_running();
    for _ in 0..3 {
        let (id, _) = rt.start_container(&b);
        let runs: Vec<Running> = (0..3)
            .map(|_| rt.spawn(&["delete", "--force", &id]))
            .collect();
        for r in runs {
            r.wait().ok();
        }
        assert_nothing_left(&rt, &id, &b);
    }
}

/// `delete --force` racing `start`, `kill`, `state` and another delete: every
/// invocation ends (success or one clean error line) and nothing is left.
#[test]
fn delete_races_other_operations_on_one_id() {
    let rt = Runtime::new("rb-same-mixed");
    let mut b = rt.bundle();
    b.long_running();
    b.save();
    for round in 0..5 {
        let id = rt.id();
        rt.create(&b, &id).ok();
        let ops: [&[&str]; 5] = [
            &["delete", "--force", &id],
            &["start", &id],
            &["kill", &id, "KILL"],
            &["state", &id],
            &["delete", "--force", &id],
        ];
        let runs: Vec<Running> = ops.iter().map(|a| rt.spawn(a)).collect();
        for (i, r) in runs.into_iter().enumerate() {
            let out = r.wait();
            if ops[i][0] == "delete" {
                assert!(out.success(), "round {round}: {out:?}");
            } else if !out.success() {
                out.failed();
            }
        }
        // A straggler (e.g. `start` after the deletes) may have started it.
        rt.cmd(&["delete", "--force", &id]).ok();
        assert_nothing_left(&rt, &id, &b);
    }
}

// ---------------------------------------------------------------------------
// every error path leaves nothing

/// `create` (of a long-running process) fails with one clear line naming one
/// of `needles`, the user process never runs and nothing is left.
#[track_caller]
fn create_fails_cleanly(rt: &Runtime, b: &mut Bundle, needles: &[&str]) -> Out {
    let marker_dir = rt.host_dir("marker");
    b.bind(&marker_dir, "/marker", false)
        .sh(&format!("touch /marker/ran; {}", common::UNTIL_TERM));
    let id = rt.id();
    let out = rt.create(b, &id).failed().mentions_any(needles);
    assert_nothing_left(rt, &id, b);
    // `start` of the failed container fails too, and runs nothing.
    rt.start(&id).failed();
    assert!(!marker_dir.join("ran").exists(), "the user process ran");
    out
}

#[test]
fn failing_create_container_hook() {
    let rt = Runtime::new("rb-err-cc-hook");
    let mut b = rt.bundle();
    b.long_running().hook(
        "createContainer",
        "/bin/sh",
        &["sh", "-c", "echo hook-says-no >&2; exit 3"],
    );
    create_fails_cleanly(&rt, &mut b, &["createContainer"]);
}

#[test]
fn missing_hook_binary() {
    let rt = Runtime::new("rb-err-hook-path");
    let mut b = rt.bundle();
    b.long_running()
        .hook("createRuntime", "/nonexistent/pea-hook", &["pea-hook"]);
    create_fails_cleanly(&rt, &mut b, &["/nonexistent/pea-hook"]);
}

#[test]
fn nonexistent_bind_source() {
    let rt = Runtime::new("rb-err-bind");
    let missing = rt.base().join("no-such-bind-source");
    let mut b = rt.bundle();
    b.long_running().bind(&missing, "/mnt/x", false);
    create_fails_cleanly(&rt, &mut b, &[missing.to_str().unwrap()]);
    assert!(!missing.exists());
}

#[test]
fn overlapping_uid_mappings() {
    let rt = Runtime::new("rb-err-uidmap");
    let mut b = rt.bundle();
    b.long_running()
        .namespace("user", None)
        .uid_map(0, 100000, 65536)
        .uid_map(10, 300000, 10)
        .gid_map(0, 100000, 65536);
    create_fails_cleanly(&rt, &mut b, &["uid_map", "uidMappings"]);
}

#[test]
fn user_namespace_without_mappings() {
    let rt = Runtime::new("rb-err-nomap");
    let mut b = rt.bundle();
    b.long_running().namespace("user", None);
    create_fails_cleanly(&rt, &mut b, &["uidMappings"]);
}

#[test]
fn rlimit_soft_above_hard() {
    let rt = Runtime::new("rb-err-rlimit-order");
    let mut b = rt.bundle();
    b.long_running();
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]);
    create_fails_cleanly(&rt, &mut b, &["RLIMIT_NOFILE"]);
}

/// Whether this process has CAP_SYS_RESOURCE (which may raise hard limits).
fn have_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let eff = common::proc_status(std::process::id() as i32, "CapEff");
    u64::from_str_radix(&eff, 16).unwrap() & (1 << CAP_SYS_RESOURCE) != 0
}

#[test]
fn rlimit_hard_above_current_hard() {
    let rt = Runtime::new("rb-err-rlimit-raise");
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    // Above fs.nr_open nobody may go; without CAP_SYS_RESOURCE (as in some
    // sandboxes) not even root may raise its own hard limit.
    let too_high = if have_cap_sys_resource() {
        fs::read_to_string("/proc/sys/fs/nr_open")
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
            + 1
    } else {
        hard + 1
    };
    let mut b = rt.bundle();
    b.long_running();
    b.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": too_high}]);
    let out = create_fails_cleanly(&rt, &mut b, &["RLIMIT_NOFILE"]);
    assert!(out.stderr.contains(&too_high.to_string()), "{out:?}");
}

#[test]
fn unknown_namespace_path() {
    let rt = Runtime::new("rb-err-nspath");
    let missing = rt.base().join("no-such-netns");
    let mut b = rt.bundle();
    b.long_running()
        .namespace("network", Some(missing.to_str().unwrap()));
    create_fails_cleanly(&rt, &mut b, &[missing.to_str().unwrap()]);
}

#[test]
fn namespace_path_that_is_not_a_namespace() {
    let rt = Runtime::new("rb-err-nsfile");
    let dir = rt.host_dir("ns");
    let file = dir.join("not-a-namespace");
    fs::write(&file, "").unwrap();
    let mut b = rt.bundle();
    b.long_running()
        .namespace("ipc", Some(file.to_str().unwrap()));
    create_fails_cleanly(&rt, &mut b, &["ipc", file.to_str().unwrap()]);
}

#[test]
fn console_socket_that_does_not_exist() {
    let rt = Runtime::new("rb-err-console");
    let missing = rt.base().join("no-such-console.sock");
    let mut b = rt.bundle();
    b.long_running().terminal(true);
    b.save();
    let id = rt.id();
    rt.cmd(&[
        "create",
        "--console-socket",
        missing.to_str().unwrap(),
        "--bundle",
        b.path_str(),
        &id,
    ])
    .failed()
    .mentions_any(&[missing.to_str().unwrap()]);
    assert_nothing_left(&rt, &id, &b);
    assert!(!missing.exists());
}

#[test]
fn hostname_without_uts_namespace() {
    let rt = Runtime::new("rb-err-hostname");
    let before = nix::unistd::gethostname().unwrap();
    let mut b = rt.bundle();
    b.long_running()
        .remove_namespace("uts")
        .set_hostname("pea-must-not-reach-the-host");
    create_fails_cleanly(&rt, &mut b, &["uts"]);
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
}

// ---------------------------------------------------------------------------
// descriptors

#[test]
fn preserve_two_fds() {
    let rt = Runtime::new("rb-preserve-2");
    let dir = rt.host_dir("fds");
    let out = rt.host_dir("out");
    fs::write(dir.join("three"), "content-of-three\n").unwrap();
    fs::write(dir.join("four"), "content-of-four\n").unwrap();
    let f3 = OwnedFd::from(File::open(dir.join("three")).unwrap());
    let f4 = OwnedFd::from(File::open(dir.join("four")).unwrap());
    let mut b = rt.bundle();
    b.bind(&out, "/out", false).sh(
        "cat /proc/self/fd/3 > /out/3; cat /proc/self/fd/4 > /out/4; \
         ls -l /proc/self/fd > /out/ls; exec sleep 100000",
    );
    b.save();
    let id = rt.id();
    rt.spawn_with_fds(
        &[
            "create",
            "--preserve-fds",
            "2",
            "--bundle",
            b.path_str(),
            &id,
        ],
        &[&f3, &f4],
    )
    .wait()
    .ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    rt.start(&id).ok();
    wait_exec(pid, "sleep");
    assert_eq!(
        fs::read_to_string(out.join("3")).unwrap(),
        "content-of-three\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("4")).unwrap(),
        "content-of-four\n"
    );
    let ls = fs::read_to_string(out.join("ls")).unwrap();
    let extra = unexpected_fds(&ls, 2);
    assert!(extra.is_empty(), "unexpected descriptors inside: {ls}");
    assert_eq!(
        fds_of(pid),
        [0, 1, 2, 3, 4],
        "descriptors of the container process"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/fd/4")).unwrap(),
        dir.join("four")
    );
    rt.cmd(&["delete", "--force", &id]).ok();
    assert_nothing_left(&rt, &id, &b);
}

/// Socket activation: pea started with LISTEN_FDS=1 and LISTEN_PID=<its pid>.
#[test]
fn listen_fds_socket_activation() {
    let rt = Runtime::new("rb-listen-fds");
    let out = rt.host_dir("out");
    let sock_path = rt.host_dir("sock").join("activation.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let ino = fs::metadata(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        .map(|m| m.ino())
        .unwrap();
    let sock = OwnedFd::from(listener);
    let mut b = rt.bundle();
    b.bind(&out, "/out", false).sh(
        "echo \"$LISTEN_FDS $LISTEN_PID $$\" > /out/env; readlink /proc/self/fd/3 > /out/fd3; \
         ls -l /proc/self/fd > /out/ls; exec sleep 100000",
    );
    b.save();
    let id = rt.id();
    runtime_via_sh(
        &rt,
        "LISTEN_PID=$$ exec env LISTEN_FDS=1 \"$0\" \"$@\"",
        &["create", "--bundle", b.path_str(), &id],
        &sock,
    )
    .ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    rt.start(&id).ok();
    wait_exec(pid, "sleep");
    let env = fs::read_to_string(out.join("env")).unwrap();
    assert_eq!(env.trim(), "1 1 1", "LISTEN_FDS LISTEN_PID $$ inside");
    let fd3 = fs::read_to_string(out.join("fd3")).unwrap();
    assert_eq!(fd3.trim(), format!("socket:[{ino}]"));
    let ls = fs::read_to_string(out.join("ls")).unwrap();
    let extra = unexpected_fds(&ls, 1);
    assert!(extra.is_empty(), "unexpected descriptors inside: {ls}");
    assert_eq!(fds_of(pid), [0, 1, 2, 3]);
    rt.cmd(&["delete", "--force", &id]).ok();
    assert_nothing_left(&rt, &id, &b);
}

/// LISTEN_FDS meant for another process (LISTEN_PID is not pea's) is ignored:
/// no LISTEN_FDS inside, and the descriptor is not passed.
#[test]
fn listen_fds_for_another_pid_is_ignored() {
    let rt = Runtime::new("rb-listen-other");
    let out = rt.host_dir("out");
    let sock_path = rt.host_dir("sock").join("activation.sock");
    let sock = OwnedFd::from(UnixListener::bind(&sock_path).unwrap());
    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .sh("echo \"[$LISTEN_FDS]\" > /out/env; exec sleep 100000");
    b.save();
    let id = rt.id();
    runtime_via_sh(
        &rt,
        "LISTEN_PID=1 LISTEN_FDS=1 exec \"$0\" \"$@\"",
        &["create", "--bundle", b.path_str(), &id],
        &sock,
    )
    .ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    rt.start(&id).ok();
    wait_exec(pid, "sleep");
    assert_eq!(fs::read_to_string(out.join("env")).unwrap(), "[]\n");
    assert_eq!(fds_of(pid), [0, 1, 2]);
    rt.cmd(&["delete", "--force", &id]).ok();
    assert_nothing_left(&rt, &id, &b);
}

/// Descriptors the runtime inherits (not preserved) and its own never reach
/// the container's init or an exec'd process (CVE-2024-21626).
#[test]
fn no_host_fd_leaks_into_container() {
    let rt = Runtime::new("rb-fd-leak");
    let out = rt.host_dir("out");
    let dir = rt.host_dir("leak");
    let open = |name: &str| {
        fs::write(dir.join(name), name).unwrap();
        OwnedFd::from(File::open(dir.join(name)).unwrap())
    };
    let dir_fd = OwnedFd::from(File::open(rt.base()).unwrap());
    let (a, c) = (open("a"), open("c"));
    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .sh("ls -l /proc/self/fd > /out/ls; exec sleep 100000");
    b.save();
    let id = rt.id();
    rt.spawn_with_fds(
        &["create", "--bundle", b.path_str(), &id],
        &[&a, &dir_fd, &c],
    )
    .wait()
    .ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    // Before start, too: the waiting init holds only what it needs itself.
    for fd in fds_of(pid).into_iter().filter(|fd| *fd > 2) {
        let target = fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap_or_default();
        assert!(
            !target.starts_with(rt.base()) || target.starts_with(rt.root()),
            "created init holds fd {fd} -> {}",
            target.display()
        );
    }
    rt.start(&id).ok();
    wait_exec(pid, "sleep");
    assert_eq!(
        fds_of(pid),
        [0, 1, 2],
        "descriptors of the container process"
    );
    let ls = wait_file_contains(&out.join("ls"), " 2 -> ");
    assert!(unexpected_fds(&ls, 0).is_empty(), "inside: {ls}");

    let exec = rt
        .spawn_with_fds(
            &["exec", &id, "ls", "-l", "/proc/self/fd"],
            &[&a, &dir_fd, &c],
        )
        .wait()
        .ok();
    assert!(
        unexpected_fds(&exec.stdout, 0).is_empty(),
        "exec'd process: {exec:?}"
    );
    rt.cmd(&["delete", "--force", &id]).ok();
    assert_nothing_left(&rt, &id, &b);
}

/// Names that would show that a listing is of a host directory (the bundle,
/// the state dir, a cgroup, the runtime's working directory).
const HOST_NAMES: [&str; 7] = [
    "config.json",
    "state.json",
    "cgroup.procs",
    "pea-host-canary",
    "bundles",
    "rootfs",
    "start.sock",
];

/// Output of `readlink /proc/self/cwd; ls -a` run with a /proc/self/fd/N cwd.
#[track_caller]
fn assert_not_host_dir(text: &str, what: &str) {
    let mut lines = text.lines();
    let cwd = lines.next().unwrap_or_default();
    assert!(
        cwd.starts_with('/') && !cwd.contains("unreachable"),
        "{what}: cwd outside the container: {text}"
    );
    for l in lines {
        assert!(
            !HOST_NAMES.contains(&l.trim()),
            "{what}: host files visible: {text}"
        );
    }
}

#[test]
fn cwd_through_proc_self_fd_never_reaches_host() {
    let rt = Runtime::new("rb-cwd-fd");
    fs::write(rt.base().join("pea-host-canary"), "").unwrap();
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    fs::write(b.path().join("pea-host-canary"), "").unwrap();
    b.bind(&out, "/out", false)
        .sh("{ readlink /proc/self/cwd; ls -a; } > /out/cwd 2>&1");
    for n in 3..=12 {
        let what = format!("process.cwd /proc/self/fd/{n}");
        b.cwd(&format!("/proc/self/fd/{n}"));
        let _ = fs::remove_file(out.join("cwd"));
        let id = rt.id();
        let created = rt.create(&b, &id);
        if !created.success() {
            created.failed();
            assert_nothing_left(&rt, &id, &b);
            continue;
        }
        let started = rt.start(&id);
        if started.success() {
            rt.wait_status(&id, "stopped");
            let text = fs::read_to_string(out.join("cwd")).unwrap_or_default();
            assert_not_host_dir(&text, &what);
        } else {
            started.failed();
        }
        rt.cmd(&["delete", "--force", &id]).ok();
        assert_nothing_left(&rt, &id, &b);
    }

    // The same through `exec --cwd`.
    b.cwd("/").long_running();
    let (id, _) = rt.start_container(&b);
    for n in 3..=12 {
        let fd_cwd = format!("/proc/self/fd/{n}");
        let r = rt.exec(&[
            "--cwd",
            &fd_cwd,
            &id,
            "sh",
            "-c",
            "readlink /proc/self/cwd; ls -a",
        ]);
        if r.success() {
            assert_not_host_dir(&r.stdout, &format!("exec --cwd {fd_cwd}"));
        } else {
            r.failed();
        }
    }
    rt.cmd(&["delete", "--force", &id]).ok();
    assert_nothing_left(&rt, &id, &b);
}

// ---------------------------------------------------------------------------
// spec and features

#[test]
fn spec_config_runs_with_terminal_off() {
    let rt = Runtime::new("rb-spec-run");
    let mut b = rt.bundle();
    rt.cmd(&["spec", "--bundle", b.path_str()]).ok();
    let text = fs::read_to_string(b.path().join("config.json")).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).expect("spec writes JSON");
    // Only the terminal changes (stdin is /dev/null: the default `sh` exits 0).
    cfg["process"]["terminal"] = json!(false);
    b.config = cfg;
    let id = rt.id();
    rt.run(&b, &id).ok();
    rt.assert_gone(&id);
}

fn version_tuple(v: &str) -> (u64, u64, u64) {
    let core = v.split(['-', '+']).next().unwrap();
    let mut it = core.split('.').map(|p| p.parse::<u64>().expect(v));
    (
        it.next().unwrap(),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

#[test]
fn features_is_consumable_json() {
    let rt = Runtime::new("rb-features");
    let out = rt.cmd(&["features"]).ok();
    let f: Value = serde_json::from_str(&out.stdout).expect("features prints JSON");
    let min = f["ociVersionMin"].as_str().expect("ociVersionMin");
    let max = f["ociVersionMax"].as_str().expect("ociVersionMax");
    assert!(version_tuple(min) <= version_tuple(max), "{min} > {max}");
    assert!(version_tuple(min) >= (1, 0, 0), "{min}");
    let strings = |v: &Value, what: &str| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("{what} is not an array: {f}"))
            .iter()
            .map(|s| {
                s.as_str()
                    .unwrap_or_else(|| panic!("{what}: {s} is not a string"))
                    .to_string()
            })
            .collect()
    };
    let hooks = strings(&f["hooks"], "hooks");
    let mut sorted = hooks.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), hooks.len(), "duplicate hooks: {hooks:?}");
    assert_eq!(hooks.len(), 6, "{hooks:?}");
    let opts = strings(&f["mountOptions"], "mountOptions");
    for o in ["rbind", "ro", "nosuid", "rprivate", "rslave"] {
        assert!(opts.iter().any(|x| x == o), "{o} missing: {opts:?}");
    }
    let ns = strings(&f["linux"]["namespaces"], "linux.namespaces");
    for n in [
        "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
    ] {
        assert!(ns.iter().any(|x| x == n), "{n} missing: {ns:?}");
    }
}
