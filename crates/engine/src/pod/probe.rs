//! Probes and lifecycle handlers: what to check (a command in the
//! container, an HTTP(S) GET, a TCP connect, a gRPC health check, a sleep)
//! and how often, as kubelet's livenessProbe / readinessProbe /
//! startupProbe and postStart / preStop.
//!
//! The network checks here are plain blocking calls with a timeout; the
//! supervisor runs probes in forked children (it never starts threads, as
//! it forks monitors) and hooks inline. A check's result is one exit code
//! (below), which [`failure_message`] turns into kubelet's words.

mod grpc;
mod http;
mod tls;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a probe or a hook does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A command run in the container: success is exit code 0.
    Exec(Vec<String>),
    /// An HTTP or HTTPS GET: success is a status in 200-399.
    HttpGet(HttpGet),
    /// A TCP connect: success is an accepted connection.
    TcpSocket { host: Option<String>, port: u16 },
    /// A gRPC health check (grpc.health.v1.Health/Check) of `service` at
    /// the pod's IP: success is SERVING.
    Grpc { port: u16, service: String },
    /// A lifecycle handler that waits this many seconds (bounded by the
    /// caller's limit) and succeeds.
    Sleep(u32),
}

/// `httpGet`, with a named port already resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpGet {
    /// Default: the pod's IP.
    pub host: Option<String>,
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// HTTP or HTTPS (HTTPS does not verify the server's certificate, as
    /// kubelet).
    pub scheme: String,
}

/// One probe with kubelet's timing fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub action: Action,
    pub initial_delay: u32,
    /// periodSeconds (default 10).
    pub period: u32,
    /// timeoutSeconds (default 1).
    pub timeout: u32,
    /// successThreshold (default 1).
    pub success_threshold: u32,
    /// failureThreshold (default 3).
    pub failure_threshold: u32,
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// Exit codes of a network check (a forked child's exit status).
pub const OK: i32 = 0;
/// The connection was refused or failed.
pub const REFUSED: i32 = 1;
/// An HTTP status outside 200-399 that has no code of its own below.
pub const BAD_STATUS: i32 = 2;
/// `check` was given an `Exec` action, which runs in the container.
pub const UNSUPPORTED: i32 = 3;
/// The check did not finish within its timeout.
pub const TIMED_OUT: i32 = 4;
/// The TLS handshake failed.
pub const TLS_FAILED: i32 = 5;
/// The server's answer was not HTTP/1.x or gRPC over HTTP/2.
pub const BAD_RESPONSE: i32 = 6;
/// More than 10 redirects on the same host.
pub const TOO_MANY_REDIRECTS: i32 = 7;
/// The host name did not resolve.
pub const NO_ADDRESS: i32 = 8;
/// A redirect to a URL kubelet cannot follow (not http or https).
pub const BAD_REDIRECT: i32 = 9;
/// gRPC health status `n` (UNKNOWN 0, NOT_SERVING 2, SERVICE_UNKNOWN 3,
/// others 4) is `GRPC_HEALTH + n`.
pub const GRPC_HEALTH: i32 = 10;
/// A gRPC call that ended with status code `n` (1-16) is `GRPC_STATUS + n`.
pub const GRPC_STATUS: i32 = 32;
/// An HTTP status `s` in 400-599 is `HTTP_STATUS + s - 400`.
pub const HTTP_STATUS: i32 = 56;

/// The names of gRPC status codes 0-16.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Why a check failed, in kubelet's words, from its exit code (`None`: it
/// was ended at its timeout).
pub fn failure_message(
    action: &Action,
    code: Option<i32>,
    timeout: u32,
    pod_ip: Option<IpAddr>,
) -> String {
    let host = |h: &Option<String>| match h.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => default_ip(pod_ip).to_string(),
    };
    let Some(code) = code else {
        return format!("the probe timed out after {timeout}s");
    };
    match action {
        Action::Exec(cmd) => format!("command {cmd:?} exited with code {code}"),
        Action::Sleep(s) => format!("sleep of {s}s ended with code {code}"),
        Action::HttpGet(h) => {
            if (HTTP_STATUS..HTTP_STATUS + 200).contains(&code) {
                return format!(
                    "HTTP probe failed with statuscode: {}",
                    code - HTTP_STATUS + 400
                );
            }
            let why = match code {
                BAD_STATUS => "HTTP status outside 200-399",
                TIMED_OUT => {
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                }
                TLS_FAILED => "TLS handshake failed",
                BAD_RESPONSE => "malformed HTTP response",
                TOO_MANY_REDIRECTS => "stopped after 10 redirects",
                NO_ADDRESS => "no such host",
                BAD_REDIRECT => "redirect to an unsupported protocol scheme",
                _ => "connection refused",
            };
            let url = host_port(&host(&h.host), h.port);
            let scheme = h.scheme.to_ascii_lowercase();
            format!("Get \"{scheme}://{url}{}\": {why}", h.path)
        }
        Action::TcpSocket { host: h, port } => {
            let why = match code {
                TIMED_OUT => "i/o timeout",
                NO_ADDRESS => "no such host",
                _ => "connect: connection refused",
            };
            format!("dial tcp {}: {why}", host_port(&host(h), *port))
        }
        Action::Grpc { port, .. } => {
            let addr = host_port(&default_ip(pod_ip).to_string(), *port);
            let health = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
            match code {
                REFUSED => format!("failed to connect service {addr:?}: connection refused"),
                TIMED_OUT => format!("timeout: health rpc did not complete within {timeout}s"),
                c if (GRPC_HEALTH..GRPC_HEALTH + 4).contains(&c) => {
                    format!(
                        "service unhealthy (responded with {:?})",
                        health[(c - GRPC_HEALTH) as usize]
                    )
                }
                c if c == GRPC_HEALTH + 4 => {
                    "service unhealthy (responded with an unknown status)".to_string()
                }
                c if c == GRPC_STATUS + 12 => "this server doesn't implement the grpc health \
                     protocol (grpc.health.v1.Health): rpc error: code = Unimplemented"
                    .to_string(),
                c if c == GRPC_STATUS + 4 => {
                    format!("timeout: health rpc did not complete within {timeout}s")
                }
                c if (GRPC_STATUS + 1..GRPC_STATUS + 17).contains(&c) => format!(
                    "error: health rpc probe failed: rpc error: code = {}",
                    GRPC_CODES[(c - GRPC_STATUS) as usize]
                ),
                _ => format!(
                    "error: health rpc probe failed: {addr} did not answer with gRPC over HTTP/2"
                ),
            }
        }
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The pod's IP, or the loopback address without one.
fn default_ip(pod_ip: Option<IpAddr>) -> IpAddr {
    pod_ip.unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Where to connect: `host` (an address or a name) or the pod's address.
fn address(host: Option<&str>, pod_ip: Option<IpAddr>, port: u16) -> Option<SocketAddr> {
    match host.filter(|h| !h.is_empty()) {
        None => Some(SocketAddr::new(default_ip(pod_ip), port)),
        Some(h) => {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = h.parse::<IpAddr>() {
                return Some(SocketAddr::new(ip, port));
            }
            use std::net::ToSocketAddrs;
            (h, port).to_socket_addrs().ok()?.next()
        }
    }
}

/// The time left until `deadline`, `None` once it passed.
fn left(deadline: Instant) -> Option<Duration> {
    Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
}

/// The exit code of an I/O error: a timeout or a failed connection.
fn io_code(e: &std::io::Error) -> i32 {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => TIMED_OUT,
        _ => REFUSED,
    }
}

/// A TCP connection to `addr` made before `deadline`.
fn connect(addr: &SocketAddr, deadline: Instant) -> Result<TcpStream, i32> {
    let t = left(deadline).ok_or(TIMED_OUT)?;
    let s = TcpStream::connect_timeout(addr, t).map_err(|e| io_code(&e))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Runs a network check or a sleep (not `Exec`) within `timeout`; one of
/// the exit codes above.
pub fn check(action: &Action, pod_ip: Option<IpAddr>, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    match action {
        Action::Exec(_) => UNSUPPORTED,
        Action::Sleep(s) => {
            std::thread::sleep(Duration::from_secs(u64::from(*s)).min(timeout));
            OK
        }
        Action::TcpSocket { host, port } => match address(host.as_deref(), pod_ip, *port) {
            None => NO_ADDRESS,
            Some(a) => connect(&a, deadline).map_or_else(|c| c, |_| OK),
        },
        Action::HttpGet(h) => http::get(h, pod_ip, deadline),
        Action::Grpc { port, service } => grpc::check(
            SocketAddr::new(default_ip(pod_ip), *port),
            service,
            deadline,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        (l, port)
    }

    /// Reads a request head off `c`.
    fn read_head(c: &mut impl Read) -> String {
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if c.read(&mut b).expect("read") == 0 {
                break;
            }
            buf.push(b[0]);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn get(host: &str, port: u16, path: &str, scheme: &str) -> HttpGet {
        HttpGet {
            host: Some(host.into()),
            port,
            path: path.into(),
            headers: vec![],
            scheme: scheme.into(),
        }
    }

    #[test]
    fn http_get_reads_the_status() {
        let (l, port) = listener();
        let server = std::thread::spawn(move || {
            for code in ["200 OK", "503 Service Unavailable", "600 Odd"] {
                let (mut c, _) = l.accept().expect("accept");
                let req = read_head(&mut c);
                assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
                assert!(req.contains("X-Probe: yes\r\n"), "{req}");
                assert!(req.contains("Host: svc.example\r\n"), "{req}");
                let _ = c.write_all(format!("HTTP/1.1 {code}\r\n\r\n").as_bytes());
            }
        });
        let mut g = get("127.0.0.1", port, "/healthz", "HTTP");
        g.headers = vec![
            ("X-Probe".into(), "yes".into()),
            ("Host".into(), "svc.example".into()),
        ];
        let a = Action::HttpGet(g);
        assert_eq!(check(&a, None, Duration::from_secs(2)), OK);
        let code = check(&a, None, Duration::from_secs(2));
        assert_eq!(code, HTTP_STATUS + 103);
        assert_eq!(
            failure_message(&a, Some(code), 1, None),
            "HTTP probe failed with statuscode: 503"
        );
        assert_eq!(check(&a, None, Duration::from_secs(2)), BAD_STATUS);
        server.join().expect("server");
        let t = Action::TcpSocket {
            host: Some("127.0.0.1".into()),
            port,
        };
        assert_eq!(check(&t, None, Duration::from_secs(1)), REFUSED);
        assert_eq!(
            failure_message(&t, Some(REFUSED), 1, None),
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
    }

    #[test]
    fn redirects_are_followed_on_the_same_host_only() {
        let (l, port) = listener();
        let server = std::thread::spawn(move || {
            let answers = [
                // Followed: same host, relative.
                "302 Found\r\nLocation: /next".to_string(),
                "200 OK".to_string(),
                // Another host: a success without following it.
                "301 Moved\r\nLocation: http://elsewhere.invalid/".to_string(),
                // A 307 loop on the same host fails after 10 redirects.
            ]
            .into_iter()
            .chain(std::iter::repeat_n(
                format!("307 Again\r\nLocation: http://127.0.0.1:{port}/loop"),
                11,
            ));
            let mut paths = Vec::new();
            for a in answers {
                let (mut c, _) = l.accept().expect("accept");
                let req = read_head(&mut c);
                paths.push(req.split_whitespace().nth(1).unwrap_or("").to_string());
                let _ = c.write_all(format!("HTTP/1.1 {a}\r\n\r\n").as_bytes());
            }
            paths
        });
        let a = Action::HttpGet(get("127.0.0.1", port, "/start", "HTTP"));
        let t = Duration::from_secs(5);
        assert_eq!(check(&a, None, t), OK);
        assert_eq!(check(&a, None, t), OK);
        let code = check(&a, None, t);
        assert_eq!(code, TOO_MANY_REDIRECTS);
        assert!(failure_message(&a, Some(code), 1, None).ends_with("stopped after 10 redirects"));
        let paths = server.join().expect("server");
        assert_eq!(&paths[..3], ["/start", "/next", "/start"]);
        assert_eq!(paths.len(), 14);
    }

    /// A TLS server with the test certificate: answers each connection
    /// with `status` and reports the server name (SNI) and request.
    fn tls_server(
        l: TcpListener,
        statuses: Vec<&'static str>,
    ) -> std::thread::JoinHandle<Vec<(Option<String>, String)>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = vec![
            CertificateDer::from_pem_slice(include_bytes!("probe/test_cert.pem")).expect("cert"),
        ];
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("probe/test_key.pem")).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let config = Arc::new(config);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for status in statuses {
                let (sock, _) = l.accept().expect("accept");
                let conn = rustls::ServerConnection::new(config.clone()).expect("conn");
                let mut s = rustls::StreamOwned::new(conn, sock);
                let req = read_head(&mut s);
                seen.push((s.conn.server_name().map(str::to_string), req));
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes());
                s.conn.send_close_notify();
                let _ = s.flush();
            }
            seen
        })
    }

    #[test]
    fn https_get_skips_certificate_verification() {
        let (l, port) = listener();
        let server = tls_server(l, vec!["200 OK", "500 Oops", "204 No Content"]);
        let t = Duration::from_secs(5);
        let by_name = Action::HttpGet(get("localhost", port, "/tls", "HTTPS"));
        assert_eq!(check(&by_name, None, t), OK);
        assert_eq!(check(&by_name, None, t), HTTP_STATUS + 100);
        // By address (the pod's IP): no server name is sent.
        let mut g = get("", port, "/ip", "HTTPS");
        g.host = None;
        let by_ip = Action::HttpGet(g);
        assert_eq!(check(&by_ip, "127.0.0.1".parse().ok(), t), OK);
        let seen = server.join().expect("server");
        assert_eq!(seen[0].0.as_deref(), Some("localhost"));
        assert!(
            seen[0].1.starts_with("GET /tls HTTP/1.1\r\n"),
            "{}",
            seen[0].1
        );
        assert!(seen[0].1.contains(&format!("Host: localhost:{port}\r\n")));
        assert_eq!(seen[2].0, None);
        assert!(seen[2].1.contains(&format!("Host: 127.0.0.1:{port}\r\n")));
        // A plain HTTP server is not TLS: the handshake fails.
        let (l, port) = listener();
        let plain = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let a = Action::HttpGet(get("127.0.0.1", port, "/", "HTTPS"));
        let code = check(&a, None, t);
        assert_eq!(code, TLS_FAILED);
        assert_eq!(
            failure_message(&a, Some(code), 1, None),
            format!("Get \"https://127.0.0.1:{port}/\": TLS handshake failed")
        );
        plain.join().expect("plain");
    }

    #[test]
    fn a_silent_server_times_out() {
        let (l, port) = listener();
        let a = Action::HttpGet(get("127.0.0.1", port, "/", "HTTP"));
        assert_eq!(check(&a, None, Duration::from_millis(300)), TIMED_OUT);
        let g = Action::Grpc {
            port,
            service: String::new(),
        };
        let ip = "127.0.0.1".parse().ok();
        assert_eq!(check(&g, ip, Duration::from_millis(300)), TIMED_OUT);
        drop(l);
    }

    #[test]
    fn sleep_is_bounded_by_the_limit() {
        let start = Instant::now();
        assert_eq!(
            check(&Action::Sleep(3600), None, Duration::from_millis(50)),
            OK
        );
        assert!(start.elapsed() < Duration::from_secs(3600));
    }

    /// Frames of one HTTP/2 connection: (type, flags, stream, payload).
    fn read_frame(c: &mut impl Read) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut h = [0u8; 9];
        c.read_exact(&mut h).ok()?;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let mut p = vec![0u8; len];
        c.read_exact(&mut p).ok()?;
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        Some((h[3], h[4], stream, p))
    }

    fn write_frame(c: &mut impl Write, kind: u8, flags: u8, stream: u32, p: &[u8]) {
        let mut f = (p.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(p);
        c.write_all(&f).expect("write frame");
    }

    /// One call a test server saw: its header fields and DATA bytes.
    type Call = (Vec<(String, String)>, Vec<u8>);

    /// A gRPC health server for the tests: answers each call with
    /// `status` (a HealthCheckResponse) or a trailers-only grpc-status.
    fn grpc_server(
        l: TcpListener,
        answers: Vec<Result<u8, &'static str>>,
    ) -> std::thread::JoinHandle<Vec<Call>> {
        std::thread::spawn(move || {
            let mut calls = Vec::new();
            for answer in answers {
                let (mut c, _) = l.accept().expect("accept");
                let mut preface = [0u8; 24];
                c.read_exact(&mut preface).expect("preface");
                assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
                let mut dec = loona_hpack::Decoder::new();
                let mut enc = loona_hpack::Encoder::new();
                // Our SETTINGS (with a table size the client must heed),
                // and a PING to answer.
                write_frame(&mut c, 0x4, 0, 0, &[0, 1, 0, 0, 0x10, 0]);
                write_frame(&mut c, 0x6, 0, 0, b"12345678");
                let (mut fields, mut body) = (Vec::new(), Vec::new());
                let (mut acked, mut ponged) = (false, false);
                while let Some((kind, flags, _, p)) = read_frame(&mut c) {
                    match kind {
                        0x1 => {
                            for (k, v) in dec.decode(&p).expect("hpack") {
                                fields.push((
                                    String::from_utf8_lossy(&k).into_owned(),
                                    String::from_utf8_lossy(&v).into_owned(),
                                ));
                            }
                        }
                        0x0 => body.extend_from_slice(&p),
                        0x4 if flags & 1 == 1 => acked = true,
                        0x6 if flags & 1 == 1 => ponged = p == b"12345678",
                        _ => {}
                    }
                    if kind == 0x0 && flags & 1 == 1 {
                        break;
                    }
                }
                match answer {
                    Ok(status) => {
                        let h = enc.encode([
                            (&b":status"[..], &b"200"[..]),
                            (b"content-type", b"application/grpc"),
                        ]);
                        write_frame(&mut c, 0x1, 0x4, 1, &h);
                        write_frame(&mut c, 0x0, 0, 1, &[0, 0, 0, 0, 2, 0x08, status]);
                        let t = enc.encode([(&b"grpc-status"[..], &b"0"[..])]);
                        write_frame(&mut c, 0x1, 0x4 | 0x1, 1, &t);
                    }
                    Err(code) => {
                        let h = enc.encode([
                            (&b":status"[..], &b"200"[..]),
                            (b"content-type", b"application/grpc"),
                            (b"grpc-status", code.as_bytes()),
                        ]);
                        // Split over HEADERS and CONTINUATION.
                        let (a, b) = h.split_at(h.len() / 2);
                        write_frame(&mut c, 0x1, 0x1, 1, a);
                        write_frame(&mut c, 0x9, 0x4, 1, b);
                    }
                }
                // The client answers our SETTINGS and PING once it reads
                // them, after its request; then it closes.
                while let Some((kind, flags, _, p)) = read_frame(&mut c) {
                    match kind {
                        0x4 if flags & 1 == 1 => acked = true,
                        0x6 if flags & 1 == 1 => ponged = p == b"12345678",
                        _ => {}
                    }
                }
                fields.push(("acked".into(), format!("{acked} {ponged}")));
                calls.push((fields, body));
            }
            calls
        })
    }

    #[test]
    fn grpc_health_check_reads_the_serving_status() {
        let (l, port) = listener();
        let server = grpc_server(l, vec![Ok(1), Ok(2), Err("12"), Err("5")]);
        let ip = "127.0.0.1".parse().ok();
        let t = Duration::from_secs(5);
        let a = Action::Grpc {
            port,
            service: "echo.Echo".into(),
        };
        assert_eq!(check(&a, ip, t), OK);
        let code = check(&a, ip, t);
        assert_eq!(code, GRPC_HEALTH + 2);
        assert_eq!(
            failure_message(&a, Some(code), 1, ip),
            "service unhealthy (responded with \"NOT_SERVING\")"
        );
        let code = check(&a, ip, t);
        assert_eq!(code, GRPC_STATUS + 12);
        assert!(
            failure_message(&a, Some(code), 1, ip).starts_with("this server doesn't implement")
        );
        let code = check(&a, ip, t);
        assert_eq!(
            failure_message(&a, Some(code), 1, ip),
            "error: health rpc probe failed: rpc error: code = NotFound"
        );
        let calls = server.join().expect("server");
        let (fields, body) = &calls[0];
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get(":method"), Some("POST"));
        assert_eq!(get(":path"), Some("/grpc.health.v1.Health/Check"));
        assert_eq!(
            get(":authority"),
            Some(format!("127.0.0.1:{port}").as_str())
        );
        assert_eq!(get("content-type"), Some("application/grpc"));
        assert_eq!(get("te"), Some("trailers"));
        assert_eq!(get("acked"), Some("true true"));
        let mut want = vec![0, 0, 0, 0, 11, 0x0a, 9];
        want.extend_from_slice(b"echo.Echo");
        assert_eq!(body, &want);
        // Nothing listening: a connection failure.
        drop(calls);
        let code = check(&a, ip, t);
        assert_eq!(code, REFUSED);
        assert_eq!(
            failure_message(&a, Some(code), 1, ip),
            format!("failed to connect service \"127.0.0.1:{port}\": connection refused")
        );
    }
}
