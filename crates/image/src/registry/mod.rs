//! A client of the OCI distribution spec: pull and push against registries, with
//! anonymous, bearer-token and basic authentication.

pub mod auth;
mod client;
pub mod credentials;
pub mod progress;
pub mod pull;
pub mod push;

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
    #[error("credentials file {path}: {detail}")]
    Credentials { path: String, detail: String },
}
