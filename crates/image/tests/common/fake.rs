//! A tiny HTTP server on a free loopback port that serves fixed responses, optionally
//! behind a bearer-token challenge, and records the requests it saw.

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
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    /// Serves `routes` (path → response); with `token`, every /v2/ path needs
    /// `Authorization: Bearer TOKEN`, which /token hands out.
    pub fn start(routes: HashMap<String, Response>, token: Option<&str>) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (req2, stop2) = (requests.clone(), stop.clone());
        let token = token.map(str::to_string);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(c) = conn {
                    handle(c, port, &routes, token.as_deref(), &req2);
                }
            }
        });
        FakeRegistry {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
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
) {
    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut auth = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            auth = Some(v.trim().to_string());
        }
    }
    log.lock().unwrap().push(format!("{method} {target}"));
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
    let reason = match resp.status {
        200 => "OK",
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
        let _ = c.write_all(&resp.body);
    }
}
