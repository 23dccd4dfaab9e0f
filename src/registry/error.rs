//! Registry failures, classified as the pull that would follow would fail, each with
//! the fix a user can apply.

use std::error::Error as _;
use std::fmt;

use oci_client::errors::{OciDistributionError, OciErrorCode};

pub use crate::engine::FailureKind;

/// A failed registry request, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RegistryError {
    pub kind: FailureKind,
    /// The underlying error, for the log and the end of the message (no secrets).
    pub detail: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

impl RegistryError {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        RegistryError {
            kind,
            detail: detail.into(),
        }
    }

    /// Classifies an error of the OCI client.
    pub fn classify(err: &OciDistributionError) -> Self {
        use OciDistributionError as E;
        let kind = match err {
            E::ImageManifestNotFoundError(_) => FailureKind::ManifestUnknown,
            E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => FailureKind::Unauthorized,
            E::RegistryError { envelope, .. } => match envelope.errors.first().map(|e| &e.code) {
                Some(
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound,
                ) => FailureKind::ManifestUnknown,
                Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => {
                    FailureKind::Unauthorized
                }
                Some(OciErrorCode::Toomanyrequests) => FailureKind::RateLimited,
                _ => FailureKind::Other,
            },
            E::ServerError { code, .. } => match code {
                401 | 403 => FailureKind::Unauthorized,
                404 => FailureKind::ManifestUnknown,
                429 => FailureKind::RateLimited,
                c => FailureKind::Server(*c),
            },
            E::RequestError(e) => classify_transport(e),
            _ => FailureKind::Other,
        };
        RegistryError::new(kind, chain(err))
    }
}

impl RegistryError {
    /// Classifies an error of an HTTP request made with reqwest.
    pub fn from_transport(err: &reqwest::Error) -> Self {
        RegistryError::new(classify_transport(err), chain(err))
    }
}

/// The class of a TLS error: an unknown authority, a certificate for another name,
/// or another TLS failure.
pub fn classify_tls(err: &rustls::Error) -> FailureKind {
    match err {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            FailureKind::TlsUnknownAuthority
        }
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        ) => FailureKind::TlsWrongName,
        _ => FailureKind::Tls,
    }
}

/// The class of an I/O error on a connection: refused, timed out, or another.
pub fn classify_io(err: &std::io::Error) -> Option<FailureKind> {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => Some(FailureKind::ConnectionRefused),
        std::io::ErrorKind::TimedOut => Some(FailureKind::Timeout),
        _ => None,
    }
}

/// Reads the transport error's chain for the TLS, connection and DNS causes.
fn classify_transport(err: &reqwest::Error) -> FailureKind {
    if err.is_timeout() {
        return FailureKind::Timeout;
    }
    if let Some(tls) = err.source().and_then(find::<rustls::Error>) {
        return classify_tls(tls);
    }
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(kind) = e.downcast_ref::<std::io::Error>().and_then(classify_io) {
            return kind;
        }
        source = e.source();
    }
    let text = chain(err).to_ascii_lowercase();
    if text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
    {
        FailureKind::Dns
    } else if text.contains("connection refused") {
        FailureKind::ConnectionRefused
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        FailureKind::Tls
    } else {
        FailureKind::Other
    }
}

/// Finds an error of type `T` in a chain, looking inside `io::Error`s too: they
/// hide the error they wrap from `source()`, and hyper nests them.
fn find<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    if let Some(t) = e.downcast_ref::<T>() {
        return Some(t);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(t) = find::<T>(inner)
    {
        return Some(t);
    }
    e.source().and_then(find::<T>)
}

/// The error and its sources on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}
