//! Certificates for the webhook: a CA and a serving certificate signed by it.
//!
//! `imagegate certs` uses this for clusters without cert-manager, `imagegate serve`
//! for its development certificate, and the tests for their own CA.

use std::net::IpAddr;
use std::path::Path;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A CA and a serving certificate, PEM-encoded.
pub struct GeneratedCerts {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// The DNS names the API server uses to reach a webhook Service.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Generates a CA and a serving certificate for `names` (DNS names or IP
/// addresses), valid for `days`.
pub fn generate(names: &[String], days: u32) -> Result<GeneratedCerts, CertError> {
    let now = time_now();
    let until = now + std::time::Duration::from_secs(u64::from(days) * 86_400);

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name = name("imagegate webhook CA");
    ca.not_before = now.into();
    ca.not_after = until.into();
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    for n in names {
        leaf.subject_alt_names.push(match n.parse::<IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(n.clone().try_into()?),
        });
    }
    leaf.distinguished_name = name(names.first().map_or("imagegate", String::as_str));
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now.into();
    leaf.not_after = until.into();
    let cert = leaf.signed_by(&key, &issuer)?;

    Ok(GeneratedCerts {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl GeneratedCerts {
    /// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` (keys readable by the owner
    /// only) into `dir`.
    pub fn write(&self, dir: &Path, with_ca_key: bool) -> Result<(), CertError> {
        let write = |file: &str, text: &str, private: bool| -> Result<(), CertError> {
            let path = dir.join(file);
            let err = |source| CertError::Write {
                path: path.display().to_string(),
                source,
            };
            std::fs::create_dir_all(dir).map_err(err)?;
            // Write beside and rename, so that a reloading server never reads half a file.
            let tmp = dir.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, text).map_err(err)?;
            #[cfg(unix)]
            if private {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
            }
            let _ = private;
            std::fs::rename(&tmp, &path).map_err(err)
        };
        write("ca.crt", &self.ca_cert_pem, false)?;
        if with_ca_key {
            write("ca.key", &self.ca_key_pem, true)?;
        }
        write("tls.key", &self.key_pem, true)?;
        write("tls.crt", &self.cert_pem, false)?;
        Ok(())
    }

    /// The `caBundle` value for a webhook configuration: the CA, base64-encoded PEM.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_cert_pem)
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "imagegate");
    dn
}

fn time_now() -> std::time::SystemTime {
    // A minute back, for clocks a little behind ours.
    std::time::SystemTime::now() - std::time::Duration::from_secs(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_certificate_verifies_against_the_ca_for_every_name() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
        let names = vec![
            "imagegate.imagegate.svc".to_string(),
            "127.0.0.1".to_string(),
        ];
        let c = generate(&names, 30).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(c.ca_cert_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap();
        for (server, ok) in [
            ("imagegate.imagegate.svc", true),
            ("127.0.0.1", true),
            ("imagegate.other.svc", false),
        ] {
            let name = ServerName::try_from(server).unwrap();
            let got = verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now());
            assert_eq!(got.is_ok(), ok, "{server}: {got:?}");
        }
        assert!(c.ca_bundle().len() > 100);
        assert_eq!(service_dns_names("imagegate", "ns")[2], "imagegate.ns.svc");
    }
}
