//! The webhook's TLS: rustls, TLS 1.2 and 1.3 only, certificate reloaded on change.
//!
//! With a client CA (`serve --client-ca`), only a client presenting a certificate
//! issued by that CA completes the handshake (rustls `WebPkiClientVerifier`): in a
//! cluster, the API server, configured to present one through the
//! AdmissionConfiguration's kubeconfig (see README). The CA file is read and
//! reloaded with the serving certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate: {reason}")]
    Certificate { path: String, reason: String },
    #[error("{path} holds no PEM private key: {reason}")]
    Key { path: String, reason: String },
    #[error("the certificate and key cannot serve TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("{path} holds no usable client CA certificate: {reason}")]
    ClientCa { path: String, reason: String },
}

/// The PEM bytes of a certificate chain and its key, as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    /// The CA (PEM) whose client certificates are accepted; `None`: any client.
    pub client_ca: Option<Vec<u8>>,
}

impl KeyMaterial {
    pub fn read(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        Ok(KeyMaterial {
            cert: read(cert)?,
            key: read(key)?,
            client_ca: client_ca.map(read).transpose()?,
        })
    }

    /// A rustls server configuration for this material: TLS 1.3 and 1.2 only, the
    /// aws-lc-rs provider, HTTP/2 and HTTP/1.1 by ALPN.
    pub fn server_config(
        &self,
        cert_path: &Path,
        key_path: &Path,
        client_ca_path: Option<&Path>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Certificate {
                path: cert_path.display().to_string(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::Certificate {
                path: cert_path.display().to_string(),
                reason: "the file is empty".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| TlsError::Key {
            path: key_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let path = client_ca_path.map_or_else(String::new, |p| p.display().to_string());
                builder.with_client_cert_verifier(client_verifier(pem, &path, provider)?)
            }
        };
        let mut config = builder.with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A verifier that accepts only client certificates issued by the CAs in `pem`,
/// and refuses clients without one.
fn client_verifier(
    pem: &[u8],
    path: &str,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let err = |reason: String| TlsError::ClientCa {
        path: path.to_string(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| err(e.to_string()))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("the file holds no PEM certificate".into()));
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| err(e.to_string()))
}

/// The `notAfter` of the first certificate in `cert_pem`, as Unix seconds.
pub fn not_after(cert_pem: &[u8]) -> Option<i64> {
    let der = CertificateDer::pem_slice_iter(cert_pem).next()?.ok()?;
    let cert = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(der.as_ref()).ok()?;
    let secs = cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_expiry_of_the_first_certificate() {
        let names = vec!["localhost".to_string()];
        let certs = crate::certs::generate(&names, 10).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let expiry = not_after(certs.cert_pem.as_bytes()).unwrap();
        let days = (expiry - now) as f64 / 86_400.0;
        assert!((9.0..=10.5).contains(&days), "{days} days");
        assert_eq!(not_after(b"not a certificate"), None);
    }
}
