//! Registry credentials for image pulls, matched the way the kubelet matches them.
//!
//! Mirrors Kubernetes `pkg/credentialprovider`: `config.go` (`DockerConfigJSON`,
//! `DockerConfigEntry` and its `auth` decoding) and `keyring.go` (`BasicDockerKeyring`,
//! `ParseSchemelessURL`, `URLsMatch`, `isDefaultRegistryMatch`).
//! [`parse_docker_config`] reads a `.dockerconfigjson` or legacy `.dockercfg`; a [`Keyring`]
//! holds the entries of several sources and [`Keyring::lookup`] returns every
//! [`Credential`] whose key matches an image.
//!
//! Keys are read like the kubelet does: a leading `https://` or `http://` is dropped and
//! the rest is parsed like Go's `url.Parse`, so `?` starts a query and `#` a fragment (both
//! dropped), and a key Go rejects (non-numeric port, space or other bad character in the
//! host) never matches. A leading `/v1/` or `/v2/` of the path is dropped. A key matches
//! an image when the ports are equal (no port only matches no port), the hosts have the
//! same number of dot-separated labels, each label matches as a Go `filepath.Match` glob
//! (`*`, `?`, `[...]`), and the key's path is a *string* prefix of `/` + repository. That
//! is the kubelet's `strings.HasPrefix`: key `harbor.example.com/team` matches `team/app`
//! and also `teamx/app`.
//!
//! Deliberate differences from the kubelet: hosts compare case-insensitively;
//! `index.docker.io`, `docker.io` and `registry-1.docker.io` (any scheme, `/v1/` or not)
//! all match Docker Hub images (registry `docker.io`) directly, where the kubelet matches
//! `docker.io` directly and uses `index.docker.io` only as a fallback; sources keep the
//! order they were added in (only keys within a source are sorted).
//!
//! No password is ever printed: [`Credential`] and [`DockerConfigEntry`] redact it in
//! `Debug`, and [`CredentialError`] names the key, never a value.

use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

/// Why a docker config could not be parsed. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The input is not valid JSON.
    #[error("docker config is not valid JSON (line {line}, column {column})")]
    InvalidJson {
        /// Line of the syntax error (1-based).
        line: usize,
        /// Column of the syntax error (1-based).
        column: usize,
    },
    /// The JSON does not have the shape of a docker config.
    #[error("docker config is malformed: {0}")]
    Malformed(&'static str),
    /// An entry is not an object, or one of its fields is not a string.
    #[error("docker config entry {key:?} is malformed: {reason}")]
    InvalidEntry {
        /// The auths key as written.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The entry's `auth` field is not base64 of `username:password`.
    #[error("docker config entry {key:?} has an invalid `auth` field: {reason}")]
    InvalidAuth {
        /// The auths key as written.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A parsed docker config: one [`DockerConfigEntry`] per auths key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    entries: Vec<DockerConfigEntry>,
}

impl DockerConfig {
    /// The entries, ordered by key as written.
    pub fn entries(&self) -> &[DockerConfigEntry] {
        &self.entries
    }
}

/// One auths entry, with `auth` already decoded into username and password.
#[derive(Clone, PartialEq, Eq)]
pub struct DockerConfigEntry {
    /// The auths key as written, e.g. `https://index.docker.io/v1/`.
    pub key: String,
    /// Username; empty for an entry without credentials (the kubelet still uses it).
    pub username: String,
    /// Password or token. Redacted in `Debug`.
    pub password: String,
}

/// A credential that matched an image, with where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Username.
    pub username: String,
    /// Password or token. Redacted in `Debug`, absent from [`Credential::describe`].
    pub password: String,
    /// Label of the source, e.g. `pod imagePullSecret "team/regcred"`.
    pub source: String,
    /// The auths key that matched, as written.
    pub key: String,
}

impl Credential {
    /// Whether this is an empty entry (`{"https://index.docker.io/v1/":{}}`, which
    /// `kubectl create secret --from-file` often writes): no user and no password.
    /// containerd pulls anonymously with it, and so does imagegate: it is never sent
    /// as empty Basic credentials.
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty() && self.password.is_empty()
    }

    /// A message-safe description, e.g. `user "robot$ci" from pod imagePullSecret
    /// "team/regcred" (auths key "https://harbor.example.com")`, or for an empty entry
    /// `the empty entry in pod imagePullSecret "team/regcred" (auths key ...)`.
    pub fn describe(&self) -> String {
        let (user, key) = (&self.username, &self.key);
        if self.is_anonymous() {
            return format!("the empty entry in {} (auths key {key:?})", self.source);
        }
        format!("user {user:?} from {} (auths key {key:?})", self.source)
    }
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for DockerConfigEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfigEntry")
            .field("key", &self.key)
            .field("username", &self.username)
            .field("password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("source", &self.source)
            .field("key", &self.key)
            .finish()
    }
}

/// Top-level keys of a docker CLI `config.json`: without `auths` they mean "no
/// credentials", not a legacy `.dockercfg`.
const DOCKER_CLI_KEYS: &str = "credsStore credHelpers HttpHeaders proxies psFormat \
    imagesFormat detachKeys currentContext plugins aliases features experimental";

/// Entry fields (Go's `DockerConfigEntry`) and the error for a non-string value.
const FIELDS: [(&str, &str); 4] = [
    ("username", "`username` is not a string"),
    ("password", "`password` is not a string"),
    ("auth", "`auth` is not a string"),
    ("email", "`email` is not a string"),
];

/// Parses a `.dockerconfigjson` / docker CLI `config.json` (`{"auths": {KEY: ENTRY}}`) or
/// a legacy `.dockercfg` (`{KEY: ENTRY}`).
///
/// ENTRY fields `username`, `password`, `auth` and `email` are read (names are
/// case-insensitive, like Go's `encoding/json`); other fields are ignored. A non-empty
/// `auth` is base64 of `username:password`, split at the first `:`, and wins over
/// `username`/`password`. `email` is ignored.
pub fn parse_docker_config(bytes: &[u8]) -> Result<DockerConfig, CredentialError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        CredentialError::InvalidJson { line, column }
    })?;
    let Value::Object(top) = value else {
        return Err(CredentialError::Malformed("top level is not a JSON object"));
    };
    let cli_config = DOCKER_CLI_KEYS
        .split_whitespace()
        .any(|k| top.contains_key(k));
    let auths = match field(&top, "auths") {
        Some(Value::Object(auths)) => auths,
        Some(Value::Null) => return Ok(DockerConfig::default()),
        Some(_) => return Err(CredentialError::Malformed("`auths` is not a JSON object")),
        None if cli_config => return Ok(DockerConfig::default()),
        None => &top,
    };
    let entries = auths.iter().map(|(key, value)| parse_entry(key, value));
    Ok(DockerConfig {
        entries: entries.collect::<Result<_, _>>()?,
    })
}

/// Go's `encoding/json` field lookup: case-insensitive, the last match wins.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let mut fields = object.iter().rev();
    fields
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn parse_entry(key: &str, value: &Value) -> Result<DockerConfigEntry, CredentialError> {
    let key = key.to_owned();
    let mut values = [""; 4];
    match value {
        Value::Null => {} // Go decodes `null` into an empty entry.
        Value::Object(object) => {
            for (slot, (name, reason)) in values.iter_mut().zip(FIELDS) {
                match field(object, name) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => *slot = s,
                    Some(_) => return Err(CredentialError::InvalidEntry { key, reason }),
                }
            }
        }
        _ => {
            let reason = "entry is not a JSON object";
            return Err(CredentialError::InvalidEntry { key, reason });
        }
    }
    let [username, password, auth, _email] = values;
    let (username, password) = match auth {
        "" => (username.to_owned(), password.to_owned()),
        auth => match decode_auth(auth) {
            Ok(pair) => pair,
            Err(reason) => return Err(CredentialError::InvalidAuth { key, reason }),
        },
    };
    Ok(DockerConfigEntry {
        key,
        username,
        password,
    })
}

/// The kubelet's `decodeDockerConfigFieldAuth`. Errors never include the value.
fn decode_auth(auth: &str) -> Result<(String, String), &'static str> {
    // Go's StdEncoding (padded) or RawStdEncoding: skip CR/LF, ignore trailing bits.
    let padding = match auth.trim().ends_with('=') {
        true => DecodePaddingMode::RequireCanonical,
        false => DecodePaddingMode::RequireNone,
    };
    let config = GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true);
    let engine = GeneralPurpose::new(&STANDARD, config.with_decode_padding_mode(padding));
    let cleaned: String = auth.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let decoded = engine.decode(cleaned).map_err(|_| "not valid base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "decoded value is not UTF-8")?;
    let (username, password) =
        (decoded.split_once(':')).ok_or("decoded value is not of the form username:password")?;
    Ok((username.to_owned(), password.to_owned()))
}

/// A key as the kubelet's `Add` stores it: normalized host\[:port\] and effective path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedKey {
    host: String,
    path: String,
}

/// Parses an auths key; `None` where Go's `url.Parse` fails (the kubelet ignores those).
fn parse_key(key: &str) -> Option<ParsedKey> {
    if key.chars().any(|c| c.is_ascii_control()) {
        return None;
    }
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"));
    let rest = rest
        .unwrap_or(key)
        .split(['#', '?'])
        .next()
        .unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let port = match host.strip_prefix('[') {
        Some(ipv6) => &ipv6[ipv6.find(']')? + 1..],
        None => host.rfind(':').map_or("", |i| &host[i..]),
    };
    let port_ok = (port.strip_prefix(':')).is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let host_char_ok = |c: char| {
        !c.is_ascii() || c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:[]<>\"".contains(c)
    };
    if !(port.is_empty() || port.starts_with(':')) || !port_ok || !host.chars().all(host_char_ok) {
        return None;
    }
    let path = match path.get(..4) {
        Some("/v1/" | "/v2/") => &path[3..],
        _ => path,
    };
    let path = if path == "/" { "" } else { path };
    Some(ParsedKey {
        host: normalize_host(host),
        path: path.to_owned(),
    })
}

/// Lowercases a host\[:port\] and maps Docker Hub aliases to `docker.io`.
fn normalize_host(host: &str) -> String {
    let host = host.to_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

/// Go's `net.SplitHostPort`, falling back to (whole, "") like the kubelet's `SplitURL`.
fn split_host_port(s: &str) -> (&str, &str) {
    let split = match s.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .and_then(|(h, p)| Some((h, p.strip_prefix(':')?))),
        None => s.split_once(':'),
    };
    split
        .filter(|(_, port)| !port.contains(':'))
        .unwrap_or((s, ""))
}

enum Tok {
    Star,
    Any,
    Lit(char),
    Class(bool, Vec<(char, char)>),
}

/// Compiles a Go `filepath.Match` pattern; `None` for a bad pattern (which never matches).
fn compile_glob(pattern: &str) -> Option<Vec<Tok>> {
    fn class_char(chars: &mut Peekable<Chars<'_>>) -> Option<char> {
        match chars.next()? {
            '-' | ']' => None,
            '\\' => chars.next(),
            c => Some(c),
        }
    }
    let mut chars = pattern.chars().peekable();
    let mut toks = Vec::new();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '*' => Tok::Star,
            '?' => Tok::Any,
            '\\' => Tok::Lit(chars.next()?),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                while ranges.is_empty() || chars.next_if_eq(&']').is_none() {
                    let lo = class_char(&mut chars)?;
                    let hi = match chars.next_if_eq(&'-') {
                        Some(_) => class_char(&mut chars)?,
                        None => lo,
                    };
                    ranges.push((lo, hi));
                }
                Tok::Class(negated, ranges)
            }
            c => Tok::Lit(c),
        });
    }
    Some(toks)
}

/// Go's `filepath.Match` for one host label (labels contain no `/`), in linear-ish time.
fn glob_match(pattern: &str, name: &str) -> bool {
    let Some(toks) = compile_glob(pattern) else {
        return false;
    };
    let name: Vec<char> = name.chars().collect();
    let (mut t, mut n, mut star) = (0, 0, None);
    loop {
        let ok = match (toks.get(t), name.get(n)) {
            (Some(Tok::Star), _) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            (None, None) => return true,
            (Some(Tok::Any), Some(_)) => true,
            (Some(Tok::Lit(l)), Some(c)) => l == c,
            (Some(Tok::Class(negated, ranges)), Some(c)) => {
                ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
            }
            _ => false,
        };
        match star {
            _ if ok => (t, n) = (t + 1, n + 1),
            Some((st, sn)) if sn < name.len() => {
                (star, t, n) = (Some((st, sn + 1)), st + 1, sn + 1)
            }
            _ => return false,
        }
    }
}

impl ParsedKey {
    /// The kubelet's `URLsMatch` against a normalized registry split into parts.
    fn matches(&self, port: &str, labels: &[&str], path: &str) -> bool {
        let (host, key_port) = split_host_port(&self.host);
        let key_labels: Vec<&str> = host.split('.').collect();
        key_port == port
            && key_labels.len() == labels.len()
            && path.starts_with(&self.path)
            && key_labels.iter().zip(labels).all(|(p, l)| glob_match(p, l))
    }
}

/// An image's registry and repository, split the way [`ParsedKey::matches`] reads them.
struct Target {
    registry: String,
    path: String,
}

impl Target {
    fn new(registry: &str, repository: &str) -> Target {
        Target {
            registry: normalize_host(registry),
            path: format!("/{}", repository.trim_start_matches('/')),
        }
    }

    fn matched_by(&self, key: &ParsedKey) -> bool {
        let (host, port) = split_host_port(&self.registry);
        let labels: Vec<&str> = host.split('.').collect();
        key.matches(port, &labels, &self.path)
    }
}

/// A registry pattern written like an `auths` key or a kubelet credential
/// provider's `matchImages` entry, and matched exactly like an auths key: host
/// labels may be globs (`*.dkr.ecr.*.amazonaws.com`), a port must be equal, and an
/// optional path is a prefix of the repository (`harbor.example.com/team`). Used for
/// the registries the nodes pull with credentials imagegate cannot see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryPattern {
    source: String,
    key: ParsedKey,
}

impl RegistryPattern {
    /// `None` for a pattern the kubelet would ignore (a bad port, a space in the
    /// host, a control character).
    pub fn parse(pattern: &str) -> Option<RegistryPattern> {
        let trimmed = pattern.trim();
        if trimmed.is_empty() {
            return None;
        }
        Some(RegistryPattern {
            source: pattern.to_string(),
            key: parse_key(trimmed).filter(|k| !k.host.is_empty())?,
        })
    }

    /// Whether an image of `registry` (normalized host\[:port\]) and `repository`
    /// matches.
    pub fn matches(&self, registry: &str, repository: &str) -> bool {
        Target::new(registry, repository).matched_by(&self.key)
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[derive(Debug, Clone)]
struct Source {
    label: String,
    /// Most specific key first; `None` keys never match.
    entries: Vec<(Option<ParsedKey>, DockerConfigEntry)>,
}

/// Credentials from several sources, in order of precedence. `Debug` redacts passwords.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    sources: Vec<Source>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `config` as a source of lower precedence than those already added; `source`
    /// labels it in messages, e.g. `pod imagePullSecret "team/regcred"`. Within a source,
    /// keys are ordered like the kubelet's: reverse lexical order of the normalized key, so
    /// `harbor.example.com/team` comes before `harbor.example.com`.
    pub fn add(&mut self, config: &DockerConfig, source: impl Into<String>) {
        let entries = config
            .entries
            .iter()
            .map(|e| (parse_key(&e.key), e.clone()));
        let mut entries: Vec<_> = entries.collect();
        let sort_key = |k: &Option<ParsedKey>| k.as_ref().map(|k| k.host.clone() + &k.path);
        entries.sort_by_key(|(key, _)| std::cmp::Reverse(sort_key(key)));
        self.sources.push(Source {
            label: source.into(),
            entries,
        });
    }

    /// Every credential whose key matches the image, best first: sources in the order they
    /// were added, most specific key first within a source; a repeated username+password
    /// pair is dropped. `registry` is the normalized host\[:port\] (`docker.io`,
    /// `harbor.example.com:8443`), `repository` the path (`library/nginx`).
    pub fn lookup(&self, registry: &str, repository: &str) -> Vec<Credential> {
        let target = Target::new(registry, repository);
        let mut found: Vec<Credential> = Vec::new();
        for source in &self.sources {
            for (key, entry) in &source.entries {
                let matched = key.as_ref().is_some_and(|k| target.matched_by(k));
                let same = |c: &Credential| {
                    (&c.username, &c.password) == (&entry.username, &entry.password)
                };
                if matched && !found.iter().any(same) {
                    found.push(Credential {
                        username: entry.username.clone(),
                        password: entry.password.clone(),
                        source: source.label.clone(),
                        key: entry.key.clone(),
                    });
                }
            }
        }
        found
    }

    /// Every (source, auths key as written) in precedence order, for messages such as
    /// "no auths key matched; keys tried: ...". Includes keys that can never match.
    pub fn keys(&self) -> Vec<(String, String)> {
        let mut keys = Vec::new();
        for s in &self.sources {
            keys.extend(
                s.entries
                    .iter()
                    .map(|(_, e)| (s.label.clone(), e.key.clone())),
            );
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD as B64_RAW};

    type Triple<'a> = (&'a str, &'a str, &'a str);
    const POD: &str = r#"pod imagePullSecret "team/regcred""#;
    const NODE: &str = "docker config /root/.docker/config.json";

    fn config(entries: &[Triple<'_>]) -> DockerConfig {
        let entry = |&(key, user, pass): &Triple<'_>| DockerConfigEntry {
            key: key.into(),
            username: user.into(),
            password: pass.into(),
        };
        DockerConfig {
            entries: entries.iter().map(entry).collect(),
        }
    }

    fn parse(json: &str) -> Result<Vec<(String, String, String)>, CredentialError> {
        let entries = parse_docker_config(json.as_bytes())?.entries;
        Ok(entries
            .into_iter()
            .map(|e| (e.key, e.username, e.password))
            .collect())
    }

    fn auths(key: &str, entry: &str) -> String {
        format!(r#"{{"auths":{{"{key}":{entry}}}}}"#)
    }

    #[test]
    fn parses_configs() {
        let alice = B64.encode("alice:s3cret");
        let alice = format!(r#"{{"username":"u","password":"p","auth":"{alice}"}}"#);
        #[rustfmt::skip]
        let cases: [(&str, String, &[Triple<'_>]); 11] = [
            ("dockerconfigjson", auths("r.io", r#"{"username":"u","password":"p"}"#), &[("r.io", "u", "p")]),
            ("legacy dockercfg", r#"{"https://index.docker.io/v1/":{"username":"u","password":"p","email":"e@x"}}"#.into(), &[("https://index.docker.io/v1/", "u", "p")]),
            ("auth wins", auths("r.io", &alice), &[("r.io", "alice", "s3cret")]),
            ("auth with newline", auths("r.io", r#"{"auth":"YTpi\nYw=="}"#), &[("r.io", "a", "bc")]),
            ("empty auth ignored", auths("r.io", r#"{"username":"u","password":"p","auth":""}"#), &[("r.io", "u", "p")]),
            ("unknown fields", auths("r.io", r#"{"auth":"YTpi","identitytoken":"t","x":{}}"#), &[("r.io", "a", "b")]),
            ("field names ignore case", r#"{"Auths":{"r.io":{"Username":"u","PASSWORD":"p"}}}"#.into(), &[("r.io", "u", "p")]),
            ("null entry", auths("r.io", "null"), &[("r.io", "", "")]),
            ("null auths", r#"{"auths":null}"#.into(), &[]),
            ("config.json without auths", r#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#.into(), &[]),
            ("empty object", "{}".into(), &[]),
        ];
        for (name, json, want) in cases {
            let got = parse(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
            let want: Vec<_> = want
                .iter()
                .map(|(k, u, p)| (k.to_string(), u.to_string(), p.to_string()))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn auth_splits_at_first_colon() {
        for password in [
            "pa:ss:word",
            "p@ss",
            "100%",
            "pässwörd🔑",
            " with spaces ",
            ":",
            "",
        ] {
            let plain = format!("robot$ci:{password}");
            for auth in [B64.encode(&plain), B64_RAW.encode(&plain)] {
                let got = parse(&auths("r.io", &format!(r#"{{"auth":"{auth}"}}"#))).unwrap();
                let want = (
                    "r.io".to_owned(),
                    "robot$ci".to_owned(),
                    password.to_owned(),
                );
                assert_eq!(got, [want], "{password:?}");
            }
        }
    }

    #[test]
    fn errors_name_key_never_secret() {
        let auth = |a: &str| auths("r.io", &format!(r#"{{"auth":"{a}"}}"#));
        let (no_colon, not_utf8) = (B64.encode("hunter2hunter2"), B64.encode(b"u:hunter2\xff"));
        let key = || "r.io".to_owned();
        let bad_auth = |reason| CredentialError::InvalidAuth { key: key(), reason };
        let bad_entry = |reason| CredentialError::InvalidEntry { key: key(), reason };
        #[rustfmt::skip]
        let cases = [
            ("bad base64", auth("hunter2!!"), bad_auth("not valid base64")),
            ("bad padding", auth("aHVudGVyMg="), bad_auth("not valid base64")),
            ("no colon", auth(&no_colon), bad_auth("decoded value is not of the form username:password")),
            ("not utf-8", auth(&not_utf8), bad_auth("decoded value is not UTF-8")),
            ("password not string", auths("r.io", r#"{"password":12345678}"#), bad_entry("`password` is not a string")),
            ("entry not object", auths("r.io", r#""hunter2""#), bad_entry("entry is not a JSON object")),
            ("legacy entry not object", r#"{"r.io":["hunter2"]}"#.into(), bad_entry("entry is not a JSON object")),
            ("auths not object", r#"{"auths":["hunter2"]}"#.into(), CredentialError::Malformed("`auths` is not a JSON object")),
            ("top level array", r#"["hunter2"]"#.into(), CredentialError::Malformed("top level is not a JSON object")),
            ("truncated", r#"{"auths":{"r.io":{"password":"hunter2"#.into(), CredentialError::InvalidJson { line: 1, column: 37 }),
        ];
        for (name, json, want) in cases {
            let err = parse(&json).expect_err(name);
            assert_eq!(err, want, "{name}");
            let msg = format!("{err} {err:?}");
            for secret in ["hunter2", "12345678", &no_colon, &not_utf8, "aHVudGVy"] {
                assert!(!msg.contains(secret), "{name}: {msg}");
            }
        }
    }

    #[test]
    fn parses_keys_like_go_url_parse() {
        #[rustfmt::skip]
        let cases = [
            ("https://harbor.example.com/v2/team/", Some(("harbor.example.com", "/team/"))),
            ("HARBOR.Example.com/Team", Some(("harbor.example.com", "/Team"))),
            ("user@harbor.example.com", Some(("harbor.example.com", ""))),
            ("harbor-?.example.com", Some(("harbor-", ""))), ("harbor.example.com#x", Some(("harbor.example.com", ""))),
            ("localhost:", Some(("localhost:", ""))), ("[::1]:5000", Some(("[::1]:5000", ""))),
            ("localhost:abc", None), ("harbor example.com", None), ("[::1", None), ("harbor.example.com\n", None),
        ];
        for (key, want) in cases {
            let got = parse_key(key);
            assert_eq!(got.as_ref().map(|k| (&*k.host, &*k.path)), want, "{key}");
        }
    }

    #[test]
    fn globs_like_filepath_match() {
        #[rustfmt::skip]
        let cases = [
            ("*", "harbor", true), ("*", "", true), ("harbor-*", "harbor-eu", true),
            ("harbor-*", "registry", false), ("*-eu", "harbor-eu", true), ("h*r*r", "harbor", true),
            ("h*r*x", "harbor", false), ("h?rbor", "harbor", true), ("h?rbor", "hrbor", false),
            ("harbor-[ab]", "harbor-a", true), ("harbor-[a-c]", "harbor-d", false),
            ("harbor-[^a-c]", "harbor-d", true), ("[", "[", false), ("[]", "]", false), ("a\\", "a", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn matches_like_kubelet() {
        // (auths key, image registry/repository, matches)
        #[rustfmt::skip]
        let cases = [
            ("https://harbor.example.com", "harbor.example.com/team/app", true),
            ("http://harbor.example.com/", "harbor.example.com/team/app", true),
            ("harbor.example.com", "harbor.example.com/team/app", true),
            ("https://index.docker.io/v1/", "docker.io/library/nginx", true),
            ("index.docker.io", "docker.io/library/nginx", true),
            ("docker.io", "docker.io/library/nginx", true),
            ("registry-1.docker.io", "docker.io/library/nginx", true),
            ("docker.io/library", "docker.io/library/nginx", true),
            ("docker.io/myorg", "docker.io/library/nginx", false),
            ("https://index.docker.io/v1/", "quay.io/library/nginx", false),
            ("*.example.com", "harbor.example.com/app", true),
            ("*.example.com", "example.com/app", false),
            ("*.example.com", "a.b.example.com/app", false),
            ("*.*.example.com", "a.b.example.com/app", true),
            ("harbor-*.example.com", "harbor-eu.example.com/app", true),
            ("harbor-*.example.com", "registry.example.com/app", false),
            ("harbor-[ab].example.com", "harbor-a.example.com/app", true),
            ("harbor-?.example.com", "harbor-a.example.com/app", false), // Go: `?` starts a query
            ("*.example.com", "harbor.example.com.evil.com/app", false),
            ("harbor.example.com", "harbor.example.com.evil.com/app", false),
            ("harbor.example.com", "evil.com/harbor.example.com/app", false),
            ("harbor.example.com", "evilharbor.example.com/app", false),
            ("localhost:5000", "localhost:5000/app", true), ("localhost:5000", "localhost:5001/app", false),
            ("localhost", "localhost:5000/app", false), ("localhost:5000", "localhost/app", false),
            ("harbor.example.com:443", "harbor.example.com/app", false),
            ("https://harbor.example.com:8443/team", "harbor.example.com:8443/team/app", true),
            ("localhost:abc", "localhost/app", false), // Go rejects the key
            ("harbor.example.com/team", "harbor.example.com/team/app", true),
            ("harbor.example.com/team", "harbor.example.com/other/app", false),
            ("harbor.example.com/team", "harbor.example.com/teamx/app", true), // kubelet HasPrefix
            ("harbor.example.com/team/", "harbor.example.com/teamx/app", false),
            ("HARBOR.Example.COM", "harbor.example.com/app", true),
            ("*.example.com", "Harbor.EXAMPLE.com/app", true),
        ];
        for (key, image, want) in cases {
            let (registry, repository) = image.split_once('/').unwrap();
            let mut keyring = Keyring::new();
            keyring.add(&config(&[(key, "u", "p")]), "test");
            let got = !keyring.lookup(registry, repository).is_empty();
            assert_eq!(got, want, "key {key:?} vs {image}");
        }
    }

    #[test]
    fn lookup_precedence_and_dedup() {
        let mut keyring = Keyring::new();
        #[rustfmt::skip]
        keyring.add(&config(&[
            ("harbor.example.com", "team-wide", "p1"), ("https://harbor.example.com/team", "team-robot", "p2"),
            ("*.example.com", "wildcard", "p3"), ("quay.io", "quay", "p4"),
        ]), POD);
        #[rustfmt::skip]
        keyring.add(&config(&[
            ("https://harbor.example.com", "team-robot", "p2"), ("https://index.docker.io/v1/", "hub", "p5"),
            ("harbor.example.com", "node", "p6"), ("harbor.example.com", "team-wide", "other"),
        ]), NODE);
        #[rustfmt::skip]
        let cases: [(&str, &[&str]); 5] = [
            ("harbor.example.com/team/app", &["team-robot", "team-wide", "wildcard", "node", "team-wide"]),
            ("harbor.example.com/other/app", &["team-wide", "wildcard", "team-robot", "node", "team-wide"]),
            ("docker.io/library/nginx", &["hub"]),
            ("quay.io/org/app", &["quay"]),
            ("ghcr.io/org/app", &[]),
        ];
        for (image, want) in cases {
            let (registry, repository) = image.split_once('/').unwrap();
            let got = keyring.lookup(registry, repository);
            assert_eq!(
                got.iter().map(|c| &*c.username).collect::<Vec<_>>(),
                want,
                "{image}"
            );
        }
        let third = &keyring.lookup("harbor.example.com", "other/app")[2];
        assert_eq!(
            (&*third.source, &*third.key),
            (NODE, "https://harbor.example.com")
        );
        let keys = keyring.keys();
        #[rustfmt::skip]
        assert_eq!(keys.iter().map(|(s, k)| (&**s, &**k)).collect::<Vec<_>>(), [
            (POD, "quay.io"), (POD, "https://harbor.example.com/team"), (POD, "harbor.example.com"),
            (POD, "*.example.com"), (NODE, "https://harbor.example.com"), (NODE, "harbor.example.com"),
            (NODE, "harbor.example.com"), (NODE, "https://index.docker.io/v1/"),
        ]);
    }

    #[test]
    fn registry_patterns_match_like_auths_keys() {
        // (pattern, image registry/repository, matches)
        #[rustfmt::skip]
        let cases = [
            ("*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app", true),
            ("*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com/app", false),
            ("*.dkr.ecr.*.amazonaws.com", "dkr.ecr.eu-west-1.amazonaws.com/app", false),
            ("harbor.example.com", "harbor.example.com/team/app", true),
            ("harbor.example.com", "harbor.example.com:8443/team/app", false),
            ("harbor.example.com/team", "harbor.example.com/team/app", true),
            ("harbor.example.com/team", "harbor.example.com/other/app", false),
            ("*-docker.pkg.dev", "europe-docker.pkg.dev/p/r/app", true),
            ("docker.io", "docker.io/library/nginx", true),
            ("index.docker.io", "docker.io/library/nginx", true),
        ];
        for (pattern, image, want) in cases {
            let (registry, repository) = image.split_once('/').unwrap();
            let p = RegistryPattern::parse(pattern).unwrap();
            assert_eq!(
                p.matches(registry, repository),
                want,
                "{pattern} vs {image}"
            );
            assert_eq!(p.source(), pattern);
        }
        for bad in ["", "  ", "localhost:abc", "harbor example.com", "https://"] {
            assert!(RegistryPattern::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_entry_is_anonymous() {
        let config =
            parse_docker_config(br#"{"auths":{"https://index.docker.io/v1/":{}}}"#).unwrap();
        let mut keyring = Keyring::new();
        keyring.add(&config, POD);
        let found = keyring.lookup("docker.io", "library/nginx");
        assert_eq!(found.len(), 1);
        assert!(found[0].is_anonymous());
        assert_eq!(
            found[0].describe(),
            r#"the empty entry in pod imagePullSecret "team/regcred" (auths key "https://index.docker.io/v1/")"#
        );
        let user = config_entry("u", "");
        assert!(!user.is_anonymous());
        assert!(!config_entry("", "token").is_anonymous());
    }

    fn config_entry(username: &str, password: &str) -> Credential {
        Credential {
            username: username.into(),
            password: password.into(),
            source: POD.into(),
            key: "r.io".into(),
        }
    }

    #[test]
    fn never_prints_password() {
        let mut keyring = Keyring::new();
        keyring.add(
            &config(&[("https://harbor.example.com", "robot$ci", "hunter2")]),
            POD,
        );
        let cred = keyring.lookup("harbor.example.com", "team/app").remove(0);
        assert_eq!(cred.password, "hunter2");
        let want = r#"user "robot$ci" from pod imagePullSecret "team/regcred" (auths key "https://harbor.example.com")"#;
        assert_eq!(cred.describe(), want);
        let config = parse_docker_config(auths("r.io", r#"{"password":"hunter2"}"#).as_bytes());
        let config = config.unwrap();
        let outputs = [
            format!("{cred:?}"),
            format!("{cred:#?}"),
            format!("{keyring:?}"),
            format!("{config:?}"),
        ];
        for out in outputs {
            let redacted = out.contains(r#"password: "<redacted>""#);
            assert!(!out.contains("hunter2") && redacted, "{out}");
        }
    }
}
