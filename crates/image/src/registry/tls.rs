//! Which certificate authorities a registry's TLS certificate may chain to: the Mozilla
//! roots ureq ships with, the system's CA bundle, and per-registry CAs laid out the way
//! Docker and Podman do it: `<dir>/<host:port>/*.crt`, under peapod's root
//! (`<root>/certs.d`), `/etc/containers/certs.d` and `/etc/docker/certs.d`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// System-wide certs.d directories, searched after peapod's own.
pub const SYSTEM_CERTS_DIRS: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// Where distributions keep their CA bundle (the first one found is used).
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A CA certificate file that cannot be used: the file and why.
#[derive(Debug)]
pub struct BadCaFile {
    pub path: PathBuf,
    pub detail: String,
}

/// The certs.d directories of registry `names` (its name as written and, if different,
/// the host actually contacted), most specific first.
pub fn cert_dirs(root: Option<&Path>, names: &[&str]) -> Vec<PathBuf> {
    let bases = root
        .map(|r| r.join("certs.d"))
        .into_iter()
        .chain(SYSTEM_CERTS_DIRS.iter().map(PathBuf::from));
    let mut dirs = Vec::new();
    for base in bases {
        for name in names {
            let d = base.join(name);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs
}

/// The Mozilla roots plus whatever the system bundle holds (read once per process;
/// certificates rustls cannot use are skipped, as every TLS client does with bundles).
fn base_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let bundle = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
            .find_map(|p| fs::read(&p).ok());
        if let Some(data) = bundle {
            let certs = CertificateDer::pem_slice_iter(&data).filter_map(Result::ok);
            let (added, skipped) = roots.add_parsable_certificates(certs);
            tracing::debug!(added, skipped, "system CA bundle");
        }
        roots
    })
}

/// Adds every certificate of every `*.crt` file in `dir` (a missing directory is fine).
fn add_dir(roots: &mut RootCertStore, dir: &Path) -> Result<usize, BadCaFile> {
    let bad = |path: &Path, detail: String| BadCaFile {
        path: path.to_path_buf(),
        detail,
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(bad(dir, e.to_string())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    let mut added = 0;
    for path in files {
        let data = fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
        let mut in_file = 0;
        for cert in CertificateDer::pem_slice_iter(&data) {
            let cert = cert.map_err(|e| bad(&path, format!("not PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(&path, format!("not a usable CA certificate: {e}")))?;
            in_file += 1;
        }
        if in_file == 0 {
            return Err(bad(&path, "holds no PEM certificate".into()));
        }
        tracing::debug!(path = %path.display(), certificates = in_file, "registry CA");
        added += in_file;
    }
    Ok(added)
}

/// A rustls configuration (ring, TLS 1.2 and 1.3, like ureq's default) trusting the base
/// roots and every CA found in `dirs`.
pub fn client_config(dirs: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, BadCaFile> {
    let mut roots = base_roots().clone();
    for dir in dirs {
        add_dir(&mut roots, dir)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| BadCaFile {
            path: PathBuf::new(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why a connection failed, as far as TLS is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server answered the handshake in plain HTTP.
    PlainHttp,
    /// The server's certificate chains to no trusted CA.
    UnknownIssuer,
    /// The server's certificate was refused for another reason (which).
    Certificate(String),
    /// Some other TLS error.
    Other(String),
}

fn from_rustls(e: &rustls::Error) -> TlsFailure {
    use rustls::{CertificateError, InvalidMessage};
    match e {
        rustls::Error::InvalidMessage(
            InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
        ) => TlsFailure::PlainHttp,
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsFailure::Certificate("it has expired".into())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::Certificate("it is not valid yet".into())
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::Certificate("it was issued for another host name".into())
            }
            other => TlsFailure::Certificate(format!("{other:?}")),
        },
        other => TlsFailure::Other(other.to_string()),
    }
}

/// Finds a rustls error in `err`'s chain (ureq wraps it in an `io::Error`).
pub fn classify(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(from_rustls(r));
        }
        if let Some(r) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(from_rustls(r));
        }
        cur = e.source();
    }
    None
}

/// Whether `authority` (`HOST[:PORT]`) names this machine: Docker lets such registries
/// speak plain HTTP without being listed as insecure.
pub fn is_loopback(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com:5000",
            "10.0.0.1:5000",
            "[fe80::1]:80",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn cert_dirs_are_most_specific_first() {
        let dirs = cert_dirs(
            Some(Path::new("/r")),
            &["docker.io", "registry-1.docker.io"],
        );
        assert_eq!(dirs[0], Path::new("/r/certs.d/docker.io"));
        assert_eq!(dirs[1], Path::new("/r/certs.d/registry-1.docker.io"));
        assert_eq!(dirs[2], Path::new("/etc/containers/certs.d/docker.io"));
        assert_eq!(dirs.len(), 6);
        assert_eq!(cert_dirs(None, &["h:1", "h:1"]).len(), 2);
    }

    #[test]
    fn bad_ca_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("ca.crt"), "not a certificate\n").unwrap();
        fs::write(tmp.path().join("ignored.txt"), "whatever").unwrap();
        let err = client_config(&[tmp.path().to_path_buf()]).unwrap_err();
        assert_eq!(err.path, tmp.path().join("ca.crt"));
        assert!(err.detail.contains("no PEM certificate"), "{}", err.detail);
        // A missing directory is not an error.
        client_config(&[tmp.path().join("nope")]).unwrap();
    }
}
