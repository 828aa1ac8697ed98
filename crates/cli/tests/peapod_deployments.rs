//! Deployments and ReplicaSets against the real `peapod` binary: replicas
//! kept (a pod deleted by hand is replaced), a template change rolled
//! within maxSurge/maxUnavailable, `scale`, and `delete` leaving no pod,
//! controller, netns, veth or lease behind; minReadySeconds, revisions
//! with `rollout history|undo|restart`, and controllers that died brought
//! back by the next command that looks.

mod peapod_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use peapod_common::{Peapod, have_cni, processes_mentioning, usable, wait_for};
use serde_json::Value;

/// Bound for pods to come up or go (several pods on a busy machine).
const POD_TIMEOUT: Duration = Duration::from_secs(90);

/// A Deployment of `replicas` busybox httpd pods answering "<tag> replica
/// <hostname>" on :8080/i, stopping within a second.
fn web(name: &str, replicas: u32, tag: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: busybox
          command: ["sh", "-c", "echo {tag} replica $(hostname) > /tmp/i && exec httpd -f -p 8080 -h /tmp"]
          ports:
            - containerPort: 8080
"#
    )
}

/// Deletes the object (and so its pods) when the test ends, even on a
/// panic; declared after the [`Peapod`] so it runs first.
struct Cleanup<'a> {
    pp: &'a Peapod,
    what: Vec<(&'static str, String)>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for (kind, name) in &self.what {
            let _ = self
                .pp
                .output(&["delete", kind, name, "--grace-period", "0"]);
        }
        // Whatever is left (a controller that died mid-way).
        for p in pods(self.pp) {
            let _ = self
                .pp
                .output(&["delete", "pod", &p.name, "--grace-period", "0"]);
        }
    }
}

fn write_manifest(pp: &Peapod, file: &str, text: &str) -> String {
    let path = pp.dir().join(file);
    std::fs::write(&path, text).expect("write manifest");
    path.to_string_lossy().into_owned()
}

#[derive(Debug, Clone)]
struct Pod {
    name: String,
    /// The pod-template-hash part of a Deployment pod's name.
    hash: String,
    ip: Option<String>,
    /// `get pods` says Running (not Terminating) and every container ready.
    running_ready: bool,
}

/// The pods, from one `get pods -o wide` (one consistent look).
fn pods(pp: &Peapod) -> Vec<Pod> {
    let table =
        String::from_utf8_lossy(&pp.output(&["get", "pods", "-o", "wide"]).stdout).into_owned();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let row: Vec<&str> = l.split_whitespace().collect();
            if row.len() < 7 {
                return None;
            }
            let parts: Vec<&str> = row[0].split('-').collect();
            let (a, b) = row[1].split_once('/').unwrap_or(("0", "1"));
            Some(Pod {
                name: row[0].to_string(),
                hash: if parts.len() >= 3 {
                    parts[parts.len() - 2].to_string()
                } else {
                    String::new()
                },
                ip: (row[5] != "<none>").then(|| row[5].to_string()),
                running_ready: row[2] == "Running" && a == b,
            })
        })
        .collect()
}

/// Owner (ReplicaSet name) and pod-template-hash label of each pod.
fn owners(pp: &Peapod) -> Vec<(String, String, String)> {
    let out = pp.ok(&["get", "pods", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).expect("pods JSON");
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&p["metadata"]["name"]),
                s(&p["metadata"]["ownerReferences"][0]["name"]),
                s(&p["metadata"]["labels"]["pod-template-hash"]),
            )
        })
        .collect()
}

/// Waits until exactly `n` pods exist and all run ready; them.
fn wait_pods(pp: &Peapod, n: usize) -> Vec<Pod> {
    let mut last = Vec::new();
    let ok = wait_for(POD_TIMEOUT, || {
        last = pods(pp);
        last.len() == n && last.iter().all(|p| p.running_ready)
    });
    assert!(ok, "expected {n} running pods, got {last:#?}");
    last
}

/// GET http://ip:8080/i, retried until it answers.
fn http_get(ip: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(
                &format!("{ip}:8080").parse().expect("pod address"),
                Duration::from_secs(2),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /i HTTP/1.0\r\nHost: pod\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match attempt {
            Ok(b) if b.contains("200") => {
                return b.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
            }
            other if Instant::now() >= deadline => panic!("GET {ip}:8080/i: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Pod ids of this root (their record directories).
fn pod_ids(pp: &Peapod) -> Vec<String> {
    std::fs::read_dir(pp.root.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64)
        .collect()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn web_deployment_runs_three_replicas_and_replaces_a_deleted_pod() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-web");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "web".into())],
    };
    let out = pp.ok(&["apply", "-f", &example("web-deployment.yaml")]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let first = wait_pods(&pp, 3);
    let hash = first[0].hash.clone();
    assert_eq!(hash.len(), 10, "{first:?}");
    for p in &first {
        assert!(p.name.starts_with(&format!("web-{hash}-")), "{p:?}");
        assert_eq!(p.name.len(), "web-".len() + 10 + 1 + 5, "{p:?}");
        let ip = p.ip.as_deref().expect("a pod IP");
        assert_eq!(http_get(ip).trim(), format!("replica {}", p.name));
    }
    for (name, owner, label) in owners(&pp) {
        assert_eq!(owner, format!("web-{hash}"), "{name}");
        assert_eq!(label, hash, "{name}");
    }
    let table = pp.ok(&["get", "deployments"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..4] == ["web", "3/3", "3", "3"]),
        "{table}"
    );
    let rs = pp.ok(&["get", "rs"]);
    assert!(
        rs.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..4]
                == [format!("web-{hash}").as_str(), "3", "3", "3"]),
        "{rs}"
    );
    // Applying the same manifest again changes nothing.
    let out = pp.ok(&["apply", "-f", &example("web-deployment.yaml")]);
    assert_eq!(out.trim(), "deployment.apps/web unchanged");

    let gone = first[0].name.clone();
    pp.ok(&["delete", "pod", &gone, "--grace-period", "1"]);
    let after = wait_pods(&pp, 3);
    assert!(after.iter().all(|p| p.name != gone), "{after:?}");
    let new: Vec<_> = after
        .iter()
        .filter(|p| first.iter().all(|f| f.name != p.name))
        .collect();
    assert_eq!(new.len(), 1, "one replacement: {after:?}");
    assert_eq!(new[0].hash, hash);
    let describe = pp.ok(&["describe", "deployment", "web"]);
    assert!(
        describe.contains("StrategyType:       RollingUpdate"),
        "{describe}"
    );
    assert!(describe.contains("SuccessfulCreate"), "{describe}");
}

#[test]
fn changed_template_rolls_the_pods_within_max_unavailable() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-roll");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "roll".into())],
    };
    let v1 = write_manifest(&pp, "v1.yaml", &web("roll", 3, "v1"));
    pp.ok(&["apply", "-f", &v1]);
    let before = wait_pods(&pp, 3);
    let old_hash = before[0].hash.clone();

    let v2 = write_manifest(&pp, "v2.yaml", &web("roll", 3, "v2"));
    let out = pp.ok(&["apply", "-f", &v2]);
    assert_eq!(out.trim(), "deployment.apps/roll configured");
    // maxSurge 25% of 3 rounds up to 1, maxUnavailable down to 0: at
    // least 3 pods run ready at every sample, at most 4 exist.
    let mut samples = 0;
    let mut seen_new = false;
    let done = wait_for(POD_TIMEOUT, || {
        let now = pods(&pp);
        samples += 1;
        let ready = now.iter().filter(|p| p.running_ready).count();
        assert!(ready >= 3, "fewer than 3 ready during the roll: {now:#?}");
        let live: Vec<_> = now.iter().filter(|p| p.running_ready).collect();
        assert!(live.len() <= 4, "more than 3 + maxSurge: {now:#?}");
        seen_new |= now.iter().any(|p| p.hash != old_hash);
        now.len() == 3 && now.iter().all(|p| p.hash != old_hash && p.running_ready)
    });
    assert!(done, "the roll did not finish: {:#?}", pods(&pp));
    assert!(seen_new && samples > 1);
    let status = pp.ok(&[
        "rollout",
        "status",
        "deployment",
        "roll",
        "--timeout",
        "60s",
    ]);
    assert!(
        status
            .lines()
            .last()
            .is_some_and(|l| l == "deployment \"roll\" successfully rolled out"),
        "{status}"
    );
    let after = pods(&pp);
    let new_hash = after[0].hash.clone();
    assert_ne!(new_hash, old_hash);
    for p in &after {
        assert_eq!(p.hash, new_hash);
        assert!(p.name.starts_with(&format!("roll-{new_hash}-")), "{p:?}");
        let ip = p.ip.as_deref().expect("a pod IP");
        assert_eq!(http_get(ip).trim(), format!("v2 replica {}", p.name));
    }
}

#[test]
fn scale_then_delete_leaves_nothing_behind() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-scale");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "sc".into())],
    };
    let m = write_manifest(&pp, "sc.yaml", &web("sc", 3, "s"));
    pp.ok(&["apply", "-f", &m]);
    wait_pods(&pp, 3);
    let mut ids = pod_ids(&pp);
    let out = pp.ok(&["scale", "deployment", "sc", "--replicas", "1"]);
    assert_eq!(out.trim(), "deployment.apps/sc scaled");
    wait_pods(&pp, 1);
    let table = pp.ok(&["get", "deploy"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..4] == ["sc", "1/1", "1", "1"]),
        "{table}"
    );
    ids.extend(pod_ids(&pp));
    ids.sort();
    ids.dedup();

    let root = pp.root.to_string_lossy().into_owned();
    let controllers = || {
        processes_mentioning("__deploy-supervise")
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&root))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(controllers().len(), 1, "one controller");
    let out = pp.ok(&["delete", "deployment", "sc", "--grace-period", "1"]);
    assert_eq!(out.trim(), "deployment.apps \"sc\" deleted");
    assert!(pods(&pp).is_empty(), "{:?}", pods(&pp));
    assert!(pod_ids(&pp).is_empty());
    assert!(
        wait_for(Duration::from_secs(5), || controllers().is_empty()),
        "the controller is gone"
    );
    let (_, out, err) = pp.code(&["get", "deployments"]);
    assert!(
        out.is_empty() && err.contains("No resources found"),
        "{out}{err}"
    );
    for id in &ids {
        let left = pp.leftovers(id);
        assert!(left.is_empty(), "pod {id} left: {left:?}");
    }
    let netns: Vec<_> = std::fs::read_dir(pp.run_root.join("netns"))
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(netns.is_empty(), "{netns:?}");
}

#[test]
fn replicaset_keeps_its_replicas() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-rs");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("replicaset", "front".into())],
    };
    let m = write_manifest(
        &pp,
        "rs.yaml",
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: front
spec:
  replicas: 2
  selector:
    matchLabels:
      app: front
  template:
    metadata:
      labels:
        app: front
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: c
          image: busybox
          command: ["sleep", "1000"]
"#,
    );
    assert_eq!(
        pp.ok(&["apply", "-f", &m]).trim(),
        "replicaset.apps/front created"
    );
    let first = wait_pods(&pp, 2);
    assert!(
        first.iter().all(|p| p.name.len() == "front-".len() + 5),
        "{first:?}"
    );
    assert!(owners(&pp).iter().all(|(_, owner, _)| owner == "front"));
    let rs = pp.ok(&["get", "replicasets"]);
    assert!(
        rs.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..4] == ["front", "2", "2", "2"]),
        "{rs}"
    );
    pp.ok(&["delete", "pod", &first[1].name, "--grace-period", "0"]);
    let after = wait_pods(&pp, 2);
    assert!(after.iter().all(|p| p.name != first[1].name), "{after:?}");
    pp.ok(&["scale", "rs/front", "--replicas", "3"]);
    wait_pods(&pp, 3);
    let out = pp.ok(&["delete", "-f", &m, "--grace-period", "0"]);
    assert_eq!(out.trim(), "replicaset.apps \"front\" deleted");
    assert!(pods(&pp).is_empty());
}

#[test]
fn recreate_strategy_stops_the_old_pods_before_the_new_ones() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-recreate");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "rc".into())],
    };
    let recreate = |tag: &str| {
        web("rc", 2, tag).replace(
            "spec:\n  replicas",
            "spec:\n  strategy:\n    type: Recreate\n  replicas",
        )
    };
    let v1 = write_manifest(&pp, "v1.yaml", &recreate("v1"));
    pp.ok(&["apply", "-f", &v1]);
    let before = wait_pods(&pp, 2);
    let old_hash = before[0].hash.clone();
    let v2 = write_manifest(&pp, "v2.yaml", &recreate("v2"));
    pp.ok(&["apply", "-f", &v2]);
    let done = wait_for(POD_TIMEOUT, || {
        let now = pods(&pp);
        let new = now.iter().filter(|p| p.hash != old_hash).count();
        let old = now.iter().filter(|p| p.hash == old_hash).count();
        assert!(
            new == 0 || old == 0,
            "old and new pods at once under Recreate: {now:#?}"
        );
        now.len() == 2 && new == 2 && now.iter().all(|p| p.running_ready)
    });
    assert!(done, "the recreate did not finish: {:#?}", pods(&pp));
    let describe = pp.ok(&["describe", "deploy", "rc"]);
    assert!(
        describe.contains("StrategyType:       Recreate"),
        "{describe}"
    );
}

#[test]
fn a_pod_whose_supervisor_died_is_replaced() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-lost");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "lost".into())],
    };
    let m = write_manifest(&pp, "lost.yaml", &web("lost", 2, "l"));
    pp.ok(&["apply", "-f", &m]);
    let first = wait_pods(&pp, 2);
    let id = pod_ids(&pp).into_iter().next().expect("a pod record");
    let rec: Value = serde_json::from_slice(
        &std::fs::read(pp.root.join("pods").join(&id).join("pod.json")).expect("pod record"),
    )
    .expect("pod JSON");
    let name = rec["name"].as_str().expect("pod name").to_string();
    let pid = rec["supervisor"]["pid"].as_i64().expect("supervisor pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the pod's supervisor");
    let mut last = Vec::new();
    let replaced = wait_for(POD_TIMEOUT, || {
        last = pods(&pp);
        last.len() == 2 && last.iter().all(|p| p.running_ready && p.name != name)
    });
    assert!(replaced, "{name} was not replaced: {last:#?}");
    assert!(first.iter().any(|p| p.name == name));
    let left = pp.leftovers(&id);
    assert!(left.is_empty(), "pod {id} left: {left:?}");
}

/// `get deployment NAME -o json`.
fn deployment_json(pp: &Peapod, name: &str) -> Value {
    serde_json::from_str(&pp.ok(&["get", "deployment", name, "-o", "json"]))
        .expect("deployment JSON")
}

/// `web(...)` with `lines` (two-space indented) added to its spec.
fn with_spec(manifest: &str, lines: &str) -> String {
    manifest.replace("spec:\n  replicas", &format!("spec:\n{lines}  replicas"))
}

/// `web(...)` with a `kubernetes.io/change-cause` annotation.
fn with_cause(manifest: &str, name: &str, cause: &str) -> String {
    manifest.replacen(
        &format!("metadata:\n  name: {name}\n"),
        &format!(
            "metadata:\n  name: {name}\n  annotations:\n    kubernetes.io/change-cause: {cause}\n"
        ),
        1,
    )
}

/// `rollout history` rows: revision and change-cause.
fn history(pp: &Peapod, name: &str) -> Vec<(u64, String)> {
    let out = pp.ok(&["rollout", "history", &format!("deployment/{name}")]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(format!("deployment.apps/{name}").as_str())
    );
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["REVISION", "CHANGE-CAUSE"], "{out}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (n, cause) = l.split_once(' ').expect("a history row");
            (n.parse().expect("a revision"), cause.trim().to_string())
        })
        .collect()
}

/// ReplicaSets of the root by revision: (revision, name, desired).
fn replica_sets(pp: &Peapod) -> Vec<(u64, String, u64)> {
    let v: Value = serde_json::from_str(&pp.ok(&["get", "rs", "-o", "json"])).expect("rs JSON");
    let mut out: Vec<(u64, String, u64)> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rs| {
            (
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                rs["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                rs["spec"]["replicas"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    out.sort();
    out
}

/// Waits until `n` pods run ready, all of ReplicaSet `rs`.
fn wait_rs_pods(pp: &Peapod, rs: &str, n: usize) -> Vec<Pod> {
    let mut last = Vec::new();
    let ok = wait_for(POD_TIMEOUT, || {
        last = pods(pp);
        last.len() == n
            && last
                .iter()
                .all(|p| p.running_ready && p.name.starts_with(&format!("{rs}-")))
    });
    assert!(ok, "expected {n} running pods of {rs}, got {last:#?}");
    last
}

#[test]
fn min_ready_seconds_keeps_new_pods_unavailable_and_paces_the_roll() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-minready");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "mr".into())],
    };
    let spec = "  minReadySeconds: 3\n  strategy:\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n";
    let v1 = write_manifest(&pp, "v1.yaml", &with_spec(&web("mr", 2, "v1"), spec));
    pp.ok(&["apply", "-f", &v1]);
    // Ready first, available only later.
    let counts = |d: &Value| {
        let n = |k: &str| d["status"][k].as_u64().unwrap_or(0);
        (
            n("readyReplicas"),
            n("availableReplicas"),
            n("updatedReplicas"),
            n("replicas"),
        )
    };
    let mut ready_not_available = false;
    let up = wait_for(POD_TIMEOUT, || {
        let (ready, available, _, _) = counts(&deployment_json(&pp, "mr"));
        ready_not_available |= ready > available;
        available == 2
    });
    assert!(up, "{:#}", deployment_json(&pp, "mr"));
    assert!(ready_not_available, "pods were available as soon as ready");
    let describe = pp.ok(&["describe", "deployment", "mr"]);
    assert!(describe.contains("MinReadySeconds:    3"), "{describe}");

    // maxUnavailable 0: an old pod goes only once a new one has been
    // ready for minReadySeconds, so 2 stay available throughout.
    let v2 = write_manifest(&pp, "v2.yaml", &with_spec(&web("mr", 2, "v2"), spec));
    pp.ok(&["apply", "-f", &v2]);
    let mut new_ready_not_available = false;
    let rolled = wait_for(POD_TIMEOUT, || {
        let d = deployment_json(&pp, "mr");
        let (ready, available, updated, replicas) = counts(&d);
        assert!(
            available >= 2,
            "fewer than 2 available during the roll: {d:#}"
        );
        new_ready_not_available |= updated > 0 && ready > available;
        updated == 2 && replicas == 2 && available == 2
    });
    assert!(rolled, "{:#}", deployment_json(&pp, "mr"));
    assert!(
        new_ready_not_available,
        "new pods were available as soon as ready"
    );
    let status = pp.ok(&["rollout", "status", "deployment/mr", "--timeout", "60s"]);
    assert!(
        status.ends_with("deployment \"mr\" successfully rolled out\n"),
        "{status}"
    );
}

#[test]
fn rollout_history_undo_and_the_revision_limit() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-history");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "hist".into())],
    };
    let version = |v: &str| {
        let m = with_spec(&web("hist", 1, v), "  revisionHistoryLimit: 2\n");
        write_manifest(&pp, &format!("{v}.yaml"), &with_cause(&m, "hist", v))
    };
    pp.ok(&["apply", "-f", &version("v1")]);
    wait_pods(&pp, 1);
    for v in ["v2", "v3", "v4"] {
        assert_eq!(
            pp.ok(&["apply", "-f", &version(v)]).trim(),
            "deployment.apps/hist configured"
        );
    }
    // Revision 1 is dropped (the limit keeps 2 old ones) once its pod is
    // gone.
    let want = |l: &[(u64, &str)]| -> Vec<(u64, String)> {
        l.iter().map(|(n, c)| (*n, c.to_string())).collect()
    };
    let mut last = Vec::new();
    let pruned = wait_for(POD_TIMEOUT, || {
        last = history(&pp, "hist");
        last == want(&[(2, "v2"), (3, "v3"), (4, "v4")])
    });
    assert!(pruned, "history: {last:?}");
    let sets = replica_sets(&pp);
    assert_eq!(
        sets.iter().map(|s| (s.0, s.2)).collect::<Vec<_>>(),
        [(2, 0), (3, 0), (4, 1)],
        "{sets:?}"
    );
    let rs = |n: u64| {
        sets.iter()
            .find(|s| s.0 == n)
            .expect("a revision")
            .1
            .clone()
    };
    let (rs3, rs4) = (rs(3), rs(4));
    let d = deployment_json(&pp, "hist");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "4",
        "{d:#}"
    );
    let p = wait_rs_pods(&pp, &rs4, 1);
    assert_eq!(
        http_get(p[0].ip.as_deref().expect("a pod IP")).trim(),
        format!("v4 replica {}", p[0].name)
    );

    // Undo: revision 3's template comes back as revision 5.
    assert_eq!(
        pp.ok(&["rollout", "undo", "deployment/hist"]).trim(),
        "deployment.apps/hist rolled back"
    );
    let p = wait_rs_pods(&pp, &rs3, 1);
    assert_eq!(
        http_get(p[0].ip.as_deref().expect("a pod IP")).trim(),
        format!("v3 replica {}", p[0].name)
    );
    assert_eq!(
        history(&pp, "hist"),
        want(&[(2, "v2"), (4, "v4"), (5, "v3")])
    );
    let d = deployment_json(&pp, "hist");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "5",
        "{d:#}"
    );
    let shown = pp.ok(&[
        "rollout",
        "history",
        "deployment",
        "hist",
        "--revision",
        "5",
    ]);
    assert!(
        shown.starts_with("deployment.apps/hist with revision #5\n"),
        "{shown}"
    );
    let hash3 = rs3.trim_start_matches("hist-");
    assert!(
        shown.contains(&format!("pod-template-hash={hash3}")),
        "{shown}"
    );

    // To a given revision, in the `deployment NAME` form.
    assert_eq!(
        pp.ok(&[
            "rollout",
            "undo",
            "deployment",
            "hist",
            "--to-revision",
            "4"
        ])
        .trim(),
        "deployment.apps/hist rolled back"
    );
    wait_rs_pods(&pp, &rs4, 1);
    assert_eq!(
        history(&pp, "hist"),
        want(&[(2, "v2"), (5, "v3"), (6, "v4")])
    );
    assert_eq!(
        pp.ok(&["rollout", "undo", "deployment/hist", "--to-revision=6"])
            .trim(),
        "deployment.apps/hist skipped rollback (current template already matches revision 6)"
    );
    let (_, err) = pp.fails(&["rollout", "undo", "deployment/hist", "--to-revision", "4"]);
    assert!(
        err.contains("unable to find specified revision 4 in history"),
        "{err}"
    );
    let (_, err) = pp.fails(&["rollout", "undo", "deployment/nope"]);
    assert!(err.contains("\"nope\" not found"), "{err}");
}

#[test]
fn rollout_restart_replaces_every_pod() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-restart");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "rst".into())],
    };
    let m = write_manifest(&pp, "rst.yaml", &web("rst", 2, "r"));
    pp.ok(&["apply", "-f", &m]);
    let before = wait_pods(&pp, 2);
    assert_eq!(history(&pp, "rst"), [(1, "<none>".to_string())]);
    assert_eq!(
        pp.ok(&["rollout", "restart", "deployment/rst"]).trim(),
        "deployment.apps/rst restarted"
    );
    let mut last = Vec::new();
    let replaced = wait_for(POD_TIMEOUT, || {
        last = pods(&pp);
        last.len() == 2
            && last
                .iter()
                .all(|p| p.running_ready && p.hash != before[0].hash)
    });
    assert!(replaced, "{last:#?}");
    let d = deployment_json(&pp, "rst");
    let stamp =
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap_or_default();
    assert!(
        stamp.len() == "2006-01-02T15:04:05Z".len() && stamp.ends_with('Z'),
        "{d:#}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2",
        "{d:#}"
    );
    assert_eq!(
        history(&pp, "rst"),
        [(1, "<none>".to_string()), (2, "<none>".to_string())]
    );
    let (_, err) = pp.fails(&["rollout", "restart", "rs/rst"]);
    assert!(err.contains("only deployments"), "{err}");
}

/// The controller pid in the record of `kind` (deployments, jobs) `name`.
fn controller_pid(pp: &Peapod, kind: &str, name: &str) -> i32 {
    let path = pp.root.join(kind).join(format!("default_{name}.json"));
    let rec: Value = serde_json::from_slice(&std::fs::read(&path).expect("controller record"))
        .expect("record JSON");
    rec["controller"]["pid"].as_i64().expect("controller pid") as i32
}

/// Whether process `pid` runs (not gone, not a zombie).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .is_some_and(|i| !s[i + 1..].trim_start().starts_with('Z'))
    })
}

fn sigkill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the controller");
    assert!(
        wait_for(Duration::from_secs(10), || !running(pid)),
        "{pid} still runs"
    );
}

#[test]
fn get_pods_brings_back_a_killed_deployment_controller() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-revive");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("deployment", "rev".into())],
    };
    let m = write_manifest(&pp, "rev.yaml", &web("rev", 2, "r"));
    pp.ok(&["apply", "-f", &m]);
    let first = wait_pods(&pp, 2);
    let old = controller_pid(&pp, "deployments", "rev");
    sigkill(old);
    // Removed by hand, by a command that does not look at Deployments:
    // nothing replaces it while no controller runs.
    pp.ok(&["pod", "rm", "-f", &first[0].name]);
    assert_eq!(pod_ids(&pp).len(), 1);
    assert_eq!(controller_pid(&pp, "deployments", "rev"), old);
    pp.ok(&["get", "pods"]);
    let new = controller_pid(&pp, "deployments", "rev");
    assert!(new != old && running(new), "no controller after get pods");
    let after = wait_pods(&pp, 2);
    assert!(after.iter().all(|p| p.name != first[0].name), "{after:?}");
    // Every controller lives: the next look starts none.
    pp.ok(&["get", "deployments"]);
    assert_eq!(controller_pid(&pp, "deployments", "rev"), new);
}

#[test]
fn get_jobs_brings_back_a_killed_job_controller() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("deploy-revive-job");
    let _cleanup = Cleanup {
        pp: &pp,
        what: vec![("job", "two".into())],
    };
    let m = write_manifest(
        &pp,
        "job.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: two
spec:
  completions: 2
  parallelism: 1
  template:
    spec:
      terminationGracePeriodSeconds: 1
      restartPolicy: Never
      containers:
        - name: work
          image: busybox
          command: ["sh", "-c", "sleep 1"]
"#,
    );
    pp.ok(&["apply", "-f", &m]);
    sigkill(controller_pid(&pp, "jobs", "two"));
    // With no controller the Job would never get its second pod.
    let mut last = Value::Null;
    let complete = wait_for(POD_TIMEOUT, || {
        last =
            serde_json::from_str(&pp.ok(&["get", "jobs", "two", "-o", "json"])).unwrap_or_default();
        last["status"]["succeeded"] == 2
    });
    assert!(complete, "{last:#}");
}
