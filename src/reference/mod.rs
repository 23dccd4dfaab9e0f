//! Image references, parsed and normalized the way the container runtime does it.
//!
//! The grammar and the Docker Hub normalization (default registry `docker.io`,
//! `library/` for one-component names, implicit tag `latest`, `index.docker.io`
//! folded to `docker.io`) come from `oci-spec`'s distribution `Reference`, the same
//! parser the OCI client uses. This module adds the few checks the runtime makes and
//! that parser skips (the total name length, a message that says *why* an uppercase
//! name is refused) and a small, cheap-to-clone view used everywhere else.

use std::fmt;
use std::sync::{Arc, OnceLock};

use oci_client::Reference;

/// The longest name (registry and repository) the distribution grammar accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The tag the runtime pulls when a reference names neither tag nor digest.
pub const IMPLICIT_TAG: &str = "latest";

/// Why an image reference cannot be pulled by any runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the image reference is empty")]
    Empty,
    #[error("the repository name must be lowercase (`{suggestion}` would be valid)")]
    Uppercase { suggestion: String },
    #[error("the name is {len} characters long; at most {NAME_TOTAL_LENGTH_MAX} are allowed")]
    TooLong { len: usize },
    #[error("{0}")]
    Grammar(String),
}

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `registry/repository`, computed once: patterns match it on every request.
    name: String,
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
    /// True when the reference named neither tag nor digest and `latest` is implied.
    implicit_tag: bool,
}

impl ImageRef {
    /// Parses `input` as the runtime would.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let name_part = strip_tag_and_digest(input);
        if name_part.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::TooLong {
                len: name_part.len(),
            });
        }
        let parsed = Reference::try_from(input).map_err(|e| {
            // The runtime's own message for an uppercase repository is clearer than
            // "invalid reference format": say it when lowering the path would parse.
            let (host, path) = split_host(name_part);
            if path.chars().any(|c| c.is_ascii_uppercase()) {
                let suggestion = format!(
                    "{}{}{}",
                    host.map(|h| format!("{h}/")).unwrap_or_default(),
                    path.to_ascii_lowercase(),
                    &input[name_part.len()..]
                );
                if Reference::try_from(suggestion.as_str()).is_ok() {
                    return ReferenceError::Uppercase { suggestion };
                }
            }
            ReferenceError::Grammar(e.to_string())
        })?;
        let implicit_tag = !has_explicit_tag(input) && parsed.digest().is_none();
        let registry = parsed.registry().to_ascii_lowercase();
        Ok(ImageRef {
            name: format!("{registry}/{}", parsed.repository()),
            registry,
            repository: parsed.repository().to_owned(),
            tag: parsed.tag().map(str::to_owned),
            digest: parsed.digest().map(str::to_owned),
            implicit_tag,
        })
    }

    /// The registry host, with port where one was given (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, explicit or the implied `latest`; `None` for a digest-only reference.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:...`) when the reference carries one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// True when the reference had no tag and no digest, so the runtime pulls `latest`.
    pub fn is_implicit_latest(&self) -> bool {
        self.implicit_tag
    }

    /// `registry/repository`, the form policy patterns match against.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Like [`ImageRef::parse`], through a process-wide cache: the same images come
    /// back request after request, and the grammar's regex is the costly part.
    pub fn parse_cached(input: &str) -> Result<Arc<ImageRef>, ReferenceError> {
        static CACHE: OnceLock<moka::sync::Cache<String, Result<Arc<ImageRef>, ReferenceError>>> =
            OnceLock::new();
        // Longer than any valid reference: parse it, never keep it (a request must
        // not be able to fill the cache with megabytes).
        if input.len() > 2 * NAME_TOTAL_LENGTH_MAX + 200 {
            return ImageRef::parse(input).map(Arc::new);
        }
        let cache = CACHE.get_or_init(|| moka::sync::Cache::new(10_000));
        if let Some(hit) = cache.get(input) {
            return hit;
        }
        let parsed = ImageRef::parse(input).map(Arc::new);
        cache.insert(input.to_string(), parsed.clone());
        parsed
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The name part of a reference: everything before `:tag` and `@digest`.
fn strip_tag_and_digest(input: &str) -> &str {
    let without_digest = input.split_once('@').map_or(input, |(n, _)| n);
    match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    }
}

fn has_explicit_tag(input: &str) -> bool {
    let without_digest = input.split_once('@').map_or(input, |(n, _)| n);
    strip_tag_and_digest(without_digest).len() != without_digest.len()
}

/// Splits a name into its registry host (when the first component is one, by the
/// distribution rule: it contains `.` or `:`, or is `localhost`) and the path.
pub(crate) fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D64: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// (input, Ok((registry, repository, tag, digest, implicit)) | Err(fragment of the message))
    type Expect =
        Result<(&'static str, &'static str, Option<&'static str>, bool, bool), &'static str>;

    fn cases() -> Vec<(String, Expect)> {
        let ok = |r, p, t, d, i| Ok((r, p, t, d, i));
        let s = |x: &str| x.to_string();
        vec![
            // Docker Hub normalization.
            (
                s("nginx"),
                ok("docker.io", "library/nginx", Some("latest"), false, true),
            ),
            (
                s("nginx:1.25"),
                ok("docker.io", "library/nginx", Some("1.25"), false, false),
            ),
            (
                s("nginx:latest"),
                ok("docker.io", "library/nginx", Some("latest"), false, false),
            ),
            (
                s("library/nginx"),
                ok("docker.io", "library/nginx", Some("latest"), false, true),
            ),
            (
                s("docker.io/nginx"),
                ok("docker.io", "library/nginx", Some("latest"), false, true),
            ),
            (
                s("docker.io/library/nginx:1"),
                ok("docker.io", "library/nginx", Some("1"), false, false),
            ),
            (
                s("index.docker.io/nginx"),
                ok("docker.io", "library/nginx", Some("latest"), false, true),
            ),
            (
                s("index.docker.io/bitnami/redis:7"),
                ok("docker.io", "bitnami/redis", Some("7"), false, false),
            ),
            (
                s("bitnami/redis"),
                ok("docker.io", "bitnami/redis", Some("latest"), false, true),
            ),
            (
                s("a/b/c/d"),
                ok("docker.io", "a/b/c/d", Some("latest"), false, true),
            ),
            (
                s("jmalloc/echo-server"),
                ok(
                    "docker.io",
                    "jmalloc/echo-server",
                    Some("latest"),
                    false,
                    true,
                ),
            ),
            // Hosts, ports, localhost.
            (
                s("localhost/app"),
                ok("localhost", "app", Some("latest"), false, true),
            ),
            (
                s("localhost:5000/app:v1"),
                ok("localhost:5000", "app", Some("v1"), false, false),
            ),
            (
                s("127.0.0.1:5000/team/app"),
                ok("127.0.0.1:5000", "team/app", Some("latest"), false, true),
            ),
            (
                s("registry.k8s.io/pause:3.9"),
                ok("registry.k8s.io", "pause", Some("3.9"), false, false),
            ),
            (
                s("ghcr.io/org/repo/sub:tag"),
                ok("ghcr.io", "org/repo/sub", Some("tag"), false, false),
            ),
            (
                s("harbor.example.com:8443/proj/app:1.0.0"),
                ok(
                    "harbor.example.com:8443",
                    "proj/app",
                    Some("1.0.0"),
                    false,
                    false,
                ),
            ),
            (
                s("Harbor.Example.COM/proj/app"),
                ok(
                    "harbor.example.com",
                    "proj/app",
                    Some("latest"),
                    false,
                    true,
                ),
            ),
            (
                s("my-registry.io/x"),
                ok("my-registry.io", "x", Some("latest"), false, true),
            ),
            (
                s("host:5000/x"),
                ok("host:5000", "x", Some("latest"), false, true),
            ),
            // A first component without '.' or ':' is a Docker Hub namespace, not a host.
            (
                s("myhost/x"),
                ok("docker.io", "myhost/x", Some("latest"), false, true),
            ),
            (
                s("test.com:tag"),
                ok("docker.io", "library/test.com", Some("tag"), false, false),
            ),
            (
                s("test.com:5000"),
                ok("docker.io", "library/test.com", Some("5000"), false, false),
            ),
            (
                s("test.com/repo:tag"),
                ok("test.com", "repo", Some("tag"), false, false),
            ),
            (
                s("test:5000/repo"),
                ok("test:5000", "repo", Some("latest"), false, true),
            ),
            // Separators in path components.
            (
                s("a_b/c__d/e-f/g.h"),
                ok("docker.io", "a_b/c__d/e-f/g.h", Some("latest"), false, true),
            ),
            (
                s("foo---bar"),
                ok(
                    "docker.io",
                    "library/foo---bar",
                    Some("latest"),
                    false,
                    true,
                ),
            ),
            (
                s("foo_bar.com:8080"),
                ok(
                    "docker.io",
                    "library/foo_bar.com",
                    Some("8080"),
                    false,
                    false,
                ),
            ),
            // Tags.
            (
                s("app:V1_Release.2-rc"),
                ok(
                    "docker.io",
                    "library/app",
                    Some("V1_Release.2-rc"),
                    false,
                    false,
                ),
            ),
            (
                s("app:_x"),
                ok("docker.io", "library/app", Some("_x"), false, false),
            ),
            (
                format!("app:{}", "a".repeat(128)),
                ok("docker.io", "library/app", Some(""), false, false),
            ),
            // Digests.
            (
                format!("app@{D64}"),
                ok("docker.io", "library/app", None, true, false),
            ),
            (
                format!("app:1.0@{D64}"),
                ok("docker.io", "library/app", Some("1.0"), true, false),
            ),
            (
                format!("localhost:5000/app@{D64}"),
                ok("localhost:5000", "app", None, true, false),
            ),
            (
                format!("ghcr.io/o/r:latest@{D64}"),
                ok("ghcr.io", "o/r", Some("latest"), true, false),
            ),
            (
                format!("app@sha512:{}", "a".repeat(128)),
                ok("docker.io", "library/app", None, true, false),
            ),
            (
                format!("app@sha384:{}", "b".repeat(96)),
                ok("docker.io", "library/app", None, true, false),
            ),
            // Invalid references.
            (s(""), Err("empty")),
            (s("Nginx"), Err("lowercase")),
            (s("docker.io/Library/nginx"), Err("lowercase")),
            (s("harbor.example.com/Team/App:v1"), Err("lowercase")),
            (s("nginx:"), Err("invalid reference format")),
            (s(":tag"), Err("invalid reference format")),
            (s("nginx:-tag"), Err("invalid reference format")),
            (s("nginx:.tag"), Err("invalid reference format")),
            (
                format!("app:{}", "a".repeat(129)),
                Err("invalid reference format"),
            ),
            (s("nginx:tag:tag"), Err("invalid reference format")),
            (s("nginx@sha256:abc"), Err("invalid reference format")),
            (
                format!("nginx@sha256:{}", "a".repeat(63)),
                Err("digest length"),
            ),
            (
                format!("nginx@sha256:{}", "a".repeat(65)),
                Err("digest length"),
            ),
            (
                format!("nginx@md5:{}", "a".repeat(32)),
                Err("unsupported digest"),
            ),
            (s("nginx@"), Err("invalid reference format")),
            (
                s("https://harbor.example.com/app"),
                Err("invalid reference format"),
            ),
            (
                s("harbor.example.com//app"),
                Err("invalid reference format"),
            ),
            (
                s("harbor.example.com/app/"),
                Err("invalid reference format"),
            ),
            (s("/app"), Err("invalid reference format")),
            (s("-app"), Err("invalid reference format")),
            (s("app-"), Err("invalid reference format")),
            (s("a..b"), Err("invalid reference format")),
            (s("a___b"), Err("invalid reference format")),
            (s("app name"), Err("invalid reference format")),
            (s("app\t"), Err("invalid reference format")),
            (s("-host.com/app"), Err("invalid reference format")),
            (s("host.com:port/app"), Err("invalid reference format")),
            (format!("{}/app", "a".repeat(256)), Err("characters long")),
            (
                format!("docker.io/{}", "a".repeat(250)),
                Err("characters long"),
            ),
        ]
    }

    #[test]
    fn parses_like_the_runtime() {
        let cases = cases();
        assert!(cases.len() >= 60, "the table keeps at least 60 cases");
        for (input, expect) in cases {
            let got = ImageRef::parse(&input);
            match (got, expect) {
                (Ok(r), Ok((registry, repository, tag, has_digest, implicit))) => {
                    assert_eq!(r.registry(), registry, "registry of {input:?}");
                    assert_eq!(r.repository(), repository, "repository of {input:?}");
                    if tag != Some("") {
                        assert_eq!(r.tag(), tag, "tag of {input:?}");
                    } else {
                        assert_eq!(r.tag().map(str::len), Some(128), "tag of {input:?}");
                    }
                    assert_eq!(r.digest().is_some(), has_digest, "digest of {input:?}");
                    assert_eq!(
                        r.is_implicit_latest(),
                        implicit,
                        "implicit tag of {input:?}"
                    );
                }
                (Err(e), Err(fragment)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(fragment),
                        "{input:?}: {msg:?} lacks {fragment:?}"
                    );
                }
                (got, expect) => panic!("{input:?}: got {got:?}, expected {expect:?}"),
            }
        }
    }

    #[test]
    fn the_cache_answers_like_the_parser() {
        for (input, _) in cases() {
            let direct = ImageRef::parse(&input);
            for _ in 0..2 {
                let cached = ImageRef::parse_cached(&input).map(|r| (*r).clone());
                assert_eq!(cached, direct, "{input:?}");
            }
        }
    }

    #[test]
    fn uppercase_error_suggests_the_valid_name() {
        let err = ImageRef::parse("harbor.example.com/Team/App:v1").unwrap_err();
        assert_eq!(
            err,
            ReferenceError::Uppercase {
                suggestion: "harbor.example.com/team/app:v1".into()
            }
        );
    }

    #[test]
    fn display_is_the_normalized_form() {
        for (input, shown) in [
            ("nginx", "docker.io/library/nginx:latest"),
            ("index.docker.io/x/y:1", "docker.io/x/y:1"),
            ("localhost:5000/a:b", "localhost:5000/a:b"),
        ] {
            assert_eq!(ImageRef::parse(input).unwrap().to_string(), shown);
        }
        let d = format!("ghcr.io/o/r:v@{D64}");
        assert_eq!(ImageRef::parse(&d).unwrap().to_string(), d);
    }
}
