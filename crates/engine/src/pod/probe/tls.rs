//! TLS for HTTPS probes as kubelet does it: the server's certificate is
//! not verified (kubelet sets InsecureSkipVerify), but the handshake's
//! signatures still are, with the certificate's key. The server name sent
//! (SNI) is the URL's host when it is a name; an address sends none.

use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::{TIMED_OUT, TLS_FAILED, io_code, left};

/// A verifier that accepts any certificate.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The client configuration, made once per process.
fn config() -> Result<Arc<ClientConfig>, i32> {
    static CONFIG: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let algorithms = provider.signature_verification_algorithms;
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
                .ok()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(algorithms)))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(config))
        })
        .clone()
        .ok_or(TLS_FAILED)
}

/// The handshake with `host` over `sock`, done before `deadline`.
pub(super) fn connect(
    mut sock: TcpStream,
    host: &str,
    deadline: Instant,
) -> Result<StreamOwned<ClientConnection, TcpStream>, i32> {
    let name = ServerName::try_from(host.to_string()).map_err(|_| TLS_FAILED)?;
    let mut conn = ClientConnection::new(config()?, name).map_err(|_| TLS_FAILED)?;
    while conn.is_handshaking() {
        let t = left(deadline).ok_or(TIMED_OUT)?;
        sock.set_read_timeout(Some(t)).map_err(|e| io_code(&e))?;
        sock.set_write_timeout(Some(t)).map_err(|e| io_code(&e))?;
        match conn.complete_io(&mut sock) {
            // The peer closed the connection mid-handshake.
            Ok((0, 0)) => return Err(TLS_FAILED),
            Ok(_) => {}
            Err(e) if io_code(&e) == TIMED_OUT => return Err(TIMED_OUT),
            Err(_) => return Err(TLS_FAILED),
        }
    }
    Ok(StreamOwned::new(conn, sock))
}
