//! Image, registry and name patterns, compiled once and matched per request.
//!
//! A pattern matches the normalized `registry/repository` of an image, optionally
//! followed by `:tag-pattern`. `*` stays inside one path segment and `**` crosses
//! segments (the glob rules of `globset` with a literal `/`). Because the registry
//! is always a whole segment, `myregistry.io/**` can never match
//! `myregistry.io.evil.com/x`: there is no string-prefix matching anywhere.

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::reference::{ImageRef, is_docker_hub_alias, normalize_host, split_host};

/// Why a pattern was refused. Each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern is empty")]
    Empty,
    #[error("a registry pattern takes a host, not a URL: write `{0}`")]
    RegistryUrl(String),
    #[error("an image pattern takes `registry/repository[:tag]`, not a URL: write `{0}`")]
    ImageUrl(String),
    #[error("a registry pattern takes no tag: `:{0}` does not belong here")]
    TagNotAllowed(String),
    #[error("patterns match names and tags, not digests: remove `@{0}`")]
    Digest(String),
    #[error("the pattern contains white space")]
    Whitespace,
    #[error(
        "`{0}` matches no image: every name has a registry and a repository; use `**` for every image"
    )]
    MatchesNothing(String),
    #[error("invalid glob: {0}")]
    Glob(String),
    #[error("{0}")]
    Host(String),
}

/// What a pattern is written for: the grammar differs slightly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    /// `images`, `blockedImages`: Docker Hub shorthand is normalized like an image
    /// (`nginx` is `docker.io/library/nginx`) and a `:tag-pattern` may follow.
    Image,
    /// `registries.allow`: the first segment is always the registry host; a bare host
    /// means every repository on it; no tag.
    Registry,
}

/// One compiled pattern, kept with the text the user wrote for messages.
#[derive(Debug, Clone)]
pub struct ImagePattern {
    source: String,
    name: String,
    tag: Option<GlobMatcher>,
}

impl ImagePattern {
    pub fn parse(source: &str, kind: PatternKind) -> Result<Self, PatternError> {
        let (name, tag) = normalize(source, kind)?;
        if name == "*" {
            return Err(PatternError::MatchesNothing(source.to_string()));
        }
        let tag = tag
            .map(|t| glob(&t).map(|g| g.compile_matcher()))
            .transpose()?;
        glob(&name)?;
        Ok(ImagePattern {
            source: source.to_string(),
            name,
            tag,
        })
    }

    /// The pattern as the user wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The normalized name glob (`docker.io/library/nginx`).
    pub fn normalized(&self) -> &str {
        &self.name
    }
}

/// Many image patterns compiled into one matcher.
#[derive(Debug, Clone)]
pub struct PatternSet {
    patterns: Vec<ImagePattern>,
    names: GlobSet,
    /// True when a pattern has a tag part, so the name alone cannot decide.
    has_tags: bool,
}

impl Default for PatternSet {
    fn default() -> Self {
        PatternSet {
            patterns: Vec::new(),
            names: GlobSet::empty(),
            has_tags: false,
        }
    }
}

impl PatternSet {
    pub fn new(patterns: Vec<ImagePattern>) -> Result<Self, PatternError> {
        let mut builder = GlobSetBuilder::new();
        for p in &patterns {
            builder.add(glob(&p.name)?);
        }
        let names = builder
            .build()
            .map_err(|e| PatternError::Glob(e.to_string()))?;
        let has_tags = patterns.iter().any(|p| p.tag.is_some());
        Ok(PatternSet {
            patterns,
            names,
            has_tags,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as written, for messages.
    pub fn sources(&self) -> Vec<&str> {
        self.patterns.iter().map(ImagePattern::source).collect()
    }

    /// The first pattern (in the order written) that matches the image, if any.
    pub fn first_match(&self, image: &ImageRef) -> Option<&ImagePattern> {
        if self.patterns.is_empty() {
            return None;
        }
        let mut hits = self.names.matches(image.name());
        hits.sort_unstable();
        hits.into_iter()
            .map(|i| &self.patterns[i])
            .find(|p| match &p.tag {
                None => true,
                Some(tag) => image.tag().is_some_and(|t| tag.is_match(t)),
            })
    }

    pub fn matches(&self, image: &ImageRef) -> bool {
        if self.has_tags {
            self.first_match(image).is_some()
        } else {
            self.names.is_match(image.name())
        }
    }
}

/// Simple globs over one string with no segments (namespaces, tags).
#[derive(Debug, Clone)]
pub struct NameSet {
    set: GlobSet,
    len: usize,
}

impl Default for NameSet {
    fn default() -> Self {
        NameSet {
            set: GlobSet::empty(),
            len: 0,
        }
    }
}

impl NameSet {
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, PatternError> {
        let mut builder = GlobSetBuilder::new();
        let mut len = 0;
        for p in patterns {
            if p.is_empty() {
                return Err(PatternError::Empty);
            }
            builder.add(glob(p)?);
            len += 1;
        }
        let set = builder
            .build()
            .map_err(|e| PatternError::Glob(e.to_string()))?;
        Ok(NameSet { set, len })
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.set.is_match(name)
    }
}

/// Checks one simple glob (a namespace or tag pattern) on its own.
pub fn check_glob(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty() {
        return Err(PatternError::Empty);
    }
    glob(pattern).map(|_| ())
}

fn glob(pattern: &str) -> Result<Glob, PatternError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| PatternError::Glob(e.kind().to_string()))
}

/// Splits `source` into a normalized name glob and an optional tag glob.
fn normalize(source: &str, kind: PatternKind) -> Result<(String, Option<String>), PatternError> {
    let source = source.trim_end_matches('/');
    if source.is_empty() {
        return Err(PatternError::Empty);
    }
    if source.chars().any(char::is_whitespace) {
        return Err(PatternError::Whitespace);
    }
    if let Some((_scheme, rest)) = source.split_once("://") {
        let rest = rest.trim_end_matches('/');
        return Err(match kind {
            PatternKind::Registry => PatternError::RegistryUrl(if rest.contains('/') {
                rest.to_string()
            } else {
                format!("{rest}/**")
            }),
            PatternKind::Image => PatternError::ImageUrl(rest.to_string()),
        });
    }
    if let Some((_, digest)) = source.split_once('@') {
        return Err(PatternError::Digest(digest.to_string()));
    }

    match kind {
        PatternKind::Registry => {
            let Some((host, path)) = source.split_once('/') else {
                // A bare host (with optional port) means every repository on it.
                return Ok((format!("{}/**", fold_host(source)?), None));
            };
            if let Some((_, tag)) = split_tag(path) {
                return Err(PatternError::TagNotAllowed(tag.to_string()));
            }
            Ok((format!("{}/{path}", fold_host(host)?), None))
        }
        PatternKind::Image => {
            let (name, tag) = match split_tag(source) {
                Some((name, tag)) => (name, Some(tag.to_string())),
                None => (source, None),
            };
            let first = name.split('/').next().unwrap_or_default();
            let normalized = if first == "*" || first == "**" {
                // A wildcard in the registry position spans registries.
                name.to_string()
            } else {
                match split_host(name) {
                    (Some(host), path) => {
                        let host = fold_host(host)?;
                        if host == "docker.io" && is_single_segment(path) {
                            format!("docker.io/library/{path}")
                        } else {
                            format!("{host}/{path}")
                        }
                    }
                    (None, path) if is_single_segment(path) => {
                        format!("docker.io/library/{path}")
                    }
                    (None, path) => format!("docker.io/{path}"),
                }
            };
            Ok((normalized, tag))
        }
    }
}

/// `name:tag` when the last `:` comes after the last `/`.
fn split_tag(s: &str) -> Option<(&str, &str)> {
    let i = s.rfind(':')?;
    if s[i..].contains('/') {
        return None;
    }
    Some((&s[..i], &s[i + 1..]))
}

fn is_single_segment(path: &str) -> bool {
    !path.contains('/') && !path.contains("**")
}

/// The host of a pattern as images name theirs: lowercase, Docker Hub's aliases
/// (`index.docker.io`, `registry-1.docker.io`, also with `:443`) are `docker.io`. A
/// bracketed IPv6 address is checked like an image's and matched literally (in a
/// glob, `[...]` would be a character class).
fn fold_host(host: &str) -> Result<String, PatternError> {
    if host.starts_with('[') {
        let host = normalize_host(host).map_err(|e| PatternError::Host(e.to_string()))?;
        return Ok(host.replace('[', "\\[").replace(']', "\\]"));
    }
    let host = host.to_ascii_lowercase();
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host.as_str(), None),
    };
    if is_docker_hub_alias(name) && matches!(port, None | Some("443")) {
        Ok("docker.io".to_string())
    } else {
        Ok(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn image_patterns_match_normalized_names() {
        use PatternKind::*;
        // (pattern, kind, image, expected)
        let table: &[(&str, PatternKind, &str, bool)] = &[
            ("**", Image, "nginx", true),
            ("**", Image, "harbor.example.com/a/b/c:1", true),
            ("nginx", Image, "nginx:1.25", true),
            ("nginx", Image, "docker.io/library/nginx", true),
            ("nginx", Image, "index.docker.io/library/nginx", true),
            ("nginx", Image, "bitnami/nginx", false),
            ("library/nginx", Image, "nginx", true),
            ("docker.io/nginx", Image, "nginx", true),
            ("docker.io/**", Image, "bitnami/redis", true),
            ("docker.io/**", Image, "nginx", true),
            ("docker.io/*", Image, "nginx", true),
            ("docker.io/*", Image, "bitnami/redis", false),
            ("bitnami/*", Image, "bitnami/redis", true),
            ("bitnami/*", Image, "bitnami/redis/sub", false),
            ("bitnami/**", Image, "bitnami/redis/sub", true),
            ("nginx:1.*", Image, "nginx:1.25", true),
            ("nginx:1.*", Image, "nginx:2.0", false),
            ("nginx:1.*", Image, "nginx", false),
            ("vulnerable-image:*", Image, "vulnerable-image:3", true),
            ("vulnerable-image:*", Image, "vulnerable-image", true),
            (
                "harbor.example.com/**",
                Image,
                "harbor.example.com/proj/app:1",
                true,
            ),
            (
                "harbor.example.com/**",
                Image,
                "harbor.example.com.evil.com/proj/app",
                false,
            ),
            (
                "harbor.example.com/**",
                Image,
                "evil.com/harbor.example.com/app",
                false,
            ),
            (
                "Harbor.Example.com/proj/*",
                Image,
                "harbor.example.com/proj/app",
                true,
            ),
            (
                "*.example.com/**",
                Image,
                "harbor.example.com/proj/app",
                true,
            ),
            ("*.example.com/**", Image, "example.com/proj/app", false),
            (
                "*.example.com/**",
                Image,
                "harbor.example.com.evil.com/app",
                false,
            ),
            ("localhost:5000/**", Image, "localhost:5000/app", true),
            ("localhost:5000/**", Image, "localhost:5001/app", false),
            ("**/nginx", Image, "ghcr.io/nginx", true),
            ("*/library/nginx", Image, "nginx", true),
            ("myregistry.io/**", Image, "myregistry.io.evil.com/x", false),
            ("myregistry.io/**", Image, "myregistry.io:443/x", false),
            // Registry patterns.
            ("myregistry.io", Registry, "myregistry.io/x", true),
            ("myregistry.io", Registry, "myregistry.io.evil.com/x", false),
            ("myregistry.io", Registry, "myregistry.io/a/b/c", true),
            (
                "myregistry.io/**",
                Registry,
                "myregistry.io.evil.com/x",
                false,
            ),
            (
                "myregistry.io/team/**",
                Registry,
                "myregistry.io/team/app",
                true,
            ),
            (
                "myregistry.io/team/**",
                Registry,
                "myregistry.io/teamx/app",
                false,
            ),
            (
                "myregistry.io/team/**",
                Registry,
                "myregistry.io/other/team/app",
                false,
            ),
            ("docker.io", Registry, "nginx", true),
            ("index.docker.io", Registry, "nginx", true),
            (
                "registry.k8s.io/**",
                Registry,
                "registry.k8s.io/pause:3.9",
                true,
            ),
            ("registry.k8s.io/**", Registry, "k8s.gcr.io/pause", false),
            ("harbor:8443", Registry, "harbor:8443/p/a", true),
            ("harbor:844", Registry, "harbor:8443/p/a", false),
            ("harbor.example.com", Registry, "HARBOR.example.com/x", true),
            // Docker Hub by any of its names, in images and in patterns.
            ("evil/**", Image, "INDEX.DOCKER.IO/evil/x:1", true),
            ("evil/**", Image, "Index.Docker.io/evil/x:1", true),
            ("evil/**", Image, "registry-1.docker.io/evil/x", true),
            ("evil/**", Image, "docker.io:443/evil/x", true),
            ("nginx", Image, "DOCKER.IO/nginx", true),
            ("registry-1.docker.io/**", Image, "nginx", true),
            ("docker.io:443", Registry, "nginx", true),
            ("docker.io", Registry, "docker.io:5000/x", false),
            // An uppercase first component is a registry host in an image.
            ("foo/bar", Image, "Foo/bar", false),
            ("Foo/bar", Image, "Foo/bar", false),
            ("foo", Registry, "Foo/bar", true),
            ("docker.io", Registry, "Foo/bar", false),
            // IPv6 hosts are literal, never glob classes.
            ("[::1]:5000/**", Image, "[::1]:5000/app", true),
            ("[::1]:5000", Registry, "[::1]:5000/app", true),
            ("[::1]:5000", Registry, "1:5000/app", false),
            ("[::1]:5000", Registry, "[::2]:5000/app", false),
            ("[2001:DB8::1]/**", Image, "[2001:db8::1]/r", true),
            ("[2001:db8::1]/**", Image, "[2001:db8::2]/r", false),
            ("[2001:db8::1]/r:v*", Image, "[2001:db8::1]/r:v1", true),
        ];
        for (pattern, kind, image, expected) in table {
            let p =
                ImagePattern::parse(pattern, *kind).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            let set = PatternSet::new(vec![p]).unwrap();
            assert_eq!(
                set.matches(&img(image)),
                *expected,
                "{pattern:?} ({kind:?}) against {image:?}"
            );
        }
    }

    #[test]
    fn refuses_bad_patterns_with_advice() {
        use PatternKind::*;
        let table: &[(&str, PatternKind, &str)] = &[
            (
                "https://harbor.example.com",
                Registry,
                "takes a host, not a URL: write `harbor.example.com/**`",
            ),
            (
                "http://harbor.example.com/proj/**",
                Registry,
                "write `harbor.example.com/proj/**`",
            ),
            ("https://harbor.example.com/app", Image, "not a URL"),
            ("harbor.example.com/proj/app:v1", Registry, "takes no tag"),
            ("nginx@sha256:abc", Image, "not digests"),
            ("", Image, "empty"),
            ("ngi nx", Image, "white space"),
            ("*", Image, "matches no image"),
            ("nginx:[", Image, "invalid glob"),
            ("harbor.example.com/{a", Registry, "invalid glob"),
            (
                "[2001:db8:0::1]/**",
                Image,
                "canonical form, `[2001:db8::1]`",
            ),
            ("[fd00123]", Registry, "not an IPv6 address"),
            ("[::1]:05000", Registry, "leading zero"),
        ];
        for (pattern, kind, fragment) in table {
            let err = ImagePattern::parse(pattern, *kind).unwrap_err().to_string();
            assert!(
                err.contains(fragment),
                "{pattern:?}: {err:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn first_match_reports_the_pattern_in_written_order() {
        let set = PatternSet::new(vec![
            ImagePattern::parse("ghcr.io/**", PatternKind::Image).unwrap(),
            ImagePattern::parse("nginx:1.*", PatternKind::Image).unwrap(),
            ImagePattern::parse("**", PatternKind::Image).unwrap(),
        ])
        .unwrap();
        assert_eq!(
            set.first_match(&img("nginx:1.2")).unwrap().source(),
            "nginx:1.*"
        );
        assert_eq!(set.first_match(&img("nginx:2")).unwrap().source(), "**");
        assert_eq!(
            set.first_match(&img("ghcr.io/a/b")).unwrap().source(),
            "ghcr.io/**"
        );
    }

    #[test]
    fn name_sets_match_namespaces() {
        let set = NameSet::new(["prod-*", "payments"]).unwrap();
        for (ns, expected) in [
            ("prod-eu", true),
            ("payments", true),
            ("dev", false),
            ("prod", false),
        ] {
            assert_eq!(set.is_match(ns), expected, "{ns}");
        }
        assert!(NameSet::default().is_empty());
    }
}
