//! Registry failures, classified as the pull that would follow would fail, each with
//! the fix a user can apply.
//!
//! Registry answers are hostile input: every piece of a response body or header that
//! goes into a detail passes through [`sanitize`] (control characters dropped, at
//! most [`DETAIL_CHARS`] characters), so a denial never carries a raw body.

use std::error::Error as _;
use std::fmt;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

pub use crate::engine::FailureKind;

use super::net::{AddressRefused, LookupFailed};

/// The most characters of registry-provided text kept in a detail.
pub const DETAIL_CHARS: usize = 300;

/// A failed registry request, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RegistryError {
    pub kind: FailureKind,
    /// The underlying error, for the log and the end of the message (no secrets,
    /// registry text sanitized).
    pub detail: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

/// The OCI error envelope: `{"errors": [{"code": ..., "message": ...}]}`.
#[derive(Deserialize)]
struct Envelope {
    errors: Vec<EnvelopeError>,
}

#[derive(Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl RegistryError {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        RegistryError {
            kind,
            detail: detail.into(),
        }
    }

    /// A body over `limit` bytes.
    pub fn too_large(what: &str, limit: u64) -> Self {
        RegistryError::new(
            FailureKind::TooLarge,
            format!("the registry sent {what} over {}", human_bytes(limit)),
        )
    }

    /// An HTTP error answer: the status, the OCI error envelope of the body (read
    /// bounded by the caller) and, for 429, the rate-limit headers.
    pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let envelope = serde_json::from_slice::<Envelope>(body).ok();
        let first = envelope.as_ref().and_then(|e| e.errors.first());
        let code = first.map(|e| e.code.to_ascii_uppercase());
        let kind = match code.as_deref() {
            Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN" | "NOT_FOUND") => {
                FailureKind::ManifestUnknown
            }
            Some("UNAUTHORIZED" | "DENIED") => FailureKind::Unauthorized,
            Some("TOOMANYREQUESTS") => FailureKind::RateLimited,
            _ => match status.as_u16() {
                401 | 403 => FailureKind::Unauthorized,
                404 => FailureKind::ManifestUnknown,
                429 => FailureKind::RateLimited,
                c => FailureKind::Server(c),
            },
        };
        let said = match (&envelope, first) {
            (Some(envelope), Some(_)) => envelope
                .errors
                .iter()
                .take(3)
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            _ if body.is_empty() => String::new(),
            _ => String::from_utf8_lossy(body).into_owned(),
        };
        let mut detail = format!("HTTP {}", status.as_u16());
        if !said.trim().is_empty() {
            detail.push_str(": ");
            detail.push_str(&sanitize(&said, DETAIL_CHARS));
        }
        if kind == FailureKind::RateLimited
            && let Some(limits) = rate_limit_headers(headers)
        {
            detail = format!("{limits}; {detail}");
        }
        RegistryError::new(kind, detail)
    }

    /// Classifies a transport error of reqwest: refused addresses, TLS, connection,
    /// DNS, timeouts.
    pub fn from_transport(err: &reqwest::Error) -> Self {
        let detail = sanitize(&chain(err), 2 * DETAIL_CHARS);
        if let Some(refused) = err.source().and_then(find::<AddressRefused>) {
            return RegistryError::new(FailureKind::AddressRefused, refused.to_string());
        }
        RegistryError::new(classify_transport(err), detail)
    }
}

/// `1 KiB`, `4 MiB`, or bytes.
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// The rate-limit headers of an answer (`ratelimit-limit`, `ratelimit-remaining`,
/// `retry-after`, `docker-ratelimit-source`), sanitized, joined with `, `; `None`
/// when it has none.
pub fn rate_limit_headers(headers: &HeaderMap) -> Option<String> {
    let found: Vec<String> = [
        "ratelimit-limit",
        "ratelimit-remaining",
        "retry-after",
        "docker-ratelimit-source",
    ]
    .iter()
    .filter_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?;
        Some(format!("{name}: {}", sanitize(value, 80)))
    })
    .collect();
    (!found.is_empty()).then(|| found.join(", "))
}

/// Registry-provided text made safe for a message: control characters (including
/// newlines, escape sequences and bidi overrides) become spaces, runs of spaces
/// collapse, and at most `max_chars` characters are kept (then `…`).
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut count = 0;
    let mut space = false;
    for c in text.chars() {
        let c = if c.is_control() || is_invisible_format(c) {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space || out.is_empty() {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if count == max_chars {
            out.truncate(out.trim_end().len());
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// Bidi overrides and zero-width characters, which can make a message read other
/// than it is.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
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
    if err.source().and_then(find::<LookupFailed>).is_some() {
        return FailureKind::Dns;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_control_and_invisible_characters_and_truncates() {
        // (input, max, expected)
        let table = [
            ("plain", 10, "plain"),
            ("a\nb\r\nc\td", 10, "a b c d"),
            ("\u{1b}[31mred\u{1b}[0m", 20, "[31mred [0m"),
            ("  lead  and   trail  ", 30, "lead and trail"),
            ("abc\u{202e}def\u{200b}", 10, "abc def"),
            ("0123456789abc", 10, "0123456789…"),
            ("<html>\n<body>login</body>", 12, "<html> <body…"),
            ("ünïcödé", 3, "ünï…"),
        ];
        for (input, max, want) in table {
            assert_eq!(sanitize(input, max), want, "{input:?}");
        }
        let long = "x".repeat(100_000);
        assert_eq!(
            sanitize(&long, DETAIL_CHARS).chars().count(),
            DETAIL_CHARS + 1
        );
    }

    #[test]
    fn statuses_and_envelopes_are_classified() {
        let none = HeaderMap::new();
        let env = |code: &str| format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#);
        // (status, body, kind)
        let table: Vec<(u16, String, FailureKind)> = vec![
            (404, env("MANIFEST_UNKNOWN"), FailureKind::ManifestUnknown),
            (404, env("NAME_UNKNOWN"), FailureKind::ManifestUnknown),
            (404, String::new(), FailureKind::ManifestUnknown),
            (401, env("UNAUTHORIZED"), FailureKind::Unauthorized),
            (
                403,
                "<html>forbidden</html>".into(),
                FailureKind::Unauthorized,
            ),
            (400, env("DENIED"), FailureKind::Unauthorized),
            (429, env("TOOMANYREQUESTS"), FailureKind::RateLimited),
            (503, "upstream down".into(), FailureKind::Server(503)),
            (500, env("UNKNOWN"), FailureKind::Server(500)),
        ];
        for (status, body, kind) in table {
            let e = RegistryError::from_status(
                StatusCode::from_u16(status).unwrap(),
                &none,
                body.as_bytes(),
            );
            assert_eq!(e.kind, kind, "{status} {body}");
        }
        let e = RegistryError::from_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            &none,
            format!("evil\n\u{1b}[2J{}", "y".repeat(10_000)).as_bytes(),
        );
        assert!(
            e.detail.starts_with("HTTP 500: evil [2Jyyy"),
            "{}",
            e.detail
        );
        assert!(!e.detail.contains('\n') && !e.detail.contains('\u{1b}'));
        assert!(
            e.detail.chars().count() <= DETAIL_CHARS + 12,
            "{}",
            e.detail
        );
    }

    #[test]
    fn rate_limit_headers_lead_the_detail() {
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-limit", "100;w=21600".parse().unwrap());
        headers.insert("retry-after", "3600".parse().unwrap());
        let e = RegistryError::from_status(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
        );
        assert_eq!(e.kind, FailureKind::RateLimited);
        assert_eq!(
            e.detail,
            "ratelimit-limit: 100;w=21600, retry-after: 3600; HTTP 429: TOOMANYREQUESTS: slow down"
        );
    }

    #[test]
    fn sizes_are_said_in_binary_units() {
        for (n, s) in [
            (4 << 20, "4 MiB"),
            (64 << 10, "64 KiB"),
            (1000, "1000 bytes"),
        ] {
            assert_eq!(human_bytes(n), s);
        }
        assert_eq!(
            RegistryError::too_large("a manifest", 4 << 20).detail,
            "the registry sent a manifest over 4 MiB"
        );
    }
}
