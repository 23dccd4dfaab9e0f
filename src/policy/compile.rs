//! Stage two of loading: validate every value and compile the matchers once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use globset::GlobMatcher;
use regex::Regex;
use serde_saphyr::Spanned;

use super::signatures::SignaturePolicy;
use super::spec::{
    self, ArchMismatchAction, Mode, PolicyDocument, RegistryErrorAction, RequirePullSecret,
};
use super::{PolicyError, PolicyErrors, PolicySource};
use crate::admission::KINDS;
use crate::matching::{ImagePattern, NameSet, PatternKind, PatternSet};
use crate::reference::ImageRef;

/// A validated policy with its matchers compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub mode: Mode,
    /// `file:line` of the policy's name, for logs.
    pub origin: String,
    pub namespaces: NameSet,
    pub exclude_namespaces: NameSet,
    pub images: PatternSet,
    pub exclude_images: PatternSet,
    pub registries_allow: PatternSet,
    pub blocked_images: PatternSet,
    /// (the glob as written, its matcher)
    pub tags_forbid: Vec<(String, GlobMatcher)>,
    pub tags_allow: Vec<Regex>,
    pub require_digest: bool,
    pub message: Option<String>,
    pub preflight: bool,
    pub pin_digests: bool,
    /// Kinds whose images are pinned.
    pub pin_digests_on: Vec<String>,
    pub skip_pinning: PatternSet,
    pub architectures: Option<Architectures>,
    pub on_registry_error: RegistryErrorAction,
    /// The pull secret each registry needs, in the order written: the first entry
    /// that matches an image is the one it needs.
    pub image_pull_secrets: Vec<PullSecretRule>,
    pub require_pull_secret: RequirePullSecret,
    /// Kinds that get the pull secrets added.
    pub inject_pull_secrets_on: Vec<String>,
    /// Signature and attestation rules.
    pub signatures: Option<SignaturePolicy>,
}

/// One `imagePullSecrets` entry, compiled.
#[derive(Debug, Clone)]
pub struct PullSecretRule {
    /// The registry pattern as written, for messages.
    pub registry: String,
    pattern: PatternSet,
    pub secret_name: String,
}

impl PullSecretRule {
    pub fn matches(&self, image: &ImageRef) -> bool {
        self.pattern.matches_registry(image)
    }
}

/// Compiled architecture rules.
#[derive(Debug, Clone)]
pub struct Architectures {
    pub require: Vec<String>,
    pub on_mismatch: ArchMismatchAction,
}

/// Architecture names as the `kubernetes.io/arch` label writes them.
const ARCHES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64",
];

impl Policy {
    /// Whether the policy needs facts from the registry.
    pub fn needs_registry(&self) -> bool {
        self.preflight
            || self.pin_digests
            || self.architectures.is_some()
            || self.signatures.is_some()
    }

    /// The `imagePullSecrets` entry for `image`'s registry: the first that matches.
    pub fn pull_secret_for(&self, image: &ImageRef) -> Option<&PullSecretRule> {
        self.image_pull_secrets.iter().find(|r| r.matches(image))
    }

    /// Whether the policy applies to objects in `namespace`.
    pub fn applies_to_namespace(&self, namespace: &str) -> bool {
        (self.namespaces.is_empty() || self.namespaces.is_match(namespace))
            && !self.exclude_namespaces.is_match(namespace)
    }
}

/// Every loaded policy, in file order. Swapped as a whole on reload.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
}

impl PolicySet {
    /// Deserializes and validates every source, reporting all errors together.
    ///
    /// A policy set is never empty: every file must hold at least one policy
    /// document, so that an empty, truncated or comments-only file (a half-written
    /// ConfigMap) is an error that keeps the last good set in force, rather than a
    /// set that silently enforces nothing. To stop enforcing, a policy is set to
    /// `mode: Audit`, or the webhook configurations are removed.
    pub fn compile(sources: &[PolicySource]) -> Result<PolicySet, PolicyErrors> {
        if sources.is_empty() {
            return Err(PolicyErrors::whole_file(
                Path::new("(no policy file)"),
                "no policy file was given: imagegate never runs with zero policies; to stop enforcing, set `mode: Audit` on a policy or remove the webhook configurations",
            ));
        }
        // Both stages run on every core (`par_map`): start-up waits for them.
        // Files are parsed, then documents checked, each in any order; the results
        // are taken in file order, so errors and duplicates read as they are written.
        let parsed =
            par_map(
                sources.iter().collect(),
                |_: &mut (), source| match serde_saphyr::from_multiple::<PolicyDocument>(
                    &source.text,
                ) {
                    Ok(docs) if docs.is_empty() => Err(PolicyError {
                        file: source.path.clone(),
                        line: None,
                        field: String::new(),
                        message: NO_DOCUMENT.to_string(),
                    }),
                    Ok(docs) => Ok(docs),
                    Err(e) => Err(PolicyError {
                        file: source.path.clone(),
                        line: e.location().map(|l| l.line()),
                        field: String::new(),
                        message: first_line(&e.to_string()),
                    }),
                },
            );
        let mut units = Vec::new();
        for (source, docs) in sources.iter().zip(parsed) {
            match docs {
                Ok(docs) => units.extend(docs.into_iter().map(|doc| Ok((source, doc)))),
                Err(e) => units.push(Err(e)),
            }
        }
        let checked = par_map(units, |memo: &mut Memo, unit| {
            let (source, doc) = unit?;
            let mut errors = Vec::new();
            let mut c = Checker {
                file: &source.path,
                errors: &mut errors,
                memo,
            };
            let policy = c.policy(doc);
            Ok((source, policy, errors))
        });
        let mut errors = Vec::new();
        let mut policies = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for unit in checked {
            let (source, policy, doc_errors) = match unit {
                Ok(checked) => checked,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            errors.extend(doc_errors);
            let Some(policy) = policy else { continue };
            let here = policy.origin.clone();
            if let Some(first) = seen.insert(policy.name.clone(), here) {
                let line = policy
                    .origin
                    .rsplit(':')
                    .next()
                    .and_then(|l| l.parse().ok());
                errors.push(PolicyError {
                    file: source.path.clone(),
                    line,
                    field: "metadata.name".into(),
                    message: format!(
                        "duplicate policy name `{}`: already defined at {first}",
                        policy.name
                    ),
                });
            } else {
                policies.push(policy);
            }
        }
        if errors.is_empty() {
            Ok(PolicySet { policies })
        } else {
            Err(PolicyErrors(errors))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// The entries of a list that did not compile: (index, message).
type Failures = Vec<(usize, String)>;

/// `f` over `items` on every core (at most one thread per item), the results in
/// the items' order. Each thread keeps its own `S` (the compile memo). Written on
/// std's scoped threads: the project has no thread-pool crate, and compiling is
/// the one place that wants one.
fn par_map<T: Send, R: Send, S: Default>(
    items: Vec<T>,
    f: impl Fn(&mut S, T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        let mut state = S::default();
        return items.into_iter().map(|item| f(&mut state, item)).collect();
    }
    let len = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None).take(len).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut state = S::default();
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((i, item)) = next else { break };
                        done.push((i, f(&mut state, item)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => {
                    for (i, r) in done {
                        out[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    out.into_iter()
        .map(|r| r.expect("every item was mapped"))
        .collect()
}

/// The error for a file with no policy document in it.
pub const NO_DOCUMENT: &str = "the file holds no policy document (it is empty, or only comments and whitespace), so it was cut short or emptied by mistake; restore its policies. To stop enforcing, set `mode: Audit` on a policy or remove the webhook configurations; to drop the file, delete it";

/// serde-saphyr's message starts with `error: line L column C: ` (the line is
/// reported separately) and may carry a source snippet after the first line.
fn first_line(msg: &str) -> String {
    let line = msg.lines().next().unwrap_or(msg).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((position, rest)) if position.contains("column") => rest.to_string(),
        _ => line.to_string(),
    }
}

struct Checker<'a> {
    file: &'a Path,
    errors: &'a mut Vec<PolicyError>,
    memo: &'a mut Memo,
}

/// Matchers built once per compile and shared by every policy that writes the
/// same list. Policies repeat their tag rules, namespace lists and registries, and
/// a glob set or a regular expression costs far more to build (up to a million
/// instructions: it is most of the start-up time, README "Startup") than to
/// share. A list's errors are kept with it and reported at each place it is
/// written.
#[derive(Default)]
struct Memo {
    names: HashMap<Vec<String>, (NameSet, Failures)>,
    patterns: HashMap<(PatternKind, Vec<String>), (PatternSet, Failures)>,
    tag_globs: HashMap<String, Result<GlobMatcher, String>>,
    tag_regexes: HashMap<String, Result<Regex, String>>,
}

impl Checker<'_> {
    fn error(&mut self, at: &Spanned<String>, field: String, message: impl Into<String>) {
        self.errors.push(PolicyError {
            file: self.file.to_path_buf(),
            line: Some(at.referenced.line()),
            field,
            message: message.into(),
        });
    }

    fn policy(&mut self, doc: PolicyDocument) -> Option<Policy> {
        let before = self.errors.len();
        if doc.api_version.value != spec::API_VERSION {
            let msg = format!(
                "unsupported apiVersion `{}`: expected `{}`",
                doc.api_version.value,
                spec::API_VERSION
            );
            self.error(&doc.api_version, "apiVersion".into(), msg);
        }
        if doc.kind.value != spec::KIND {
            let msg = format!(
                "unsupported kind `{}`: expected `{}`",
                doc.kind.value,
                spec::KIND
            );
            self.error(&doc.kind, "kind".into(), msg);
        }
        let name = &doc.metadata.name;
        if !is_dns_label(&name.value) {
            self.error(
                name,
                "metadata.name".into(),
                format!(
                    "`{}` is not a valid name: use lowercase letters, digits and `-`, at most 63 characters",
                    name.value
                ),
            );
        }
        let s = doc.spec;
        let namespaces = self.names(&s.namespaces, "spec.namespaces");
        let exclude_namespaces = self.names(&s.exclude_namespaces, "spec.excludeNamespaces");
        let images = match &s.images {
            Some(list) => self.patterns(list, "spec.images", PatternKind::Image),
            None => every_image(),
        };
        let exclude_images =
            self.patterns(&s.exclude_images, "spec.excludeImages", PatternKind::Image);
        let registries_allow = match (&s.registries, &s.allowed_registries) {
            (Some(_), Some(short)) => {
                let msg = "allowedRegistries is the shorthand of registries.allow, and this policy has both: keep one list";
                match short.first() {
                    Some(first) => self.error(first, "spec.allowedRegistries".into(), msg),
                    None => self.errors.push(PolicyError {
                        file: self.file.to_path_buf(),
                        line: None,
                        field: "spec.allowedRegistries".into(),
                        message: msg.into(),
                    }),
                }
                PatternSet::default()
            }
            (Some(r), None) => {
                self.patterns(&r.allow, "spec.registries.allow", PatternKind::Registry)
            }
            (None, Some(short)) => {
                self.patterns(short, "spec.allowedRegistries", PatternKind::Registry)
            }
            (None, None) => PatternSet::default(),
        };
        if let Some(r) = &s.required_signatures {
            self.errors.push(PolicyError {
                file: self.file.to_path_buf(),
                line: Some(r.referenced.line()),
                field: "spec.requiredSignatures".into(),
                message: format!(
                    "imagegate has no default signing authority; name who must sign instead of `requiredSignatures: {}`:\n      signatures:\n        required: {}\n        authorities:\n          - name: release\n            key: {{path: keys/release.pub}}\n          # or keyless:\n          - name: ci\n            keyless: {{issuer: https://token.actions.githubusercontent.com, subjectRegExp: '^https://github\\.com/ORG/'}}\n            trustRoot: {{path: trusted_root.json}}",
                    r.value, r.value
                ),
            });
        }
        if let Some(m) = &s.minimum_severity {
            let msg = format!(
                "a minimum severity judges a signed vulnerability scan, so name the scan and who signs it instead of `minimumSeverity: {}`:\n      attestations:\n        - name: scan\n          predicateType: https://cosign.sigstore.dev/attestation/vuln/v1\n          authority: ci          # an authority of spec.signatures.authorities\n          minimumSeverity: {}",
                m.value, m.value
            );
            self.error(m, "spec.minimumSeverity".into(), msg);
        }
        let signatures = super::signatures::compile(
            self.file,
            s.signatures.as_ref(),
            &s.attestations,
            self.errors,
        );
        let blocked_images =
            self.patterns(&s.blocked_images, "spec.blockedImages", PatternKind::Image);
        let tags = s.tags.unwrap_or_default();
        let mut tags_forbid = Vec::new();
        for (i, t) in tags.forbid.iter().enumerate() {
            let field = format!("spec.tags.forbid[{i}]");
            if t.value.contains('/') || t.value.contains('@') {
                self.error(
                    t,
                    field,
                    "a tag pattern takes a tag (`latest`, `*-dev`), not an image",
                );
                continue;
            }
            let built = self
                .memo
                .tag_globs
                .entry(t.value.clone())
                .or_insert_with(|| match globset::Glob::new(&t.value) {
                    Ok(_) if t.value.is_empty() => Err("the pattern is empty".to_string()),
                    Ok(g) => Ok(g.compile_matcher()),
                    Err(e) => Err(format!("invalid glob: {}", e.kind())),
                })
                .clone();
            match built {
                Ok(matcher) => tags_forbid.push((t.value.clone(), matcher)),
                Err(message) => self.error(t, field, message),
            }
        }
        let mut tags_allow = Vec::new();
        for (i, t) in tags.allow.iter().enumerate() {
            let built = self
                .memo
                .tag_regexes
                .entry(t.value.clone())
                .or_insert_with(|| {
                    Regex::new(&t.value).map_err(|e| {
                        format!(
                            "invalid regular expression: {}",
                            e.to_string().replace('\n', " ")
                        )
                    })
                })
                .clone();
            match built {
                Ok(re) => tags_allow.push(re),
                Err(message) => self.error(t, format!("spec.tags.allow[{i}]"), message),
            }
        }
        let pin_digests_on = self.kinds(s.pin_digests_on.as_deref(), "spec.pinDigestsOn");
        let skip_pinning = self.patterns(&s.skip_pinning, "spec.skipPinning", PatternKind::Image);
        let architectures = s.architectures.map(|a| {
            let mut require = Vec::new();
            for (i, r) in a.require.iter().enumerate() {
                let arch = r.value.to_ascii_lowercase();
                if ARCHES.contains(&arch.as_str()) {
                    require.push(arch);
                } else {
                    let msg = format!(
                        "unknown architecture `{}`: use a `kubernetes.io/arch` value ({})",
                        r.value,
                        ARCHES.join(", ")
                    );
                    self.error(r, format!("spec.architectures.require[{i}]"), msg);
                }
            }
            Architectures {
                require,
                on_mismatch: a.on_mismatch,
            }
        });
        let image_pull_secrets = self.pull_secrets(&s.image_pull_secrets);
        let inject_pull_secrets_on = self.kinds(
            s.inject_pull_secrets_on.as_deref(),
            "spec.injectPullSecretsOn",
        );
        let require_pull_secret = s
            .require_pull_secret
            .as_ref()
            .map_or(RequirePullSecret::Off, |r| r.value);
        if s.image_pull_secrets.is_empty() {
            if let Some(r) = s
                .require_pull_secret
                .as_ref()
                .filter(|r| r.value != RequirePullSecret::Off)
            {
                self.errors.push(PolicyError {
                    file: self.file.to_path_buf(),
                    line: Some(r.referenced.line()),
                    field: "spec.requirePullSecret".into(),
                    message: "requirePullSecret checks the secrets that imagePullSecrets names, and this policy names none: add imagePullSecrets entries ({registry, secretName}) or remove requirePullSecret".into(),
                });
            }
            if let Some(first) = s.inject_pull_secrets_on.as_ref().and_then(|k| k.first()) {
                self.error(
                    first,
                    "spec.injectPullSecretsOn".into(),
                    "injectPullSecretsOn has nothing to add: this policy names no imagePullSecrets ({registry, secretName})",
                );
            }
        }
        if self.errors.len() != before {
            return None;
        }
        Some(Policy {
            name: name.value.clone(),
            mode: s.mode,
            origin: format!("{}:{}", self.file.display(), name.referenced.line()),
            namespaces,
            exclude_namespaces,
            images,
            exclude_images,
            registries_allow,
            blocked_images,
            tags_forbid,
            tags_allow,
            require_digest: tags.require_digest,
            message: s.message,
            preflight: s.preflight,
            pin_digests: s.pin_digests,
            pin_digests_on,
            skip_pinning,
            architectures,
            on_registry_error: s.on_registry_error,
            image_pull_secrets,
            require_pull_secret,
            inject_pull_secrets_on,
            signatures,
        })
    }

    /// Kinds for `pinDigestsOn` and `injectPullSecretsOn`; default `[Pod]`.
    fn kinds(&mut self, list: Option<&[Spanned<String>]>, field: &str) -> Vec<String> {
        let Some(list) = list else {
            return vec!["Pod".to_string()];
        };
        let mut out = Vec::new();
        for (i, k) in list.iter().enumerate() {
            if KINDS.iter().any(|(_, kind, _)| *kind == k.value) {
                out.push(k.value.clone());
            } else {
                let kinds: Vec<&str> = KINDS.iter().map(|(_, kind, _)| *kind).collect();
                let msg = format!(
                    "unknown kind `{}`: expected one of {}",
                    k.value,
                    kinds.join(", ")
                );
                self.error(k, format!("{field}[{i}]"), msg);
            }
        }
        out
    }

    fn pull_secrets(&mut self, entries: &[spec::PullSecretEntry]) -> Vec<PullSecretRule> {
        let mut out: Vec<PullSecretRule> = Vec::new();
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let field = format!("spec.imagePullSecrets[{i}]");
            let pattern = match ImagePattern::parse(&e.registry.value, PatternKind::Registry) {
                Ok(p) => p,
                Err(err) => {
                    self.error(&e.registry, format!("{field}.registry"), err.to_string());
                    continue;
                }
            };
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == pattern.normalized()) {
                let msg = format!(
                    "registry `{}` is already named by spec.imagePullSecrets[{first}]; the first entry that matches an image is the one it gets, so this one would never be used",
                    e.registry.value
                );
                self.error(&e.registry, format!("{field}.registry"), msg);
                continue;
            }
            seen.push((pattern.normalized().to_string(), i));
            if !is_dns_subdomain(&e.secret_name.value) {
                let msg = format!(
                    "`{}` is not a valid Secret name: use lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters",
                    e.secret_name.value
                );
                self.error(&e.secret_name, format!("{field}.secretName"), msg);
                continue;
            }
            let Ok(set) = PatternSet::new(vec![pattern]) else {
                self.error(
                    &e.registry,
                    format!("{field}.registry"),
                    "the pattern does not compile",
                );
                continue;
            };
            out.push(PullSecretRule {
                registry: e.registry.value.clone(),
                pattern: set,
                secret_name: e.secret_name.value.clone(),
            });
        }
        out
    }

    fn names(&mut self, list: &[Spanned<String>], field: &str) -> NameSet {
        let key = list.iter().map(|n| n.value.clone()).collect();
        self.shared(
            |m| &mut m.names,
            key,
            list,
            field,
            || {
                let (ok, failures) = split(list, |v| crate::matching::check_glob(v).map(|()| v));
                (NameSet::new(ok).unwrap_or_default(), failures)
            },
        )
    }

    fn patterns(&mut self, list: &[Spanned<String>], field: &str, kind: PatternKind) -> PatternSet {
        let key = (kind, list.iter().map(|p| p.value.clone()).collect());
        self.shared(
            |m| &mut m.patterns,
            key,
            list,
            field,
            || {
                let (ok, failures) = split(list, |v| ImagePattern::parse(v, kind));
                (PatternSet::new(ok).unwrap_or_default(), failures)
            },
        )
    }

    /// The matcher `table` holds for `key`, built by `build` the first time; the
    /// list's failures are reported at `list`'s own lines each time.
    fn shared<K: Eq + std::hash::Hash, T: Clone>(
        &mut self,
        table: fn(&mut Memo) -> &mut HashMap<K, (T, Failures)>,
        key: K,
        list: &[Spanned<String>],
        field: &str,
        build: impl FnOnce() -> (T, Failures),
    ) -> T {
        let (value, failures) = table(self.memo).entry(key).or_insert_with(build).clone();
        for (i, message) in failures {
            self.error(&list[i], format!("{field}[{i}]"), message);
        }
        value
    }
}

/// The entries of `list` that `parse` takes, and the failures of the others.
fn split<'a, T, E: std::fmt::Display>(
    list: &'a [Spanned<String>],
    parse: impl Fn(&'a str) -> Result<T, E>,
) -> (Vec<T>, Failures) {
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match parse(&entry.value) {
            Ok(v) => ok.push(v),
            Err(e) => failures.push((i, e.to_string())),
        }
    }
    (ok, failures)
}

/// The set an omitted `images` means: every image (built once per process).
fn every_image() -> PatternSet {
    static SET: OnceLock<PatternSet> = OnceLock::new();
    SET.get_or_init(|| {
        PatternSet::new(vec![
            ImagePattern::parse("**", PatternKind::Image).expect("`**` is valid"),
        ])
        .expect("`**` compiles")
    })
    .clone()
}

/// A Kubernetes object name (RFC 1123 subdomain), as Secrets have.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::policy::load_sources;

    fn compile(text: &str) -> Result<PolicySet, PolicyErrors> {
        PolicySet::compile(&load_sources(&[("policies/p.yaml", text)]))
    }

    const GOOD: &str = r#"
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: production
spec:
  mode: Audit
  namespaces: ["prod-*"]
  excludeNamespaces: ["kube-system"]
  images: ["**"]
  registries:
    allow: ["harbor.example.com", "registry.k8s.io/**"]
  blockedImages: ["vulnerable-image:*"]
  tags:
    forbid: ["latest"]
    requireDigest: false
    allow: ['^v\d+\.\d+\.\d+$']
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: minimal
spec: {}
"#;

    #[test]
    fn compiles_a_valid_file_with_several_documents() {
        let set = compile(GOOD).unwrap();
        let names: Vec<_> = set.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["production", "minimal"]);
        let p = &set.policies[0];
        assert_eq!(p.mode, Mode::Audit);
        assert_eq!(p.origin, "policies/p.yaml:5");
        assert!(p.applies_to_namespace("prod-eu"));
        assert!(!p.applies_to_namespace("dev"));
        assert!(set.policies[1].applies_to_namespace("anything"));
        assert_eq!(set.policies[1].mode, Mode::Enforce);
    }

    /// Files are compiled on every core and the matchers they write alike are built
    /// once and shared: errors still come in file order, each at its own file and
    /// line (a shared list's error is reported at every place it is written), and
    /// every policy's shared matchers work.
    #[test]
    fn many_files_compile_in_file_order_with_shared_matchers() {
        let doc = |name: &str, pad: usize, namespaces: &str, allow: &str, forbid: &str| {
            format!(
                "{}apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: {name}\nspec:\n  namespaces: [{namespaces}]\n  tags:\n    allow: [{allow}]\n    forbid: [{forbid}]\n",
                "\n".repeat(pad)
            )
        };
        // 40 files with the same three mistakes, at lines that differ by file.
        let bad: Vec<(String, String)> = (0..40)
            .map(|i| {
                let text = doc(
                    &format!("p{i}"),
                    i % 3,
                    "'[', 'team-*'",
                    "'(', '^v1$'",
                    "'*-dev', ''",
                );
                (format!("p/{i:02}.yaml"), text)
            })
            .collect();
        let sources: Vec<(&str, &str)> =
            bad.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let errors = PolicySet::compile(&load_sources(&sources)).unwrap_err().0;
        let got: Vec<(String, Option<u64>, &str, bool)> = errors
            .iter()
            .map(|e| {
                let fragment = match e.field.as_str() {
                    "spec.namespaces[0]" => "invalid glob",
                    "spec.tags.forbid[1]" => "the pattern is empty",
                    _ => "invalid regular expression",
                };
                (
                    e.file.display().to_string(),
                    e.line,
                    e.field.as_str(),
                    e.message.contains(fragment),
                )
            })
            .collect();
        let want: Vec<(String, Option<u64>, &str, bool)> = (0..40u64)
            .flat_map(|i| {
                let (file, pad) = (format!("p/{i:02}.yaml"), i % 3);
                [
                    (file.clone(), Some(6 + pad), "spec.namespaces[0]", true),
                    (file.clone(), Some(9 + pad), "spec.tags.forbid[1]", true),
                    (file, Some(8 + pad), "spec.tags.allow[0]", true),
                ]
            })
            .collect();
        assert_eq!(got, want);

        // 40 valid files sharing their lists, the last one a duplicate name.
        let good: Vec<(String, String)> = (0..41)
            .map(|i| {
                let name = if i == 40 {
                    "p7".to_string()
                } else {
                    format!("p{i}")
                };
                (
                    format!("p/{i:02}.yaml"),
                    doc(&name, 0, "'team-*'", "'^v1$'", "'*-dev'"),
                )
            })
            .collect();
        let sources: Vec<(&str, &str)> =
            good.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let errors = PolicySet::compile(&load_sources(&sources[..41]))
            .unwrap_err()
            .0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (
                errors[0].file.display().to_string(),
                errors[0].line,
                errors[0].message.as_str()
            ),
            (
                "p/40.yaml".to_string(),
                Some(4),
                "duplicate policy name `p7`: already defined at p/07.yaml:4"
            )
        );
        let set = PolicySet::compile(&load_sources(&sources[..40])).unwrap();
        let names: Vec<String> = set.policies.iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, (0..40).map(|i| format!("p{i}")).collect::<Vec<_>>());
        for p in &set.policies {
            assert!(p.applies_to_namespace("team-a") && !p.applies_to_namespace("dev"));
            assert!(p.tags_allow[0].is_match("v1") && !p.tags_allow[0].is_match("v2"));
            assert!(p.tags_forbid[0].1.is_match("x-dev") && !p.tags_forbid[0].1.is_match("x"));
        }
    }

    /// (file text, expected errors as (line, field, message fragment))
    #[test]
    fn reports_every_error_with_file_line_and_field() {
        type Expected<'a> = &'a [(u64, &'a str, &'a str)];
        let table: &[(&str, Expected)] = &[
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  registries:\n    allow:\n      - https://harbor.example.com\n      - harbor.example.com/app:v1\n  tags:\n    allow: ['(']\n    forbid: ['nginx/latest']\n",
                &[
                    (8, "spec.registries.allow[0]", "takes a host, not a URL"),
                    (9, "spec.registries.allow[1]", "takes no tag"),
                    (12, "spec.tags.forbid[0]", "takes a tag"),
                    (11, "spec.tags.allow[0]", "invalid regular expression"),
                ],
            ),
            (
                "apiVersion: imagegate.dev/v1\nkind: Policy\nmetadata:\n  name: Bad_Name\nspec:\n  images: ['*']\n  blockedImages: ['x@sha256:1']\n  namespaces: ['[']\n",
                &[
                    (1, "apiVersion", "unsupported apiVersion"),
                    (2, "kind", "unsupported kind"),
                    (4, "metadata.name", "not a valid name"),
                    (8, "spec.namespaces[0]", "invalid glob"),
                    (6, "spec.images[0]", "matches no image"),
                    (7, "spec.blockedImages[0]", "not digests"),
                ],
            ),
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  blockedImage: ['x']\n",
                &[(6, "", "unknown field `blockedImage`, expected one of")],
            ),
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  mode: Enforced\n",
                &[(6, "", "Enforced")],
            ),
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec: {}\n---\napiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec: {}\n",
                &[(
                    10,
                    "metadata.name",
                    "duplicate policy name `p`: already defined at policies/p.yaml:4",
                )],
            ),
            ("a: [", &[(1, "", "")]),
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  pinDigests: true\n  pinDigestsOn: [Pod, Deploymnet]\n  skipPinning: ['https://x.io']\n  architectures:\n    require: [amd64, aarch64]\n",
                &[
                    (7, "spec.pinDigestsOn[1]", "unknown kind `Deploymnet`"),
                    (8, "spec.skipPinning[0]", "not a URL"),
                    (
                        10,
                        "spec.architectures.require[1]",
                        "unknown architecture `aarch64`",
                    ),
                ],
            ),
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  imagePullSecrets:\n    - {registry: https://harbor.example.com, secretName: a}\n    - {registry: harbor.example.com, secretName: Bad_Name}\n    - {registry: '*.corp.example.com', secretName: corp}\n    - {registry: '*.corp.example.com', secretName: corp2}\n  injectPullSecretsOn: [Pod, Deploymnet]\n",
                &[
                    (
                        7,
                        "spec.imagePullSecrets[0].registry",
                        "takes a host, not a URL",
                    ),
                    (
                        8,
                        "spec.imagePullSecrets[1].secretName",
                        "not a valid Secret name",
                    ),
                    (
                        10,
                        "spec.imagePullSecrets[3].registry",
                        "already named by spec.imagePullSecrets[2]",
                    ),
                    (
                        11,
                        "spec.injectPullSecretsOn[1]",
                        "unknown kind `Deploymnet`",
                    ),
                ],
            ),
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  requirePullSecret: Deny\n  injectPullSecretsOn: [Deployment]\n",
                &[
                    (6, "spec.requirePullSecret", "this policy names none"),
                    (7, "spec.injectPullSecretsOn", "nothing to add"),
                ],
            ),
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  requirePullSecret: Always\n",
                &[(
                    6,
                    "",
                    "unknown variant `Always`, expected one of Off, Warn, Deny",
                )],
            ),
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  onRegistryError: Ignore\n",
                &[(
                    6,
                    "",
                    "unknown variant `Ignore`, expected one of Deny, Warn",
                )],
            ),
        ];
        for (text, expected) in table {
            let errors = compile(text).expect_err(text).0;
            assert_eq!(errors.len(), expected.len(), "{text}\n{errors:#?}");
            for (err, (line, field, fragment)) in errors.iter().zip(expected.iter()) {
                assert_eq!(err.file, PathBuf::from("policies/p.yaml"));
                assert!(err.line.is_some(), "{err}");
                if *line != 1 || !fragment.is_empty() {
                    assert_eq!(err.line, Some(*line), "{err}");
                }
                assert_eq!(err.field, *field, "{err}");
                assert!(err.message.contains(fragment), "{err} lacks {fragment:?}");
            }
        }
    }

    /// A file cut short or emptied is an error, never a set that enforces less.
    #[test]
    fn empty_truncated_and_corrupted_files_are_errors() {
        // (text, line, message fragment)
        let table: &[(&str, Option<u64>, &str)] = &[
            ("", None, "the file holds no policy document (it is empty"),
            ("\n  \n\t\n", None, "holds no policy document"),
            (
                "# production policy\n# owner: platform\n",
                None,
                "holds no policy document",
            ),
            ("---\n", None, "holds no policy document"),
            (
                "---\n# nothing\n...\n---\n",
                None,
                "holds no policy document",
            ),
            ("~\n", None, "holds no policy document"),
            // Truncated inside a document.
            (
                &GOOD[..GOOD.find("spec:").unwrap()],
                Some(2),
                "missing field `spec`",
            ),
            (
                &GOOD[..GOOD.find("  name: production").unwrap()],
                Some(5),
                "",
            ),
            (
                &GOOD[..GOOD.find("requireDigest").unwrap() - 20],
                Some(16),
                "",
            ),
            (
                &GOOD[..GOOD.find("kind: ImagePolicy").unwrap()],
                Some(2),
                "missing field",
            ),
            // Corrupted.
            (
                "apiVersion: imagegate.dev/v1alpha1\nkind: [ImagePolicy\n",
                Some(3),
                "",
            ),
            ("\u{0}\u{1}\u{2}", Some(1), ""),
        ];
        for (text, line, fragment) in table {
            let errors = compile(text).expect_err(text).0;
            assert_eq!(errors.len(), 1, "{text:?}: {errors:#?}");
            let err = &errors[0];
            assert_eq!(err.file, PathBuf::from("policies/p.yaml"));
            if line.is_some() {
                assert!(err.line.is_some(), "{text:?}: {err}");
            } else {
                assert_eq!(err.line, None, "{text:?}: {err}");
            }
            assert!(err.message.contains(fragment), "{text:?}: {err}");
        }
        // One good file does not make an empty one acceptable.
        let sources = load_sources(&[("a.yaml", GOOD), ("b.yaml", "# emptied\n")]);
        let errors = PolicySet::compile(&sources).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert!(
            errors
                .to_string()
                .contains("b.yaml: the file holds no policy document"),
            "{errors}"
        );
        // No file at all.
        let err = PolicySet::compile(&[]).unwrap_err().to_string();
        assert!(err.contains("never runs with zero policies"), "{err}");
    }

    #[test]
    fn pull_secret_entries_match_hosts_whole_and_the_first_match_wins() {
        let set = compile(
            "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  imagePullSecrets:\n    - {registry: harbor.example.com/team-a/**, secretName: team-a}\n    - {registry: harbor.example.com, secretName: registry-harbor}\n    - {registry: '*.dkr.ecr.eu-west-1.amazonaws.com', secretName: ecr-pull}\n    - {registry: 'localhost:5000', secretName: local}\n  requirePullSecret: Warn\n",
        )
        .unwrap();
        let p = &set.policies[0];
        assert_eq!(p.require_pull_secret, RequirePullSecret::Warn);
        assert_eq!(p.inject_pull_secrets_on, ["Pod"]);
        // (image, the secret it gets)
        let table = [
            ("harbor.example.com/team-a/app:v1", Some("team-a")),
            ("harbor.example.com/team-b/app:v1", Some("registry-harbor")),
            // Hosts are case-insensitive for the runtime, and so here.
            ("HARBOR.example.com/team-b/app:v1", Some("registry-harbor")),
            ("harbor.example.com.evil.com/app:v1", None),
            ("evil.com/harbor.example.com/app:v1", None),
            ("harbor.example.com:8443/app:v1", None),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1",
                Some("ecr-pull"),
            ),
            ("dkr.ecr.eu-west-1.amazonaws.com/app:v1", None),
            ("localhost:5000/app", Some("local")),
            ("localhost/app", None),
            ("nginx", None),
        ];
        for (image, expected) in table {
            let got = ImageRef::parse(image)
                .ok()
                .and_then(|i| p.pull_secret_for(&i).map(|r| r.secret_name.clone()));
            assert_eq!(got.as_deref(), expected, "{image}");
        }
        let set = compile(
            "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  imagePullSecrets: [{registry: r.example.com, secretName: r}]\n  injectPullSecretsOn: []\n",
        )
        .unwrap();
        assert!(set.policies[0].inject_pull_secrets_on.is_empty());
        assert_eq!(set.policies[0].require_pull_secret, RequirePullSecret::Off);
    }

    #[test]
    fn errors_across_files_are_reported_together() {
        let sources = load_sources(&[
            (
                "a.yaml",
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: a\nspec:\n  unknownField: 1\n",
            ),
            (
                "b.yaml",
                "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: b\nspec:\n  registries:\n    allow: ['http://r.example.com']\n",
            ),
        ]);
        let errors = PolicySet::compile(&sources).unwrap_err();
        let text = errors.to_string();
        assert!(text.starts_with("2 errors"), "{text}");
        assert!(text.contains("a.yaml:6"), "{text}");
        assert!(
            text.contains("b.yaml:7: spec.registries.allow[0]: a registry pattern takes a host"),
            "{text}"
        );
    }
}
