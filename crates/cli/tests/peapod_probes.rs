//! Probe and lifecycle handler kinds against the real `peapod` binary and
//! real servers on the host (the pods use hostNetwork, so a probe of the
//! pod's address reaches 127.0.0.1): an HTTPS readiness probe against
//! Python's TLS server with a self-signed certificate, a grpc liveness
//! probe against a grpcio server, a preStop sleep, and a bad probe refused
//! before anything is made.

mod peapod_common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use peapod_common::pods::{apply, describe, record, row};
use peapod_common::{Peapod, free_port, secs_between, usable, wait_for};

/// Bound for a pod to come up or change (a busy machine).
const POD_TIMEOUT: Duration = Duration::from_secs(90);

/// Debian's Python, which has python3-grpcio (scripts/lib/common.sh).
const PYTHON: &str = "/usr/bin/python3";

/// A server process on the host, killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `script` with Debian's Python and `args`; its output goes to
/// `log` in the test's dir.
fn python(pp: &Peapod, name: &str, script: &str, args: &[&str]) -> Server {
    let file = pp.dir().join(format!("{name}_server.py"));
    std::fs::write(&file, script).expect("write the server script");
    let log = std::fs::File::create(pp.dir().join(format!("{name}.log"))).expect("log");
    let child = Command::new(PYTHON)
        .arg(&file)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON}: {e} (install python3: scripts/setup.sh)"));
    Server(child)
}

fn log_of(pp: &Peapod, name: &str) -> String {
    std::fs::read_to_string(pp.dir().join(format!("{name}.log"))).unwrap_or_default()
}

const HTTPS_SERVER: &str = r#"
import http.server, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/healthz" and self.headers.get("X-Probe") == "peapod"
        print("GET", self.path, self.headers.get("User-Agent"), flush=True)
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.HTTPServer(("127.0.0.1", port), Health)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", flush=True)
srv.serve_forever()
"#;

#[test]
fn https_readiness_probe_flips_ready_against_a_self_signed_server() {
    if !usable() {
        return;
    }
    let pp = Peapod::new("probe-https");
    let dir = pp.dir();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=probe.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/setup.sh installs it)");
    assert!(out.status.success(), "openssl: {out:?}");
    let port = free_port();
    let name = "tls-ready";
    let _pods = apply(
        &pp,
        name,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox
      command: ["sleep", "3600"]
      readinessProbe:
        httpGet:
          scheme: HTTPS
          path: /healthz
          port: tls
          httpHeaders:
            - name: X-Probe
              value: peapod
        periodSeconds: 1
      ports:
        - name: tls
          containerPort: {port}
"#
        ),
    );
    // Nothing listens yet: running, not ready, and the failure says why.
    let refused = format!("Get \"https://127.0.0.1:{port}/healthz\": connection refused");
    assert!(
        wait_for(POD_TIMEOUT, || describe(&pp, name).contains(&refused)),
        "no readiness failure for {refused}:\n{}",
        describe(&pp, name)
    );
    assert_eq!(row(&pp, name).map(|r| r.0).as_deref(), Some("0/1"));
    let _server = python(
        &pp,
        "https",
        HTTPS_SERVER,
        &[
            &port.to_string(),
            &cert.to_string_lossy(),
            &key.to_string_lossy(),
        ],
    );
    let out = pp.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout",
        "90s",
    ]);
    assert_eq!(out.trim(), format!("pod/{name} condition met"));
    assert_eq!(row(&pp, name).map(|r| r.0).as_deref(), Some("1/1"));
    let log = log_of(&pp, "https");
    assert!(
        log.contains("GET /healthz kube-probe/peapod"),
        "the server saw no probe: {log}"
    );
}

/// A gRPC server whose grpc.health.v1.Health/Check answers SERVING until
/// the file argv[2] exists, NOT_SERVING after; it logs each request's
/// bytes. The messages are coded by hand (HealthCheckResponse is field 1,
/// an enum), so only grpcio is needed.
const GRPC_SERVER: &str = r#"
import os, sys
from concurrent import futures
import grpc

port, flag = int(sys.argv[1]), sys.argv[2]

def check(request, context):
    status = 2 if os.path.exists(flag) else 1
    print("check", request.hex(), status, flush=True)
    return bytes([0x08, status])

health = grpc.method_handlers_generic_handler(
    "grpc.health.v1.Health",
    {"Check": grpc.unary_unary_rpc_method_handler(check)},
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((health,))
server.add_insecure_port("127.0.0.1:%d" % port)
server.start()
print("listening", flush=True)
server.wait_for_termination()
"#;

/// Whether Debian's Python has grpcio; a missing one fails the test.
fn require_grpcio() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{PYTHON} cannot import grpc: install python3-grpcio (sudo bash scripts/setup.sh --deps-only)"
    );
}

#[test]
fn grpc_liveness_probe_restarts_the_container_once_not_serving() {
    if !usable() {
        return;
    }
    require_grpcio();
    let pp = Peapod::new("probe-grpc");
    let port = free_port();
    let flag = pp.dir().join("not-serving");
    let _server = python(
        &pp,
        "grpc",
        GRPC_SERVER,
        &[&port.to_string(), &flag.to_string_lossy()],
    );
    assert!(
        wait_for(POD_TIMEOUT, || log_of(&pp, "grpc").contains("listening")),
        "the gRPC server did not start: {}",
        log_of(&pp, "grpc")
    );
    let name = "grpc-live";
    let _pods = apply(
        &pp,
        name,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox
      command: ["sleep", "3600"]
      livenessProbe:
        grpc:
          port: {port}
          service: peapod.Test
        periodSeconds: 1
        failureThreshold: 2
"#
        ),
    );
    // SERVING: checks pass and the container keeps running.
    let checks = |pp: &Peapod| log_of(pp, "grpc").matches("check ").count();
    assert!(
        wait_for(POD_TIMEOUT, || checks(&pp) >= 3),
        "no health checks reached the server: {}\n{}",
        log_of(&pp, "grpc"),
        describe(&pp, name)
    );
    // HealthCheckRequest{service: "peapod.Test"}: field 1, 11 bytes.
    let want = format!("check 0a0b{} 1", hex(b"peapod.Test"));
    assert!(
        log_of(&pp, "grpc").contains(&want),
        "{}",
        log_of(&pp, "grpc")
    );
    let d = describe(&pp, name);
    assert_eq!(row(&pp, name).map(|r| r.2), Some(0), "{d}");
    assert!(!d.contains("Liveness probe failed"), "{d}");
    std::fs::write(&flag, b"").expect("flag");
    assert!(
        wait_for(POD_TIMEOUT, || row(&pp, name).is_some_and(|r| r.2 >= 1)),
        "the container was not restarted:\n{}",
        describe(&pp, name)
    );
    let d = describe(&pp, name);
    assert!(
        d.contains("Liveness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
        "{d}"
    );
    assert!(
        d.contains("Container app failed liveness probe, will be restarted"),
        "{d}"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn pre_stop_sleep_delays_the_stop_signal() {
    if !usable() {
        return;
    }
    let pp = Peapod::new("probe-sleep");
    let name = "sleepy-stop";
    let _pods = apply(
        &pp,
        name,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 20
  containers:
    - name: app
      image: busybox
      command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
      lifecycle:
        preStop:
          sleep:
            seconds: 3
"#
        ),
    );
    assert!(
        wait_for(POD_TIMEOUT, || row(&pp, name)
            .is_some_and(|r| r.1 == "Running")),
        "the pod never ran:\n{}",
        describe(&pp, name)
    );
    // `pod stop` runs the preStop sleep, then the stop signal, and keeps
    // the pod's record to read.
    let stopped = pp.output(&["pod", "stop", name]);
    assert!(stopped.status.success(), "{stopped:?}");
    let rec = record(&pp, name).expect("the pod's record");
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
        .unwrap_or_else(|| panic!("not terminated: {rec}"));
    // The stop signal (which the container exits on at once) came after
    // the 3 s sleep, and well before SIGKILL at the 20 s grace period.
    assert_eq!(state["exit_code"], 0, "{rec}");
    let waited = secs_between(&killing, finished);
    assert!(waited >= 3.0, "stopped {waited} s after Killing: {rec}");
    assert!(!rec.to_string().contains("FailedPreStopHook"), "{rec}");
}

#[test]
fn bad_probes_are_refused_before_anything_is_made() {
    if !usable() {
        return;
    }
    let pp = Peapod::new("probe-bad");
    let file = pp.dir().join("bad.yaml");
    for (probe, want) in [
        (
            "{grpc: {port: 0}}",
            "spec.containers[0].livenessProbe.grpc.port: 0 is not a port number (1..65535)",
        ),
        (
            "{tcpSocket: {port: 80}, exec: {command: [\"true\"]}}",
            "spec.containers[0].livenessProbe: needs exactly one handler",
        ),
        (
            "{httpGet: {port: admin}}",
            "spec.containers[0].livenessProbe.httpGet.port: \"admin\" is neither a port number nor the name of a port",
        ),
        (
            "{httpGet: {port: 443, scheme: FTP}}",
            "spec.containers[0].livenessProbe.httpGet.scheme: unsupported value \"FTP\"",
        ),
        (
            "{exec: {command: [\"true\"]}, periodSeconds: -2}",
            "spec.containers[0].livenessProbe.periodSeconds: must not be negative (got -2)",
        ),
    ] {
        std::fs::write(
            &file,
            format!(
                r#"apiVersion: v1
kind: Pod
metadata:
  name: bad
spec:
  containers:
    - name: app
      image: busybox
      volumeMounts: [{{name: scratch, mountPath: /s}}]
      livenessProbe: {probe}
  volumes: [{{name: scratch, emptyDir: {{}}}}]
"#
            ),
        )
        .expect("write");
        let (code, err) = pp.fails(&["apply", "-f", &file.to_string_lossy()]);
        assert_ne!(code, 0);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{probe}: {err}");
        assert!(record(&pp, "bad").is_none(), "a pod record was left");
        let volumes = pp.root.join("pods").join("volumes");
        let left = std::fs::read_dir(&volumes).map_or(0, |d| d.count());
        assert_eq!(left, 0, "volumes left in {}", volumes.display());
    }
}
