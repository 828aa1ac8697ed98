//! Probes and lifecycle handlers: what to check (a command in the
//! container, an HTTP GET, a TCP connect) and how often, as kubelet's
//! livenessProbe / readinessProbe / startupProbe and postStart / preStop.
//!
//! The network checks here are plain blocking calls with a timeout; the
//! supervisor runs probes in forked children (it never starts threads, as
//! it forks monitors) and hooks inline.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a probe or a hook does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A command run in the container: success is exit code 0.
    Exec(Vec<String>),
    /// An HTTP GET: success is a status in 200-399.
    HttpGet(HttpGet),
    /// A TCP connect: success is an accepted connection.
    TcpSocket { host: Option<String>, port: u16 },
}

/// `httpGet`, with a named port already resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpGet {
    /// Default: the pod's IP.
    pub host: Option<String>,
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// HTTP or HTTPS (HTTPS is not supported and fails).
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

/// Exit codes of a forked network check.
pub const OK: i32 = 0;
pub const REFUSED: i32 = 1;
pub const BAD_STATUS: i32 = 2;
pub const UNSUPPORTED: i32 = 3;

/// Why a check failed, from its exit code (or a timeout).
pub fn failure_message(
    action: &Action,
    code: Option<i32>,
    timeout: u32,
    pod_ip: Option<IpAddr>,
) -> String {
    let host = |h: &Option<String>| match h {
        Some(h) => h.clone(),
        None => pod_ip.map_or_else(|| "127.0.0.1".into(), |i| i.to_string()),
    };
    match (action, code) {
        (_, None) => format!("the probe timed out after {timeout}s"),
        (Action::Exec(cmd), Some(c)) => {
            format!("command {cmd:?} exited with code {c}")
        }
        (Action::HttpGet(h), Some(c)) => {
            let what = match c {
                BAD_STATUS => "HTTP status outside 200-399",
                UNSUPPORTED => "scheme not supported (use HTTP)",
                _ => "connection failed",
            };
            format!(
                "Get \"{}{}:{}{}\": {what}",
                h.scheme_lower(),
                host(&h.host),
                h.port,
                h.path
            )
        }
        (Action::TcpSocket { host: h, port }, Some(_)) => {
            format!("dial tcp {}:{port}: connection refused", host(h))
        }
    }
}

impl HttpGet {
    fn scheme_lower(&self) -> String {
        format!("{}://", self.scheme.to_ascii_lowercase())
    }
}

/// Where to connect: `host` (an address or a name) or the pod's address.
fn address(host: Option<&str>, pod_ip: Option<IpAddr>, port: u16) -> Option<SocketAddr> {
    let default = pod_ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    match host.filter(|h| !h.is_empty()) {
        None => Some(SocketAddr::new(default, port)),
        Some(h) => {
            if let Ok(ip) = h.parse::<IpAddr>() {
                return Some(SocketAddr::new(ip, port));
            }
            use std::net::ToSocketAddrs;
            (h, port).to_socket_addrs().ok()?.next()
        }
    }
}

/// Runs a network check (not `Exec`) within `timeout`; one of the exit
/// codes above.
pub fn check(action: &Action, pod_ip: Option<IpAddr>, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    match action {
        Action::Exec(_) => UNSUPPORTED,
        Action::TcpSocket { host, port } => {
            match address(host.as_deref(), pod_ip, *port)
                .and_then(|a| TcpStream::connect_timeout(&a, timeout).ok())
            {
                Some(_) => OK,
                None => REFUSED,
            }
        }
        Action::HttpGet(h) => {
            if !h.scheme.eq_ignore_ascii_case("http") {
                return UNSUPPORTED;
            }
            let Some(addr) = address(h.host.as_deref(), pod_ip, h.port) else {
                return REFUSED;
            };
            match http_status(&addr, h, deadline) {
                Some(s) if (200..400).contains(&s) => OK,
                Some(_) => BAD_STATUS,
                None => REFUSED,
            }
        }
    }
}

fn left(deadline: Instant) -> Option<Duration> {
    Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
}

/// The status code of `GET path` at `addr`.
fn http_status(addr: &SocketAddr, h: &HttpGet, deadline: Instant) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(addr, left(deadline)?).ok()?;
    let path = if h.path.starts_with('/') {
        h.path.clone()
    } else {
        format!("/{}", h.path)
    };
    let host = h.host.clone().unwrap_or_else(|| addr.ip().to_string());
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    let has = |name: &str| h.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("host") {
        req.push_str(&format!("Host: {host}:{}\r\n", h.port));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/peapod\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in &h.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.set_write_timeout(left(deadline)).ok()?;
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.contains(&b'\n') {
        s.set_read_timeout(left(deadline)).ok()?;
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn http_get_reads_the_status() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            for code in ["200 OK", "503 Service Unavailable"] {
                let (mut c, _) = l.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let n = c.read(&mut buf).expect("read");
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
                assert!(req.contains("X-Probe: yes\r\n"), "{req}");
                let _ = c.write_all(format!("HTTP/1.1 {code}\r\n\r\n").as_bytes());
            }
        });
        let a = Action::HttpGet(HttpGet {
            host: Some("127.0.0.1".into()),
            port,
            path: "/healthz".into(),
            headers: vec![("X-Probe".into(), "yes".into())],
            scheme: "HTTP".into(),
        });
        assert_eq!(check(&a, None, Duration::from_secs(2)), OK);
        assert_eq!(check(&a, None, Duration::from_secs(2)), BAD_STATUS);
        server.join().expect("server");
        let t = Action::TcpSocket {
            host: Some("127.0.0.1".into()),
            port,
        };
        assert_eq!(check(&t, None, Duration::from_secs(1)), REFUSED);
    }
}
