//! Debian's docker-registry on a free 127.0.0.1 port, with its own storage and config;
//! stopped and removed when dropped (also when the test fails).

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET /v2/ answered with any HTTP status.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

impl Registry {
    /// Starts a registry; with `user` set, it requires that user (htpasswd, bcrypt).
    pub fn start(user: Option<(&str, &str)>) -> Registry {
        Registry::start_with(user, None)
    }

    /// Starts a registry speaking HTTPS with certificate `cert` and its key `key` (PEM).
    // Not every test binary including this file uses it (the CLI's does not).
    #[allow(dead_code)]
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Registry {
        Registry::start_with(None, Some((cert, key)))
    }

    fn start_with(
        user: Option<(&str, &str)>,
        tls: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Registry {
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let mut auth = String::new();
            if let Some((u, p)) = user {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("htpasswd");
                assert!(out.status.success());
                fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: peapod-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                );
            }
            let tls = tls
                .map(|(c, k)| {
                    format!(
                        "  tls:\n    certificate: {}\n    key: {}\n",
                        c.display(),
                        k.display()
                    )
                })
                .unwrap_or_default();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls}{auth}",
                dir.path().join("data").display()
            );
            let cfg = dir.path().join("config.yml");
            fs::write(&cfg, config).unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            // Bounded wait for it to answer; a port taken meanwhile makes it exit.
            for _ in 0..200 {
                if answers(port) {
                    return Registry {
                        port,
                        child,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "registry did not come up: {}",
                fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
            );
        }
        panic!("could not start docker-registry");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
