//! A client of the OCI distribution spec: pull and push against registries, with
//! anonymous, bearer-token and basic authentication.

pub mod auth;
mod client;
pub mod credentials;
pub mod progress;
pub mod pull;
pub mod push;
mod tls;

pub use client::{Client, ClientOptions};

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {host}: {detail}{hint}")]
    Unreachable {
        host: String,
        detail: String,
        hint: &'static str,
    },
    #[error(
        "registry {host} requires authentication for {repository}{detail}; log in with: peapod login {host}"
    )]
    AuthRequired {
        host: String,
        repository: String,
        detail: String,
    },
    #[error(
        "registry {host} refused the credentials for {repository}: {detail}; check them with peapod login {host}"
    )]
    AuthFailed {
        host: String,
        repository: String,
        detail: String,
    },
    #[error("{what} not found in registry {host} ({detail}); check the name and tag")]
    NotFound {
        host: String,
        what: String,
        detail: String,
    },
    #[error("registry {host}: {what}: HTTP {status}{detail}")]
    Status {
        host: String,
        what: String,
        status: u16,
        detail: String,
    },
    #[error(
        "registry {host} sent content for {digest} that does not match it ({detail}); nothing was stored"
    )]
    Corrupt {
        host: String,
        digest: Digest,
        detail: String,
    },
    #[error("registry {host}: {what}: {detail}")]
    Protocol {
        host: String,
        what: String,
        detail: String,
    },
    #[error(
        "registry {host} presented a TLS certificate signed by an unknown authority; put its CA certificate in {certs_dir}/{host}/ca.crt, or use --insecure-registry {host} for plain HTTP"
    )]
    Untrusted { host: String, certs_dir: String },
    #[error(
        "registry {host} presented a TLS certificate that cannot be used ({detail}); it must be valid now and name {host}, or use --insecure-registry {host} for plain HTTP"
    )]
    BadCertificate { host: String, detail: String },
    #[error(
        "registry {host}: CA certificate {path}: {detail}; replace it with the registry's CA certificate in PEM form, or remove it"
    )]
    BadCaCertificate {
        host: String,
        path: String,
        detail: String,
    },
    #[error(
        "registry {host}: download of {digest} broke off after {done} of {size} bytes ({detail}); pull again to resume it"
    )]
    Interrupted {
        host: String,
        digest: Digest,
        done: u64,
        size: u64,
        detail: String,
    },
    #[error("credentials file {path}: {detail}")]
    Credentials { path: String, detail: String },
}
