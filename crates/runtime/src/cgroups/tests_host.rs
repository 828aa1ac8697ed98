//! Tests against this host's real cgroup hierarchies. They need root and a
//! writable cgroup filesystem and skip (with a note) otherwise; the hybrid
//! ones also skip on other layouts. Every test uses its own cgroup path and
//! a guard that kills its children and removes its cgroups even on failure.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use oci_spec::runtime::{
    LinuxDeviceType as T, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResourcesBuilder,
};

use super::devices::tests::rule;
use super::hybrid::Hybrid;
use super::v1::V1;
use super::v2::V2;
use super::*;

const MB: i64 = 1 << 20;

fn unique_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    PathBuf::from(format!("/pea-test-{}-{n}", std::process::id()))
}

/// The host layout if these tests can run here.
fn host(need_hybrid: bool) -> Option<Layout> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let layout = Layout::detect().ok()?;
    if need_hybrid && layout.kind() != LayoutKind::Hybrid {
        eprintln!("skipped: needs a hybrid cgroup host");
        return None;
    }
    Some(layout)
}

/// Kills its children and destroys its cgroups on drop.
struct Guard {
    mgr: Box<dyn CgroupManager>,
    children: Vec<Child>,
}

impl Guard {
    fn new(mgr: Box<dyn CgroupManager>) -> Self {
        Self {
            mgr,
            children: Vec::new(),
        }
    }

    /// Spawn `sh -c script` with piped stdin/stdout and put it in the cgroup.
    fn spawn(&mut self, script: &str) -> (i32, ChildStdin, BufReader<ChildStdout>) {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as i32;
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        self.children.push(child);
        self.mgr.add_process(pid).expect("add_process");
        (pid, stdin, stdout)
    }

    /// Reap the child `pid` and return the signal that ended it.
    fn reap(&mut self, pid: i32) -> Option<i32> {
        let i = self.children.iter().position(|c| c.id() as i32 == pid)?;
        let mut c = self.children.remove(i);
        c.wait().expect("wait").signal()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.mgr.destroy() {
            eprintln!("cleanup of {} failed: {e}", self.mgr.path().display());
        }
    }
}

fn line(out: &mut BufReader<ChildStdout>) -> String {
    let mut s = String::new();
    out.read_line(&mut s).expect("read child output");
    s.trim().to_string()
}

fn procs(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default()
}

fn contains_pid(dir: &Path, pid: i32) -> bool {
    procs(dir).lines().any(|l| l.trim() == pid.to_string())
}

#[test]
fn host_limits_stats_freeze_and_destroy_with_process_inside() {
    let Some(layout) = host(false) else { return };
    let path = unique_path();
    let mut g = Guard::new(layout.open(&path).unwrap());
    g.mgr.create().unwrap();
    // Burns some CPU once told to (i.e. once inside the cgroup), then sleeps.
    let (pid, mut input, mut out) = g.spawn(
        "read x; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo busy-done; exec sleep 100",
    );
    assert!(g.mgr.pids().unwrap().contains(&pid));
    for (dir, _) in g.mgr.mount_sources() {
        assert!(contains_pid(&dir, pid), "{} lacks {pid}", dir.display());
    }
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * MB)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(20i64).build().unwrap())
        .build()
        .unwrap();
    g.mgr.apply(&r).unwrap();
    if let Some(m) = layout.v1_mount("memory") {
        let dir = fs::join(&m.mount_point, &path);
        assert!(contains_pid(&dir, pid));
        let limit = fs::read_file(&dir.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(limit.trim(), (64 * MB).to_string());
    }
    if let Some(m) = layout.v1_mount("pids") {
        let max = fs::read_file(&fs::join(&m.mount_point, &path).join("pids.max")).unwrap();
        assert_eq!(max.trim(), "20");
    }

    writeln!(input, "go").unwrap();
    assert_eq!(line(&mut out), "busy-done");
    let s = g.mgr.stats().unwrap();
    assert!(s.cpu.usage.total > 0, "{s:?}");
    assert!(s.memory.usage.usage > 0, "{s:?}");
    assert_eq!(s.memory.usage.limit, 64 * MB as u64);
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 20);
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    assert_eq!(g.mgr.oom_kill_count().unwrap(), 0);

    g.mgr.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(g.mgr.freezer_state().unwrap(), FreezerState::Frozen);
    if let Some(m) = layout.v1_mount("freezer") {
        let st = fs::read_file(&fs::join(&m.mount_point, &path).join("freezer.state")).unwrap();
        assert_eq!(st.trim(), "FROZEN");
    }
    g.mgr.freeze(FreezerState::Thawed).unwrap();
    assert_eq!(g.mgr.freezer_state().unwrap(), FreezerState::Thawed);

    // Frozen again, with the process inside: destroy must thaw, kill, remove.
    g.mgr.freeze(FreezerState::Frozen).unwrap();
    g.mgr.destroy().unwrap();
    for (dir, _) in g.mgr.mount_sources() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert_eq!(g.reap(pid), Some(libc::SIGKILL));
    g.mgr.destroy().unwrap();
}

#[test]
fn host_hybrid_hugetlb_freeze_and_kill_on_unified() {
    let Some(layout) = host(true) else { return };
    let Some(unified) = layout.unified.clone() else {
        return;
    };
    let path = unique_path();
    let h = Hybrid {
        v1: V1::new(&layout, path.clone()),
        v2: V2::new(&unified, path.clone()),
    };
    let mut g = Guard::new(Box::new(Hybrid {
        v1: h.v1.clone(),
        v2: h.v2.clone(),
    }));
    g.mgr.create().unwrap();
    let leaf = fs::join(&unified.mount_point, &path);
    assert!(leaf.is_dir());
    let (pid, _input, _out) = g.spawn("exec sleep 100");
    assert!(
        contains_pid(&leaf, pid),
        "process must be in the unified leaf too"
    );

    // hugetlb is only on the unified mount here: every size gets a limit.
    let sizes = stats::hugetlb_sizes(&leaf, ".max");
    if sizes.is_empty() {
        eprintln!("note: no hugetlb controller on the unified mount; hugetlb part skipped");
    } else {
        let limits = sizes
            .iter()
            .map(|s| {
                LinuxHugepageLimitBuilder::default()
                    .page_size(s.clone())
                    .limit(16 * 1024 * MB)
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        let r = LinuxResourcesBuilder::default()
            .hugepage_limits(limits)
            .build()
            .unwrap();
        g.mgr.apply(&r).unwrap();
        for s in &sizes {
            let v = fs::read_file(&leaf.join(format!("hugetlb.{s}.max"))).unwrap();
            assert_eq!(v.trim(), (16 * 1024 * MB).to_string(), "hugetlb.{s}.max");
        }
        let st = g.mgr.stats().unwrap();
        assert_eq!(st.hugetlb.len(), sizes.len(), "{st:?}");
    }

    // cgroup.freeze on the unified leaf, for real.
    h.v2.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(
        fs::read_file(&leaf.join("cgroup.freeze")).unwrap().trim(),
        "1"
    );
    let ev = fs::read_file(&leaf.join("cgroup.events")).unwrap();
    assert!(ev.contains("frozen 1"), "{ev}");
    assert_eq!(h.v2.freezer_state().unwrap(), FreezerState::Frozen);
    h.v2.freeze(FreezerState::Thawed).unwrap();
    assert_eq!(h.v2.freezer_state().unwrap(), FreezerState::Thawed);

    // cgroup.kill on the unified leaf kills the process everywhere.
    h.v2.destroy().unwrap();
    assert!(!leaf.exists());
    assert_eq!(g.reap(pid), Some(libc::SIGKILL));
    for dir in h.v1.leaf_dirs() {
        assert!(procs(&dir).trim().is_empty(), "{} not empty", dir.display());
    }
    g.mgr.destroy().unwrap();
    for dir in h.v1.leaf_dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn host_device_filter_ebpf_on_unified_mount() {
    let Some(layout) = host(false) else { return };
    let Some(unified) = layout.unified.clone() else {
        eprintln!("skipped: no cgroup2 mount");
        return;
    };
    let path = unique_path();
    let v2 = V2::new(&unified, path.clone());
    let mut g = Guard::new(Box::new(v2.clone()));
    g.mgr.create().unwrap();
    let (_pid, mut input, mut out) = g.spawn(
        "for n in 1 2; do read x; \
         if head -c1 /dev/zero >/dev/null 2>&1; then echo zero-ok; else echo zero-denied; fi; \
         if cat /dev/null 2>/dev/null; then echo null-ok; else echo null-denied; fi; done",
    );
    let only_null = vec![
        rule(false, T::A, None, None, "rwm"),
        rule(true, T::C, Some(1), Some(3), "rwm"),
    ];
    let r = LinuxResourcesBuilder::default()
        .devices(only_null.clone())
        .build()
        .unwrap();
    // Through the v2 manager: on a pure v2 host this is how devices apply.
    match g.mgr.apply(&r) {
        Err(CgroupError::Bpf { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("skipped: bpf() not permitted here");
            return;
        }
        other => other.unwrap(),
    }
    writeln!(input, "1").unwrap();
    assert_eq!(line(&mut out), "zero-denied");
    assert_eq!(line(&mut out), "null-ok");

    // Update: allow /dev/zero too; the old program must be replaced.
    let mut both = only_null;
    both.push(rule(true, T::C, Some(1), Some(5), "r"));
    let r = LinuxResourcesBuilder::default()
        .devices(both)
        .build()
        .unwrap();
    g.mgr.apply(&r).unwrap();
    let dir = fs::join(&unified.mount_point, &path);
    let attached = devices_bpf::query(&std::fs::File::open(&dir).unwrap(), &dir).unwrap();
    assert_eq!(attached.len(), 1, "old program detached: {attached:?}");
    writeln!(input, "2").unwrap();
    assert_eq!(line(&mut out), "zero-ok");
    assert_eq!(line(&mut out), "null-ok");
}

#[test]
fn host_factory_detects_layout_and_reopens() {
    let Some(layout) = host(false) else { return };
    let path = unique_path();
    let id = path.file_name().unwrap().to_string_lossy().into_owned();
    let m = super::manager(Some(&path.to_string_lossy()), &id, false).unwrap();
    let g = Guard::new(m);
    g.mgr.create().unwrap();
    assert_eq!(g.mgr.path(), path.as_path());
    let again = super::open(g.mgr.path()).unwrap();
    assert_eq!(again.path(), path.as_path());
    assert_eq!(again.pids().unwrap(), Vec::<i32>::new());
    let expected = match layout.kind() {
        LayoutKind::V1 => layout.v1.len(),
        LayoutKind::V2 => 1,
        LayoutKind::Hybrid => layout.v1.len() + 1,
    };
    assert_eq!(again.mount_sources().len(), expected);
    for (dir, _) in again.mount_sources() {
        assert!(dir.is_dir(), "{}", dir.display());
    }
    // The default path of the systemd driver is refused without systemd.
    if !super::path::systemd_running() {
        assert!(matches!(
            super::manager(None, &id, true),
            Err(CgroupError::SystemdUnavailable { .. })
        ));
    }
}
