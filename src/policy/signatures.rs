//! Signature and attestation rules, compiled: keys and trust roots are read and
//! the authorities built once, at load, so that a bad key or trust root is an error
//! with file, line and field (and the last good policy set stays in force).
//!
//! The engine reads only the plain parts ([`SignaturePolicy::authorities`],
//! [`SignaturePolicy::threshold`], [`AttestationCheck`]); the compiled
//! [`signature::Authority`] values sit behind [`Verifier`], which only the
//! inspector uses. Key and trust-root files are read when the policy files are
//! (re)loaded: a change to a key file alone takes effect with the next change of a
//! policy file or a restart.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_saphyr::Spanned;

use super::PolicyError;
use super::spec::{self, TransparencyLogSpec};
use crate::signature::{self, Authority, Identity, Matcher, TransparencyLog, TrustRoot};

/// A policy's signature and attestation rules.
#[derive(Debug, Clone)]
pub struct SignaturePolicy {
    /// Whether `threshold` authorities must have verified a signature.
    pub required: bool,
    pub threshold: usize,
    /// The authorities, in the order written.
    pub authorities: Vec<AuthorityInfo>,
    pub attestations: Vec<AttestationCheck>,
    /// The compiled authorities, for the inspector.
    pub verifier: Arc<Verifier>,
}

/// What the engine knows of an authority: its name and what it accepts.
#[derive(Debug, Clone)]
pub struct AuthorityInfo {
    pub name: String,
    /// "ECDSA P-256 key sha256:...", "keyless regexp ^https://... from https://...".
    pub description: String,
}

/// One attestation rule, compiled.
#[derive(Debug, Clone)]
pub struct AttestationCheck {
    pub name: String,
    pub predicate_type: String,
    pub authority: String,
    pub minimum_severity: Option<Severity>,
    /// With the text as written (`168h`), for messages.
    pub max_age: Option<(Duration, String)>,
    pub builder_id: Option<Regex>,
    pub source_repository: Option<Regex>,
}

/// Vulnerability severities, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// `LOW`, `MEDIUM`, `HIGH`, `CRITICAL` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LOW" => Some(Severity::Low),
            "MEDIUM" | "MODERATE" => Some(Severity::Medium),
            "HIGH" => Some(Severity::High),
            "CRITICAL" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// The compiled authorities of one policy and an id of the set: two policies (or
/// two loads) with the same authorities share the id, and with it the inspector's
/// cached results.
pub struct Verifier {
    pub id: u64,
    /// Authorities grouped by the repositories their legacy signatures may name
    /// besides the image's own (`allowedRepositories`): one verification per group.
    pub groups: Vec<(signature::Options, Vec<Authority>)>,
}

/// Two verifiers are the same when their authorities are.
impl PartialEq for Verifier {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Verifier {}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({:016x})", self.id)
    }
}

/// Compiles `spec.signatures` and `spec.attestations`; errors go to `errors`.
pub(super) fn compile(
    file: &Path,
    signatures: Option<&spec::SignatureRules>,
    attestations: &[spec::AttestationRule],
    errors: &mut Vec<PolicyError>,
) -> Option<SignaturePolicy> {
    let mut c = Compiler {
        file,
        errors,
        hash: std::collections::hash_map::DefaultHasher::new(),
    };
    let rules = match signatures {
        Some(rules) => rules,
        None => {
            if let Some(first) = attestations.first() {
                c.error(
                    &first.authority,
                    "spec.attestations[0].authority",
                    "attestations name an authority of `signatures.authorities`, and this policy has no `signatures` block: add one with the authority that signs the attestations (`signatures: {required: false, authorities: [...]}` checks only the attestations)",
                );
            }
            return None;
        }
    };
    let before = c.errors.len();
    let mut authorities = Vec::new();
    let mut infos = Vec::new();
    let mut groups: BTreeMap<Vec<String>, Vec<Authority>> = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, a) in rules.authorities.iter().enumerate() {
        let field = format!("spec.signatures.authorities[{i}]");
        if seen.contains(&a.name.value.as_str()) {
            c.error(
                &a.name,
                &format!("{field}.name"),
                format!("duplicate authority name `{}`", a.name.value),
            );
            continue;
        }
        seen.push(&a.name.value);
        if !super::compile::is_dns_label(&a.name.value) {
            c.error(
                &a.name,
                &format!("{field}.name"),
                format!(
                    "`{}` is not a valid authority name: use lowercase letters, digits and `-`",
                    a.name.value
                ),
            );
            continue;
        }
        if let Some((authority, mirrors)) = c.authority(a, &field) {
            infos.push(AuthorityInfo {
                name: a.name.value.clone(),
                description: authority.describe(),
            });
            groups.entry(mirrors).or_default().push(authority.clone());
            authorities.push(authority);
        }
    }
    if rules.authorities.is_empty() {
        c.errors.push(PolicyError {
            file: file.to_path_buf(),
            line: None,
            field: "spec.signatures.authorities".into(),
            message: "the signatures block names no authority, and an empty list of authorities never passes: add at least one, with `key: {path: ...}` or `keyless: {issuer: ..., subject: ...}` and a `trustRoot`".into(),
        });
    }
    let threshold = match &rules.threshold {
        None => 1,
        Some(t) => {
            let n = rules.authorities.len() as i64;
            if t.value < 1 || t.value > n.max(1) {
                let msg = format!(
                    "threshold {} is not between 1 and the number of authorities ({n})",
                    t.value
                );
                c.error_line(t.referenced.line(), "spec.signatures.threshold", msg);
                1
            } else {
                t.value as usize
            }
        }
    };
    let mut checks = Vec::new();
    for (i, a) in attestations.iter().enumerate() {
        let field = format!("spec.attestations[{i}]");
        if checks
            .iter()
            .any(|x: &AttestationCheck| x.name == a.name.value)
        {
            c.error(
                &a.name,
                &format!("{field}.name"),
                format!("duplicate attestation name `{}`", a.name.value),
            );
        }
        if !rules
            .authorities
            .iter()
            .any(|x| x.name.value == a.authority.value)
        {
            let names: Vec<&str> = rules
                .authorities
                .iter()
                .map(|x| x.name.value.as_str())
                .collect();
            c.error(
                &a.authority,
                &format!("{field}.authority"),
                format!(
                    "`{}` is not an authority of spec.signatures.authorities ({})",
                    a.authority.value,
                    names.join(", ")
                ),
            );
        }
        if a.predicate_type.value.trim().is_empty() {
            c.error(
                &a.predicate_type,
                &format!("{field}.predicateType"),
                "the predicate type is empty",
            );
        }
        let minimum_severity = a.minimum_severity.as_ref().and_then(|s| {
            let parsed = Severity::parse(&s.value);
            if parsed.is_none() {
                c.error(
                    s,
                    &format!("{field}.minimumSeverity"),
                    format!(
                        "unknown severity `{}`: use LOW, MEDIUM, HIGH or CRITICAL",
                        s.value
                    ),
                );
            }
            parsed
        });
        let max_age = a
            .max_age
            .as_ref()
            .and_then(|s| match parse_duration(&s.value) {
                Some(d) => Some((d, s.value.trim().to_string())),
                None => {
                    c.error(
                        s,
                        &format!("{field}.maxAge"),
                        format!(
                            "`{}` is not a duration: write a number and a unit, such as 168h, 7d or 90m",
                            s.value
                        ),
                    );
                    None
                }
            });
        let builder_id = c.regex(a.builder_id.as_ref(), &format!("{field}.builderId"));
        let source_repository = c.regex(
            a.source_repository.as_ref(),
            &format!("{field}.sourceRepository"),
        );
        checks.push(AttestationCheck {
            name: a.name.value.clone(),
            predicate_type: a.predicate_type.value.trim().to_string(),
            authority: a.authority.value.clone(),
            minimum_severity,
            max_age,
            builder_id,
            source_repository,
        });
    }
    if c.errors.len() != before {
        return None;
    }
    let id = c.hash.finish();
    Some(SignaturePolicy {
        required: rules.required.unwrap_or(true),
        threshold,
        authorities: infos,
        attestations: checks,
        verifier: Arc::new(Verifier {
            id,
            groups: groups
                .into_iter()
                .map(|(mirrors, authorities)| {
                    let options = signature::Options {
                        allowed_repositories: mirrors,
                        ..signature::Options::default()
                    };
                    (options, authorities)
                })
                .collect(),
        }),
    })
}

struct Compiler<'a> {
    file: &'a Path,
    errors: &'a mut Vec<PolicyError>,
    /// Over everything that makes the authorities what they are.
    hash: std::collections::hash_map::DefaultHasher,
}

impl Compiler<'_> {
    fn error(&mut self, at: &Spanned<String>, field: &str, message: impl Into<String>) {
        self.error_line(at.referenced.line(), field, message);
    }

    fn error_line(&mut self, line: u64, field: &str, message: impl Into<String>) {
        self.errors.push(PolicyError {
            file: self.file.to_path_buf(),
            line: Some(line),
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn regex(&mut self, pattern: Option<&Spanned<String>>, field: &str) -> Option<Regex> {
        let p = pattern?;
        match regex::RegexBuilder::new(&p.value)
            .size_limit(1 << 20)
            .build()
        {
            Ok(re) => Some(re),
            Err(e) => {
                let msg = format!(
                    "invalid regular expression: {}",
                    e.to_string().replace('\n', " ")
                );
                self.error(p, field, msg);
                None
            }
        }
    }

    /// A file named in the policy, relative to the policy file, read bounded.
    fn read(&mut self, at: &Spanned<String>, field: &str, what: &str) -> Option<Vec<u8>> {
        let path = self.resolve(&at.value);
        let limit = signature::Limits::default()
            .max_annotation_bytes
            .max(1 << 20) as u64;
        let read = std::fs::File::open(&path).and_then(|f| {
            use std::io::Read;
            let mut bytes = Vec::new();
            f.take(limit + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        });
        match read {
            Ok(bytes) if bytes.len() as u64 > limit => {
                let msg = format!(
                    "the {what} file {} is over {} KiB; is it the right file?",
                    path.display(),
                    limit / 1024
                );
                self.error(at, field, msg);
                None
            }
            Ok(bytes) => {
                self.hash.write(&bytes);
                Some(bytes)
            }
            Err(e) => {
                let msg = format!("cannot read the {what} file {}: {e}", path.display());
                self.error(at, field, msg);
                None
            }
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match self.file.parent() {
            Some(dir) => dir.join(p),
            None => p.to_path_buf(),
        }
    }

    fn authority(
        &mut self,
        a: &spec::AuthoritySpec,
        field: &str,
    ) -> Option<(Authority, Vec<String>)> {
        let before = self.errors.len();
        a.name.value.hash(&mut self.hash);
        let mut mirrors = Vec::new();
        for (i, r) in a.allowed_repositories.iter().enumerate() {
            match signature::normalize_repository(&r.value) {
                Ok(n) if !r.value.contains('@') => mirrors.push(n),
                Ok(_) => self.error(
                    r,
                    &format!("{field}.allowedRepositories[{i}]"),
                    "a repository takes no digest",
                ),
                Err(e) => self.error(
                    r,
                    &format!("{field}.allowedRepositories[{i}]"),
                    e.to_string(),
                ),
            }
        }
        mirrors.sort();
        mirrors.dedup();
        mirrors.hash(&mut self.hash);
        let trust_root = a
            .trust_root
            .as_ref()
            .and_then(|t| self.trust_root(t, &a.name, &format!("{field}.trustRoot")));
        let tlog = |default| match a.transparency_log {
            None => default,
            Some(TransparencyLogSpec::Required) => TransparencyLog::Required,
            Some(TransparencyLogSpec::Optional) => TransparencyLog::Optional,
            Some(TransparencyLogSpec::Off) => TransparencyLog::Off,
        };
        let built = match (&a.key, &a.keyless) {
            (Some(_), Some(_)) | (None, None) => {
                self.error(
                    &a.name,
                    field,
                    format!(
                        "authority `{}` needs exactly one of `key` ({{path: ...}} or {{inline: ...}}) and `keyless` ({{issuer: ..., subject: ...}})",
                        a.name.value
                    ),
                );
                return None;
            }
            (Some(key), None) => {
                let pem = match (&key.path, &key.inline) {
                    (Some(path), None) if path.value.starts_with("k8s://") => {
                        self.error(
                            path,
                            &format!("{field}.key.path"),
                            "keys from Kubernetes Secrets (k8s://namespace/name) are not supported yet: put the PEM public key in a file next to the policy ({path: keys/release.pub}) or inline ({inline: \"-----BEGIN PUBLIC KEY-----...\"})",
                        );
                        return None;
                    }
                    (Some(path), None) => self.read(path, &format!("{field}.key.path"), "key")?,
                    (None, Some(inline)) => {
                        self.hash.write(inline.value.as_bytes());
                        inline.value.as_bytes().to_vec()
                    }
                    _ => {
                        self.error(
                            &a.name,
                            &format!("{field}.key"),
                            "a key takes exactly one of `path` and `inline`",
                        );
                        return None;
                    }
                };
                let at = key
                    .path
                    .as_ref()
                    .or(key.inline.as_ref())
                    .expect("one is set");
                let key = match signature::PublicKey::from_pem(&pem) {
                    Ok(k) => k,
                    Err(e) => {
                        self.error(at, &format!("{field}.key"), e.to_string());
                        return None;
                    }
                };
                let log = tlog(TransparencyLog::Optional);
                format!("key {log}").hash(&mut self.hash);
                if self.errors.len() != before {
                    return None;
                }
                Authority::key(a.name.value.clone(), key, log, trust_root)
            }
            (None, Some(k)) => {
                let subject = self.matcher(
                    k.subject.as_ref(),
                    k.subject_reg_exp.as_ref(),
                    "subject",
                    &format!("{field}.keyless"),
                    &a.name,
                );
                let issuer = self.matcher(
                    k.issuer.as_ref(),
                    k.issuer_reg_exp.as_ref(),
                    "issuer",
                    &format!("{field}.keyless"),
                    &a.name,
                );
                let Some(trust_root) = trust_root else {
                    if a.trust_root.is_none() {
                        self.error(
                            &a.name,
                            &format!("{field}.trustRoot"),
                            format!(
                                "keyless authority `{}` needs a trustRoot: {{path: trusted_root.json}} (cosign trusted-root create writes one) or {{pem: {{fulcio: ..., rekor: ..., ctlog: ...}}}}; imagegate never fetches one from the public Sigstore services",
                                a.name.value
                            ),
                        );
                    }
                    return None;
                };
                let (Some(subject), Some(issuer)) = (subject, issuer) else {
                    return None;
                };
                let log = tlog(TransparencyLog::Required);
                format!("keyless {subject} {issuer} {log}").hash(&mut self.hash);
                Authority::keyless(
                    a.name.value.clone(),
                    Identity { subject, issuer },
                    log,
                    trust_root,
                )
            }
        };
        match built {
            Ok(authority) if self.errors.len() == before => Some((authority, mirrors)),
            Ok(_) => None,
            Err(e) => {
                self.error(&a.name, field, e.to_string());
                None
            }
        }
    }

    fn matcher(
        &mut self,
        exact: Option<&Spanned<String>>,
        regexp: Option<&Spanned<String>>,
        what: &'static str,
        field: &str,
        name: &Spanned<String>,
    ) -> Option<Matcher> {
        let built = match (exact, regexp) {
            (Some(e), None) => (Matcher::exact(e.value.clone(), what), e),
            (None, Some(r)) => (Matcher::regex(&r.value, what), r),
            (Some(e), Some(_)) => {
                self.error(
                    e,
                    &format!("{field}.{what}"),
                    format!("give `{what}` or `{what}RegExp`, not both"),
                );
                return None;
            }
            (None, None) => {
                self.error(
                    name,
                    &format!("{field}.{what}"),
                    format!(
                        "a keyless authority needs `{what}` (exact) or `{what}RegExp`: without it any {what} would pass"
                    ),
                );
                return None;
            }
        };
        match built {
            (Ok(m), _) => Some(m),
            (Err(e), at) => {
                let field = format!("{field}.{what}");
                self.error(at, &field, e.to_string());
                None
            }
        }
    }

    fn trust_root(
        &mut self,
        t: &spec::TrustRootSource,
        name: &Spanned<String>,
        field: &str,
    ) -> Option<Arc<TrustRoot>> {
        match (&t.path, &t.pem) {
            (Some(path), None) => {
                let bytes = self.read(path, &format!("{field}.path"), "trust root")?;
                match TrustRoot::from_trusted_root_json(&bytes) {
                    Ok(root) => Some(root),
                    Err(e) => {
                        self.error(path, &format!("{field}.path"), e.to_string());
                        None
                    }
                }
            }
            (None, Some(pem)) => {
                let mut files = signature::TrustRootPem::default();
                let mut first = None;
                for (value, target, sub) in [
                    (&pem.fulcio, &mut files.fulcio_chains, "fulcio"),
                    (&pem.rekor, &mut files.rekor_keys, "rekor"),
                    (&pem.ctlog, &mut files.ctlog_keys, "ctlog"),
                    (&pem.tsa, &mut files.tsa_chains, "tsa"),
                ] {
                    if let Some(v) = value {
                        first.get_or_insert(v);
                        let bytes = self.read(v, &format!("{field}.pem.{sub}"), sub)?;
                        target.push(bytes);
                    }
                }
                let at = first.unwrap_or(name);
                match TrustRoot::from_pem(&files) {
                    Ok(root) => Some(root),
                    Err(e) => {
                        self.error(at, &format!("{field}.pem"), e.to_string());
                        None
                    }
                }
            }
            _ => {
                self.error(
                    name,
                    field,
                    "a trustRoot takes exactly one of `path` (a trusted_root.json) and `pem` ({fulcio, rekor, ctlog, tsa} files)",
                );
                None
            }
        }
    }
}

/// A duration as Go and Kubernetes write them (`168h`, `90m`, `1h30m`, `45s`), plus
/// `d` for days (`7d`). Hand-written because jiff's friendly format refuses days in
/// an absolute duration and takes other spellings users do not write here.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut any = false;
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit: u64 = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        number.clear();
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    if !number.is_empty() || !any || total == 0 {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyErrors, PolicySet, load_sources};
    use crate::signature::testing::{Fulcio, KeyKind, TestKey};

    const HEAD: &str =
        "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n";

    fn compile_in(dir: &Path, spec: &str) -> Result<PolicySet, PolicyErrors> {
        let file = dir.join("p.yaml");
        let text = format!("{HEAD}{spec}");
        PolicySet::compile(&load_sources(&[(file.to_str().unwrap(), text.as_str())]))
    }

    #[test]
    fn signature_blocks_compile_with_files_relative_to_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let key = TestKey::generate(KeyKind::EcdsaP256);
        std::fs::write(dir.path().join("keys/release.pub"), key.public_pem()).unwrap();
        let fulcio = Fulcio::new("test");
        std::fs::write(dir.path().join("fulcio.pem"), fulcio.chain_pem()).unwrap();
        let spec = "  allowedRegistries: [harbor.example.com]\n  signatures:\n    threshold: 2\n    authorities:\n      - name: release\n        key: {path: keys/release.pub}\n        transparencyLog: Off\n      - name: ci\n        keyless: {issuer: https://token.actions.githubusercontent.com, subjectRegExp: '^https://github\\.com/acme/'}\n        trustRoot: {pem: {fulcio: fulcio.pem}}\n        allowedRepositories: [mirror.example.com/acme/app]\n  attestations:\n    - {name: scan, predicateType: https://cosign.sigstore.dev/attestation/vuln/v1, authority: ci, minimumSeverity: high, maxAge: 7d}\n";
        let set = compile_in(dir.path(), spec).unwrap();
        let p = &set.policies[0];
        assert!(p.needs_registry());
        assert_eq!(p.registries_allow.sources(), ["harbor.example.com"]);
        let sig = p.signatures.as_ref().unwrap();
        assert!(sig.required);
        assert_eq!(sig.threshold, 2);
        let names: Vec<_> = sig.authorities.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["release", "ci"]);
        assert!(
            sig.authorities[0].description.contains("P-256"),
            "{:?}",
            sig.authorities[0]
        );
        assert_eq!(sig.attestations[0].minimum_severity, Some(Severity::High));
        assert_eq!(
            sig.attestations[0].max_age.as_ref().unwrap().0.as_secs(),
            7 * 86_400
        );
        // Two groups: the mirror applies to ci only.
        assert_eq!(sig.verifier.groups.len(), 2);
        // The same authorities give the same id (a reload keeps the cache); another
        // key gives another.
        let again = compile_in(dir.path(), spec).unwrap();
        assert_eq!(
            again.policies[0].signatures.as_ref().unwrap().verifier.id,
            sig.verifier.id
        );
        let other = TestKey::generate(KeyKind::EcdsaP256);
        std::fs::write(dir.path().join("keys/release.pub"), other.public_pem()).unwrap();
        let rotated = compile_in(dir.path(), spec).unwrap();
        assert_ne!(
            rotated.policies[0].signatures.as_ref().unwrap().verifier.id,
            sig.verifier.id
        );
    }

    /// (spec, expected errors as (line, field, message fragment))
    #[test]
    fn signature_errors_have_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let pem = TestKey::generate(KeyKind::Ed25519)
            .public_pem()
            .replace('\n', "\\n");
        type Case<'a> = (String, Vec<(u64, &'a str, &'a str)>);
        let table: Vec<Case> = vec![
            (
                "  signatures:\n    authorities:\n      - name: ci\n        keyless: {issuer: https://accounts.google.com, subject: dev@acme.com}\n".into(),
                vec![(8, "spec.signatures.authorities[0].trustRoot", "needs a trustRoot")],
            ),
            (
                "  signatures: {required: true}\n".into(),
                vec![(0, "spec.signatures.authorities", "names no authority")],
            ),
            (
                format!("  signatures:\n    threshold: 3\n    authorities:\n      - {{name: a, key: {{inline: \"{pem}\"}}}}\n      - {{name: b, key: {{inline: \"{pem}\"}}}}\n"),
                vec![(7, "spec.signatures.threshold", "threshold 3 is not between 1 and the number of authorities (2)")],
            ),
            (
                "  signatures:\n    authorities:\n      - name: a\n        key: {path: missing.pub}\n      - name: b\n        key: {path: 'k8s://cosign/release'}\n      - name: c\n        key: {inline: 'not a key'}\n".into(),
                vec![
                    (9, "spec.signatures.authorities[0].key.path", "cannot read the key file"),
                    (11, "spec.signatures.authorities[1].key.path", "not supported yet"),
                    (13, "spec.signatures.authorities[2].key", "public key cannot be read"),
                ],
            ),
            (
                format!("  signatures:\n    authorities:\n      - name: a\n        key: {{inline: \"{pem}\"}}\n        keyless: {{issuer: x, subject: y}}\n      - name: a\n        key: {{inline: \"{pem}\"}}\n      - name: c\n        keyless: {{issuer: x, subject: y, subjectRegExp: z}}\n        trustRoot: {{path: none.json}}\n"),
                vec![
                    (8, "spec.signatures.authorities[0]", "needs exactly one of `key`"),
                    (11, "spec.signatures.authorities[1].name", "duplicate authority name `a`"),
                    (15, "spec.signatures.authorities[2].trustRoot.path", "cannot read the trust root file"),
                    (14, "spec.signatures.authorities[2].keyless.subject", "not both"),
                ],
            ),
            (
                format!("  signatures:\n    authorities:\n      - {{name: a, key: {{inline: \"{pem}\"}}}}\n  attestations:\n    - name: scan\n      predicateType: https://cosign.sigstore.dev/attestation/vuln/v1\n      authority: ci\n      minimumSeverity: SEVERE\n      maxAge: 1 week\n      builderId: '('\n"),
                vec![
                    (12, "spec.attestations[0].authority", "`ci` is not an authority of spec.signatures.authorities (a)"),
                    (13, "spec.attestations[0].minimumSeverity", "unknown severity `SEVERE`"),
                    (14, "spec.attestations[0].maxAge", "is not a duration"),
                    (15, "spec.attestations[0].builderId", "invalid regular expression"),
                ],
            ),
            (
                "  attestations:\n    - {name: scan, predicateType: x, authority: ci}\n".into(),
                vec![(7, "spec.attestations[0].authority", "no `signatures` block")],
            ),
            (
                "  requiredSignatures: true\n  minimumSeverity: HIGH\n".into(),
                vec![
                    (6, "spec.requiredSignatures", "signatures:\n        required: true\n        authorities:"),
                    (7, "spec.minimumSeverity", "attestations:\n        - name: scan\n          predicateType: https://cosign.sigstore.dev/attestation/vuln/v1"),
                ],
            ),
            (
                "  allowedRegistries: [a.example.com]\n  registries: {allow: [b.example.com]}\n".into(),
                vec![(6, "spec.allowedRegistries", "has both")],
            ),
        ];
        for (spec, expected) in table {
            let errors = compile_in(dir.path(), &spec).expect_err(&spec).0;
            assert_eq!(errors.len(), expected.len(), "{spec}\n{errors:#?}");
            for (err, (line, field, fragment)) in errors.iter().zip(&expected) {
                assert_eq!(err.file, dir.path().join("p.yaml"));
                if *line != 0 {
                    assert_eq!(err.line, Some(*line), "{err}");
                }
                assert_eq!(err.field, *field, "{err}");
                assert!(err.message.contains(fragment), "{err} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn durations_parse_as_written() {
        let table = [
            ("168h", Some(168 * 3600)),
            ("7d", Some(7 * 86_400)),
            ("1h30m", Some(5400)),
            ("45s", Some(45)),
            ("2w", Some(14 * 86_400)),
            ("0h", None),
            ("h", None),
            ("12", None),
            ("1.5h", None),
            ("-1h", None),
            ("", None),
            ("99999999999999999999h", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text).map(|d| d.as_secs()), want, "{text}");
        }
    }

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::parse("critical").unwrap() > Severity::parse("HIGH").unwrap());
        assert!(Severity::parse("MEDIUM").unwrap() > Severity::parse("low").unwrap());
        assert_eq!(Severity::parse("UNKNOWN"), None);
        assert_eq!(Severity::parse("SEVERE"), None);
    }
}
