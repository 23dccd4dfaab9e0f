//! The TLS step: a handshake on its own, against the roots the registry client
//! uses (the platform's, plus `--ca`), recording the certificate the registry
//! presents so that a failure can name what it is valid for.
//!
//! Why not through the registry client: the client reports a failed handshake as
//! one error, while an operator needs the certificate's names, the protocol and
//! whether the chain or the name is at fault. The verification itself is the
//! platform verifier's (the one reqwest uses), so the verdict is the client's.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

/// What the handshake showed.
#[derive(Debug, Default)]
pub(super) struct Handshake {
    /// `TLSv1_3`, ... when it completed.
    pub protocol: Option<String>,
    /// The DNS names of the certificate's subject alternative names.
    pub dns_names: Vec<String>,
    /// Whether the certificate is valid for the address the registry was reached by
    /// (when it was reached by IP address).
    pub valid_for_ip: Option<(IpAddr, bool)>,
    /// Whether a certificate was presented at all.
    pub presented: bool,
}

/// Runs a TLS handshake with `host` on `stream`.
pub(super) async fn handshake(
    stream: TcpStream,
    host: &str,
    ca_pem: Option<&[u8]>,
) -> (Handshake, Result<(), rustls::Error>) {
    let mut seen = Handshake::default();
    let config = match client_config(ca_pem) {
        Ok(c) => c,
        Err(e) => return (seen, Err(e)),
    };
    let (config, recorder) = config;
    let name = match ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']')) {
        Ok(n) => n.to_owned(),
        Err(_) => {
            return (
                seen,
                Err(rustls::Error::General(format!(
                    "{host} is no valid TLS server name"
                ))),
            );
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let result = connector.connect(name.clone(), stream).await;
    if let Some(leaf) = recorder.leaf.lock().ok().and_then(|l| l.clone()) {
        seen.presented = true;
        if let Ok(cert) = webpki::EndEntityCert::try_from(&leaf) {
            seen.dns_names = cert
                .valid_dns_names()
                .take(20)
                .map(|n| n.chars().take(100).collect())
                .collect();
            if let ServerName::IpAddress(ip) = &name {
                let ok = cert.verify_is_valid_for_subject_name(&name).is_ok();
                seen.valid_for_ip = Some((IpAddr::from(*ip), ok));
            }
        }
    }
    match result {
        Ok(conn) => {
            seen.protocol = conn.get_ref().1.protocol_version().map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_string(),
                other => format!("{other:?}"),
            });
            (seen, Ok(()))
        }
        Err(e) => {
            let tls = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned()
                .unwrap_or_else(|| rustls::Error::General(e.to_string()));
            (seen, Err(tls))
        }
    }
}

type Config = (rustls::ClientConfig, Arc<Recorder>);

fn client_config(ca_pem: Option<&[u8]>) -> Result<Config, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut extra = Vec::new();
    if let Some(pem) = ca_pem {
        use rustls::pki_types::pem::PemObject;
        for cert in CertificateDer::pem_slice_iter(pem) {
            extra.push(cert.map_err(|e| rustls::Error::General(format!("--ca: {e}")))?);
        }
    }
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())?;
    let recorder = Arc::new(Recorder {
        inner: Arc::new(verifier),
        leaf: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    Ok((config, recorder))
}

/// Delegates every decision to the real verifier and keeps the leaf certificate.
#[derive(Debug)]
struct Recorder {
    inner: Arc<dyn ServerCertVerifier>,
    leaf: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut leaf) = self.leaf.lock() {
            *leaf = Some(end_entity.clone().into_owned());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}
