//! `httpGet` as kubelet makes it: `GET scheme://host:port/path` with
//! `Host` (the `host` field or the pod's IP, or an httpHeaders `Host`),
//! `User-Agent: kube-probe/...` and `Accept: */*` unless httpHeaders set
//! them, `Connection: close`; HTTPS without certificate verification.
//! A redirect on the same host name is followed (10 at most); one to
//! another host ends the check with the redirect's status, a success.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Instant;

use super::{
    BAD_REDIRECT, BAD_RESPONSE, BAD_STATUS, HTTP_STATUS, HttpGet, NO_ADDRESS, OK,
    TOO_MANY_REDIRECTS, address, connect, default_ip, host_port, io_code, left, tls,
};

/// Redirects followed before giving up, as Go's HTTP client.
const MAX_REDIRECTS: usize = 10;
/// The most bytes of a response head read.
const MAX_HEAD: usize = 64 * 1024;

/// One URL to GET.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    https: bool,
    /// A name or an address (an IPv6 one without brackets).
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    path: String,
}

/// The status line and `Location` of a response.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    location: Option<String>,
}

/// A plain or TLS connection.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Runs `h` against the pod at `pod_ip` before `deadline`: an exit code.
pub(super) fn get(h: &HttpGet, pod_ip: Option<IpAddr>, deadline: Instant) -> i32 {
    let host = h
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| default_ip(pod_ip).to_string());
    let mut url = Url {
        https: h.scheme.eq_ignore_ascii_case("https"),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: h.port,
        path: if h.path.starts_with('/') {
            h.path.clone()
        } else {
            format!("/{}", h.path)
        },
    };
    let first_host = url.host.clone();
    // An httpHeaders Host, kept through relative redirects only (as Go).
    let mut custom_host = h
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone());
    for _ in 0..=MAX_REDIRECTS {
        let head = match fetch(&url, custom_host.as_deref(), &h.headers, pod_ip, deadline) {
            Ok(head) => head,
            Err(code) => return code,
        };
        let followable = matches!(head.status, 301 | 302 | 303 | 307 | 308);
        match head.location.filter(|_| followable) {
            Some(loc) => {
                let Some((next, absolute)) = resolve(&url, &loc) else {
                    return BAD_REDIRECT;
                };
                if !next.host.eq_ignore_ascii_case(&first_host) {
                    // kubelet: "Probe terminated redirects", a success.
                    return OK;
                }
                if absolute {
                    custom_host = None;
                }
                url = next;
            }
            None => return status_code(head.status),
        }
    }
    TOO_MANY_REDIRECTS
}

/// The exit code of a final status.
fn status_code(status: u16) -> i32 {
    match status {
        200..=399 => OK,
        400..=599 => HTTP_STATUS + i32::from(status - 400),
        _ => BAD_STATUS,
    }
}

/// `location` resolved against `base`, and whether it named a scheme.
fn resolve(base: &Url, location: &str) -> Option<(Url, bool)> {
    let location = location.trim();
    let lower = location.to_ascii_lowercase();
    let (https, rest, absolute) = if let Some(r) = lower.strip_prefix("http://") {
        (false, &location[location.len() - r.len()..], true)
    } else if let Some(r) = lower.strip_prefix("https://") {
        (true, &location[location.len() - r.len()..], true)
    } else if let Some(r) = location.strip_prefix("//") {
        (base.https, r, false)
    } else if location.contains("://") {
        return None;
    } else {
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let dir = base.path.split(['?', '#']).next().unwrap_or("/");
            let dir = &dir[..=dir.rfind('/').unwrap_or(0)];
            format!("{dir}{location}")
        };
        return Some((
            Url {
                path,
                ..base.clone()
            },
            false,
        ));
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let default_port = if https { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
            (h, p.parse().ok()?)
        }
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((
        Url {
            https,
            host: host.to_string(),
            port,
            path,
        },
        absolute,
    ))
}

/// The request for `url`.
fn request(url: &Url, custom_host: Option<&str>, headers: &[(String, String)]) -> String {
    let host = custom_host
        .map(str::to_string)
        .unwrap_or_else(|| host_port(&url.host, url.port));
    let mut req = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", url.path);
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/peapod\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        // Host is the line above; an empty Accept means none (as kubelet).
        if k.eq_ignore_ascii_case("host") || (k.eq_ignore_ascii_case("accept") && v.is_empty()) {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req
}

/// One GET of `url`: its response head.
fn fetch(
    url: &Url,
    custom_host: Option<&str>,
    headers: &[(String, String)],
    pod_ip: Option<IpAddr>,
    deadline: Instant,
) -> Result<Head, i32> {
    let addr = address(Some(&url.host), pod_ip, url.port).ok_or(NO_ADDRESS)?;
    let tcp = connect(&addr, deadline)?;
    let mut conn = if url.https {
        Conn::Tls(Box::new(tls::connect(tcp, &url.host, deadline)?))
    } else {
        Conn::Plain(tcp)
    };
    let io = |e: std::io::Error| io_code(&e);
    let req = request(url, custom_host, headers);
    conn.tcp()
        .set_write_timeout(Some(left(deadline).ok_or(super::TIMED_OUT)?))
        .map_err(io)?;
    conn.write_all(req.as_bytes()).map_err(io)?;
    conn.flush().map_err(io)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            match parse_head(&buf[..end + 4]) {
                // 1xx: an interim answer, the real one follows.
                Some(h) if (100..200).contains(&h.status) && h.status != 101 => {
                    buf.drain(..end + 4);
                    continue;
                }
                Some(h) => return Ok(h),
                None => return Err(BAD_RESPONSE),
            }
        }
        if buf.len() > MAX_HEAD {
            return Err(BAD_RESPONSE);
        }
        conn.tcp()
            .set_read_timeout(Some(left(deadline).ok_or(super::TIMED_OUT)?))
            .map_err(io)?;
        let n = match conn.read(&mut chunk) {
            Ok(n) => n,
            // A server that closes without close_notify after its answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(io(e)),
        };
        if n == 0 {
            return Err(BAD_RESPONSE);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The status and Location of a response head.
fn parse_head(head: &[u8]) -> Option<Head> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut words = lines.next()?.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = words.next()?.parse().ok()?;
    let location = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    Some(Head { status, location })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(https: bool, host: &str, port: u16, path: &str) -> Url {
        Url {
            https,
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn redirects_resolve_as_urls_do() {
        let base = url(false, "10.0.0.1", 8080, "/a/b?x=1");
        assert_eq!(
            resolve(&base, "/c"),
            Some((url(false, "10.0.0.1", 8080, "/c"), false))
        );
        assert_eq!(
            resolve(&base, "c?y"),
            Some((url(false, "10.0.0.1", 8080, "/a/c?y"), false))
        );
        assert_eq!(
            resolve(&base, "HTTPS://Example.com:8443"),
            Some((url(true, "Example.com", 8443, "/"), true))
        );
        assert_eq!(
            resolve(&base, "http://[::1]/z"),
            Some((url(false, "::1", 80, "/z"), true))
        );
        assert_eq!(
            resolve(&base, "//other/p"),
            Some((url(false, "other", 80, "/p"), false))
        );
        assert_eq!(resolve(&base, "ftp://x/"), None);
    }

    #[test]
    fn requests_carry_kubelet_headers_unless_given() {
        let u = url(false, "10.0.0.1", 80, "/h");
        let r = request(&u, None, &[]);
        assert_eq!(
            r,
            "GET /h HTTP/1.1\r\nHost: 10.0.0.1:80\r\nUser-Agent: kube-probe/peapod\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        let headers = vec![
            ("Host".to_string(), "svc.example".to_string()),
            ("Accept".to_string(), String::new()),
            ("X-A".to_string(), "1".to_string()),
        ];
        let r = request(&u, Some("svc.example"), &headers);
        assert_eq!(
            r,
            "GET /h HTTP/1.1\r\nHost: svc.example\r\nUser-Agent: kube-probe/peapod\r\n\
             X-A: 1\r\nConnection: close\r\n\r\n"
        );
        let v6 = url(false, "fd00::1", 81, "/");
        assert!(request(&v6, None, &[]).contains("Host: [fd00::1]:81\r\n"));
    }

    #[test]
    fn heads_parse() {
        assert_eq!(
            parse_head(b"HTTP/1.1 302 Found\r\nlocation: /x\r\n\r\n"),
            Some(Head {
                status: 302,
                location: Some("/x".into())
            })
        );
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
    }
}
