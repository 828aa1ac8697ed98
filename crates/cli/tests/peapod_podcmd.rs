//! Imperative pods (`peapod pod create/ps/inspect/stop/start/rm` and
//! `run --pod`) against the real `peapod` binary: containers of a pod reach
//! each other on localhost and share the infra process's namespaces; stop
//! and start; `pod rm -f` leaves nothing behind; `hostUsers: false`.

mod peapod_common;

use std::path::Path;
use std::time::Duration;

use peapod_common::{Peapod, have_cni, processes_mentioning, usable, wait_for};
use serde_json::Value;

/// Bound for a pod to come up or change (a busy machine).
const POD_TIMEOUT: Duration = Duration::from_secs(90);

/// Removes the pods (and their containers) when the test ends, even on a
/// panic; declared after the [`Peapod`] so it runs first (the Peapod's own
/// Drop then unmounts the netns directory).
struct Pods<'a> {
    pp: &'a Peapod,
    names: Vec<String>,
}

impl Drop for Pods<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.pp.output(&["pod", "rm", "-f", n]);
            let _ = self.pp.output(&["delete", "pod", n, "--grace-period", "0"]);
        }
    }
}

fn ready_for_tests() -> bool {
    usable() && have_cni()
}

fn inspect(pp: &Peapod, pod: &str) -> Value {
    let out = pp.ok(&["pod", "inspect", pod]);
    let v: Value = serde_json::from_str(&out).expect("pod inspect JSON");
    v[0].clone()
}

/// The `pod ps` row of `name`: STATUS and # OF CONTAINERS.
fn ps_row(pp: &Peapod, name: &str) -> Option<(String, String)> {
    let out = pp.ok(&["pod", "ps"]);
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&name)).then(|| {
            (
                f[2].to_string(),
                f.last().map(|s| s.to_string()).unwrap_or_default(),
            )
        })
    })
}

fn ns_inode(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{kind}: {e}"))
}

/// The pid of pod container `name` in `pod inspect`.
fn member_pid(v: &Value, name: &str) -> i64 {
    v["containers"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .and_then(|c| c["pid"].as_i64())
        .unwrap_or_else(|| panic!("no running container {name} in {v:#}"))
}

/// Whether cgroup `path` exists (v2, or in any v1 hierarchy).
fn cgroup_exists(path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    let base = Path::new("/sys/fs/cgroup");
    base.join(rel).exists()
        || std::fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .any(|c| c.path().join(rel).exists())
}

/// The page container `from` fetches from its pod's localhost:8080.
fn fetch(pp: &Peapod, from: &str) -> String {
    let mut out = String::new();
    wait_for(POD_TIMEOUT, || {
        let (code, o, _) = pp.code(&[
            "exec",
            from,
            "sh",
            "-c",
            "printf 'GET /page HTTP/1.0\\r\\n\\r\\n' | nc localhost 8080",
        ]);
        out = o.lines().last().unwrap_or_default().to_string();
        code == 0 && out.contains("hello-pod")
    });
    out
}

#[test]
fn pod_create_run_pod_share_namespaces_stop_start_rm() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("podcmd");
    let pod = pp.name("pod");
    let _pods = Pods {
        pp: &pp,
        names: vec![pod.clone()],
    };
    let id = pp
        .ok(&[
            "pod",
            "create",
            "--name",
            &pod,
            "--hostname",
            "podhost",
            "--label",
            "app=web",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "pod create prints the id: {id:?}");
    // An empty pod stays up.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ps_row(&pp, &pod),
        Some(("Running".to_string(), "0".to_string()))
    );
    let v = inspect(&pp, &pod);
    assert_eq!(v["state"], "Running", "{v:#}");
    assert_eq!(v["labels"]["app"], "web");
    let infra = v["infraPid"].as_i64().expect("an infra pid");
    assert!(v["ip"].is_string(), "{v:#}");

    // -p on a pod's container is refused.
    let (_, err) = pp.fails(&[
        "run", "-d", "--pod", &pod, "-p", "18080:80", "busybox", "true",
    ]);
    assert!(err.contains("publish ports on the pod"), "{err}");

    let a = pp.name("web");
    let b = pp.name("client");
    pp.run_d(&[
        "--pod",
        &pod,
        "--name",
        &a,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /w && echo hello-pod > /w/page && exec httpd -f -p 8080 -h /w",
    ]);
    pp.run_d(&["--pod", &pod, "--name", &b, "busybox", "sleep", "1000"]);
    assert_eq!(fetch(&pp, &b).trim(), "hello-pod");
    assert_eq!(pp.ok(&["exec", &b, "hostname"]).trim(), "podhost");
    // Ordinary containers: ps shows them.
    let ps = pp.ok(&["ps"]);
    assert!(ps.contains(&a) && ps.contains(&b), "{ps}");
    assert_eq!(
        ps_row(&pp, &pod),
        Some(("Running".to_string(), "2".to_string()))
    );
    let v = inspect(&pp, &pod);
    for c in [&a, &b] {
        let pid = member_pid(&v, c);
        for kind in ["net", "ipc"] {
            assert_eq!(
                ns_inode(pid, kind),
                ns_inode(infra, kind),
                "{c} shares the infra's {kind} namespace"
            );
        }
        assert_ne!(ns_inode(pid, "mnt"), ns_inode(infra, "mnt"));
    }

    // Stop: containers and infra stopped, the pod kept.
    pp.ok(&["pod", "stop", "-t", "1", &pod]);
    assert_eq!(ps_row(&pp, &pod).map(|r| r.0), Some("Exited".to_string()));
    assert!(
        !Path::new(&format!("/proc/{infra}")).exists() || {
            // The pid may be reused; it is not the pause process any more.
            !std::fs::read_to_string(format!("/proc/{infra}/comm"))
                .unwrap_or_default()
                .contains("peapod-pause")
        }
    );
    for c in [&a, &b] {
        assert_eq!(pp.status(c), "exited", "{c}");
    }
    let v = inspect(&pp, &pod);
    assert!(v["infraPid"].is_null(), "{v:#}");

    // Start: all of it back, sharing the new infra's namespaces.
    pp.ok(&["pod", "start", &pod]);
    assert_eq!(ps_row(&pp, &pod).map(|r| r.0), Some("Running".to_string()));
    let v = inspect(&pp, &pod);
    let infra = v["infraPid"].as_i64().expect("a new infra pid");
    for c in [&a, &b] {
        let pid = member_pid(&v, c);
        assert_eq!(ns_inode(pid, "net"), ns_inode(infra, "net"), "{c}");
        assert_eq!(ns_inode(pid, "ipc"), ns_inode(infra, "ipc"), "{c}");
    }
    assert_eq!(fetch(&pp, &b).trim(), "hello-pod");

    // The host end of the pod's veth, to check it goes.
    let iflink = pp
        .ok(&["exec", &b, "cat", "/sys/class/net/eth0/iflink"])
        .trim()
        .to_string();
    let cgroup = v["cgroup"].as_str().expect("the pod's cgroup").to_string();
    assert!(cgroup_exists(&cgroup), "{cgroup}");

    // rm without -f refuses a running pod.
    let (code, _, err) = pp.code(&["pod", "rm", &pod]);
    assert_ne!(code, 0);
    assert!(err.contains("pod rm -f"), "{err}");
    let ids = pp.ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    pp.ok(&["pod", "rm", "-f", &pod]);
    assert!(pp.ids().is_empty(), "containers left: {:?}", pp.ids());
    let (_, out, _) = pp.code(&["pod", "ps"]);
    assert!(!out.contains(&pod), "{out}");
    for cid in ids.iter().chain([&id]) {
        let left = pp.leftovers(cid);
        assert!(left.is_empty(), "{cid} left: {left:?}");
    }
    let netns: Vec<_> = std::fs::read_dir(pp.run_root.join("netns"))
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(netns.is_empty(), "{netns:?}");
    let veth = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            std::fs::read_to_string(e.path().join("ifindex")).is_ok_and(|i| i.trim() == iflink)
        });
    assert!(!veth, "the host's veth {iflink} is left");
    assert!(!cgroup_exists(&cgroup), "{cgroup} is left");
    assert!(
        wait_for(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{infra}"
        ))
        .exists()
            || !std::fs::read_to_string(format!("/proc/{infra}/comm"))
                .unwrap_or_default()
                .contains("peapod-pause")),
        "the infra process is left"
    );
    let root = pp.root.to_string_lossy().into_owned();
    let supervisors: Vec<i32> = processes_mentioning(&id)
        .into_iter()
        .chain(
            processes_mentioning("__pod-supervise")
                .into_iter()
                .filter(|p| {
                    std::fs::read(format!("/proc/{p}/environ"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&root))
                }),
        )
        .collect();
    assert!(supervisors.is_empty(), "{supervisors:?}");
}

/// The pids of the `pod ns` rows of `pod`, by process name.
fn ns_rows(pp: &Peapod, pod: &str) -> Vec<(String, i64)> {
    pp.ok(&["pod", "ns", pod])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let pid = f.get(1)?.parse().ok()?;
            Some((f[0].to_string(), pid))
        })
        .collect()
}

#[test]
fn host_users_false_gives_the_pod_one_private_id_range() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("podusers");
    let name = "private-users";
    let file = pp.dir().join("pod.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: private-users
spec:
  hostUsers: false
  terminationGracePeriodSeconds: 1
  containers:
    - name: one
      image: busybox
      command: ["sleep", "1000"]
    - name: two
      image: busybox
      command: ["sleep", "1000"]
"#,
    )
    .expect("write the manifest");
    let _pods = Pods {
        pp: &pp,
        names: vec![name.to_string()],
    };
    pp.ok(&["apply", "-f", &file.to_string_lossy()]);
    assert!(
        wait_for(POD_TIMEOUT, || {
            pp.code(&["exec", name, "-c", "two", "--", "true"]).0 == 0
        }),
        "the pod never ran:\n{}",
        pp.code(&["describe", "pod", name]).1
    );
    let id = pp.ok(&["exec", name, "-c", "one", "--", "id"]);
    assert!(id.starts_with("uid=0(root) gid=0(root)"), "{id}");
    let rows = ns_rows(&pp, name);
    let pid = |c: &str| {
        rows.iter()
            .find(|r| r.0 == c)
            .map(|r| r.1)
            .unwrap_or_else(|| panic!("no {c} in {rows:?}"))
    };
    let map = |pid: i64| {
        std::fs::read_to_string(format!("/proc/{pid}/uid_map"))
            .expect("uid_map")
            .split_whitespace()
            .map(|n| n.parse::<u64>().expect("a number"))
            .collect::<Vec<_>>()
    };
    let (one, two) = (map(pid("one")), map(pid("two")));
    assert_eq!(one.len(), 3, "one range: {one:?}");
    assert_eq!(one[0], 0);
    assert!(one[1] >= 100_000, "a private range: {one:?}");
    assert_eq!(one[2], 65536);
    assert_eq!(one, two, "both containers have the pod's mapping");
    let gid = std::fs::read_to_string(format!("/proc/{}/gid_map", pid("two"))).expect("gid_map");
    assert_eq!(
        gid.split_whitespace().collect::<Vec<_>>(),
        ["0", &one[1].to_string(), "65536"]
    );
    // Root in the pod is the range's first id on the host.
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid("one"))).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert!(uid_line.contains(&one[1].to_string()), "{uid_line}");
    // The pod has one user namespace, made by its infra process, which
    // runs as the pod's root; its IPC namespace belongs to it; the pod's
    // network is shared.
    let infra = inspect(&pp, name)["infraPid"]
        .as_i64()
        .expect("an infra process");
    for c in ["one", "two"] {
        assert_eq!(ns_inode(pid(c), "user"), ns_inode(infra, "user"), "{c}");
        assert_eq!(ns_inode(pid(c), "ipc"), ns_inode(infra, "ipc"), "{c}");
    }
    let host = i64::from(std::process::id());
    assert_ne!(ns_inode(infra, "user"), ns_inode(host, "user"));
    assert_eq!(map(infra), one, "the infra process has the pod's mapping");
    let status = std::fs::read_to_string(format!("/proc/{infra}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert!(uid_line.contains(&one[1].to_string()), "infra {uid_line}");
    assert_eq!(ns_inode(pid("one"), "net"), ns_inode(pid("two"), "net"));
    // Inside, the pod's processes are root; nothing of the host's ids.
    let id = pp.ok(&["exec", name, "-c", "two", "--", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        id.split_whitespace().collect::<Vec<_>>(),
        ["0", &one[1].to_string(), "65536"]
    );
    // The range is held for the pod, and freed with it.
    let claim = pp.root.join("userns").join(one[1].to_string());
    assert!(claim.exists(), "{}", claim.display());
    pp.ok(&["delete", "pod", name, "--grace-period", "0"]);
    assert!(!claim.exists(), "the range is released");
}

/// `pod stop` then `pod start` of a pod made by `apply`: it comes back
/// up whole (a new infra process, its containers made again in its
/// namespaces, sharing net and ipc), and the restart history is kept.
#[test]
fn manifest_pod_stops_and_starts_again() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("podcmd-kube");
    let name = "restartable";
    let file = pp.dir().join("pod.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: restartable
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: one
      image: busybox
      command: ["sh", "-c", "echo run; sleep 1000"]
    - name: two
      image: busybox
      command: ["sleep", "1000"]
"#,
    )
    .expect("write the manifest");
    let _pods = Pods {
        pp: &pp,
        names: vec![name.to_string()],
    };
    pp.ok(&["apply", "-f", &file.to_string_lossy()]);
    let infra_before = inspect(&pp, name)["infraPid"].as_i64();
    pp.ok(&["pod", "stop", name]);
    let status = |pp: &Peapod| {
        let out = pp.ok(&["get", "pods", name]);
        out.lines().nth(1).unwrap_or_default().to_string()
    };
    assert!(
        wait_for(POD_TIMEOUT, || !status(&pp).contains("Running")),
        "still running after pod stop: {}",
        status(&pp)
    );
    pp.ok(&["pod", "start", name]);
    assert!(
        wait_for(POD_TIMEOUT, || status(&pp).contains("2/2")
            && status(&pp).contains("Running")),
        "not running again: {}\n{}",
        status(&pp),
        pp.code(&["describe", "pod", name]).1
    );
    let v = inspect(&pp, name);
    let infra = v["infraPid"].as_i64().expect("an infra process");
    assert_ne!(Some(infra), infra_before, "a new infra process: {v:#}");
    let rows = ns_rows(&pp, name);
    let pid = |c: &str| {
        rows.iter()
            .find(|r| r.0 == c)
            .map(|r| r.1)
            .unwrap_or_else(|| panic!("no {c} in {rows:?}"))
    };
    for c in ["one", "two"] {
        for kind in ["net", "ipc"] {
            assert_eq!(ns_inode(pid(c), kind), ns_inode(infra, kind), "{c} {kind}");
        }
    }
    // Both runs' output is in the log.
    let logs = pp.ok(&["logs", name, "-c", "one"]);
    assert!(logs.contains("run"), "{logs}");
    pp.ok(&["exec", name, "-c", "two", "--", "true"]);
}
