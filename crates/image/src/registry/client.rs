//! HTTP requests to one repository of one registry, authenticating on demand.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::RegistryError;
use super::auth::parse_challenge;
use super::tls::{self, BadCaFile, TlsFailure};
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

/// How the registry is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
    /// HTTPS, switching to plain HTTP if the server answers the TLS handshake in plain
    /// HTTP: loopback registries, as Docker does. Settles on the first answer.
    HttpsOrHttp,
}

/// A readable blob body, and the byte of the blob it starts at.
pub struct BlobBody {
    pub reader: Box<dyn Read + Send + Sync>,
    pub start: u64,
}

pub struct Client {
    agent: ureq::Agent,
    host: String,
    /// `HOST[:PORT]` contacted (docker.io's API host for docker.io).
    authority: String,
    scheme: Mutex<Scheme>,
    /// Where the fix for an untrusted certificate goes (`<dir>/<host>/ca.crt`).
    certs_dir: String,
    /// A CA file in a certs.d directory that could not be used: every request fails.
    bad_ca: Option<BadCaFile>,
    repository: String,
    actions: &'static str,
    creds: Option<(String, String)>,
    authorization: Mutex<Option<String>>,
}

const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

impl Client {
    /// A client for `reference`'s repository; `push` asks for push rights as well. Extra
    /// CAs come from /etc/containers/certs.d and /etc/docker/certs.d only; see
    /// [`Client::with_root`].
    pub fn new(reference: &Reference, opts: &ClientOptions, push: bool) -> Client {
        Client::with_root(reference, opts, push, None)
    }

    /// Like [`Client::new`], also trusting the CAs in `<root>/certs.d/<host:port>/*.crt`.
    pub fn with_root(
        reference: &Reference,
        opts: &ClientOptions,
        push: bool,
        root: Option<&Path>,
    ) -> Client {
        let authority = reference.registry_host().to_string();
        let insecure = opts
            .insecure
            .iter()
            .any(|h| h == reference.registry() || *h == authority);
        let scheme = if insecure {
            Scheme::Http
        } else if tls::is_loopback(&authority) {
            Scheme::HttpsOrHttp
        } else {
            Scheme::Https
        };
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(300))
            .user_agent(concat!("peapod/", env!("CARGO_PKG_VERSION")));
        let mut bad_ca = None;
        if !insecure {
            let dirs = tls::cert_dirs(root, &[reference.registry(), &authority]);
            match tls::client_config(&dirs) {
                Ok(config) => builder = builder.tls_config(config),
                Err(e) => bad_ca = Some(e),
            }
        }
        let certs_dir = match root {
            Some(r) => r.join("certs.d").display().to_string(),
            None => tls::SYSTEM_CERTS_DIRS[0].to_string(),
        };
        Client {
            agent: builder.build(),
            host: reference.registry().to_string(),
            authority,
            scheme: Mutex::new(scheme),
            certs_dir,
            bad_ca,
            repository: reference.repository().to_string(),
            actions: if push { "pull,push" } else { "pull" },
            creds: opts.credentials.clone(),
            authorization: Mutex::new(None),
        }
    }

    fn scheme(&self) -> Scheme {
        *self.scheme.lock().expect("scheme lock")
    }

    fn base(&self) -> String {
        let scheme = match self.scheme() {
            Scheme::Http => "http",
            Scheme::Https | Scheme::HttpsOrHttp => "https",
        };
        format!("{scheme}://{}", self.authority)
    }

    /// The registry answered: whatever the scheme was, it is the one.
    fn settle(&self) {
        let mut s = self.scheme.lock().expect("scheme lock");
        if *s == Scheme::HttpsOrHttp {
            *s = Scheme::Https;
        }
    }

    /// After a failed request to `url`: the plain-HTTP URL to try instead, if this is a
    /// loopback registry that answered the TLS handshake in plain HTTP.
    fn fall_back(&self, url: &str, e: &ureq::Transport) -> Option<String> {
        let mut s = self.scheme.lock().expect("scheme lock");
        let https = format!("https://{}/", self.authority);
        if *s != Scheme::HttpsOrHttp
            || !url.starts_with(&https)
            || tls::classify(e) != Some(TlsFailure::PlainHttp)
        {
            return None;
        }
        *s = Scheme::Http;
        tracing::info!(
            registry = %self.host,
            "loopback registry speaks plain HTTP; using HTTP"
        );
        Some(format!("http://{}/{}", self.authority, &url[https.len()..]))
    }

    fn check_setup(&self) -> Result<(), RegistryError> {
        match &self.bad_ca {
            Some(b) => Err(RegistryError::BadCaCertificate {
                host: self.host.clone(),
                path: b.path.display().to_string(),
                detail: b.detail.clone(),
            }),
            None => Ok(()),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base(), self.repository)
    }

    /// Resolves a Location header against the registry's base URL.
    pub(crate) fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{}", self.base(), location)
        }
    }

    fn transport_error(&self, e: &ureq::Transport) -> RegistryError {
        let https = self.scheme() != Scheme::Http;
        let failure = tls::classify(e);
        match (https, &failure) {
            (true, Some(TlsFailure::UnknownIssuer)) => {
                return RegistryError::Untrusted {
                    host: self.host.clone(),
                    certs_dir: self.certs_dir.clone(),
                };
            }
            (true, Some(TlsFailure::Certificate(detail))) => {
                return RegistryError::BadCertificate {
                    host: self.host.clone(),
                    detail: detail.clone(),
                };
            }
            _ => {}
        }
        RegistryError::Unreachable {
            host: self.host.clone(),
            detail: e.to_string(),
            hint: if https && failure.is_some() {
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
        self.check_setup()?;
        let mut url = url.to_string();
        let mut challenged = false;
        loop {
            let mut req = self.agent.request(method, &url);
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
            if !matches!(result, Err(ureq::Error::Transport(_))) {
                self.settle();
            }
            match result {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Transport(t)) => match self.fall_back(&url, &t) {
                    Some(http) => url = http,
                    None => return Err(self.transport_error(&t)),
                },
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
        self.check_setup()?;
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
        let url = format!("{}/v2/", self.base());
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

    /// Opens blob `digest` from byte `offset` on (a `Range` request when it is not 0). The
    /// body starts at `offset` if the registry honoured the range, else at 0: the whole
    /// blob again.
    pub fn open_blob(&self, digest: &Digest, offset: u64) -> Result<BlobBody, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let what = format!("blob {digest}");
        if offset > 0 {
            let range = format!("bytes={offset}-");
            match self.send("GET", &url, &[("Range", &range)], Body::Empty, &what) {
                Ok(resp) => {
                    if let Some(body) = ranged_body(resp, offset) {
                        return Ok(body);
                    }
                }
                // 416: the registry would not serve that range; start over.
                Err(RegistryError::Status { status: 416, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let resp = self.send("GET", &url, &[], Body::Empty, &what)?;
        Ok(BlobBody {
            reader: resp.into_reader(),
            start: 0,
        })
    }

    /// Opens a blob at an external URL (non-distributable layers), from `offset` if the
    /// server honours the range.
    pub fn open_url(&self, url: &str, offset: u64) -> Result<BlobBody, RegistryError> {
        self.check_setup()?;
        let get = |range: Option<&str>| {
            let mut req = self.agent.get(url);
            if let Some(r) = range {
                req = req.set("Range", r);
            }
            match req.call() {
                Ok(r) => Ok(r),
                Err(ureq::Error::Status(s, r)) => Err((s, self.status_error(s, r, url))),
                Err(ureq::Error::Transport(t)) => Err((0, self.transport_error(&t))),
            }
        };
        if offset > 0 {
            match get(Some(&format!("bytes={offset}-"))) {
                Ok(resp) => {
                    if let Some(body) = ranged_body(resp, offset) {
                        return Ok(body);
                    }
                }
                Err((416, _)) => {}
                Err((_, e)) => return Err(e),
            }
        }
        let resp = get(None).map_err(|(_, e)| e)?;
        Ok(BlobBody {
            reader: resp.into_reader(),
            start: 0,
        })
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

/// The body of an answer to `Range: bytes=OFFSET-` if it is that range (206 with a
/// matching Content-Range); `None` if it is anything else (a 200 is the whole blob, but
/// asking again without a range keeps the two cases apart).
fn ranged_body(resp: ureq::Response, offset: u64) -> Option<BlobBody> {
    if resp.status() == 206 && content_range_start(resp.header("content-range")) == Some(offset) {
        return Some(BlobBody {
            reader: resp.into_reader(),
            start: offset,
        });
    }
    if resp.status() == 200 {
        return Some(BlobBody {
            reader: resp.into_reader(),
            start: 0,
        });
    }
    None
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/TOTAL` header.
fn content_range_start(header: Option<&str>) -> Option<u64> {
    let spec = header?.trim().strip_prefix("bytes")?.trim_start();
    spec.split('-').next()?.trim().parse().ok()
}

/// Why copying a download stopped.
pub enum CopyError {
    /// Reading from the registry failed (the connection broke).
    Read(io::Error),
    /// Writing to the store failed.
    Write(io::Error),
}

/// Copies at most `limit + 1` bytes: one more than expected is enough to tell the blob is
/// too long, without letting a hostile server fill the disk. Returns the bytes copied.
pub fn copy_limited(
    reader: impl Read,
    out: &mut dyn Write,
    limit: u64,
    progress: &dyn Fn(u64),
) -> Result<u64, CopyError> {
    let mut reader = reader.take(limit.saturating_add(1));
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(content_range_start(Some("bytes 100-199/200")), Some(100));
        assert_eq!(content_range_start(Some("bytes 0-9/*")), Some(0));
        assert_eq!(content_range_start(Some("bytes */200")), None);
        assert_eq!(content_range_start(Some("items 1-2/3")), None);
        assert_eq!(content_range_start(None), None);
    }

    #[test]
    fn loopback_registries_may_fall_back_to_http() {
        let opts = ClientOptions::default();
        let local = Reference::parse("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(
            Client::new(&local, &opts, false).scheme(),
            Scheme::HttpsOrHttp
        );
        let remote = Reference::parse("registry.example.com:5000/a/b").unwrap();
        assert_eq!(Client::new(&remote, &opts, false).scheme(), Scheme::Https);
        let insecure = ClientOptions {
            insecure: vec!["registry.example.com:5000".into()],
            credentials: None,
        };
        let c = Client::new(&remote, &insecure, false);
        assert_eq!(c.scheme(), Scheme::Http);
        assert_eq!(
            c.url("tags/list"),
            "http://registry.example.com:5000/v2/a/b/tags/list"
        );
    }
}
