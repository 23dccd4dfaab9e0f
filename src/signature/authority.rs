//! Authorities: who must have signed. A key, or a keyless identity (certificate
//! subject and OIDC issuer, each exact or a regular expression) under a trust root.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::failure::AuthorityError;
use super::keys::PublicKey;
use super::limits::{MAX_PATTERN_BYTES, MAX_REGEX_COMPILED_BYTES};
use super::trust::TrustRoot;

/// Whether a transparency log entry is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TransparencyLog {
    /// A verified log entry (SET, or inclusion proof and checkpoint) must be present.
    Required,
    /// A log entry that is present must verify; none is fine (keyless still needs a
    /// proof of time: a log entry or an RFC 3161 timestamp).
    #[default]
    Optional,
    /// Log entries are ignored, as with cosign's `--insecure-ignore-tlog`.
    Off,
}

impl fmt::Display for TransparencyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransparencyLog::Required => "Required",
            TransparencyLog::Optional => "Optional",
            TransparencyLog::Off => "Off",
        })
    }
}

/// An exact string or a regular expression. Regular expressions are matched as
/// cosign and policy-controller match them: anywhere in the value, unless the
/// pattern anchors itself with `^...$` (write the anchors).
#[derive(Clone)]
pub enum Matcher {
    Exact(String),
    Regex(regex::Regex),
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s}"),
            Matcher::Regex(r) => write!(f, "regexp {}", r.as_str()),
        }
    }
}

impl Matcher {
    pub fn exact(value: impl Into<String>, what: &'static str) -> Result<Self, AuthorityError> {
        let value = value.into();
        if value.is_empty() {
            return Err(AuthorityError::EmptyPattern(what));
        }
        Ok(Matcher::Exact(value))
    }

    /// Compiles `pattern` (bounded in length and compiled size).
    pub fn regex(pattern: &str, what: &'static str) -> Result<Self, AuthorityError> {
        if pattern.is_empty() {
            return Err(AuthorityError::EmptyPattern(what));
        }
        let err = |reason: String| AuthorityError::Pattern {
            what,
            pattern: pattern.chars().take(200).collect(),
            reason,
        };
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(err(format!("longer than {MAX_PATTERN_BYTES} bytes")));
        }
        regex::RegexBuilder::new(pattern)
            .size_limit(MAX_REGEX_COMPILED_BYTES)
            .build()
            .map(Matcher::Regex)
            .map_err(|e| err(e.to_string()))
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex(r) => r.is_match(value),
        }
    }
}

/// The certificate a keyless signature must carry.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate's subject alternative name (email or URI).
    pub subject: Matcher,
    /// The OIDC issuer Fulcio recorded (extension 1.3.6.1.4.1.57264.1.8, or the
    /// older 1.3.6.1.4.1.57264.1.1).
    pub issuer: Matcher,
}

/// What an authority accepts.
#[derive(Debug, Clone)]
pub enum Signer {
    Key(PublicKey),
    Keyless(Identity),
}

/// One authority of a policy: a name (for messages and results), what signs, the
/// transparency-log requirement and the trust root.
#[derive(Debug, Clone)]
pub struct Authority {
    name: String,
    signer: Signer,
    transparency_log: TransparencyLog,
    trust_root: Option<Arc<TrustRoot>>,
}

impl Authority {
    /// A key authority. `trust_root` holds the Rekor keys (and TSAs) the key's log
    /// entries and timestamps are checked against; without one, material carrying a
    /// log entry fails unless `transparency_log` is `Off`.
    pub fn key(
        name: impl Into<String>,
        key: PublicKey,
        transparency_log: TransparencyLog,
        trust_root: Option<Arc<TrustRoot>>,
    ) -> Result<Self, AuthorityError> {
        let name = name.into();
        if name.is_empty() {
            return Err(AuthorityError::EmptyName);
        }
        Ok(Authority {
            name,
            signer: Signer::Key(key),
            transparency_log,
            trust_root,
        })
    }

    /// A keyless authority; the trust root must name at least one Fulcio CA.
    pub fn keyless(
        name: impl Into<String>,
        identity: Identity,
        transparency_log: TransparencyLog,
        trust_root: Arc<TrustRoot>,
    ) -> Result<Self, AuthorityError> {
        let name = name.into();
        if name.is_empty() {
            return Err(AuthorityError::EmptyName);
        }
        if !trust_root.has_fulcio() {
            return Err(AuthorityError::KeylessWithoutTrustRoot(name));
        }
        Ok(Authority {
            name,
            signer: Signer::Keyless(identity),
            transparency_log,
            trust_root: Some(trust_root),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn transparency_log(&self) -> TransparencyLog {
        self.transparency_log
    }

    pub fn trust_root(&self) -> Option<&Arc<TrustRoot>> {
        self.trust_root.as_ref()
    }

    /// "key sha256:..." or "keyless subject X issued by Y", for messages.
    pub fn describe(&self) -> String {
        match &self.signer {
            Signer::Key(key) => format!("{} key {}", key.algorithm_name(), key.fingerprint()),
            Signer::Keyless(id) => format!("keyless {} from {}", id.subject, id.issuer),
        }
    }
}
