//! What imagegate reads from a signing certificate itself, with x509-cert: every
//! subject alternative name (cosign accepts a match on any of them; sigstore-crypto
//! keeps only the first), the OIDC issuer from BOTH Fulcio extensions (sigstore-rs
//! 0.15 reads only the old one; when both are present they must agree), the
//! validity window, and whether a certificate is a self-signed root.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::Utf8StringRef;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// Fulcio's first issuer extension: the raw issuer URL as the extension value.
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's current issuer extension: a DER UTF8String.
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";

/// The fields of a signing certificate that identity checks and messages use.
#[derive(Debug, Clone)]
pub(crate) struct CertFacts {
    /// Email and URI subject alternative names, in order.
    pub sans: Vec<String>,
    /// The OIDC issuer, from .1.8 or .1.1.
    pub issuer: Option<String>,
    /// Both issuer extensions present with different values.
    pub issuer_conflict: Option<(String, String)>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The subject, for messages about roots.
    pub subject: String,
    pub self_signed: bool,
}

pub(crate) fn parse(der: &[u8]) -> Result<CertFacts, String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let mut sans = Vec::new();
    if let Ok(Some((_, san))) = tbs.get::<SubjectAltName>() {
        for name in san.0 {
            match name {
                GeneralName::Rfc822Name(v) => sans.push(v.to_string()),
                GeneralName::UniformResourceIdentifier(v) => sans.push(v.to_string()),
                _ => {}
            }
        }
    }
    let mut v1 = None;
    let mut v2 = None;
    for ext in tbs.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let value = ext.extn_value.as_bytes();
        if oid == OID_ISSUER_V1 {
            // Raw UTF-8 in the extension value; tolerate a DER UTF8String as well.
            v1 = Utf8StringRef::from_der(value)
                .map(|s| s.to_string())
                .ok()
                .or_else(|| std::str::from_utf8(value).ok().map(str::to_string));
        } else if oid == OID_ISSUER_V2 {
            v2 = Some(
                Utf8StringRef::from_der(value)
                    .map(|s| s.to_string())
                    .map_err(|e| {
                        format!("the issuer extension {OID_ISSUER_V2} is malformed: {e}")
                    })?,
            );
        }
    }
    let issuer_conflict = match (&v1, &v2) {
        (Some(a), Some(b)) if a != b => Some((a.clone(), b.clone())),
        _ => None,
    };
    let issuer = v2.or(v1);
    let time = |t: x509_cert::time::Time| UNIX_EPOCH + t.to_unix_duration();
    Ok(CertFacts {
        sans,
        issuer,
        issuer_conflict,
        not_before: time(tbs.validity.not_before),
        not_after: time(tbs.validity.not_after),
        subject: tbs.subject.to_string(),
        self_signed: tbs.subject == tbs.issuer,
    })
}

/// RFC 3339 in UTC, to the second, for messages.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    match sigstore_time(secs) {
        Some(s) => s,
        None => format!("{secs}s after the epoch"),
    }
}

fn sigstore_time(secs: i64) -> Option<String> {
    // jiff is sigstore-verify's time type; formatting through it keeps one calendar.
    jiff::Timestamp::from_second(secs)
        .ok()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}
