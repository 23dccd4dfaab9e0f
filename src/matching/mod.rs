//! Image, registry and name patterns, compiled once and matched per request.
//!
//! A pattern matches the normalized `registry/repository` of an image, optionally
//! followed by `:tag-pattern`. `*` stays inside one path segment and `**` crosses
//! segments (the glob rules of `globset` with a literal `/`). Because the registry
//! is always a whole segment, `myregistry.io/**` can never match
//! `myregistry.io.evil.com/x`: there is no string-prefix matching anywhere.

use std::sync::Arc;

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::reference::{
    ImageRef, ReferenceError, is_docker_hub_alias, normalize_host, without_default_port,
};

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
    #[error(
        "`{written}` is read as a Docker Hub image (docker.io/library/...), not as a registry: write `{registry}/**` for every image on that registry, or `docker.io/library/{written}` if you do mean the Docker Hub image"
    )]
    BareHost { written: String, registry: String },
    #[error(
        "`{first}` has capitals, so the runtime reads it as a registry host, not a Docker Hub namespace: write `{lower}` for the Docker Hub repository, or a registry host with a `.` or a port"
    )]
    UppercaseNamespace { first: String, lower: String },
    #[error("`{glob}` can match no image: {reason}")]
    Unmatchable { glob: String, reason: String },
}

/// What a pattern is written for: the grammar differs slightly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// Whether the pattern has a `:tag` part.
    pub fn has_tag(&self) -> bool {
        self.tag.is_some()
    }
}

/// Many image patterns compiled into one matcher. Cloning shares the compiled
/// matcher (policy compilation reuses a set that several policies write alike).
#[derive(Debug, Clone)]
pub struct PatternSet {
    patterns: Arc<[ImagePattern]>,
    names: Arc<Names>,
    /// True when a pattern has a tag part, so the name alone cannot decide.
    has_tags: bool,
}

impl Default for PatternSet {
    fn default() -> Self {
        PatternSet {
            patterns: Arc::new([]),
            names: Arc::new(Names::default()),
            has_tags: false,
        }
    }
}

impl PatternSet {
    pub fn new(patterns: Vec<ImagePattern>) -> Result<Self, PatternError> {
        let names = Names::new(patterns.iter().map(|p| p.name.as_str()))?;
        let has_tags = patterns.iter().any(|p| p.tag.is_some());
        Ok(PatternSet {
            patterns: patterns.into(),
            names: Arc::new(names),
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
    /// A pattern's tag part is matched against `tag`; see [`Tag`] and [`IfUnknown`].
    pub fn first_match(
        &self,
        image: &ImageRef,
        tag: Tag<'_>,
        if_unknown: IfUnknown,
    ) -> Option<&ImagePattern> {
        if self.patterns.is_empty() {
            return None;
        }
        self.names
            .matches(image.name())
            .into_iter()
            .map(|i| &self.patterns[i])
            .find(|p| match (&p.tag, tag) {
                (None, _) => true,
                (Some(glob), Tag::Known(t)) => glob.is_match(t),
                (Some(_), Tag::Unknown) => if_unknown == IfUnknown::Match,
            })
    }

    /// Whether a pattern matches the image; see [`PatternSet::first_match`].
    pub fn matches(&self, image: &ImageRef, tag: Tag<'_>, if_unknown: IfUnknown) -> bool {
        if self.has_tags {
            self.first_match(image, tag, if_unknown).is_some()
        } else {
            self.names.is_match(image.name())
        }
    }

    /// Whether a registry pattern (which never has a tag part) matches the image.
    pub fn matches_registry(&self, image: &ImageRef) -> bool {
        debug_assert!(!self.has_tags, "registry patterns have no tag part");
        self.names.is_match(image.name())
    }

    /// Whether a pattern of the set has a tag part, so that the version matters.
    pub fn has_tag_patterns(&self) -> bool {
        self.has_tags
    }
}

/// The name globs of a [`PatternSet`]. Most image patterns are a name
/// (`docker.io/library/nginx`) or a name and `/**` (`harbor.example.com/**`, which
/// is also what a registry pattern means): those are matched by string comparison,
/// and only the others go into a `GlobSet`, whose build costs hundreds of
/// thousands of instructions even for one such pattern (it was most of the
/// start-up time with many policies). Same meaning as the glob: a unit test
/// compares the two on a table of patterns and names.
///
/// The names and stems are sorted, so a list of thousands of images costs a
/// binary search per name, and a stem one per `/` in the name.
#[derive(Debug, Default)]
struct Names {
    /// (name, pattern index), sorted.
    exact: Vec<(Box<str>, usize)>,
    /// (`L/` of `L/**`, or `` of `**`, pattern index), sorted: every name that
    /// starts so.
    trees: Vec<(Box<str>, usize)>,
    /// The other globs, and their pattern indexes.
    globs: Option<(GlobSet, Vec<usize>)>,
}

impl Names {
    fn new<'a>(globs: impl IntoIterator<Item = &'a str>) -> Result<Names, PatternError> {
        let special = |c: char| matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\');
        let mut names = Names::default();
        let mut builder = GlobSetBuilder::new();
        let mut others = Vec::new();
        for (i, g) in globs.into_iter().enumerate() {
            let compiled = glob(g)?;
            let tree = match g.strip_suffix("**") {
                Some(stem)
                    if (stem.is_empty() || stem.ends_with('/')) && !stem.contains(special) =>
                {
                    Some(stem)
                }
                _ => None,
            };
            match tree {
                Some(stem) => names.trees.push((stem.into(), i)),
                None if !g.contains(special) => names.exact.push((g.into(), i)),
                None => {
                    builder.add(compiled);
                    others.push(i);
                }
            }
        }
        if !others.is_empty() {
            let set = builder
                .build()
                .map_err(|e| PatternError::Glob(e.to_string()))?;
            names.globs = Some((set, others));
        }
        names.exact.sort_unstable();
        names.trees.sort_unstable();
        Ok(names)
    }

    /// The stems a name starts with: `` and each prefix of it that ends with `/`.
    fn stems(name: &str) -> impl Iterator<Item = &str> {
        std::iter::once("").chain(name.match_indices('/').map(|(i, _)| &name[..=i]))
    }

    /// The pattern indexes of the entries of sorted `list` whose text is `key`.
    fn equal<'a>(list: &'a [(Box<str>, usize)], key: &str) -> impl Iterator<Item = usize> + 'a {
        let start = list.partition_point(|(e, _)| **e < *key);
        let end = start + list[start..].partition_point(|(e, _)| **e == *key);
        list[start..end].iter().map(|&(_, i)| i)
    }

    fn is_match(&self, name: &str) -> bool {
        Self::equal(&self.exact, name).next().is_some()
            || Self::stems(name).any(|stem| Self::equal(&self.trees, stem).next().is_some())
            || self
                .globs
                .as_ref()
                .is_some_and(|(set, _)| set.is_match(name))
    }

    /// The indexes of the patterns that match `name`, in the order written.
    fn matches(&self, name: &str) -> Vec<usize> {
        let mut hits: Vec<usize> = Self::equal(&self.exact, name)
            .chain(Self::stems(name).flat_map(|stem| Self::equal(&self.trees, stem)))
            .collect();
        if let Some((set, others)) = &self.globs {
            hits.extend(set.matches(name).into_iter().map(|k| others[k]));
        }
        hits.sort_unstable();
        hits
    }
}

/// The version a pattern's `:tag` part is matched against.
///
/// The runtime pulls the digest of `repo:tag@sha256:...` and ignores the tag, so a
/// tag written beside a digest says nothing about what runs unless it was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag<'a> {
    /// The tag the runtime pulls (written, or the implied `latest`), or a tag that
    /// was checked to point to the digest the reference names.
    Known(&'a str),
    /// The reference names a digest and no checked tag says which version it is.
    Unknown,
}

/// How a pattern with a tag part treats [`Tag::Unknown`]. Always fail closed: a
/// pattern that denies or governs (`blockedImages`, `images`) matches an unknown
/// version; a pattern that exempts (`excludeImages`, `skipPinning`) does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfUnknown {
    Match,
    NoMatch,
}

/// Simple globs over one string with no segments (namespaces, tags). Cloning
/// shares the compiled matchers.
///
/// Most namespace patterns are a name (`kube-system`) or a name and one trailing
/// `*` (`team-a-*`). Those are matched as a string comparison, and only the other
/// patterns go into a `GlobSet`: building a glob set costs about half a million
/// instructions even for one such pattern (its regular expression), and it was
/// most of the start-up time with many policies. The fast path means exactly
/// what the glob means (`*` does not cross `/`); a unit test compares the two on
/// a table of patterns and names.
#[derive(Debug, Clone)]
pub struct NameSet {
    exact: Arc<[Box<str>]>,
    prefixes: Arc<[Box<str>]>,
    set: Option<Arc<GlobSet>>,
    len: usize,
}

impl Default for NameSet {
    fn default() -> Self {
        NameSet {
            exact: Arc::new([]),
            prefixes: Arc::new([]),
            set: None,
            len: 0,
        }
    }
}

/// The glob's meaning when it is a plain name (`Exact`) or a plain name and one
/// trailing `*` (`Prefix`); `None` when it needs the glob engine.
enum Simple<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

fn simple(pattern: &str) -> Option<Simple<'_>> {
    let special = |c: char| matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\');
    match pattern.strip_suffix('*') {
        Some(prefix) if !prefix.contains(special) => Some(Simple::Prefix(prefix)),
        Some(_) => None,
        None if !pattern.contains(special) => Some(Simple::Exact(pattern)),
        None => None,
    }
}

impl NameSet {
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, PatternError> {
        let mut builder = GlobSetBuilder::new();
        let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
        let (mut len, mut globs) = (0, 0);
        for p in patterns {
            if p.is_empty() {
                return Err(PatternError::Empty);
            }
            let compiled = glob(p)?;
            match simple(p) {
                Some(Simple::Exact(name)) => exact.push(name.into()),
                Some(Simple::Prefix(prefix)) => prefixes.push(prefix.into()),
                None => {
                    builder.add(compiled);
                    globs += 1;
                }
            }
            len += 1;
        }
        let set = match globs {
            0 => None,
            _ => Some(Arc::new(
                builder
                    .build()
                    .map_err(|e| PatternError::Glob(e.to_string()))?,
            )),
        };
        exact.sort_unstable();
        Ok(NameSet {
            exact: exact.into(),
            prefixes: prefixes.into(),
            set,
            len,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.exact.binary_search_by(|e| (**e).cmp(name)).is_ok()
            || self.prefixes.iter().any(|p| {
                name.strip_prefix(&**p)
                    .is_some_and(|rest| !rest.contains('/'))
            })
            || self.set.as_ref().is_some_and(|set| set.is_match(name))
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

    let (host, path, tag) = match kind {
        PatternKind::Registry => {
            let (host, path) = match source.split_once('/') {
                Some((host, path)) => (host, path),
                // A bare host (with optional port) means every repository on it.
                None => (source, "**"),
            };
            if let Some((_, tag)) = split_tag(path) {
                return Err(PatternError::TagNotAllowed(tag.to_string()));
            }
            (Some(fold_host(host)?), path.to_string(), None)
        }
        PatternKind::Image => {
            let (name, tag) = match split_tag(source) {
                Some((name, tag)) => (name, Some(tag.to_string())),
                None => (source, None),
            };
            if !name.contains('/') && is_host_like(name) {
                // `ghcr.io` or `localhost:5000` read as an image are Docker Hub's
                // `library/ghcr.io` and `library/localhost:5000`: never what was meant.
                let registry = match &tag {
                    Some(port) if port.bytes().all(|b| b.is_ascii_digit()) => {
                        format!("{name}:{port}")
                    }
                    _ => name.to_string(),
                };
                return Err(PatternError::BareHost {
                    written: source.to_string(),
                    registry,
                });
            }
            let first = name.split('/').next().unwrap_or_default();
            match name.split_once('/') {
                // A wildcard in the registry position spans registries.
                _ if first == "*" || first == "**" => (None, name.to_string(), tag),
                Some((first, rest)) if is_host_like(first) => {
                    let host = fold_host(first)?;
                    let path = if host == "docker.io" && is_single_segment(rest) {
                        format!("library/{rest}")
                    } else {
                        rest.to_string()
                    };
                    (Some(host), path, tag)
                }
                Some((first, _)) if first.bytes().any(|b| b.is_ascii_uppercase()) => {
                    return Err(PatternError::UppercaseNamespace {
                        first: first.to_string(),
                        lower: name.to_ascii_lowercase(),
                    });
                }
                _ if is_single_segment(name) => {
                    (Some("docker.io".into()), format!("library/{name}"), tag)
                }
                _ => (Some("docker.io".into()), name.to_string(), tag),
            }
        }
    };
    if let Some(host) = &host {
        check_literals(host, true)?;
    }
    check_literals(&path, false)?;
    if let Some(tag) = &tag {
        check_tag_literals(tag)?;
    }
    let name = match host {
        // An IPv6 literal is written in brackets, which a glob reads as a class.
        Some(host) if host.starts_with('[') => {
            format!("{}/{path}", host.replace('[', "\\[").replace(']', "\\]"))
        }
        Some(host) => format!("{host}/{path}"),
        None => path,
    };
    Ok((name, tag))
}

/// The distribution rule for the first component of a name: a registry host when
/// it has a `.` or a `:` (port), is an IPv6 literal, or is `localhost`.
fn is_host_like(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first.starts_with('[')
        || first.eq_ignore_ascii_case("localhost")
}

/// Refuses a name glob whose literal characters no normalized image name has: such
/// a pattern silently matches nothing (a lone `\`, capitals in a repository, an
/// empty path segment).
fn check_literals(glob: &str, host: bool) -> Result<(), PatternError> {
    let unmatchable = |reason: String| {
        Err(PatternError::Unmatchable {
            glob: glob.to_string(),
            reason,
        })
    };
    if !host && glob.split('/').any(str::is_empty) {
        return unmatchable("it has an empty path segment (`//`)".into());
    }
    if host && glob.starts_with('[') {
        // An IPv6 literal: hex digits and colons in brackets, then an optional port.
        let ok = glob.find(']').is_some_and(|end| {
            glob[1..end]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':')
                && (glob.len() == end + 1
                    || glob[end + 1..]
                        .strip_prefix(':')
                        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        });
        return if ok {
            Ok(())
        } else {
            unmatchable("it is not an IPv6 address in brackets with an optional port".into())
        };
    }
    if host
        && let Some((_, port)) = glob.split_once(':')
        && !port
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'?' | b'[' | b']' | b'-'))
    {
        return unmatchable(format!("the port `{port}` is not a number"));
    }
    let mut in_class = false;
    for c in glob.chars() {
        match c {
            _ if in_class => in_class = c != ']',
            '[' => in_class = true,
            '*' | '?' | '{' | '}' | ',' => {}
            'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/' => {}
            ':' if host => {}
            'A'..='Z' => {
                return unmatchable(format!(
                    "image names are lowercase; write `{}`",
                    glob.to_ascii_lowercase()
                ));
            }
            '\\' => {
                return unmatchable(
                    "a backslash never appears in an image name (nothing needs escaping)".into(),
                );
            }
            _ => return unmatchable(format!("`{c}` never appears in an image name")),
        }
    }
    Ok(())
}

/// Refuses a tag glob with characters no tag has (`[A-Za-z0-9_.-]`).
fn check_tag_literals(tag: &str) -> Result<(), PatternError> {
    let mut in_class = false;
    for c in tag.chars() {
        match c {
            _ if in_class => in_class = c != ']',
            '[' => in_class = true,
            '*' | '?' | '{' | '}' | ',' => {}
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => {}
            _ => {
                return Err(PatternError::Unmatchable {
                    glob: tag.to_string(),
                    reason: format!("`{c}` never appears in a tag"),
                });
            }
        }
    }
    Ok(())
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

/// The host of a pattern as images name theirs (see `crate::reference`): lowercase,
/// and Docker Hub by any of its names (`index.docker.io`, `registry-1.docker.io`,
/// with or without `:443`) is `docker.io`. A host without glob characters, and every
/// IPv6 literal, is checked as an image's is: another spelling of an address or a
/// port (`[2001:db8:0::1]`, `:05000`) would match no image, since images must use
/// the canonical one.
fn fold_host(host: &str) -> Result<String, PatternError> {
    if host.starts_with('[') || !host.contains(['*', '?', '[', ']', '{', '}', ',', '\\']) {
        return normalize_host(host)
            .map(|h| without_default_port(&h).to_string())
            .map_err(|e| PatternError::Unmatchable {
                glob: host.to_string(),
                reason: match e {
                    ReferenceError::Host(detail) => detail,
                    e => e.to_string(),
                },
            });
    }
    let host = host.to_ascii_lowercase();
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host.as_str(), None),
    };
    if is_docker_hub_alias(name) && matches!(port, None | Some("443")) {
        Ok("docker.io".to_string())
    } else {
        Ok(without_default_port(&host).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Names` (a `PatternSet`'s name matcher) finds the same patterns, in the same
    /// order, as a `GlobSet` of the same globs (the oracle), for every glob of the
    /// table alone and all together.
    #[test]
    fn pattern_names_match_as_the_glob_engine_does() {
        let globs = [
            "docker.io/library/nginx",
            "harbor.example.com/**",
            "**",
            "ghcr.io/org/*",
            "a/**/b",
            "x/y/**",
            "x/y*/**",
            "registry.k8s.io/**",
            "x/**",
            "docker.io/library/nginx",
            "a/b?",
            "127.0.0.1:5000/**",
            "[::1]:5000/app",
            "x/y",
        ];
        let names = [
            "docker.io/library/nginx",
            "docker.io/library/nginx2",
            "harbor.example.com/a",
            "harbor.example.com/a/b/c",
            "harbor.example.com",
            "harbor.example.comx/a",
            "ghcr.io/org/app",
            "ghcr.io/org/app/sub",
            "a/b",
            "a/x/b",
            "a/x/y/b",
            "x/y",
            "x/y/z",
            "x/yz/w",
            "x/yz",
            "registry.k8s.io/pause",
            "a/bc",
            "127.0.0.1:5000/app",
            "[::1]:5000/app",
            "",
            "x",
            "x/",
            "harbor.example.com/",
            "/",
            "x//y",
        ];
        let oracle = |list: &[&str], name: &str| {
            let mut b = GlobSetBuilder::new();
            for g in list {
                b.add(glob(g).unwrap());
            }
            let mut hits = b.build().unwrap().matches(name);
            hits.sort_unstable();
            hits
        };
        for g in globs {
            let one = Names::new([g]).unwrap();
            for n in names {
                assert_eq!(one.matches(n), oracle(&[g], n), "glob {g:?}, name {n:?}");
                assert_eq!(one.is_match(n), !oracle(&[g], n).is_empty(), "{g:?} {n:?}");
            }
        }
        let all = Names::new(globs).unwrap();
        for n in names {
            assert_eq!(all.matches(n), oracle(&globs, n), "all globs, name {n:?}");
            assert_eq!(all.is_match(n), !oracle(&globs, n).is_empty(), "{n:?}");
        }
        // A long list (sorted and searched), in an order that is not sorted.
        let many: Vec<String> = (0..600)
            .rev()
            .map(|i| match i % 3 {
                0 => format!("r{}.example/team/app{i}", i % 7),
                1 => format!("r{}.example/team{}/**", i % 7, i % 11),
                _ => format!("r{}.example/**", i % 5),
            })
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let set = Names::new(many.iter().copied()).unwrap();
        for n in [
            "r0.example/team/app0",
            "r3.example/team/app3",
            "r2.example/team3/x",
            "r6.example/team4/x/y",
            "r6.example/team/app6",
            "r5.example/team/app5",
            "r6.example",
            "q.example/team/app0",
        ] {
            assert_eq!(set.matches(n), oracle(&many, n), "{n:?}");
            assert_eq!(set.is_match(n), !oracle(&many, n).is_empty(), "{n:?}");
        }
    }

    /// The string-comparison fast path of `NameSet` means what globset means for
    /// the same pattern (the oracle), for every pattern and name of the table,
    /// alone and all together.
    #[test]
    fn name_sets_match_as_the_glob_engine_does() {
        let patterns = [
            "team-a",
            "team-*",
            "*",
            "t*",
            "kube-system",
            "team-?",
            "te*am",
            "[ab]*",
            "{x,y}-*",
            "a\\*",
            "**",
            "team-a-*",
            "a/b*",
            "-*",
            "é*",
            "x*y*",
        ];
        let names = [
            "team-a",
            "team-",
            "team-ab",
            "team-a/x",
            "team",
            "TEAM-a",
            "",
            "a",
            "ab",
            "a*",
            "kube-system",
            "kube-system-x",
            "x-1",
            "y-",
            "a/bc",
            "a/b/c",
            "-",
            "é1",
            "xay",
            "b",
            "teXam",
        ];
        let oracle = |list: &[&str], name: &str| {
            let mut b = GlobSetBuilder::new();
            for p in list {
                b.add(glob(p).unwrap());
            }
            b.build().unwrap().is_match(name)
        };
        for p in patterns {
            let set = NameSet::new([p]).unwrap();
            for n in names {
                assert_eq!(
                    set.is_match(n),
                    oracle(&[p], n),
                    "pattern {p:?}, name {n:?}"
                );
            }
        }
        let all = NameSet::new(patterns).unwrap();
        let few = NameSet::new(["team-a", "kube-*", "zz"]).unwrap();
        for n in names {
            assert_eq!(
                all.is_match(n),
                oracle(&patterns, n),
                "all patterns, name {n:?}"
            );
            assert_eq!(
                few.is_match(n),
                oracle(&["team-a", "kube-*", "zz"], n),
                "{n:?}"
            );
        }
        assert!(NameSet::default().is_empty() && !NameSet::default().is_match("x"));
    }

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    /// The tag the runtime pulls when the reference has no digest; unknown beside one.
    fn pulled(image: &ImageRef) -> Tag<'_> {
        match (image.digest(), image.tag()) {
            (None, Some(tag)) => Tag::Known(tag),
            _ => Tag::Unknown,
        }
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_digest_is_an_unknown_version_and_each_rule_fails_closed_on_it() {
        use IfUnknown::*;
        // (pattern, image, tag known beside the digest?, if unknown, expected)
        let table: &[(&str, String, Option<&str>, IfUnknown, bool)] = &[
            // The README's own example, and the issue's: a digest escapes no more.
            (
                "vulnerable-image:*",
                format!("vulnerable-image@{D}"),
                None,
                Match,
                true,
            ),
            (
                "vulnerable-image:*",
                format!("vulnerable-image@{D}"),
                None,
                NoMatch,
                false,
            ),
            ("nginx:1.14.*", format!("nginx:1.25@{D}"), None, Match, true),
            (
                "nginx:1.14.*",
                format!("nginx:1.25@{D}"),
                None,
                NoMatch,
                false,
            ),
            // A tag checked to point to the digest counts.
            (
                "nginx:1.14.*",
                format!("nginx:1.25@{D}"),
                Some("1.25"),
                Match,
                false,
            ),
            (
                "nginx:1.14.*",
                format!("nginx:1.14.2@{D}"),
                Some("1.14.2"),
                NoMatch,
                true,
            ),
            // A pattern without a tag part matches every version.
            ("nginx", format!("nginx@{D}"), None, NoMatch, true),
            ("nginx", format!("nginx:1.25@{D}"), None, NoMatch, true),
            // Another repository stays another repository.
            ("nginx:*", format!("redis@{D}"), None, Match, false),
        ];
        for (pattern, image, checked, if_unknown, expected) in table {
            let set = PatternSet::new(vec![
                ImagePattern::parse(pattern, PatternKind::Image).unwrap(),
            ])
            .unwrap();
            let image = img(image);
            let tag = checked.map_or(Tag::Unknown, Tag::Known);
            assert_eq!(
                set.matches(&image, tag, *if_unknown),
                *expected,
                "{pattern:?} against {image} ({tag:?}, {if_unknown:?})"
            );
            assert_eq!(
                set.first_match(&image, tag, *if_unknown).is_some(),
                *expected
            );
        }
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
            // :443 is where HTTPS goes anyway: the same registry.
            ("myregistry.io/**", Image, "myregistry.io:443/x", true),
            ("myregistry.io:443/**", Image, "myregistry.io/x", true),
            ("myregistry.io", Registry, "myregistry.io:443/x", true),
            ("myregistry.io/**", Image, "myregistry.io:8443/x", false),
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
            ("INDEX.DOCKER.IO/evil/*", Image, "evil/x", true),
            ("docker.io:443", Registry, "nginx", true),
            ("docker.io", Registry, "docker.io:5000/x", false),
            // An uppercase host is folded in an image (`Foo/bar`, a host only by
            // its case, is refused by the reference parser).
            ("foo/bar", Image, "Foo:5000/bar", false),
            ("foo:5000", Registry, "Foo:5000/bar", true),
            ("docker.io", Registry, "Foo:5000/bar", false),
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
            let image_ref = img(image);
            assert_eq!(
                set.matches(&image_ref, pulled(&image_ref), IfUnknown::NoMatch),
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
            // A bare host read as an image is Docker Hub's library/<host>: refused.
            (
                "ghcr.io",
                Image,
                "write `ghcr.io/**` for every image on that registry",
            ),
            ("localhost:5000", Image, "write `localhost:5000/**`"),
            ("localhost", Image, "write `localhost/**`"),
            ("*.example.com", Image, "write `*.example.com/**`"),
            ("[::1]:5000", Image, "write `[::1]:5000/**`"),
            (
                "registry.example.com:v1",
                Image,
                "write `registry.example.com/**`",
            ),
            // Patterns that can match nothing.
            ("\\", Registry, "a backslash never appears in an image name"),
            (
                "harbor.example.com/te\\am/**",
                Registry,
                "a backslash never appears",
            ),
            (
                "harbor.example.com/Team/**",
                Registry,
                "image names are lowercase; write `team/**`",
            ),
            ("ghcr.io/Org/app", Image, "image names are lowercase"),
            ("ghcr.io/org//app", Image, "empty path segment"),
            (
                "ghcr.io/org/app%",
                Image,
                "`%` never appears in an image name",
            ),
            ("nginx:v1/2", Image, "the port `v1` is not a number"),
            ("nginx:v1+2", Image, "`+` never appears in a tag"),
            ("[zz::1]:5000/app", Image, "not an IPv6 address"),
            // Another spelling of an address or a port: images must use the canonical one.
            (
                "[2001:db8:0::1]/**",
                Image,
                "can match no image: write the IPv6 address in its canonical form, `[2001:db8::1]`",
            ),
            ("[::1]:05000", Registry, "leading zero: write `5000`"),
            ("harbor.example.com:70000/**", Image, "out of range"),
            // The runtime reads a capitalized first component as a host.
            (
                "Foo/bar",
                Image,
                "write `foo/bar` for the Docker Hub repository",
            ),
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
        for (image, pattern) in [
            ("nginx:1.2", "nginx:1.*"),
            ("nginx:2", "**"),
            ("ghcr.io/a/b", "ghcr.io/**"),
        ] {
            let image = img(image);
            let hit = set.first_match(&image, pulled(&image), IfUnknown::NoMatch);
            assert_eq!(hit.unwrap().source(), pattern);
        }
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
