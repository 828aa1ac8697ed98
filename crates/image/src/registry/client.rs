//! HTTP requests to one repository of one registry, authenticating on demand.

use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::RegistryError;
use super::auth::parse_challenge;
use crate::digest::Digest;
use crate::reference::Reference;

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Registries (`HOST[:PORT]`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// User and password for this registry (from `peapod login`).
    pub credentials: Option<(String, String)>,
}

/// A request body that can be sent again after authenticating.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
}

pub struct Client {
    agent: ureq::Agent,
    host: String,
    base: String,
    repository: String,
    actions: &'static str,
    creds: Option<(String, String)>,
    authorization: Mutex<Option<String>>,
}

const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

impl Client {
    /// A client for `reference`'s repository; `push` asks for push rights as well.
    pub fn new(reference: &Reference, opts: &ClientOptions, push: bool) -> Client {
        let host = reference.registry_host().to_string();
        let insecure = opts
            .insecure
            .iter()
            .any(|h| h == reference.registry() || *h == host);
        let scheme = if insecure { "http" } else { "https" };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(300))
            .user_agent(concat!("peapod/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent,
            base: format!("{scheme}://{host}"),
            host: reference.registry().to_string(),
            repository: reference.repository().to_string(),
            actions: if push { "pull,push" } else { "pull" },
            creds: opts.credentials.clone(),
            authorization: Mutex::new(None),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// Resolves a Location header against the registry's base URL.
    pub(crate) fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{}", self.base, location)
        }
    }

    fn transport_error(&self, e: &ureq::Transport) -> RegistryError {
        let detail = e.to_string();
        let tls = [
            "tls",
            "TLS",
            "corrupt message",
            "InvalidContentType",
            "certificate",
        ]
        .iter()
        .any(|w| detail.contains(w));
        RegistryError::Unreachable {
            host: self.host.clone(),
            detail,
            hint: if self.base.starts_with("https") && tls {
                " (if this registry speaks plain HTTP, pass --insecure-registry HOST:PORT)"
            } else {
                ""
            },
        }
    }

    /// Sends a request, answering one authentication challenge if the registry asks.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        what: &str,
    ) -> Result<ureq::Response, RegistryError> {
        let mut challenged = false;
        loop {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = self.authorization.lock().expect("auth lock").clone() {
                req = req.set("Authorization", &a);
            }
            let result = match &body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
            };
            match result {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !challenged => {
                    challenged = true;
                    self.authenticate(&resp)?;
                }
                Err(ureq::Error::Status(401, resp)) => {
                    return Err(self.auth_error(&error_detail(resp)));
                }
                Err(ureq::Error::Status(status, resp)) => {
                    return Err(self.status_error(status, resp, what));
                }
                Err(ureq::Error::Transport(t)) => return Err(self.transport_error(&t)),
            }
        }
    }

    /// Sends a streamed body (uploads); authentication must already be in place.
    pub(crate) fn send_reader(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &mut dyn Read,
        what: &str,
    ) -> Result<ureq::Response, RegistryError> {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        if let Some(a) = self.authorization.lock().expect("auth lock").clone() {
            req = req.set("Authorization", &a);
        }
        match req.send(body) {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(401, resp)) => Err(self.auth_error(&error_detail(resp))),
            Err(ureq::Error::Status(status, resp)) => Err(self.status_error(status, resp, what)),
            Err(ureq::Error::Transport(t)) => Err(self.transport_error(&t)),
        }
    }

    fn auth_error(&self, detail: &str) -> RegistryError {
        if self.creds.is_some() {
            RegistryError::AuthFailed {
                host: self.host.clone(),
                repository: self.repository.clone(),
                detail: detail.to_string(),
            }
        } else {
            RegistryError::AuthRequired {
                host: self.host.clone(),
                repository: self.repository.clone(),
                detail: if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                },
            }
        }
    }

    fn status_error(&self, status: u16, resp: ureq::Response, what: &str) -> RegistryError {
        let detail = error_detail(resp);
        if status == 404 {
            RegistryError::NotFound {
                host: self.host.clone(),
                what: what.to_string(),
                detail: if detail.is_empty() {
                    "HTTP 404".into()
                } else {
                    detail
                },
            }
        } else if status == 403 {
            self.auth_error(&detail)
        } else {
            RegistryError::Status {
                host: self.host.clone(),
                what: what.to_string(),
                status,
                detail: if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                },
            }
        }
    }

    /// Answers a 401: basic credentials, or a bearer token from the challenge's realm.
    fn authenticate(&self, resp: &ureq::Response) -> Result<(), RegistryError> {
        let Some(challenge) = resp.header("www-authenticate").and_then(parse_challenge) else {
            return Err(self.auth_error("no WWW-Authenticate challenge"));
        };
        let basic = self
            .creds
            .as_ref()
            .map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))));
        let header = match challenge.scheme.as_str() {
            "basic" => basic.ok_or_else(|| self.auth_error(""))?,
            "bearer" => {
                let realm =
                    challenge
                        .params
                        .get("realm")
                        .ok_or_else(|| RegistryError::Protocol {
                            host: self.host.clone(),
                            what: "bearer challenge".into(),
                            detail: "no realm".into(),
                        })?;
                let scope =
                    challenge.params.get("scope").cloned().unwrap_or_else(|| {
                        format!("repository:{}:{}", self.repository, self.actions)
                    });
                let mut req = self.agent.get(realm).query("scope", &scope);
                if let Some(service) = challenge.params.get("service") {
                    req = req.query("service", service);
                }
                if let Some(b) = &basic {
                    req = req.set("Authorization", b);
                }
                let token_resp = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(401 | 403, r)) => {
                        return Err(self.auth_error(&error_detail(r)));
                    }
                    Err(ureq::Error::Status(s, r)) => return Err(self.status_error(s, r, "token")),
                    Err(ureq::Error::Transport(t)) => return Err(self.transport_error(&t)),
                };
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let mut body = Vec::new();
                token_resp
                    .into_reader()
                    .take(MAX_MANIFEST)
                    .read_to_end(&mut body)
                    .map_err(|e| self.io_error("reading the token", e))?;
                let t: Token =
                    serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                        host: self.host.clone(),
                        what: "token response".into(),
                        detail: e.to_string(),
                    })?;
                let token = t
                    .token
                    .or(t.access_token)
                    .ok_or_else(|| RegistryError::Protocol {
                        host: self.host.clone(),
                        what: "token response".into(),
                        detail: "no token in it".into(),
                    })?;
                format!("Bearer {token}")
            }
            other => {
                return Err(RegistryError::Protocol {
                    host: self.host.clone(),
                    what: "authentication".into(),
                    detail: format!("unsupported scheme {other}"),
                });
            }
        };
        *self.authorization.lock().expect("auth lock") = Some(header);
        Ok(())
    }

    pub(crate) fn io_error(&self, what: &str, e: io::Error) -> RegistryError {
        RegistryError::Protocol {
            host: self.host.clone(),
            what: what.to_string(),
            detail: e.to_string(),
        }
    }

    /// Checks that the registry answers (and authenticates) at all.
    pub fn ping(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        self.send("GET", &url, &[], Body::Empty, "API version check")
            .map(drop)
    }

    /// Fetches a manifest or index by tag or digest: its bytes and Content-Type.
    pub fn get_manifest(
        &self,
        reference: &str,
    ) -> Result<(Vec<u8>, Option<String>), RegistryError> {
        let url = self.url(&format!("manifests/{reference}"));
        let what = format!("manifest {}:{reference}", self.repository);
        let resp = self.send(
            "GET",
            &url,
            &[("Accept", crate::media::MANIFEST_ACCEPT)],
            Body::Empty,
            &what,
        )?;
        let ct = resp.header("content-type").map(str::to_string);
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.io_error("reading the manifest", e))?;
        if body.len() as u64 > MAX_MANIFEST {
            return Err(RegistryError::Protocol {
                host: self.host.clone(),
                what,
                detail: "manifest larger than 4 MiB".into(),
            });
        }
        Ok((body, ct))
    }

    /// Streams blob `digest` into `out` (at most `size` bytes are accepted), calling
    /// `progress` with each chunk's length.
    pub fn get_blob(
        &self,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
        progress: &dyn Fn(u64),
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send("GET", &url, &[], Body::Empty, &format!("blob {digest}"))?;
        copy_limited(resp.into_reader(), out, size, progress)
            .map_err(|e| self.io_error(&format!("downloading {digest}"), e))
    }

    /// Streams a blob from an external URL (non-distributable layers).
    pub fn get_url(
        &self,
        url: &str,
        size: u64,
        out: &mut dyn Write,
        progress: &dyn Fn(u64),
    ) -> Result<(), RegistryError> {
        let resp = match self.agent.get(url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(s, r)) => return Err(self.status_error(s, r, url)),
            Err(ureq::Error::Transport(t)) => return Err(self.transport_error(&t)),
        };
        copy_limited(resp.into_reader(), out, size, progress)
            .map_err(|e| self.io_error(&format!("downloading {url}"), e))
    }

    pub fn blob_exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        match self.send("HEAD", &url, &[], Body::Empty, &format!("blob {digest}")) {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Copies at most `limit + 1` bytes: one more than expected is enough to tell the blob is
/// too long, without letting a hostile server fill the disk.
fn copy_limited(
    reader: impl Read,
    out: &mut dyn Write,
    limit: u64,
    progress: &dyn Fn(u64),
) -> io::Result<()> {
    let mut reader = reader.take(limit.saturating_add(1));
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
        progress(n as u64);
    }
}

/// The first error of a distribution-spec error body, or the start of the body.
fn error_detail(resp: ureq::Response) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    let mut body = Vec::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut body);
    if let Ok(e) = serde_json::from_slice::<Errors>(&body)
        && let Some(first) = e.errors.first()
    {
        return format!(
            "{}: {}",
            first.code.as_deref().unwrap_or("ERROR"),
            first.message.as_deref().unwrap_or("")
        );
    }
    let text = String::from_utf8_lossy(&body);
    text.trim().chars().take(200).collect()
}
