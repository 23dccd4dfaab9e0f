//! Registry authentication: `WWW-Authenticate` challenges, Basic credentials, and
//! the bearer-token flow of the Docker token specification.
//!
//! The challenge a registry answers with is remembered per registry: a registry
//! that let an anonymous request through is asked anonymously again (no `GET /v2/`
//! ping before each lookup); one that asked for Basic credentials gets them up
//! front; one that asked for a token gets a token, fetched from its realm with the
//! repository's pull scope and cached per registry, credential and scope for the
//! token's lifetime.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use serde::Deserialize;

use super::error::{FailureKind, RegistryError};

/// The most bytes of a token response read.
pub const TOKEN_LIMIT: u64 = 64 * 1024;

/// How a registry asks to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// The bytes this challenge holds, for the cache's weigher.
    pub fn weight(&self) -> usize {
        match self {
            Challenge::Basic => 8,
            Challenge::Bearer { realm, service } => {
                realm.len() + service.as_ref().map_or(0, String::len) + 16
            }
        }
    }
}

/// The first challenge imagegate can answer among a response's `WWW-Authenticate`
/// headers (Bearer preferred over Basic).
pub fn challenge(headers: &HeaderMap) -> Option<Challenge> {
    let mut basic = false;
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let params = params(rest);
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            if let Some(realm) = get("realm").filter(|r| !r.is_empty()) {
                return Some(Challenge::Bearer {
                    realm,
                    service: get("service"),
                });
            }
        } else if scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    basic.then_some(Challenge::Basic)
}

/// The `name=value` and `name="quoted \" value"` parameters of a challenge, in
/// order. Malformed input ends the list; it never panics.
fn params(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',', '\t']);
        let Some(eq) = s.find('=') else {
            return out;
        };
        let name = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start();
        let value;
        if let Some(rest) = s.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = rest.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            let Some(end) = end else {
                return out;
            };
            value = v;
            s = &rest[end..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            value = s[..end].trim().to_string();
            s = &s[end..];
        }
        if name.is_empty() || name.contains(' ') {
            return out;
        }
        out.push((name, value));
    }
}

/// The detail of a token that cannot be sent as a header.
pub const UNUSABLE_TOKEN: &str = "its token, or another value it sent, is not a valid HTTP header value: it has a line break or another control character";

/// A bearer token and how long it may be used.
#[derive(Debug, Clone)]
pub struct Token {
    /// `Bearer <token>`, checked to be a valid header value.
    pub header: HeaderValue,
    pub lifetime: Duration,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// The token in a token service's answer. The lifetime is the announced one less a
/// margin (60 s when none is announced, as the specification says), between 1 s and
/// one hour.
pub fn parse_token(body: &[u8]) -> Result<Token, RegistryError> {
    let bad = |why: String| {
        RegistryError::new(
            FailureKind::UnusableAnswer,
            format!("the registry's token service sent an unusable answer: {why}"),
        )
    };
    let response: TokenResponse =
        serde_json::from_slice(body).map_err(|e| bad(format!("not JSON ({e})")))?;
    let token = response
        .token
        .filter(|t| !t.is_empty())
        .or(response.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| bad("no token".into()))?;
    // A token goes into a header: visible ASCII only (and no spaces), or it is
    // refused here, not sent mangled or panicked on.
    // The token is a secret: it is never quoted in the detail.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RegistryError::new(
            FailureKind::UnusableAnswer,
            UNUSABLE_TOKEN,
        ));
    }
    let header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| bad("the token is not a valid header value".into()))?;
    let announced = response.expires_in.unwrap_or(60).clamp(1, 3600);
    let lifetime = if announced > 20 {
        announced - 10
    } else {
        announced
    };
    Ok(Token {
        header: sensitive(header),
        lifetime: Duration::from_secs(lifetime as u64),
    })
}

/// The `Authorization` value for Basic credentials.
pub fn basic(username: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .expect("base64 is always a valid header value");
    sensitive(value)
}

/// Marks a header value sensitive: hyper and reqwest keep it out of debug output.
fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(WWW_AUTHENTICATE, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn challenges_are_parsed_without_panicking_on_any_input() {
        let bearer = |realm: &str, service: Option<&str>| {
            Some(Challenge::Bearer {
                realm: realm.into(),
                service: service.map(String::from),
            })
        };
        // (headers, challenge)
        let table: Vec<(Vec<&str>, Option<Challenge>)> = vec![
            (
                vec![
                    r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                ],
                bearer("https://auth.docker.io/token", Some("registry.docker.io")),
            ),
            (
                vec![r#"bearer Realm="https://a/t""#],
                bearer("https://a/t", None),
            ),
            (
                vec![r#"Bearer realm=https://a/t, service=s"#],
                bearer("https://a/t", Some("s")),
            ),
            (
                vec![r#"Bearer realm="https://a/t?x=\"q\"", service="s,t""#],
                bearer("https://a/t?x=\"q\"", Some("s,t")),
            ),
            (vec![r#"Basic realm="registry""#], Some(Challenge::Basic)),
            (vec!["Basic"], Some(Challenge::Basic)),
            (
                vec![r#"Basic realm="x""#, r#"Bearer realm="https://a/t""#],
                bearer("https://a/t", None),
            ),
            (vec![r#"Bearer realm=""#], None),
            (vec![r#"Bearer service="s""#], None),
            (vec![r#"Bearer realm"#], None),
            (vec!["Negotiate abc"], None),
            (vec![""], None),
            (vec![r#"Bearer ==,,=="realm"#], None),
        ];
        for (values, want) in table {
            assert_eq!(challenge(&headers(&values)), want, "{values:?}");
        }
    }

    #[test]
    fn tokens_are_checked_before_they_become_headers() {
        let t = parse_token(br#"{"token":"abc.def","expires_in":300}"#).unwrap();
        assert_eq!(t.header.to_str().unwrap(), "Bearer abc.def");
        assert!(t.header.is_sensitive());
        assert_eq!(t.lifetime, Duration::from_secs(290));
        let t = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(50));
        let t = parse_token(br#"{"token":"","access_token":"xyz","expires_in":-5}"#).unwrap();
        assert_eq!(
            (t.header.to_str().unwrap(), t.lifetime),
            ("Bearer xyz", Duration::from_secs(1))
        );
        let t = parse_token(br#"{"token":"a","expires_in":99999999}"#).unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(3590));
        for bad in [
            &br#"{"token":"a\nb"}"#[..],
            br#"{"token":"a b"}"#,
            br#"{"token":"caf\u00e9"}"#,
            br#"{"token":"\u0000"}"#,
        ] {
            let e = parse_token(bad).unwrap_err();
            assert_eq!(
                (e.kind, e.detail.as_str()),
                (FailureKind::UnusableAnswer, UNUSABLE_TOKEN)
            );
        }
        for bad in [
            &br#"{}"#[..],
            br#"{"token":""}"#,
            b"<html>",
            br#"{"token":5}"#,
        ] {
            let e = parse_token(bad).unwrap_err();
            assert!(
                e.detail
                    .starts_with("the registry's token service sent an unusable answer"),
                "{}",
                e.detail
            );
        }
    }

    #[test]
    fn basic_credentials_are_encoded_and_sensitive() {
        let h = basic("robot", "s3cr:t p@ss");
        assert_eq!(h.to_str().unwrap(), "Basic cm9ib3Q6czNjcjp0IHBAc3M=");
        assert!(h.is_sensitive());
    }
}
