//! Pod probes, lifecycle hooks and the pod's /etc settings against the real
//! `peapod` binary: readiness (httpGet, exec) flipping READY, liveness
//! restarting a container, postStart, hostAliases, dnsConfig,
//! supplementalGroups, `wait --for`, and examples/sidecar-pod.yaml.

mod peapod_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use peapod_common::pods::{Pods, apply, describe, row};
use peapod_common::{Peapod, have_cni, usable, wait_for};

/// Bound for a pod to come up or change (a busy machine).
const POD_TIMEOUT: Duration = Duration::from_secs(90);

fn ready_for_tests() -> bool {
    usable() && have_cni()
}

fn ready_column(pp: &Peapod, name: &str) -> String {
    row(pp, name).map(|r| r.0).unwrap_or_default()
}

fn wait_running(pp: &Peapod, name: &str, c: &str) {
    assert!(
        wait_for(POD_TIMEOUT, || {
            pp.code(&["exec", name, "-c", c, "--", "true"]).0 == 0
        }),
        "container {c} of pod {name} never ran:\n{}",
        describe(pp, name)
    );
}

#[test]
fn readiness_http_probe_flips_ready_and_wait_sees_it() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("pod-ready");
    let name = "ready-later";
    let _pods = apply(
        &pp,
        name,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: ready-later
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: busybox
      command: ["sh", "-c", "sleep 4; mkdir -p /w; echo up > /w/index.html; exec httpd -f -p 8080 -h /w"]
      readinessProbe:
        httpGet:
          path: /index.html
          port: http
        periodSeconds: 1
      ports:
        - name: http
          containerPort: 8080
"#,
    );
    // Running but not ready while nothing listens.
    assert!(
        wait_for(POD_TIMEOUT, || row(&pp, name)
            .is_some_and(|r| r.1 == "Running")),
        "the pod never ran:\n{}",
        describe(&pp, name)
    );
    assert_eq!(ready_column(&pp, name), "0/1");
    let out = pp.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout",
        "90s",
    ]);
    assert_eq!(out.trim(), format!("pod/{name} condition met"));
    assert_eq!(ready_column(&pp, name), "1/1");
    // A condition that does not come: the timeout is an error.
    let (code, _, err) = pp.code(&[
        "wait",
        "--for=condition=Ready=false",
        &format!("pod/{name}"),
        "--timeout",
        "1s",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("timed out"), "{err}");
    pp.ok(&["delete", "pod", name, "--grace-period", "1"]);
    let out = pp.ok(&[
        "wait",
        "--for=delete",
        &format!("pod/{name}"),
        "--timeout",
        "60s",
    ]);
    assert_eq!(out.trim(), format!("pod/{name} deleted"));
}

#[test]
fn failing_readiness_exec_keeps_the_pod_unready() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("pod-unready");
    let name = "never-ready";
    let _pods = apply(
        &pp,
        name,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: never-ready
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox
      command: ["sleep", "3600"]
      readinessProbe:
        exec:
          command: ["cat", "/nonexistent"]
        periodSeconds: 1
"#,
    );
    assert!(
        wait_for(POD_TIMEOUT, || describe(&pp, name)
            .matches("Readiness probe failed")
            .count()
            >= 3),
        "no Unhealthy events:\n{}",
        describe(&pp, name)
    );
    let d = describe(&pp, name);
    assert!(d.contains("Unhealthy"), "{d}");
    let r = row(&pp, name).expect("the pod is listed");
    assert_eq!((r.0.as_str(), r.1.as_str(), r.2), ("0/1", "Running", 0));
}

#[test]
fn liveness_failure_restarts_the_container() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("pod-live");
    let name = "goes-bad";
    let _pods = apply(
        &pp,
        name,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: goes-bad
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox
      command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"]
      livenessProbe:
        exec:
          command: ["cat", "/tmp/healthy"]
        periodSeconds: 1
        failureThreshold: 2
"#,
    );
    assert!(
        wait_for(POD_TIMEOUT, || row(&pp, name).is_some_and(|r| r.2 >= 1)),
        "the container was not restarted:\n{}",
        describe(&pp, name)
    );
    let d = describe(&pp, name);
    assert!(d.contains("Liveness probe failed"), "{d}");
    assert!(
        d.contains("Container app failed liveness probe, will be restarted"),
        "{d}"
    );
}

#[test]
fn post_start_hook_writes_a_file_the_container_sees() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("pod-hook");
    let name = "hooked";
    let _pods = apply(
        &pp,
        name,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: hooked
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox
      command: ["sh", "-c", "while [ ! -e /tmp/started ]; do sleep 0.1; done; cat /tmp/started; sleep 3600"]
      lifecycle:
        postStart:
          exec:
            command: ["sh", "-c", "echo written by postStart > /tmp/started"]
"#,
    );
    assert!(
        wait_for(POD_TIMEOUT, || pp
            .ok(&["logs", name, "-c", "app"])
            .contains("written by postStart")),
        "the container never saw the hook's file:\n{}",
        describe(&pp, name)
    );
}

#[test]
fn pod_etc_files_and_groups() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("pod-etc");
    let name = "etc-settings";
    let _pods = apply(
        &pp,
        name,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: etc-settings
spec:
  terminationGracePeriodSeconds: 1
  hostAliases:
    - ip: 10.1.2.3
      hostnames: [foo.example, bar.example]
  dnsConfig:
    nameservers: [10.9.9.9]
    searches: [corp.example]
    options:
      - name: ndots
        value: "2"
  securityContext:
    supplementalGroups: [4242]
    fsGroup: 5353
  containers:
    - name: app
      image: busybox
      command: ["sleep", "3600"]
"#,
    );
    wait_running(&pp, name, "app");
    let hosts = pp.ok(&["exec", name, "-c", "app", "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.1.2.3\tfoo.example\n"), "{hosts}");
    assert!(hosts.contains("10.1.2.3\tbar.example\n"), "{hosts}");
    let resolv = pp.ok(&["exec", name, "-c", "app", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.9.9.9\n"), "{resolv}");
    assert!(resolv.contains("corp.example"), "{resolv}");
    assert!(resolv.contains("ndots:2"), "{resolv}");
    let id = pp.ok(&["exec", name, "-c", "app", "--", "id"]);
    assert!(id.contains("4242") && id.contains("5353"), "{id}");
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
fn sidecar_example_serves_and_ships_its_log() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("pod-sidecar");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sidecar-pod.yaml");
    let name = "web-with-sidecar";
    let _pods = Pods {
        pp: &pp,
        names: vec![name.to_string()],
    };
    pp.ok(&["apply", "-f", &file.to_string_lossy()]);
    let out = pp.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout",
        "90s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    assert_eq!(ready_column(&pp, name), "2/2");
    let mut body = None;
    assert!(
        wait_for(POD_TIMEOUT, || {
            body = http_get(18080, "/index.html");
            body.is_some()
        }),
        "nothing answers on the hostPort"
    );
    assert_eq!(body.as_deref(), Some("hello from the pod\n"));
    assert!(
        wait_for(POD_TIMEOUT, || pp
            .ok(&["logs", name, "-c", "log-shipper"])
            .contains("/index.html")
            || pp
                .ok(&["logs", name, "-c", "log-shipper"])
                .contains("response:200")),
        "the log shipper never showed the access log:\n{}",
        pp.ok(&["logs", name, "-c", "log-shipper"])
    );
}

#[test]
fn run_flags_for_hosts_dns_groups_and_sysctls() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("run-etc");
    let out = pp.ok(&[
        "run",
        "--rm",
        "--add-host",
        "foo.example:10.1.2.3",
        "--dns",
        "10.0.0.1",
        "--dns-search",
        "ex.com",
        "--dns-option",
        "ndots:3",
        "--group-add",
        "77",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf; id; echo fwd=$(cat /proc/sys/net/ipv4/ip_forward)",
    ]);
    assert!(out.contains("10.1.2.3\tfoo.example\n"), "{out}");
    assert!(
        out.contains("search ex.com\nnameserver 10.0.0.1\noptions ndots:3\n"),
        "{out}"
    );
    assert!(out.contains("groups=77"), "{out}");
    assert!(out.contains("fwd=1"), "{out}");
    let (code, err) = pp.fails(&["run", "--rm", "--add-host", "nocolon", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--add-host"), "{err}");
}

#[test]
fn startup_probe_and_failed_post_start_kill_their_containers() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("pod-startup");
    let name = "gated";
    let _pods = apply(
        &pp,
        name,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: gated
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: slow
      image: busybox
      command: ["sh", "-c", "sleep 8; touch /tmp/up; sleep 3600"]
      startupProbe:
        exec:
          command: ["cat", "/tmp/up"]
        periodSeconds: 1
        failureThreshold: 30
      livenessProbe:
        exec:
          command: ["cat", "/tmp/up"]
        periodSeconds: 1
      readinessProbe:
        exec:
          command: ["cat", "/tmp/up"]
        periodSeconds: 1
    - name: never
      image: busybox
      command: ["sleep", "3600"]
      startupProbe:
        httpGet:
          port: 8081
        periodSeconds: 1
        failureThreshold: 2
    - name: badhook
      image: busybox
      command: ["sleep", "3600"]
      lifecycle:
        postStart:
          exec:
            command: ["false"]
"#,
    );
    assert!(
        wait_for(POD_TIMEOUT, || {
            let d = describe(&pp, name);
            d.contains("Container never failed startup probe, will be restarted")
                && d.contains("FailedPostStartHook")
        }),
        "no kills:\n{}",
        describe(&pp, name)
    );
    // The slow starter becomes ready once its startup probe passes, and
    // its liveness probe (gated until then) never failed.
    let slow_ready = || {
        let v: serde_json::Value =
            serde_json::from_str(&pp.ok(&["get", "pod", name, "-o", "json"])).expect("json");
        v["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "slow" && c["ready"] == true)
    };
    assert!(!slow_ready(), "slow is ready before it started");
    assert!(
        wait_for(POD_TIMEOUT, slow_ready),
        "slow never became ready:\n{}",
        describe(&pp, name)
    );
    assert!(describe(&pp, name).contains("Startup probe failed"));
    let d = describe(&pp, name);
    assert!(!d.contains("Liveness probe failed"), "{d}");
    assert!(!d.contains("Readiness probe failed"), "{d}");
}

/// The pod's supervisor copies every container's output itself: a
/// terminal (`tty: true`), an input held open (`stdin: true`, nobody
/// attached: reads wait instead of ending), and a flood of lines from
/// two containers at once, all whole in `logs`.
#[test]
fn pod_output_terminal_stdin_and_floods_reach_the_logs() {
    if !ready_for_tests() {
        return;
    }
    let pp = Peapod::new("pod-output");
    let name = "chatty";
    let _pods = apply(
        &pp,
        name,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: chatty
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: term
      image: busybox
      tty: true
      command: ["sh", "-c", "[ -t 1 ] && echo stdout-is-a-terminal; tty; sleep 3600"]
    - name: input
      image: busybox
      stdin: true
      command: ["sh", "-c", "echo reading; read line; echo read-ended; sleep 3600"]
    - name: flood-a
      image: busybox
      command: ["sh", "-c", "seq 1 30000; echo flood-a-done; sleep 3600"]
    - name: flood-b
      image: busybox
      command: ["sh", "-c", "seq 1 30000 >&2; echo flood-b-done; sleep 3600"]
"#,
    );
    let logs = |c: &str| pp.ok(&["logs", name, "-c", c]);
    assert!(
        wait_for(POD_TIMEOUT, || logs("flood-a").contains("flood-a-done")
            && logs("flood-b").contains("flood-b-done")
            && logs("term").contains("/dev/pts/")
            && logs("input").contains("reading")),
        "the output never all arrived:\n{}",
        describe(&pp, name)
    );
    let term = logs("term");
    assert!(term.contains("stdout-is-a-terminal"), "term: {term}");
    // `logs` writes the container's stderr to its own stderr.
    let stderr = |c: &str| {
        let out = pp.output(&["logs", name, "-c", c]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for (c, text) in [("flood-a", logs("flood-a")), ("flood-b", stderr("flood-b"))] {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let want: Vec<String> = (1..=30000).map(|n| n.to_string()).collect();
        assert_eq!(
            lines[..30000],
            want[..],
            "{c}: {} lines, first difference at {:?}",
            lines.len(),
            lines.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
    // The input stays open: the read is still waiting.
    std::thread::sleep(Duration::from_millis(500));
    let input = logs("input");
    assert!(!input.contains("read-ended"), "stdin ended: {input}");
    let (ready, status, _) = row(&pp, name).expect("the pod is listed");
    assert_eq!((ready.as_str(), status.as_str()), ("4/4", "Running"));
}
