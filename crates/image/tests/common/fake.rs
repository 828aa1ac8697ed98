//! A tiny HTTP server on a free loopback port that serves fixed responses, optionally
//! behind a bearer-token challenge, and records the requests it saw. It honours
//! `Range: bytes=N-` (unless told not to) and can break a response off once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }
}

pub struct FakeRegistry {
    pub ip: String,
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
    behaviour: Arc<Behaviour>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What the server does besides serving routes.
#[derive(Default)]
struct Behaviour {
    /// Path → body bytes to send before closing the connection, once.
    cut_once: Mutex<HashMap<String, usize>>,
    /// Answer range requests with the whole body (200).
    ignore_range: AtomicBool,
}

impl FakeRegistry {
    /// Serves `routes` (path → response); with `token`, every /v2/ path needs
    /// `Authorization: Bearer TOKEN`, which /token hands out.
    pub fn start(routes: HashMap<String, Response>, token: Option<&str>) -> FakeRegistry {
        FakeRegistry::start_at("127.0.0.1", routes, token)
    }

    /// Like [`FakeRegistry::start`], listening on address `ip`.
    pub fn start_at(
        ip: &str,
        routes: HashMap<String, Response>,
        token: Option<&str>,
    ) -> FakeRegistry {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour = Arc::new(Behaviour::default());
        let (req2, stop2, beh2) = (requests.clone(), stop.clone(), behaviour.clone());
        let token = token.map(str::to_string);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(c) = conn {
                    handle(c, port, &routes, token.as_deref(), &req2, &beh2);
                }
            }
        });
        FakeRegistry {
            ip: ip.to_string(),
            port,
            requests,
            behaviour,
            stop,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The next response for `path` stops after `bytes` of its body, connection closed.
    pub fn cut_once(&self, path: &str, bytes: usize) {
        self.behaviour
            .cut_once
            .lock()
            .unwrap()
            .insert(path.to_string(), bytes);
    }

    /// Whether range requests get the whole body (200) instead of the range (206).
    pub fn ignore_range(&self, ignore: bool) {
        self.behaviour.ignore_range.store(ignore, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((self.ip.as_str(), self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(
    mut c: TcpStream,
    port: u16,
    routes: &HashMap<String, Response>,
    token: Option<&str>,
    log: &Mutex<Vec<String>>,
    behaviour: &Behaviour,
) {
    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut line = Vec::new();
    let _ = reader.read_until(b'\n', &mut line);
    let line = String::from_utf8_lossy(&line).to_string();
    if !line.trim_end().ends_with("HTTP/1.1") && !line.trim_end().ends_with("HTTP/1.0") {
        // Not HTTP (a TLS handshake, say): answer like a plain HTTP server does.
        let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut auth = None;
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            } else if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    match &range {
        Some(r) => log
            .lock()
            .unwrap()
            .push(format!("{method} {target} Range: {r}")),
        None => log.lock().unwrap().push(format!("{method} {target}")),
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    let resp = if path == "/token" {
        Response::ok(
            "application/json",
            format!(r#"{{"token":"{}"}}"#, token.unwrap_or("")).into_bytes(),
        )
    } else if let Some(t) = token.filter(|t| auth.as_deref() != Some(&format!("Bearer {t}"))) {
        let _ = t;
        Response {
            status: 401,
            headers: vec![(
                "WWW-Authenticate".into(),
                format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake""#),
            )],
            body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                .to_vec(),
        }
    } else if path == "/v2/" {
        Response::ok("application/json", b"{}".to_vec())
    } else {
        routes.get(&path).cloned().unwrap_or(Response {
            status: 404,
            headers: vec![],
            body: br#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#.to_vec(),
        })
    };
    let mut resp = resp;
    if resp.status == 200
        && !behaviour.ignore_range.load(Ordering::SeqCst)
        && let Some(start) = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok())
    {
        let total = resp.body.len();
        if start >= total {
            resp = Response {
                status: 416,
                headers: vec![("Content-Range".into(), format!("bytes */{total}"))],
                body: Vec::new(),
            };
        } else {
            resp.status = 206;
            resp.headers.push((
                "Content-Range".into(),
                format!("bytes {start}-{}/{total}", total - 1),
            ));
            resp.body.drain(..start);
        }
    }
    let cut = behaviour.cut_once.lock().unwrap().remove(&path);
    let reason = match resp.status {
        200 => "OK",
        206 => "Partial Content",
        416 => "Range Not Satisfiable",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Status",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = c.write_all(out.as_bytes());
    if method != "HEAD" {
        let body = match cut {
            Some(n) => &resp.body[..n.min(resp.body.len())],
            None => &resp.body[..],
        };
        let _ = c.write_all(body);
    }
}
