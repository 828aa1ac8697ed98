//! The pod fixtures of the issue against the real `peapod` binary: the
//! examples (two containers in a Job, a shared PID namespace, a crash loop,
//! resource limits, a non-root pod), init container order, emptyDir,
//! hostPort, delete with preStop and the grace period, manifest validation
//! creating nothing, and 50 pods leaking nothing.
//!
//! Delays are checked from the times the engine records in
//! `<root>/pods/<id>/pod.json`, never from the test's own clock (but for
//! lower bounds).

mod peapod_common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peapod_common::{
    Peapod, free_port, have_cni, mount_points, output_within, parse_rfc3339, secs_between, usable,
    wait_for,
};
use serde_json::Value;

/// Bound for a pod to come up or change (a busy machine).
const POD_TIMEOUT: Duration = Duration::from_secs(90);

fn ready_for_tests() -> bool {
    usable() && have_cni()
}

/// Deletes what the test made (`(kind, name)`) with a short grace when the
/// test ends, even on a panic; declared after the [`Peapod`] so it runs
/// first (the Peapod's own Drop then unmounts the netns directory).
struct Made<'a> {
    pp: &'a Peapod,
    items: Vec<(String, String)>,
}

impl Made<'_> {
    fn add(&mut self, kind: &str, name: &str) {
        self.items.push((kind.to_string(), name.to_string()));
    }
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        for (kind, name) in &self.items {
            let _ = self
                .pp
                .output(&["delete", kind, name, "--grace-period", "0"]);
        }
    }
}

fn made(pp: &Peapod) -> Made<'_> {
    Made {
        pp,
        items: Vec::new(),
    }
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Writes `yaml` in the test's dir; its path.
fn manifest(pp: &Peapod, file: &str, yaml: &str) -> String {
    let path = pp.dir().join(file);
    std::fs::write(&path, yaml).expect("write the manifest");
    path.to_string_lossy().into_owned()
}

/// Every pod record of this root.
fn records(pp: &Peapod) -> Vec<Value> {
    std::fs::read_dir(pp.root.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("pod.json")).ok())
        .filter_map(|d| serde_json::from_slice(&d).ok())
        .collect()
}

/// The record of pod `name`.
fn record(pp: &Peapod, name: &str) -> Option<Value> {
    records(pp).into_iter().find(|r| r["name"] == name)
}

/// The name of the pod Job `job` made (waits for it).
fn job_pod(pp: &Peapod, job: &str) -> String {
    let owner = format!("Job/{job}");
    let mut name = None;
    assert!(
        wait_for(POD_TIMEOUT, || {
            name = records(pp)
                .into_iter()
                .find(|r| r["owner"] == owner.as_str())
                .and_then(|r| r["name"].as_str().map(str::to_string));
            name.is_some()
        }),
        "job {job} made no pod"
    );
    name.unwrap()
}

/// The `get pods` row of `name`: READY, STATUS, RESTARTS.
fn row(pp: &Peapod, name: &str) -> Option<(String, String, u32)> {
    let out = pp.ok(&["get", "pods"]);
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&name) && f.len() >= 4).then(|| {
            (
                f[1].to_string(),
                f[2].to_string(),
                f[3].parse().unwrap_or(0),
            )
        })
    })
}

fn describe(pp: &Peapod, name: &str) -> String {
    pp.code(&["describe", "pod", name]).1
}

fn pod_json(pp: &Peapod, name: &str) -> Value {
    serde_json::from_str(&pp.ok(&["get", "pod", name, "-o", "json"])).expect("get -o json")
}

/// `containerStatuses` (or `initContainerStatuses`) entry `c` of the pod.
fn status_of(v: &Value, c: &str) -> Value {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|k| v["status"][k].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == c)
        .unwrap_or(Value::Null)
}

/// What `logs` of container `c` saw, for a failure message: its output with
/// times, the run starts the pod recorded, and the raw log file.
fn logs_debug(pp: &Peapod, name: &str, c: &str) -> String {
    let (code, out, err) = pp.code(&["logs", name, "-c", c, "--timestamps"]);
    let rec = record(pp, name).unwrap_or(Value::Null);
    let status = rec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == c)
        .cloned()
        .unwrap_or(Value::Null);
    let raw = status["container_id"]
        .as_str()
        .map(|id| pp.record(id))
        .and_then(|r| r["log_path"].as_str().map(str::to_string))
        .map(|p| std::fs::read_to_string(&p).unwrap_or_else(|e| format!("{p}: {e}")))
        .unwrap_or_default();
    format!(
        "logs -c {c} ({code}): {out:?} {err:?}\nstarts: {}\nlog file: {raw}",
        status["starts"]
    )
}

/// Waits until the pod's row says `ready` and `status`.
fn wait_row(pp: &Peapod, name: &str, ready: &str, status: &str) {
    assert!(
        wait_for(POD_TIMEOUT, || row(pp, name)
            .is_some_and(|r| r.0 == ready && r.1 == status)),
        "pod {name} never was {ready} {status}: {:?}\n{}",
        row(pp, name),
        describe(pp, name)
    );
}

/// Waits until container `c` of pod `name` runs (exec works).
fn wait_running(pp: &Peapod, name: &str, c: &str) {
    assert!(
        wait_for(POD_TIMEOUT, || {
            pp.code(&["exec", name, "-c", c, "--", "true"]).0 == 0
        }),
        "container {c} of pod {name} never ran:\n{}",
        describe(pp, name)
    );
}

/// The host pid of container `c` of pod `name`, while it runs.
fn container_pid(pp: &Peapod, name: &str, c: &str) -> i32 {
    let rec = record(pp, name).expect("the pod record");
    let cid = rec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == c)
        .and_then(|s| s["container_id"].as_str())
        .unwrap_or_else(|| panic!("container {c} has no id: {rec}"))
        .to_string();
    let r = pp.record(&cid);
    assert_eq!(r["state"]["status"], "running", "{r}");
    r["state"]["pid"].as_i64().expect("a pid") as i32
}

/// The inode of namespace `kind` of `pid`.
fn ns_inode(pid: i32, kind: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{kind}: {e}"));
    let s = link.to_string_lossy();
    s.split('[')
        .nth(1)
        .and_then(|x| x.trim_end_matches(']').parse().ok())
        .unwrap_or_else(|| panic!("odd namespace link {s}"))
}

/// `GET path` on 127.0.0.1:port; the response body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

#[test]
fn two_containers_job_shares_net_and_ipc_only() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-two");
    let mut m = made(&pp);
    m.add("job", "two-containers");
    pp.ok(&["apply", "-f", &example("two-containers-job.yaml")]);
    let name = job_pod(&pp, "two-containers");
    wait_row(&pp, &name, "2/2", "Running");
    let wide = pp.ok(&["get", "pods", "-o", "wide"]);
    let ip = pod_json(&pp, &name)["status"]["podIP"]
        .as_str()
        .expect("a pod IP")
        .to_string();
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");
    assert!(wide.contains(&ip), "{wide}");

    let rec = record(&pp, &name).unwrap();
    let infra = rec["infra"]["pid"].as_i64().expect("the infra pid") as i32;
    let first = container_pid(&pp, &name, "first");
    let second = container_pid(&pp, &name, "second");
    for kind in ["ipc", "net"] {
        let i = ns_inode(infra, kind);
        assert_eq!(ns_inode(first, kind), i, "first's {kind}");
        assert_eq!(ns_inode(second, kind), i, "second's {kind}");
    }
    for kind in ["mnt", "uts", "pid"] {
        let (i, a, b) = (
            ns_inode(infra, kind),
            ns_inode(first, kind),
            ns_inode(second, kind),
        );
        assert!(
            i != a && i != b && a != b,
            "{kind}: infra {i} first {a} second {b}"
        );
    }
    for c in ["first", "second"] {
        let h = pp.ok(&["exec", &name, "-c", c, "--", "hostname"]);
        assert_eq!(h.trim(), name, "{c}'s hostname");
    }
    // localhost is the pod's: a server in one container answers the other.
    pp.ok(&[
        "exec",
        &name,
        "-c",
        "first",
        "--",
        "sh",
        "-c",
        "mkdir -p /tmp/w && echo from first > /tmp/w/index.html && httpd -p 127.0.0.1:7777 -h /tmp/w",
    ]);
    let mut body = String::new();
    assert!(
        wait_for(POD_TIMEOUT, || {
            let (code, out, _) = pp.code(&[
                "exec",
                &name,
                "-c",
                "second",
                "--",
                "wget",
                "-q",
                "-O-",
                "http://127.0.0.1:7777/index.html",
            ]);
            body = out;
            code == 0
        }),
        "second never reached first on localhost"
    );
    assert_eq!(body, "from first\n");
}

#[test]
fn shared_pid_job_sees_pause_as_pid_1() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-spid");
    let mut m = made(&pp);
    m.add("job", "shared-pid");
    pp.ok(&["apply", "-f", &example("shared-pid-job.yaml")]);
    let name = job_pod(&pp, "shared-pid");
    let mut logs = String::new();
    assert!(
        wait_for(POD_TIMEOUT, || {
            logs = pp.code(&["logs", &name, "-c", "watcher"]).1.to_string();
            logs.contains("sleep 3600") && logs.contains("peapod-pause")
        }),
        "ps in watcher: {logs}\n{}\n{}",
        logs_debug(&pp, &name, "watcher"),
        describe(&pp, &name)
    );
    assert!(
        logs.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&"1") && l.contains("peapod-pause")
        }),
        "PID 1 is not peapod-pause: {logs}"
    );
}

#[test]
fn crashloop_backs_off_10s_then_20s() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-crash");
    let mut m = made(&pp);
    m.add("pod", "crashloop");
    pp.ok(&["apply", "-f", &example("crashloop-pod.yaml")]);
    let starts = |pp: &Peapod| -> Vec<String> {
        record(pp, "crashloop")
            .and_then(|r| {
                r["containers"][0]["starts"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    };
    let mut saw_backoff = false;
    let mut max_restarts = 0;
    assert!(
        wait_for(Duration::from_secs(150), || {
            if let Some(r) = row(&pp, "crashloop") {
                saw_backoff |= r.1 == "CrashLoopBackOff";
                max_restarts = max_restarts.max(r.2);
            }
            std::thread::sleep(Duration::from_millis(300));
            starts(&pp).len() >= 3
        }),
        "three runs never happened: {:?}\n{}",
        starts(&pp),
        describe(&pp, "crashloop")
    );
    assert!(saw_backoff, "STATUS never showed CrashLoopBackOff");
    let s = starts(&pp);
    let (g1, g2) = (secs_between(&s[0], &s[1]), secs_between(&s[1], &s[2]));
    assert!((g1 - 11.0).abs() <= 2.0, "first gap {g1} s: {s:?}");
    assert!((g2 - 21.0).abs() <= 2.0, "second gap {g2} s: {s:?}");
    let r = row(&pp, "crashloop").expect("listed");
    assert!(
        r.2 >= 2 && max_restarts >= 1,
        "RESTARTS {r:?} {max_restarts}"
    );
    let prev = pp.ok(&["logs", "crashloop", "-c", "failing", "--previous"]);
    assert!(prev.contains("starting"), "{prev}");
    // Between runs: the back-off, and the last state.
    assert!(
        wait_for(POD_TIMEOUT, || row(&pp, "crashloop")
            .is_some_and(|r| r.1 == "CrashLoopBackOff")),
        "no back-off after the third run"
    );
    let d = describe(&pp, "crashloop");
    assert!(d.contains("BackOff"), "{d}");
    assert!(d.contains("Last State:") && d.contains("Terminated"), "{d}");
    assert!(
        d.lines()
            .any(|l| l.contains("Exit Code:") && l.trim_end().ends_with('3')),
        "{d}"
    );
}

/// The cgroup dir of `pid` for controller `ctl` (v1) or the unified one.
fn cgroup_dir(pid: i32, ctl: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup file");
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctls.split(',').any(|c| c == ctl) {
            let mount = ctls.replace("name=", "");
            return Path::new("/sys/fs/cgroup")
                .join(mount)
                .join(path.trim_start_matches('/'));
        }
    }
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup line");
    Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'))
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// (memory limit, cpu quota, cpu period) of cgroup dirs `mem` and `cpu`.
fn limits(mem: &Path, cpu: &Path) -> (String, String, String) {
    if mem.join("memory.max").exists() {
        let max = read_trim(&cpu.join("cpu.max"));
        let (q, p) = max.split_once(' ').unwrap_or((&max, ""));
        (read_trim(&mem.join("memory.max")), q.into(), p.into())
    } else {
        (
            read_trim(&mem.join("memory.limit_in_bytes")),
            read_trim(&cpu.join("cpu.cfs_quota_us")),
            read_trim(&cpu.join("cpu.cfs_period_us")),
        )
    }
}

#[test]
fn limits_pod_oomkills_the_hog_and_sets_cgroups() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-limits");
    let mut m = made(&pp);
    m.add("pod", "limited");
    pp.ok(&["apply", "-f", &example("limits-pod.yaml")]);
    assert!(
        wait_for(POD_TIMEOUT, || {
            let v = pod_json(&pp, "limited");
            let hog = status_of(&v, "hog");
            let t = if hog["state"]["terminated"].is_object() {
                &hog["state"]["terminated"]
            } else {
                &hog["lastState"]["terminated"]
            };
            t["reason"] == "OOMKilled" && t["exitCode"] == 137
        }),
        "hog was not OOMKilled: {}\n{}",
        pod_json(&pp, "limited")["status"],
        describe(&pp, "limited")
    );
    let v = pod_json(&pp, "limited");
    assert_eq!(v["status"]["qosClass"], "Burstable");
    assert!(
        status_of(&v, "steady")["state"]["running"].is_object(),
        "{}",
        v["status"]
    );
    let steady = container_pid(&pp, "limited", "steady");
    let (mem, q, p) = limits(&cgroup_dir(steady, "memory"), &cgroup_dir(steady, "cpu"));
    assert_eq!(mem, (32u64 << 20).to_string(), "steady's memory limit");
    assert_eq!(
        (q.as_str(), p.as_str()),
        ("50000", "100000"),
        "steady's cpu"
    );
    // The pod's cgroup: its QoS place, with the sum of the memory limits
    // (not every container has a cpu limit, so no pod cpu quota).
    let uid = v["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .replace('-', "_");
    let rel = format!("peapod/kubepods/burstable/pod{uid}");
    let v1 = Path::new("/sys/fs/cgroup/memory").join(&rel);
    let (pmem, pcpu) = if v1.exists() {
        (v1, Path::new("/sys/fs/cgroup/cpu").join(&rel))
    } else {
        let v2 = Path::new("/sys/fs/cgroup").join(&rel);
        (v2.clone(), v2)
    };
    assert!(
        cgroup_dir(steady, "memory").starts_with(&pmem),
        "steady's cgroup {} is not under the pod's {}",
        cgroup_dir(steady, "memory").display(),
        pmem.display()
    );
    let (mem, q, _) = limits(&pmem, &pcpu);
    assert_eq!(mem, (48u64 << 20).to_string(), "the pod's memory limit");
    assert!(q == "-1" || q == "max", "pod cpu quota {q}");
}

#[test]
fn nonroot_pod_runs_unprivileged() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-nonroot");
    let mut m = made(&pp);
    m.add("pod", "nonroot");
    pp.ok(&["apply", "-f", &example("nonroot-pod.yaml")]);
    let mut logs = String::new();
    assert!(
        wait_for(POD_TIMEOUT, || {
            logs = pp.code(&["logs", "nonroot", "-c", "whoami"]).1;
            logs.contains("read-only root")
        }),
        "logs: {logs}\n{}",
        describe(&pp, "nonroot")
    );
    assert!(logs.contains("uid=1000 gid=3000"), "{logs}");
    let pid = container_pid(&pp, "nonroot", "whoami");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert!(field("Uid:").starts_with("1000"), "{status}");
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-init");
    let mut m = made(&pp);
    m.add("pod", "inits");
    let f = manifest(
        &pp,
        "inits.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: inits
spec:
  terminationGracePeriodSeconds: 0
  volumes:
    - name: data
      emptyDir: {}
  initContainers:
    - name: one
      image: busybox
      command: ["sh", "-c", "sleep 1; echo one >> /data/f"]
      volumeMounts: [{name: data, mountPath: /data}]
    - name: two
      image: busybox
      command: ["sh", "-c", "echo two >> /data/f"]
      volumeMounts: [{name: data, mountPath: /data}]
  containers:
    - name: app
      image: busybox
      command: ["sh", "-c", "cat /data/f; sleep 3600"]
      volumeMounts: [{name: data, mountPath: /data}]
"#,
    );
    pp.ok(&["apply", "-f", &f]);
    let mut logs = String::new();
    assert!(
        wait_for(POD_TIMEOUT, || {
            logs = pp.code(&["logs", "inits", "-c", "app"]).1;
            !logs.is_empty()
        }),
        "the app printed nothing:\n{}",
        describe(&pp, "inits")
    );
    assert_eq!(logs, "one\ntwo\n");
}

#[test]
fn failing_init_container_fails_the_pod() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-initfail");
    let mut m = made(&pp);
    m.add("pod", "badinit");
    let f = manifest(
        &pp,
        "badinit.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: badinit
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  initContainers:
    - name: broken
      image: busybox
      command: ["sh", "-c", "exit 2"]
  containers:
    - name: app
      image: busybox
      command: ["sh", "-c", "echo app ran; sleep 3600"]
"#,
    );
    pp.ok(&["apply", "-f", &f]);
    assert!(
        wait_for(POD_TIMEOUT, || pod_json(&pp, "badinit")["status"]["phase"]
            == "Failed"),
        "the pod did not fail:\n{}",
        describe(&pp, "badinit")
    );
    let r = row(&pp, "badinit").expect("listed");
    assert_eq!(r.1, "Init:Error", "{r:?}");
    let rec = record(&pp, "badinit").unwrap();
    let app = rec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app")
        .cloned()
        .unwrap();
    // Created with the pod, never started.
    assert!(app["state"]["waiting"].is_object(), "{app}");
    assert_eq!(app["starts"].as_array().map(Vec::len), Some(0), "{app}");
    let v = pod_json(&pp, "badinit");
    assert_eq!(
        status_of(&v, "broken")["state"]["terminated"]["exitCode"],
        2,
        "{}",
        v["status"]
    );
}

#[test]
fn empty_dir_is_shared_and_memory_medium_is_tmpfs() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-empty");
    let mut m = made(&pp);
    m.add("pod", "shared-vol");
    let f = manifest(
        &pp,
        "shared.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: shared-vol
spec:
  terminationGracePeriodSeconds: 0
  volumes:
    - name: data
      emptyDir: {}
    - name: mem
      emptyDir:
        medium: Memory
        sizeLimit: 8Mi
  containers:
    - name: writer
      image: busybox
      command: ["sh", "-c", "echo written > /data/x; echo inmem > /mem/y; sleep 3600"]
      volumeMounts: [{name: data, mountPath: /data}, {name: mem, mountPath: /mem}]
    - name: reader
      image: busybox
      command: ["sh", "-c", "while [ ! -e /in/x ]; do sleep 0.2; done; cat /in/x; sleep 3600"]
      volumeMounts: [{name: data, mountPath: /in}, {name: mem, mountPath: /m2}]
"#,
    );
    pp.ok(&["apply", "-f", &f]);
    assert!(
        wait_for(POD_TIMEOUT, || pp
            .code(&["logs", "shared-vol", "-c", "reader"])
            .1
            == "written\n"),
        "the reader never saw the file:\n{}\n{}",
        logs_debug(&pp, "shared-vol", "reader"),
        describe(&pp, "shared-vol")
    );
    wait_running(&pp, "shared-vol", "reader");
    let y = pp.ok(&["exec", "shared-vol", "-c", "reader", "--", "cat", "/m2/y"]);
    assert_eq!(y, "inmem\n");
    let mounts = pp.ok(&[
        "exec",
        "shared-vol",
        "-c",
        "reader",
        "--",
        "cat",
        "/proc/mounts",
    ]);
    let fs_of = |dir: &str| {
        mounts
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(dir))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(str::to_string)
    };
    assert_eq!(fs_of("/m2").as_deref(), Some("tmpfs"), "{mounts}");
    assert_ne!(fs_of("/in").as_deref(), Some("tmpfs"), "{mounts}");
}

#[test]
fn host_port_reaches_the_pod_on_localhost() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-hport");
    let mut m = made(&pp);
    m.add("pod", "hport");
    let port = free_port();
    let f = manifest(
        &pp,
        "hport.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: hport
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: web
      image: busybox
      command: ["sh", "-c", "mkdir -p /w && echo via hostPort > /w/index.html && exec httpd -f -p 8080 -h /w"]
      ports:
        - containerPort: 8080
          hostPort: {port}
"#
        ),
    );
    pp.ok(&["apply", "-f", &f]);
    let mut body = None;
    assert!(
        wait_for(POD_TIMEOUT, || {
            body = http_get(port, "/index.html");
            body.is_some()
        }),
        "nothing answers on 127.0.0.1:{port}:\n{}",
        describe(&pp, "hport")
    );
    assert_eq!(body.as_deref(), Some("via hostPort\n"));
}

#[test]
fn delete_runs_pre_stop_then_term() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-prestop");
    let mut m = made(&pp);
    m.add("pod", "polite");
    let shared = pp.dir().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let f = manifest(
        &pp,
        "polite.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: polite
spec:
  terminationGracePeriodSeconds: 10
  volumes:
    - name: shared
      hostPath:
        path: {}
        type: Directory
  containers:
    - name: app
      image: busybox
      command: ["sh", "-c", "trap 'echo TERM >> /shared/log; exit 0' TERM; while true; do sleep 0.2; done"]
      volumeMounts: [{{name: shared, mountPath: /shared}}]
      lifecycle:
        preStop:
          exec:
            command: ["sh", "-c", "echo prestop >> /shared/log"]
"#,
            shared.display()
        ),
    );
    pp.ok(&["apply", "-f", &f]);
    wait_running(&pp, "polite", "app");
    let out = pp.ok(&["delete", "pod", "polite"]);
    assert_eq!(out.trim(), "pod \"polite\" deleted");
    let log = std::fs::read_to_string(shared.join("log")).unwrap_or_default();
    assert_eq!(log, "prestop\nTERM\n");
    assert!(record(&pp, "polite").is_none(), "the record is left");
}

#[test]
fn delete_kills_what_ignores_term_after_the_grace_period() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-stubborn");
    let mut m = made(&pp);
    m.add("pod", "stubborn");
    let f = manifest(
        &pp,
        "stubborn.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: stubborn
spec:
  terminationGracePeriodSeconds: 30
  containers:
    - name: app
      image: busybox
      command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]
"#,
    );
    pp.ok(&["apply", "-f", &f]);
    wait_running(&pp, "stubborn", "app");
    // Keep the last record read while the delete runs: it is removed at
    // the end.
    let id = record(&pp, "stubborn").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = pp.root.join("pods").join(&id).join("pod.json");
    let last = Arc::new(Mutex::new(None::<Value>));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (last, done) = (last.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(v) = std::fs::read(&path)
                    .ok()
                    .and_then(|d| serde_json::from_slice::<Value>(&d).ok())
                {
                    *last.lock().unwrap() = Some(v);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t = Instant::now();
    pp.ok(&["delete", "pod", "stubborn", "--grace-period", "2"]);
    let took = t.elapsed();
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(
        took >= Duration::from_secs(2),
        "delete returned after {took:?}"
    );
    let rec = last.lock().unwrap().clone().expect("a record read");
    let killing = rec["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["reason"] == "Killing")
        .and_then(|e| e["time"].as_str())
        .unwrap_or_else(|| panic!("no Killing event: {rec}"))
        .to_string();
    let state = &rec["containers"][0]["state"]["terminated"];
    let finished = state["finished_at"]
        .as_str()
        .unwrap_or_else(|| panic!("not terminated in the last record: {rec}"));
    let waited = secs_between(&killing, finished);
    assert!(
        (1.8..=6.0).contains(&waited),
        "SIGKILL came {waited} s after the stop: {rec}"
    );
    assert_eq!(state["exit_code"], 137, "{rec}");
    let _ = parse_rfc3339(finished);
}

/// What the engine made: pod records, netns files, containers.
fn anything_made(pp: &Peapod) -> Vec<String> {
    let mut out: Vec<String> = records(pp)
        .iter()
        .map(|r| format!("pod {}", r["name"]))
        .collect();
    for e in std::fs::read_dir(pp.run_root.join("netns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        out.push(format!("netns {}", e.path().display()));
    }
    out.extend(pp.ids().into_iter().map(|i| format!("container {i}")));
    out
}

#[test]
fn invalid_manifests_create_nothing() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-invalid");
    let mut m = made(&pp);
    m.add("pod", "typo");
    let typo = manifest(
        &pp,
        "typo.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: app
      image: busybox
      imagee: busybox
      command: ["sleep", "3600"]
"#,
    );
    let (_, line) = pp.fails(&["apply", "-f", &typo]);
    assert!(line.contains("spec.containers[0].imagee"), "{line}");
    assert_eq!(anything_made(&pp), Vec::<String>::new());
    let bad = manifest(
        &pp,
        "quantity.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  containers:
    - name: app
      image: busybox
      command: ["sleep", "3600"]
      resources:
        limits:
          memory: 5Gx
"#,
    );
    let (_, line) = pp.fails(&["apply", "-f", &bad]);
    assert!(
        line.contains("spec.containers[0].resources.limits.memory") && line.contains("5Gx"),
        "{line}"
    );
    assert_eq!(anything_made(&pp), Vec::<String>::new());
    // Without validation the unknown field is ignored.
    pp.ok(&["apply", "--validate=false", "-f", &typo]);
    wait_running(&pp, "typo", "app");
}

/// Host-side veth names of the pod whose netns file is `netns`.
fn host_veth(netns: &Path) -> Option<String> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "-o", "link", "show", "eth0"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "2: eth0@if123: <...>"
    let idx: u32 = text.split("@if").nth(1)?.split(':').next()?.parse().ok()?;
    std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .find(|e| {
            std::fs::read_to_string(e.path().join("ifindex"))
                .is_ok_and(|s| s.trim() == idx.to_string())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

/// Dirs under `dir` (recursively) whose name starts with `pod`.
fn pod_cgroups(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with("pod") {
                out.push(p.clone());
            }
            pod_cgroups(&p, out);
        }
    }
}

/// Processes whose environment names this test's root.
fn processes_of_root(pp: &Peapod) -> Vec<String> {
    let needle = format!("PEAPOD_ROOT={}", pp.root.display());
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!("{pid} {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect()
}

#[test]
fn fifty_pods_leave_nothing_behind() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("fx-fifty");
    let mut m = made(&pp);
    let mut yaml = String::new();
    for i in 0..50 {
        let name = format!("many-{i}");
        m.add("pod", &name);
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n    - name: app\n      image: busybox\n      command: [\"sleep\", \"600\"]\n"
        ));
    }
    let f = manifest(&pp, "fifty.yaml", &yaml);
    let cgroups_before: BTreeSet<PathBuf> = {
        let mut v = Vec::new();
        for ctl in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            pod_cgroups(&ctl.path().join("peapod/kubepods"), &mut v);
        }
        pod_cgroups(Path::new("/sys/fs/cgroup/peapod/kubepods"), &mut v);
        v.into_iter().collect()
    };
    // One apply makes the 50 pods one after the other: longer than one
    // command's usual bound on a busy machine.
    let out = output_within(
        pp.command(&["apply", "-f", &f]),
        None,
        Duration::from_secs(1200),
    );
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(300), || {
            let out = pp.ok(&["get", "pods"]);
            out.lines()
                .filter(|l| l.starts_with("many-") && l.contains(" Running "))
                .count()
                == 50
        }),
        "not every pod ran:\n{}",
        pp.ok(&["get", "pods"])
    );
    let recs = records(&pp);
    assert_eq!(recs.len(), 50);
    let ids: Vec<String> = recs
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let uids: Vec<String> = recs
        .iter()
        .map(|r| r["uid"].as_str().unwrap().replace('-', "_"))
        .collect();
    let infra: Vec<i32> = recs
        .iter()
        .filter_map(|r| r["infra"]["pid"].as_i64())
        .map(|p| p as i32)
        .collect();
    assert_eq!(infra.len(), 50);
    let veths: Vec<String> = recs
        .iter()
        .filter_map(|r| r["netns"].as_str())
        .filter_map(|n| host_veth(Path::new(n)))
        .collect();
    assert_eq!(veths.len(), 50, "host veths {veths:?}");
    let mut pod_cg = Vec::new();
    for ctl in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        pod_cgroups(&ctl.path().join("peapod/kubepods"), &mut pod_cg);
    }
    pod_cgroups(Path::new("/sys/fs/cgroup/peapod/kubepods"), &mut pod_cg);
    assert!(
        uids.iter().all(|u| pod_cg
            .iter()
            .any(|p| p.to_string_lossy().ends_with(u.as_str()))),
        "a pod has no cgroup"
    );

    let names: Vec<String> = (0..50).map(|i| format!("many-{i}")).collect();
    let mut args = vec!["delete", "pod"];
    args.extend(names.iter().map(String::as_str));
    args.extend(["--grace-period", "0"]);
    let out = output_within(pp.command(&args), None, Duration::from_secs(900));
    assert!(
        out.status.success(),
        "delete failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut left: Vec<String> = Vec::new();
    assert!(
        wait_for(Duration::from_secs(60), || {
            left = Vec::new();
            left.extend(records(&pp).iter().map(|r| format!("pod {}", r["name"])));
            for e in std::fs::read_dir(pp.run_root.join("netns"))
                .into_iter()
                .flatten()
                .flatten()
            {
                left.push(format!("netns {}", e.path().display()));
            }
            for v in &veths {
                if Path::new("/sys/class/net").join(v).exists() {
                    left.push(format!("veth {v}"));
                }
            }
            for net in std::fs::read_dir("/var/lib/cni/networks")
                .into_iter()
                .flatten()
                .flatten()
            {
                for f in std::fs::read_dir(net.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                    if ids.iter().any(|id| text.contains(id.as_str())) {
                        left.push(format!("lease {}", f.path().display()));
                    }
                }
            }
            let dir = pp.dir().to_string_lossy().into_owned();
            let netns = pp.run_root.join("netns").to_string_lossy().into_owned();
            left.extend(
                mount_points()
                    .into_iter()
                    .filter(|m| m.starts_with(&dir) && *m != netns)
                    .map(|m| format!("mount {m}")),
            );
            let mut cg = Vec::new();
            for ctl in std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                pod_cgroups(&ctl.path().join("peapod/kubepods"), &mut cg);
            }
            pod_cgroups(Path::new("/sys/fs/cgroup/peapod/kubepods"), &mut cg);
            left.extend(
                cg.into_iter()
                    .filter(|p| !cgroups_before.contains(p))
                    .filter(|p| {
                        uids.iter()
                            .any(|u| p.to_string_lossy().ends_with(u.as_str()))
                    })
                    .map(|p| format!("cgroup {}", p.display())),
            );
            for &pid in &infra {
                if std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("peapod-pause"))
                {
                    left.push(format!("pause process {pid}"));
                }
            }
            left.extend(
                processes_of_root(&pp)
                    .into_iter()
                    .map(|p| format!("process {p}")),
            );
            left.extend(pp.ids().into_iter().map(|i| format!("container {i}")));
            left.is_empty()
        }),
        "left behind: {left:#?}"
    );
    m.items.clear();
}
