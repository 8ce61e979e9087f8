//! TLS for `https://` targets (rustls with the ring provider): building the client configuration from
//! `--insecure` and `--ca-cert FILE`, and the handshake on a connected TCP stream with ALPN naming the HTTP version
//! the connection will speak (`h2` or `http/1.1`).
//!
//! Trust: the Mozilla roots (webpki-roots) plus every certificate of `--ca-cert` (PEM). `--insecure` accepts any
//! certificate (signatures are still checked, so the handshake itself stays sound). The server name sent (SNI)
//! and verified is the target's host, never a recorded one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// ALPN protocol ids.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN id of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// TLS settings from the command line.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Accept any server certificate.
    pub insecure: bool,
    /// Extra trusted certificates (PEM file).
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Client connectors, one per ALPN offer (built once, shared by every connection).
#[derive(Clone)]
pub struct Tls {
    h1: TlsConnector,
    h2: TlsConnector,
    /// Certificates read from `--ca-cert`.
    pub extra_roots: usize,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("extra_roots", &self.extra_roots).finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Builds the connectors. Fails (naming the file) when `--ca-cert` cannot be read or holds no certificate.
    pub fn new(opts: &TlsOptions) -> anyhow::Result<Tls> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let mut extra_roots = 0;
        if let Some(path) = &opts.ca_cert {
            extra_roots = add_pem(&mut roots, path)?;
        }
        let build = |alpn: &[u8]| -> anyhow::Result<TlsConnector> {
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| anyhow::anyhow!("TLS setup: {e}"))?;
            let mut cfg = if opts.insecure {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAny(provider().signature_verification_algorithms)))
                    .with_no_client_auth()
            } else {
                builder.with_root_certificates(roots.clone()).with_no_client_auth()
            };
            cfg.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsConnector::from(Arc::new(cfg)))
        };
        Ok(Tls { h1: build(ALPN_HTTP11)?, h2: build(ALPN_H2)?, extra_roots })
    }

    /// The TLS handshake on `tcp`, offering `h2` when `h2` is true, `http/1.1` otherwise. `host` is the target's
    /// host (a name or an IP literal).
    pub async fn connect(&self, host: &str, tcp: TcpStream, h2: bool) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("server name {host:?}: {e}")))?;
        let connector = if h2 { &self.h2 } else { &self.h1 };
        connector.connect(name, tcp).await
    }
}

/// Adds every certificate of a PEM file; returns how many.
fn add_pem(roots: &mut RootCertStore, path: &Path) -> anyhow::Result<usize> {
    let bad = |e: &dyn fmt::Display| anyhow::anyhow!("--ca-cert {}: {e}", path.display());
    let mut n = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        let cert = cert.map_err(|e| bad(&e))?;
        roots.add(cert).map_err(|e| bad(&e))?;
        n += 1;
    }
    if n == 0 {
        return Err(bad(&"no PEM certificate in the file"));
    }
    Ok(n)
}

/// `--insecure`: any certificate chain is accepted; handshake signatures are still verified.
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

/// Whether an I/O error from the handshake is a TLS failure (a rustls error inside), as opposed to the TCP
/// connection failing under it.
pub fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
        || e.kind() == std::io::ErrorKind::InvalidData
        || e.kind() == std::io::ErrorKind::InvalidInput
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_cert_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Tls::new(&TlsOptions { insecure: false, ca_cert: Some(empty.clone()) }).unwrap_err().to_string();
        assert!(e.contains("empty.pem") && e.contains("no PEM certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = Tls::new(&TlsOptions { insecure: false, ca_cert: Some(missing) }).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        assert!(Tls::new(&TlsOptions::default()).is_ok());
    }
}
