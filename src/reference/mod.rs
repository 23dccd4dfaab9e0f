//! Image references, parsed and normalized the way the container runtime does it.
//!
//! The kubelet and containerd read an image reference with `ParseNormalizedNamed`
//! from distribution/reference (the Go module `github.com/distribution/reference`,
//! v0.6.0 in current Kubernetes and containerd), and containerd's CRI then checks
//! whether the string is an image ID (go-digest v1.0.0, `digestset`). This module
//! implements that grammar and that normalization by hand, in one linear pass with no
//! regular expression, because the parser of the `oci-spec` crate (which `oci-client`
//! uses) differs from the runtime's, and every difference was a policy bypass or a
//! false denial: `INDEX.DOCKER.IO/...` left Docker Hub patterns behind, image IDs
//! were read as Docker Hub names, IPv6 hosts and uppercase first components were
//! misread, uppercase-hex digests were accepted.
//!
//! What the runtime does, and this module with it:
//! - The grammar: `name[:tag][@digest]`; `name` is `[host[:port]/]path`, the host a
//!   DNS-like name, an IPv4 address or a bracketed IPv6 address; path components are
//!   lowercase letters and digits separated by `.`, `_`, `__` or dashes; a tag is 1 to
//!   128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`; a digest is
//!   `algorithm:hex`.
//! - `splitDockerDomain`: the first component is a host when there is a `/` after it
//!   and it is `localhost`, contains `.` or `:`, or is not all lowercase (`Foo/bar` is
//!   host `Foo`, repository `bar`, which imagegate refuses: see below); otherwise the name is on Docker Hub (`docker.io`),
//!   and a one-component Docker Hub path gets `library/`. `index.docker.io` is
//!   `docker.io`.
//! - A repository path with an uppercase letter is refused ("must be lowercase").
//! - A reference that is exactly 64 lowercase hex digits is refused ("cannot specify
//!   64-byte hexadecimal strings").
//! - Digests as go-digest v1.0.0 validates them: `sha256`, `sha384` or `sha512`, with
//!   exactly 64, 96 or 128 lowercase hex digits; any other algorithm is refused.
//! - No tag and no digest means the tag `latest`.
//!
//! Deliberate differences, each refusing (or folding) where following the runtime
//! exactly would let an image past a policy; README.md lists them too:
//! - Image IDs are refused: `sha256:<hex>` (likewise `sha384:`, `sha512:`, `blake3:`)
//!   is a valid reference to the runtime's parser (`docker.io/library/sha256` with a
//!   hex tag), but containerd's CRI looks the string up as an image ID, and with
//!   go-digest v1.0.0 as a *prefix* of one, so the node runs whatever image it has
//!   cached under that ID. The message says to write `registry/repository@sha256:...`.
//! - Docker Hub's aliases are folded in any case and with the default port:
//!   `docker.io`, `index.docker.io` and `registry-1.docker.io`, optionally `:443`,
//!   are `docker.io`, with `library/` for one-component paths. The runtime keeps
//!   `INDEX.DOCKER.IO` as another host, but DNS and TLS ignore case and it is Docker
//!   Hub all the same.
//! - Every other host is lowercased (DNS and TLS ignore case), so that a policy
//!   names each registry one way; [`ImageRef::registry`] and `Display` show the
//!   normalized form.
//! - One host, one spelling: an IPv6 address must be written in its canonical form
//!   (RFC 5952: lowercase, no leading zeros, `::` for the longest run of two or more
//!   zero groups), bracket contents that are no IPv6 address are refused, and a port
//!   must be 1 to 65535 without leading zeros. The runtime would dial `host:05000` or
//!   `[2001:db8:0::1]` as the same endpoint as `host:5000` and `[2001:db8::1]`, past a
//!   block on the canonical spelling.
//! - A first component that is a host only because of its uppercase letters
//!   (`Foo/bar`, host `Foo`) is refused: hosts ignore case, and in lowercase it is a
//!   Docker Hub namespace, so no normalized spelling names that host (found by
//!   `tests/fuzz.rs`: the inspector resolved the written-out form, on Docker Hub).
//! - The 255-character limit counts the normalized name with its registry
//!   (`docker.io/library/...`), as distribution/reference up to v0.5.0 and
//!   docker/distribution 2.8 (older kubelets) count it; v0.6.0 counts the path only.
//!   A name is refused when any of those would refuse it.
//!
//! Policy patterns (`crate::matching`) fold their hosts with `normalize_host` and
//! `is_docker_hub_alias`, so that a pattern and an image name a registry alike.

use std::fmt;
use std::net::Ipv6Addr;
use std::sync::{Arc, OnceLock};

/// The longest name (registry and repository) any runtime version accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The longest tag the grammar accepts.
const TAG_LENGTH_MAX: usize = 128;

/// The tag the runtime pulls when a reference names neither tag nor digest.
pub const IMPLICIT_TAG: &str = "latest";

/// Docker Hub's registry name after normalization.
const DOCKER_HUB: &str = "docker.io";

/// The names of Docker Hub's registry, lowercase.
const DOCKER_HUB_ALIASES: &[&str] = &[DOCKER_HUB, "index.docker.io", "registry-1.docker.io"];

/// The namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";

/// The digest algorithms go-digest v1.0.0 knows, with the length of their hex.
const DIGEST_ALGORITHMS: &[(&str, usize)] = &[("sha256", 64), ("sha384", 96), ("sha512", 128)];

/// Algorithm names that make `name:hex` an image ID to containerd (go-digest's three,
/// and `blake3`, which a newer go-digest registers when asked).
const IMAGE_ID_ALGORITHMS: &[&str] = &["sha256", "sha384", "sha512", "blake3"];

/// How much of the input a message quotes.
const QUOTE_MAX: usize = 80;

/// Why an image reference is refused. Each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the image reference is empty")]
    Empty,
    #[error("the repository name must be lowercase{}", suggestion.as_ref().map(|s| format!(" (`{s}` would be valid)")).unwrap_or_default())]
    Uppercase { suggestion: Option<String> },
    #[error(
        "the name is {len} characters long once normalized (registry/repository); at most {NAME_TOTAL_LENGTH_MAX} are allowed: shorten the repository path"
    )]
    TooLong {
        /// The longest count any runtime version makes.
        len: usize,
        /// The path alone, as distribution/reference v0.6.0 counts it.
        path_len: usize,
    },
    #[error("invalid reference format: {0}")]
    Grammar(String),
    #[error("invalid digest: {0}")]
    Digest(String),
    #[error(
        "this is an image ID, not an image reference: the node would run whatever image it has cached under that ID; name the image as `registry/repository@sha256:<digest>`"
    )]
    ImageId {
        /// True for a bare 64-hex ID, which the runtime refuses too.
        bare: bool,
    },
    #[error("invalid registry host: {0}")]
    Host(String),
}

impl ReferenceError {
    /// Whether the runtime itself refuses the reference (the pod would end in
    /// `InvalidImageName`); false for imagegate's deliberate refusals.
    pub fn runtime_refuses(&self) -> bool {
        match self {
            ReferenceError::Empty
            | ReferenceError::Uppercase { .. }
            | ReferenceError::Grammar(_)
            | ReferenceError::Digest(_) => true,
            ReferenceError::TooLong { path_len, .. } => *path_len > NAME_TOTAL_LENGTH_MAX,
            ReferenceError::ImageId { bare } => *bare,
            ReferenceError::Host(_) => false,
        }
    }
}

/// The references [`ImageRef::parse_cached`] keeps: those of the pods being
/// admitted, which come back request after request. A reference not kept costs one
/// parse (about a microsecond). Each one kept costs about 400 bytes, so this bounds
/// the cache to about 1 MB: it used to keep 10,000, and with 10,000 cached digests
/// that was 3 MB of the 32 MB the process should fit in (tests/cache_memory.rs).
const PARSE_CACHE_ENTRIES: u64 = 2_048;

/// A parsed, normalized image reference.
///
/// One allocation: the normalized text and where its parts end. The digest cache
/// keeps one per image, and 10,000 cached image facts must fit in a small RSS
/// (tests/cache_memory.rs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `registry/repository[:tag][@digest]`, as [`fmt::Display`] writes it.
    text: Box<str>,
    /// `text[..registry_end]` is the registry.
    registry_end: usize,
    /// `text[registry_end + 1..repository_end]` is the repository.
    repository_end: usize,
    /// `text[repository_end + 1..tag_end]` is the tag, when `tag_end > repository_end`.
    tag_end: usize,
    /// `text[tag_end + 1..]` is the digest, when there is one.
    has_digest: bool,
    /// `registry/repository` with a `:443` port left out, only when that differs
    /// from `text[..repository_end]`.
    name: Option<Box<str>>,
    /// True when the reference named neither tag nor digest and `latest` is implied.
    implicit_tag: bool,
}

impl ImageRef {
    /// Parses `input` as the runtime would, with the differences the module doc lists.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        parse(input, true)
    }

    /// The registry host, with port where one was given (`docker.io`, `localhost:5000`,
    /// `[2001:db8::1]:5000`), lowercase.
    pub fn registry(&self) -> &str {
        &self.text[..self.registry_end]
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.text[self.registry_end + 1..self.repository_end]
    }

    /// The tag, explicit or the implied `latest`; `None` for a digest-only reference.
    pub fn tag(&self) -> Option<&str> {
        (self.tag_end > self.repository_end)
            .then(|| &self.text[self.repository_end + 1..self.tag_end])
    }

    /// The digest (`sha256:...`) when the reference carries one.
    pub fn digest(&self) -> Option<&str> {
        self.has_digest.then(|| &self.text[self.tag_end + 1..])
    }

    /// True when the reference had no tag and no digest, so the runtime pulls `latest`.
    pub fn is_implicit_latest(&self) -> bool {
        self.implicit_tag
    }

    /// `registry/repository`, the form policy patterns match against (a `:443` port
    /// left out: it is where HTTPS goes anyway).
    pub fn name(&self) -> &str {
        self.name
            .as_deref()
            .unwrap_or(&self.text[..self.repository_end])
    }

    /// Like [`ImageRef::parse`], through a process-wide cache: the same images come
    /// back request after request.
    pub fn parse_cached(input: &str) -> Result<Arc<ImageRef>, ReferenceError> {
        static CACHE: OnceLock<moka::sync::Cache<String, Result<Arc<ImageRef>, ReferenceError>>> =
            OnceLock::new();
        // Longer than any valid reference: parse it, never keep it (a request must
        // not be able to fill the cache with megabytes).
        if input.len() > 2 * NAME_TOTAL_LENGTH_MAX + 200 {
            return ImageRef::parse(input).map(Arc::new);
        }
        let cache = CACHE.get_or_init(|| moka::sync::Cache::new(PARSE_CACHE_ENTRIES));
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
        f.write_str(&self.text)
    }
}

/// `ParseNormalizedNamed`, then imagegate's deliberate differences. `suggest` allows
/// one more parse to check a lowercase suggestion (never recursively).
fn parse(input: &str, suggest: bool) -> Result<ImageRef, ReferenceError> {
    if input.is_empty() {
        return Err(ReferenceError::Empty);
    }
    // Nothing outside ASCII is valid anywhere in the grammar; refusing it first also
    // makes every byte index below a character boundary.
    if !input.is_ascii() {
        return Err(ReferenceError::Grammar(
            "only ASCII letters, digits and `.`, `_`, `-`, `:`, `/`, `@`, `[`, `]` may appear"
                .into(),
        ));
    }
    if input.len() == 64 && input.bytes().all(is_lower_hex) {
        return Err(ReferenceError::ImageId { bare: true });
    }

    let split = split_docker_domain(input);
    // The runtime's own lowercase check, on the remote name up to the first `:`.
    let remote_end = split.remainder.find(':').unwrap_or(split.remainder.len());
    if split.remainder[..remote_end]
        .bytes()
        .any(|b| b.is_ascii_uppercase())
    {
        return Err(uppercase(input, &split, suggest));
    }

    let full = format!("{}/{}", split.domain, split.remainder);
    let parts = match grammar(&full) {
        Ok(parts) => parts,
        Err(detail) => {
            // `Parse`: when the lowercased input would parse, say "lowercase".
            if full.bytes().any(|b| b.is_ascii_uppercase())
                && grammar(&full.to_ascii_lowercase()).is_ok()
            {
                return Err(uppercase(input, &split, suggest));
            }
            return Err(ReferenceError::Grammar(
                scheme_hint(input).unwrap_or(detail),
            ));
        }
    };
    // The digest before the length: a runtime that accepts the length (v0.6.0
    // counts the path only) still refuses an invalid digest, and the error must say
    // so (`runtime_refuses`), not blame the length alone.
    let tag = parts.tag.map(|r| &full[r.0..r.1]);
    let digest = parts.digest.map(|r| &full[r.0..r.1]);
    if let Some(d) = digest {
        validate_digest(d)?;
    }
    let runtime_name = &full[..parts.name_end];
    let path_len = match parts.domain_len {
        Some(d) => runtime_name.len() - d - 1,
        None => runtime_name.len(),
    };
    if runtime_name.len() > NAME_TOTAL_LENGTH_MAX || path_len > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::TooLong {
            len: runtime_name.len(),
            path_len,
        });
    }

    // A first component that is a host only because of its uppercase letters
    // (`Foo/bar`): hosts ignore case, and the lowercase spelling is a Docker Hub
    // namespace, so no normalized form names this host. Written out (messages,
    // lookups, pins), it would name Docker Hub's `foo/bar` instead. Refused.
    if split.taken > 0
        && !split.domain.contains(['.', ':'])
        && !split.domain.eq_ignore_ascii_case("localhost")
    {
        return Err(ReferenceError::Host(format!(
            "`{}` is read as a registry host only because it has uppercase letters, and in lowercase it names a Docker Hub namespace instead: for Docker Hub write `docker.io/{}`; for a registry write its host with its domain or port (`{}:5000/...`)",
            quote(split.domain),
            quote(&format!(
                "{}/{}",
                split.domain.to_ascii_lowercase(),
                &input[split.taken..]
            )),
            quote(&split.domain.to_ascii_lowercase()),
        )));
    }

    // The runtime's domain is what splitDockerDomain chose, even where `Parse` reads
    // it as a path component (`foo_bar.com/x`): containerd dials the text before the
    // first `/`.
    let registry = normalize_host(split.domain)?;
    let mut repository = runtime_name[split.domain.len() + 1..].to_string();
    if registry == DOCKER_HUB && !repository.contains('/') {
        repository.insert_str(0, OFFICIAL_REPO_PREFIX);
    }
    let len = registry.len() + 1 + repository.len();
    if len > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::TooLong { len, path_len });
    }
    if is_image_id(input, &repository, tag, registry.as_str()) {
        return Err(ReferenceError::ImageId { bare: false });
    }

    let implicit_tag = tag.is_none() && digest.is_none();
    let tag = match tag {
        Some(t) => Some(t),
        None if implicit_tag => Some(IMPLICIT_TAG),
        None => None,
    };
    let mut text = String::with_capacity(
        len + tag.map_or(0, |t| t.len() + 1) + digest.map_or(0, |d| d.len() + 1),
    );
    text.push_str(&registry);
    let registry_end = text.len();
    text.push('/');
    text.push_str(&repository);
    let repository_end = text.len();
    if let Some(tag) = tag {
        text.push(':');
        text.push_str(tag);
    }
    let tag_end = text.len();
    if let Some(digest) = digest {
        text.push('@');
        text.push_str(digest);
    }
    let short = without_default_port(&registry);
    let name = (short.len() != registry.len()).then(|| format!("{short}/{repository}").into());
    Ok(ImageRef {
        text: text.into(),
        registry_end,
        repository_end,
        tag_end,
        has_digest: digest.is_some(),
        name,
        implicit_tag,
    })
}

/// `splitDockerDomain`'s answer: the domain and the rest (with tag and digest).
struct DomainSplit<'a> {
    domain: &'a str,
    remainder: std::borrow::Cow<'a, str>,
    /// How many bytes of the input the domain and its `/` took (0 when the domain
    /// was implied).
    taken: usize,
}

/// distribution/reference's `splitDockerDomain`, on the whole input.
fn split_docker_domain(input: &str) -> DomainSplit<'_> {
    let Some((first, rest)) = input.split_once('/') else {
        return DomainSplit {
            domain: DOCKER_HUB,
            remainder: format!("{OFFICIAL_REPO_PREFIX}{input}").into(),
            taken: 0,
        };
    };
    let (domain, remainder, taken) = if first == "localhost"
        || first.contains(['.', ':'])
        || first.bytes().any(|b| b.is_ascii_uppercase())
    {
        let domain = if first == "index.docker.io" {
            DOCKER_HUB
        } else {
            first
        };
        (domain, rest, first.len() + 1)
    } else {
        (DOCKER_HUB, input, 0)
    };
    let remainder = if domain == DOCKER_HUB && !remainder.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{remainder}").into()
    } else {
        remainder.into()
    };
    DomainSplit {
        domain,
        remainder,
        taken,
    }
}

/// The "must be lowercase" error, with the input lowercased in its repository part
/// as a suggestion when that parses.
fn uppercase(input: &str, split: &DomainSplit<'_>, suggest: bool) -> ReferenceError {
    let suggestion = suggest.then(|| {
        let path = &input[split.taken..];
        let end = split.taken + path.find([':', '@']).unwrap_or(path.len());
        format!(
            "{}{}{}",
            &input[..split.taken],
            input[split.taken..end].to_ascii_lowercase(),
            &input[end..]
        )
    });
    let suggestion = suggestion.filter(|s| s != input && parse(s, false).is_ok());
    ReferenceError::Uppercase { suggestion }
}

/// For `https://host/path`: say that references have no scheme.
fn scheme_hint(input: &str) -> Option<String> {
    let (_, rest) = input.split_once("://")?;
    Some(format!(
        "an image reference has no scheme: write `{}`",
        quote(rest)
    ))
}

/// Where the parts of a reference are, in the string `grammar` was given.
struct Parts {
    /// The name is `[..name_end]`.
    name_end: usize,
    /// Length of the domain `Parse` reads in the name, if it reads one.
    domain_len: Option<usize>,
    tag: Option<(usize, usize)>,
    digest: Option<(usize, usize)>,
}

/// distribution/reference's `ReferenceRegexp` and `anchoredNameRegexp`, as one pass:
/// `name[:tag][@digest]`, `name = [domain/]path`. Neither the name nor the tag can hold
/// `@`, and the tag is the text after the first `:` that follows the last `/`, so the
/// split is unique. On error, says which part is wrong.
fn grammar(s: &str) -> Result<Parts, String> {
    let (rest, digest) = match s.find('@') {
        Some(i) => {
            let d = &s[i + 1..];
            if !is_digest_syntax(d) {
                return Err(format!(
                    "`@{}` is not a digest: write `@sha256:` and 64 lowercase hex digits",
                    quote(d)
                ));
            }
            (&s[..i], Some((i + 1, s.len())))
        }
        None => (s, None),
    };
    let last = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last..].find(':') {
        Some(j) => {
            let t = &rest[last + j + 1..];
            if !is_tag(t) {
                return Err(format!(
                    "the tag `{}` is not valid: a tag is 1 to {TAG_LENGTH_MAX} letters, digits, `_`, `.` or `-`, and does not start with `.` or `-`",
                    quote(t)
                ));
            }
            (&rest[..last + j], Some((last + j + 1, rest.len())))
        }
        None => (rest, None),
    };
    let domain_len = match name.split_once('/') {
        Some((first, path)) if is_domain_and_port(first) && is_path(path) => Some(first.len()),
        _ if is_path(name) => None,
        _ => {
            return Err(
                "the name must be `[host[:port]/]path`, each path component lowercase letters and digits separated by `.`, `_`, `__` or dashes"
                    .into(),
            );
        }
    };
    Ok(Parts {
        name_end: name.len(),
        domain_len,
        tag,
        digest,
    })
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// `path-component ['/' path-component]*`.
fn is_path(path: &str) -> bool {
    path.split('/').all(is_path_component)
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*`, separator `.` | `_` | `__` | `-`+.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && is_lower_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `host [':' port]`, host a domain name or `[IPv6]`, as the regexp has it (the
/// address and the port are checked later, by [`normalize_host`]).
fn is_domain_and_port(d: &str) -> bool {
    let (host_ok, port) = if let Some(inner) = d.strip_prefix('[') {
        match inner.split_once(']') {
            Some((addr, after)) => (
                !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
                if after.is_empty() {
                    None
                } else {
                    match after.strip_prefix(':') {
                        Some(p) => Some(p),
                        None => return false,
                    }
                },
            ),
            None => return false,
        }
    } else {
        let (host, port) = match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        };
        (host.split('.').all(is_domain_component), port)
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        }
        _ => false,
    }
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(t: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_LENGTH_MAX
        && word(&b[0])
        && b.iter().all(|x| word(x) || *x == b'.' || *x == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`.
fn is_digest_syntax(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    algorithm.split(['-', '_', '+', '.']).all(|c| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    }) && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest v1.0.0's `Digest.Validate`, on a digest that passed the grammar.
fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let (algorithm, hex) = d.split_once(':').unwrap_or((d, ""));
    let Some(&(_, expected)) = DIGEST_ALGORITHMS.iter().find(|(a, _)| *a == algorithm) else {
        return Err(ReferenceError::Digest(format!(
            "unsupported digest algorithm `{}`: use sha256, sha384 or sha512",
            quote(algorithm)
        )));
    };
    if hex.len() != expected {
        return Err(ReferenceError::Digest(format!(
            "invalid {algorithm} digest length: {} hex digits where {expected} are needed",
            hex.len()
        )));
    }
    if !hex.bytes().all(is_lower_hex) {
        return Err(ReferenceError::Digest(format!(
            "a {algorithm} digest is written in lowercase hex: write `{algorithm}:{}`",
            hex.to_ascii_lowercase()
        )));
    }
    Ok(())
}

/// `sha256:<hex>` and its kin, written alone: containerd's CRI reads the whole string
/// as an image ID (or an ID prefix) before it reads it as a name.
fn is_image_id(input: &str, repository: &str, tag: Option<&str>, registry: &str) -> bool {
    !input.contains('/')
        && registry == DOCKER_HUB
        && repository
            .strip_prefix(OFFICIAL_REPO_PREFIX)
            .is_some_and(|algorithm| IMAGE_ID_ALGORITHMS.contains(&algorithm))
        && tag.is_some_and(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The host\[:port\] of a reference as imagegate names it: lowercase; Docker Hub's
/// aliases (also with `:443`) are `docker.io`; an IPv6 address must be canonical and
/// a port in range without leading zeros (errors say what to write).
pub(crate) fn normalize_host(written: &str) -> Result<String, ReferenceError> {
    let lower = written.to_ascii_lowercase();
    let (host, port) = if let Some(inner) = lower.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(ReferenceError::Host(format!(
                "`{}` lacks its closing `]`",
                quote(written)
            )));
        };
        let Ok(parsed) = addr.parse::<Ipv6Addr>() else {
            return Err(ReferenceError::Host(format!(
                "`[{}]` is not an IPv6 address",
                quote(addr)
            )));
        };
        let canonical = ipv6_canonical(parsed);
        if canonical != addr {
            return Err(ReferenceError::Host(format!(
                "write the IPv6 address in its canonical form, `[{canonical}]`"
            )));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                ReferenceError::Host(format!("`{}` is not host[:port]", quote(written)))
            })?),
        };
        (&lower[..addr.len() + 2], port)
    } else {
        match lower.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (lower.as_str(), None),
        }
    };
    if let Some(p) = port {
        check_port(p)?;
    }
    if DOCKER_HUB_ALIASES.contains(&host) && matches!(port, None | Some("443")) {
        return Ok(DOCKER_HUB.to_string());
    }
    Ok(lower)
}

/// The host as policies match it: `:443` is where HTTPS goes anyway, so
/// `harbor.example.com:443/x` is the registry `harbor.example.com` (a block on
/// `harbor.example.com/**` holds for it). Lookups and credentials keep the port as
/// written, as the kubelet matches `auths` keys with it.
pub(crate) fn without_default_port(host: &str) -> &str {
    host.strip_suffix(":443").unwrap_or(host)
}

/// A port is 1 to 65535, written without leading zeros.
fn check_port(p: &str) -> Result<(), ReferenceError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ReferenceError::Host(format!(
            "the port `{}` is not a number",
            quote(p)
        )));
    }
    let digits = p.trim_start_matches('0');
    if digits.len() != p.len() {
        return Err(ReferenceError::Host(format!(
            "the port `{}` has a leading zero: write `{}`",
            quote(p),
            if digits.is_empty() { "0" } else { digits }
        )));
    }
    match digits.parse::<u32>() {
        Ok(1..=65535) => Ok(()),
        _ => Err(ReferenceError::Host(format!(
            "the port `{}` is out of range (1 to 65535)",
            quote(p)
        ))),
    }
}

/// Whether `host` (lowercase, any port removed) is one of Docker Hub's names.
pub(crate) fn is_docker_hub_alias(host: &str) -> bool {
    DOCKER_HUB_ALIASES.contains(&host)
}

/// RFC 5952 text: lowercase hex without leading zeros, `::` for the first longest run
/// of two or more zero groups, and no embedded IPv4 (the grammar allows no `.`).
fn ipv6_canonical(addr: Ipv6Addr) -> String {
    let s = addr.segments();
    let (mut best, mut best_len, mut i) = (0, 0, 0);
    while i < s.len() {
        if s[i] == 0 {
            let start = i;
            while i < s.len() && s[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                (best, best_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    let join = |groups: &[u16]| {
        groups
            .iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        join(&s)
    } else {
        format!("{}::{}", join(&s[..best]), join(&s[best + best_len..]))
    }
}

/// At most [`QUOTE_MAX`] characters of `s`, for messages.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! The table is built from distribution/reference's published tests (the Go
    //! module the kubelet and containerd vendor), every case that applies to a whole
    //! image reference, run through `ParseNormalizedNamed` as the runtime runs it:
    //! - `reference_test.go` (commits 4894124 and ff14faf: before and after the
    //!   length limit moved to the path), `TestReferenceParse`, `TestWithNameFailure`,
    //!   `TestDomainAndPath`, `TestSerialization`, `TestWithTag`, `TestWithDigest`,
    //!   `TestParseNamed`;
    //! - `normalize_test.go` (commit 4894124): `TestValidateReferenceName`,
    //!   `TestValidateRemoteName`, `TestParseRepositoryInfo`,
    //!   `TestParseReferenceWithTagAndDigest`, `TestInvalidReferenceComponents`,
    //!   `TestParseAnyReference`, `TestNormalizedSplitHostname`, `TestMatch`,
    //!   `TestParseDockerRef`;
    //! - `regexp_test.go` (commit 00a09fa): `TestDomainRegexp` (each domain as
    //!   `DOMAIN/repo`), `TestFullNameRegexp`, `TestReferenceRegexp`,
    //!   `TestIdentifierRegexp`.
    //!
    //! Each case records the runtime's verdict (the normalized name it prints, or a
    //! refusal) and imagegate's. Where they differ, the difference is one the module
    //! doc lists, and [`imagegate_fails_closed`] checks that it only ever refuses more
    //! or folds a host. The last block holds imagegate's own cases.
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Empty,
        Format,
        Upper,
        Long,
        Digest,
        Id,
        Host,
    }

    fn kind(e: &ReferenceError) -> Kind {
        match e {
            ReferenceError::Empty => Kind::Empty,
            ReferenceError::Grammar(_) => Kind::Format,
            ReferenceError::Uppercase { .. } => Kind::Upper,
            ReferenceError::TooLong { .. } => Kind::Long,
            ReferenceError::Digest(_) => Kind::Digest,
            ReferenceError::ImageId { .. } => Kind::Id,
            ReferenceError::Host(_) => Kind::Host,
        }
    }

    struct Case {
        input: String,
        /// `ParseNormalizedNamed(input).String()`, or `None` when the runtime refuses.
        runtime: Option<String>,
        /// imagegate: `registry/repository[:tag][@digest]` (the tag only when written).
        want: Result<String, Kind>,
    }

    /// The runtime and imagegate agree on this normalized form.
    fn same(input: impl Into<String>, normalized: impl Into<String>) -> Case {
        let normalized = normalized.into();
        Case {
            input: input.into(),
            runtime: Some(normalized.clone()),
            want: Ok(normalized),
        }
    }

    /// Both refuse it.
    fn bad(input: impl Into<String>, kind: Kind) -> Case {
        Case {
            input: input.into(),
            runtime: None,
            want: Err(kind),
        }
    }

    /// The runtime accepts it as `runtime`; imagegate folds its host.
    fn folded(input: &str, runtime: &str, normalized: &str) -> Case {
        Case {
            input: input.into(),
            runtime: Some(runtime.into()),
            want: Ok(normalized.into()),
        }
    }

    /// The runtime accepts it as `runtime`; imagegate refuses it on purpose.
    fn refused(input: impl Into<String>, runtime: impl Into<String>, kind: Kind) -> Case {
        Case {
            input: input.into(),
            runtime: Some(runtime.into()),
            want: Err(kind),
        }
    }

    const FF: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const BE: &str = "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912";
    const DB: &str = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    const E6: &str = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
    const SHORT: &str = "sha256:1234567890098765432112345667890098765";
    const ID: &str = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
    const DA: &str = "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821";

    fn upstream_cases() -> Vec<Case> {
        use Kind::*;
        let f512 = format!("sha512:{}", "f".repeat(128));
        let a = |n: usize| "a".repeat(n);
        let namespace_too_long =
            "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_".repeat(4);
        let namespace_too_long = format!(
            "{}/docker",
            &namespace_too_long[..namespace_too_long.len() - 1]
        );
        vec![
            // reference_test.go, TestReferenceParse.
            same("test_com", "docker.io/library/test_com"),
            same("test.com:tag", "docker.io/library/test.com:tag"),
            same("test.com:5000", "docker.io/library/test.com:5000"),
            same("test.com/repo:tag", "test.com/repo:tag"),
            same("test:5000/repo", "test:5000/repo"),
            same("test:5000/repo:tag", "test:5000/repo:tag"),
            same(
                format!("test:5000/repo@{FF}"),
                format!("test:5000/repo@{FF}"),
            ),
            same(
                format!("test:5000/repo:tag@{FF}"),
                format!("test:5000/repo:tag@{FF}"),
            ),
            bad("", Empty),
            bad(":justtag", Format),
            bad(format!("@{FF}"), Format),
            bad("repo@sha256:ffffffffffffffffffffffffffffffffff", Digest),
            bad(
                format!("validname@invaliddigest:{}", "f".repeat(64)),
                Digest,
            ),
            bad("Uppercase:tag", Upper),
            bad("test:5000/Uppercase/lowercase:tag", Upper),
            same(
                "lowercase:Uppercase",
                "docker.io/library/lowercase:Uppercase",
            ),
            bad(format!("{}a:tag", "a/".repeat(128)), Long),
            // Valid for v0.6.0 (the path is 255 long), refused by v0.5.0 (the name is
            // 265 long once normalized) and so by imagegate.
            refused(
                format!("{}a:tag-puts-this-over-max", "a/".repeat(127)),
                format!("docker.io/{}a:tag-puts-this-over-max", "a/".repeat(127)),
                Long,
            ),
            bad("aa/asdf$$^/aa", Format),
            same(
                "sub-dom1.foo.com/bar/baz/quux",
                "sub-dom1.foo.com/bar/baz/quux",
            ),
            same(
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            ),
            same(
                "b.gcr.io/test.example.com/my-app:test.example.com",
                "b.gcr.io/test.example.com/my-app:test.example.com",
            ),
            same(
                "xn--n3h.com/myimage:xn--n3h.com",
                "xn--n3h.com/myimage:xn--n3h.com",
            ),
            same(
                format!("xn--7o8h.com/myimage:xn--7o8h.com@{f512}"),
                format!("xn--7o8h.com/myimage:xn--7o8h.com@{f512}"),
            ),
            same("foo_bar.com:8080", "docker.io/library/foo_bar.com:8080"),
            same("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com:8080"),
            same("192.168.1.1", "docker.io/library/192.168.1.1"),
            same("192.168.1.1:tag", "docker.io/library/192.168.1.1:tag"),
            same("192.168.1.1:5000", "docker.io/library/192.168.1.1:5000"),
            same("192.168.1.1/repo", "192.168.1.1/repo"),
            same("192.168.1.1:5000/repo", "192.168.1.1:5000/repo"),
            same("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050"),
            bad("[2001:db8::1]", Format),
            bad("[2001:db8::1]:5000", Format),
            bad("[2001:db8::1]:tag", Format),
            same("[2001:db8::1]/repo", "[2001:db8::1]/repo"),
            same(
                "[2001:db8:1:2:3:4:5:6]/repo:tag",
                "[2001:db8:1:2:3:4:5:6]/repo:tag",
            ),
            same("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo"),
            same("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo:tag"),
            same(
                format!("[2001:db8::1]:5000/repo@{FF}"),
                format!("[2001:db8::1]:5000/repo@{FF}"),
            ),
            same(
                format!("[2001:db8::1]:5000/repo:tag@{FF}"),
                format!("[2001:db8::1]:5000/repo:tag@{FF}"),
            ),
            same("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo"),
            same("[::1]:5000/repo", "[::1]:5000/repo"),
            bad("[fe80::1%eth0]:5000/repo", Format),
            bad("[fe80::1%@invalidzone]:5000/repo", Format),
            bad(format!("domain/{}:tag", a(256)), Long),
            // Valid for v0.6.0 (path 255), refused by older runtimes (name 267).
            refused(
                format!("example.com/{}:tag", a(255)),
                format!("example.com/{}:tag", a(255)),
                Long,
            ),
            // reference_test.go, the other tests' inputs as whole references.
            same("example.com/repo:tag", "example.com/repo:tag"),
            bad(format!("example.com/{}", a(256)), Long),
            same("test.com/foo", "test.com/foo"),
            same("test_com/foo", "docker.io/test_com/foo"),
            same("test:8080/foo", "test:8080/foo"),
            same("test.com:8080/foo", "test.com:8080/foo"),
            same("test-com:8080/foo", "test-com:8080/foo"),
            same("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo"),
            same("example.com:8000/named", "example.com:8000/named"),
            same(
                "example.com:8000/named:tagged",
                "example.com:8000/named:tagged",
            ),
            same(
                "other.com/named@sha256:1234567890098765432112345667890098765432112345667890098765432112",
                "other.com/named@sha256:1234567890098765432112345667890098765432112345667890098765432112",
            ),
            same("test.com/foo:tag", "test.com/foo:tag"),
            same("foo:tag2", "docker.io/library/foo:tag2"),
            same("test.com:8000/foo:tag4", "test.com:8000/foo:tag4"),
            same("test.com:8000/foo:TAG5", "test.com:8000/foo:TAG5"),
            // WithDigest builds these without validating; Parse refuses the 37-digit hex.
            bad(format!("test.com:8000/foo:TAG5@{SHORT}"), Digest),
            bad(format!("test.com/foo@{SHORT}"), Digest),
            bad(format!("foo@{SHORT}"), Digest),
            bad(format!("test.com:8000/foo@{SHORT}"), Digest),
            bad(format!("test.com:8000/foo:latest@{SHORT}"), Digest),
            same("test.com", "docker.io/library/test.com"),
            same("foo", "docker.io/library/foo"),
            same("library/foo", "docker.io/library/foo"),
            same("docker.io/library/foo", "docker.io/library/foo"),
            same("docker.io/foo", "docker.io/library/foo"),
            // normalize_test.go, TestValidateReferenceName.
            same("docker/docker", "docker.io/docker/docker"),
            same("library/debian", "docker.io/library/debian"),
            same("debian", "docker.io/library/debian"),
            same("docker.io/docker/docker", "docker.io/docker/docker"),
            same("docker.io/library/debian", "docker.io/library/debian"),
            same("docker.io/debian", "docker.io/library/debian"),
            same("index.docker.io/docker/docker", "docker.io/docker/docker"),
            same("index.docker.io/library/debian", "docker.io/library/debian"),
            same("index.docker.io/debian", "docker.io/library/debian"),
            same(
                "127.0.0.1:5000/docker/docker",
                "127.0.0.1:5000/docker/docker",
            ),
            same(
                "127.0.0.1:5000/library/debian",
                "127.0.0.1:5000/library/debian",
            ),
            same("127.0.0.1:5000/debian", "127.0.0.1:5000/debian"),
            same("192.168.0.1", "docker.io/library/192.168.0.1"),
            same("192.168.0.1:80", "docker.io/library/192.168.0.1:80"),
            same("192.168.0.1:8/debian", "192.168.0.1:8/debian"),
            same("192.168.0.2:25000/debian", "192.168.0.2:25000/debian"),
            same(
                "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
                "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            ),
            same("[fc00::1]:5000/docker", "[fc00::1]:5000/docker"),
            same(
                "[fc00::1]:5000/docker/docker",
                "[fc00::1]:5000/docker/docker",
            ),
            same(
                "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
                "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            ),
            same(format!("docker.io/{ID}"), format!("docker.io/library/{ID}")),
            refused("Docker/docker", "Docker/docker", Host),
            refused("DOCKER/docker", "DOCKER/docker", Host),
            bad("https://github.com/docker/docker", Format),
            bad("docker/Docker", Upper),
            bad("-docker", Format),
            bad("-docker/docker", Format),
            bad("-docker.io/docker/docker", Format),
            bad("docker///docker", Format),
            bad("docker.io/docker/Docker", Upper),
            bad("docker.io/docker///docker", Format),
            bad("[fc00::1]", Format),
            bad("[fc00::1]:5000", Format),
            bad("fc00::1:5000/debian", Format),
            bad("[fe80::1%eth0]:5000/debian", Format),
            bad("[2001:db8:3:4::192.0.2.33]:5000/debian", Format),
            bad(ID, Id),
            // normalize_test.go, TestValidateRemoteName.
            same("docker-rules/docker", "docker.io/docker-rules/docker"),
            same("docker---rules/docker", "docker.io/docker---rules/docker"),
            same("doc/docker", "docker.io/doc/docker"),
            same("d/docker", "docker.io/d/docker"),
            same("jess/t", "docker.io/jess/t"),
            same("dock__er/docker", "docker.io/dock__er/docker"),
            bad("docker-/docker", Format),
            bad("-docker-/docker", Format),
            bad("____/____", Format),
            bad("_docker/_docker", Format),
            bad("dock..er/docker", Format),
            bad("dock_.er/docker", Format),
            bad("dock-.er/docker", Format),
            bad("docker/", Format),
            bad(namespace_too_long, Long),
            // normalize_test.go, TestParseRepositoryInfo (familiar, full, ambiguous).
            same("fooo/bar", "docker.io/fooo/bar"),
            same("docker.io/fooo/bar", "docker.io/fooo/bar"),
            same("index.docker.io/fooo/bar", "docker.io/fooo/bar"),
            same("ubuntu", "docker.io/library/ubuntu"),
            same("docker.io/library/ubuntu", "docker.io/library/ubuntu"),
            same("library/ubuntu", "docker.io/library/ubuntu"),
            same("nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"),
            same("docker.io/nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"),
            same("other/library", "docker.io/other/library"),
            same("docker.io/other/library", "docker.io/other/library"),
            same(
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
            ),
            same("127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase"),
            same(
                "example.com/private/moonbase",
                "example.com/private/moonbase",
            ),
            same("example.com/privatebase", "example.com/privatebase"),
            same(
                "example.com:8000/private/moonbase",
                "example.com:8000/private/moonbase",
            ),
            same(
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
            ),
            same("ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base"),
            same(
                "docker.io/library/ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
            ),
            same(
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
            ),
            same("docker.io/library/foo/bar", "docker.io/library/foo/bar"),
            same("library/foo/bar", "docker.io/library/foo/bar"),
            same("store/foo/bar", "docker.io/store/foo/bar"),
            same("docker.io/store/foo/bar", "docker.io/store/foo/bar"),
            // A host only by its uppercase letters has no normalized spelling.
            refused("Foo/bar", "Foo/bar", Host),
            refused("FOO/bar", "FOO/bar", Host),
            // normalize_test.go, TestParseReferenceWithTagAndDigest,
            // TestInvalidReferenceComponents, TestParseAnyReference.
            same(
                "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa",
                "docker.io/library/busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa",
            ),
            bad("-foo", Format),
            same("busybox", "docker.io/library/busybox"),
            same("redis", "docker.io/library/redis"),
            same("redis:latest", "docker.io/library/redis:latest"),
            same(
                "docker.io/library/redis:latest",
                "docker.io/library/redis:latest",
            ),
            same(
                format!("redis@{DB}"),
                format!("docker.io/library/redis@{DB}"),
            ),
            same(
                format!("docker.io/library/redis@{DB}"),
                format!("docker.io/library/redis@{DB}"),
            ),
            same("dmcgowan/myapp", "docker.io/dmcgowan/myapp"),
            same("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest"),
            same(
                "docker.io/mcgowan/myapp:latest",
                "docker.io/mcgowan/myapp:latest",
            ),
            same(
                format!("dmcgowan/myapp@{DB}"),
                format!("docker.io/dmcgowan/myapp@{DB}"),
            ),
            same(
                format!("docker.io/dmcgowan/myapp@{DB}"),
                format!("docker.io/dmcgowan/myapp@{DB}"),
            ),
            // ParseAnyReference reads these two as image IDs; containerd does too.
            bad(&DB["sha256:".len()..], Id),
            refused(DB, format!("docker.io/library/{DB}"), Id),
            same(
                "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
                "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
            ),
            same("dbcc1", "docker.io/library/dbcc1"),
            // normalize_test.go, TestNormalizedSplitHostname, TestMatch, TestParseDockerRef.
            same("docker/migrator", "docker.io/docker/migrator"),
            same("xn--n3h.com/foo", "xn--n3h.com/foo"),
            same("foo/any/bat", "docker.io/foo/any/bat"),
            same("foo/a/bar", "docker.io/foo/a/bar"),
            same("foo/b/baz", "docker.io/foo/b/baz"),
            same("foo/c/baz:tag", "docker.io/foo/c/baz:tag"),
            same("example.com/foo/c/baz:tag", "example.com/foo/c/baz:tag"),
            same("busybox:latest", "docker.io/library/busybox:latest"),
            same(
                format!("busybox@{E6}"),
                format!("docker.io/library/busybox@{E6}"),
            ),
            same("library/busybox", "docker.io/library/busybox"),
            same("docker.io/busybox", "docker.io/library/busybox"),
            same("docker.io/library/busybox", "docker.io/library/busybox"),
            same(
                "docker.io/busybox:latest",
                "docker.io/library/busybox:latest",
            ),
            same("library/busybox:latest", "docker.io/library/busybox:latest"),
            same(
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
            ),
            same("gcr.io/library/busybox", "gcr.io/library/busybox"),
            same(
                format!("gcr.io/library/busybox:latest@{E6}"),
                format!("gcr.io/library/busybox:latest@{E6}"),
            ),
            // regexp_test.go, TestDomainRegexp: each domain as `DOMAIN/repo`.
            same("test.com/repo", "test.com/repo"),
            same("test.com:10304/repo", "test.com:10304/repo"),
            bad("test.com:http/repo", Format),
            same("localhost/repo", "localhost/repo"),
            same("localhost:8080/repo", "localhost:8080/repo"),
            // `a` alone is no host to splitDockerDomain: a Docker Hub namespace.
            same("a/repo", "docker.io/a/repo"),
            same("a.b/repo", "a.b/repo"),
            same("ab.cd.com/repo", "ab.cd.com/repo"),
            same("a-b.com/repo", "a-b.com/repo"),
            bad("-ab.com/repo", Format),
            bad("ab-.com/repo", Format),
            same("ab.c-om/repo", "ab.c-om/repo"),
            bad("ab.-com/repo", Format),
            bad("ab.com-/repo", Format),
            same("0101.com/repo", "0101.com/repo"),
            same("001a.com/repo", "001a.com/repo"),
            same("b.gbc.io:443/repo", "b.gbc.io:443/repo"),
            same("b.gbc.io/repo", "b.gbc.io/repo"),
            same("xn--n3h.com/repo", "xn--n3h.com/repo"),
            folded("Asdf.com/repo", "Asdf.com/repo", "asdf.com/repo"),
            // The grammar takes any port; no runtime can dial these.
            refused("192.168.1.1:75050/repo", "192.168.1.1:75050/repo", Host),
            refused("192.168.1.1:750050/repo", "192.168.1.1:750050/repo", Host),
            refused("[fd00:1:2::3]:75050/repo", "[fd00:1:2::3]:75050/repo", Host),
            bad("[fd00:1:2::3]75050/repo", Format),
            bad("[fd00:1:2::3]::75050/repo", Format),
            bad("[fd00:1:2::3%eth0]:75050/repo", Format),
            refused(
                "[fd00123123123]:75050/repo",
                "[fd00123123123]:75050/repo",
                Host,
            ),
            refused(
                "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050/repo",
                "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050/repo",
                Host,
            ),
            refused(
                "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505/repo",
                "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505/repo",
                Host,
            ),
            bad("fd00:1:2::3:75050/repo", Format),
            // regexp_test.go, TestFullNameRegexp.
            same("short", "docker.io/library/short"),
            same("simple/name", "docker.io/simple/name"),
            same("docker/stevvooe/app", "docker.io/docker/stevvooe/app"),
            same(
                "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
                "docker.io/aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
            ),
            same("aa/aa/bb/bb/bb", "docker.io/aa/aa/bb/bb/bb"),
            same("a/a/a/a", "docker.io/a/a/a/a"),
            bad("a/a/a/a/", Format),
            bad("a//a/a", Format),
            same("a", "docker.io/library/a"),
            same("a/aa", "docker.io/a/aa"),
            same("a/aa/a", "docker.io/a/aa/a"),
            same("foo.com", "docker.io/library/foo.com"),
            bad("foo.com/", Format),
            same("foo.com:8080/bar", "foo.com:8080/bar"),
            bad("foo.com:http/bar", Format),
            same("foo.com/bar", "foo.com/bar"),
            same("foo.com/bar/baz", "foo.com/bar/baz"),
            same("localhost:8080/bar", "localhost:8080/bar"),
            same("blog.foo.com/bar/baz", "blog.foo.com/bar/baz"),
            bad("a^a", Format),
            bad("asdf$$^/aa", Format),
            same("aa-a/a", "docker.io/aa-a/a"),
            bad(format!("{}a", "a/".repeat(128)), Long),
            bad("a-/a/a/a", Format),
            bad("foo.com/a-/a/a", Format),
            bad("-foo/bar", Format),
            bad("foo/bar-", Format),
            bad("foo-/bar", Format),
            bad("foo/-bar", Format),
            bad("_foo/bar", Format),
            same("foo_bar", "docker.io/library/foo_bar"),
            same("foo_bar.com", "docker.io/library/foo_bar.com"),
            bad("foo_bar.com:8080/app", Format),
            same("foo.com/foo_bar", "foo.com/foo_bar"),
            bad("docker_/docker_", Format),
            same("xn--n3h.com/myimage", "xn--n3h.com/myimage"),
            same("xn--7o8h.com/myimage", "xn--7o8h.com/myimage"),
            same(
                "example.com/xn--7o8h.com/myimage",
                "example.com/xn--7o8h.com/myimage",
            ),
            same(
                "example.com/some_separator__underscore/myimage",
                "example.com/some_separator__underscore/myimage",
            ),
            bad("example.com/__underscore/myimage", Format),
            bad("example.com/..dots/myimage", Format),
            bad("example.com/.dots/myimage", Format),
            bad("example.com/nodouble..dots/myimage", Format),
            bad("docker./docker", Format),
            bad(".docker/docker", Format),
            bad("do..cker/docker", Format),
            bad("do__cker:8080/docker", Format),
            same("do__cker/docker", "docker.io/do__cker/docker"),
            same(
                "registry.io/foo/project--id.module--name.ver---sion--name",
                "registry.io/foo/project--id.module--name.ver---sion--name",
            ),
            folded("Asdf.com/foo/bar", "Asdf.com/foo/bar", "asdf.com/foo/bar"),
            bad("Foo/FarB", Upper),
            // regexp_test.go, TestReferenceRegexp.
            same("registry.com:8080/myapp:tag", "registry.com:8080/myapp:tag"),
            same(
                format!("registry.com:8080/myapp@{BE}"),
                format!("registry.com:8080/myapp@{BE}"),
            ),
            same(
                format!("registry.com:8080/myapp:tag2@{BE}"),
                format!("registry.com:8080/myapp:tag2@{BE}"),
            ),
            bad("registry.com:8080/myapp@sha256:badbadbadbad", Format),
            bad("registry.com:8080/myapp:invalid~tag", Format),
            bad("bad_hostname.com:8080/myapp:tag", Format),
            same(
                format!("localhost:8080@{BE}"),
                format!("docker.io/library/localhost:8080@{BE}"),
            ),
            same(
                format!("localhost:8080/name@{BE}"),
                format!("localhost:8080/name@{BE}"),
            ),
            bad(format!("localhost:http/name@{BE}"), Format),
            same(
                format!("localhost@{BE}"),
                format!("docker.io/library/localhost@{BE}"),
            ),
            bad("registry.com:8080/myapp@bad", Format),
            bad("registry.com:8080/myapp@2bad", Format),
            // regexp_test.go, TestIdentifierRegexp, as whole references.
            bad(DA, Id),
            bad(
                "7EC43B381E5AEFE6E04EFB0B3F0693FF2A4A50652D64AEC573905F2DB5889A1C",
                Upper,
            ),
            same(&DA[..60], format!("docker.io/library/{}", &DA[..60])),
            refused(
                format!("sha256:{DA}"),
                format!("docker.io/library/sha256:{DA}"),
                Id,
            ),
            same(format!("{DA}8482"), format!("docker.io/library/{DA}8482")),
        ]
    }

    /// imagegate's own cases: the attacks found on main, the deliberate differences,
    /// boundaries.
    fn own_cases() -> Vec<Case> {
        use Kind::*;
        let hex64 = "0123456789abcdef".repeat(4);
        vec![
            // Docker Hub by another name.
            folded(
                "INDEX.DOCKER.IO/evil/x:1",
                "INDEX.DOCKER.IO/evil/x:1",
                "docker.io/evil/x:1",
            ),
            folded(
                "Index.Docker.io/evil/x:1",
                "Index.Docker.io/evil/x:1",
                "docker.io/evil/x:1",
            ),
            folded(
                "DOCKER.IO/nginx",
                "DOCKER.IO/nginx",
                "docker.io/library/nginx",
            ),
            folded(
                "docker.io:443/evil/x",
                "docker.io:443/evil/x",
                "docker.io/evil/x",
            ),
            folded(
                "index.docker.io:443/nginx",
                "index.docker.io:443/nginx",
                "docker.io/library/nginx",
            ),
            folded(
                "registry-1.docker.io/library/nginx:1",
                "registry-1.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            folded(
                "Registry-1.Docker.IO/nginx",
                "Registry-1.Docker.IO/nginx",
                "docker.io/library/nginx",
            ),
            same("docker.io:5000/x", "docker.io:5000/x"),
            same("index.docker.io.evil.com/x", "index.docker.io.evil.com/x"),
            // Other hosts in any case.
            folded(
                "Harbor.Example.COM/proj/app",
                "Harbor.Example.COM/proj/app",
                "harbor.example.com/proj/app",
            ),
            folded("LOCALHOST/app", "LOCALHOST/app", "localhost/app"),
            folded("Foo:5000/bar", "Foo:5000/bar", "foo:5000/bar"),
            same("myhost/x", "docker.io/myhost/x"),
            // splitDockerDomain's host that Parse reads as a path: containerd dials it.
            same("foo_bar.com/app", "foo_bar.com/app"),
            // Image IDs and ID prefixes.
            refused("sha256:abcd", "docker.io/library/sha256:abcd", Id),
            refused("sha256:ABCD", "docker.io/library/sha256:ABCD", Id),
            refused(
                format!("sha256:{hex64}"),
                format!("docker.io/library/sha256:{hex64}"),
                Id,
            ),
            refused(
                format!("sha384:{}", "b".repeat(96)),
                format!("docker.io/library/sha384:{}", "b".repeat(96)),
                Id,
            ),
            refused(
                format!("sha512:{}", "c".repeat(128)),
                format!("docker.io/library/sha512:{}", "c".repeat(128)),
                Id,
            ),
            refused(
                format!("blake3:{hex64}"),
                format!("docker.io/library/blake3:{hex64}"),
                Id,
            ),
            refused(
                format!("sha256:abcd@{FF}"),
                format!("docker.io/library/sha256:abcd@{FF}"),
                Id,
            ),
            same("sha256:latest", "docker.io/library/sha256:latest"),
            same("sha256", "docker.io/library/sha256"),
            same("library/sha256:abcd", "docker.io/library/sha256:abcd"),
            same(
                "docker.io/library/sha256:abcd",
                "docker.io/library/sha256:abcd",
            ),
            same("md5:abcd", "docker.io/library/md5:abcd"),
            bad(hex64.clone(), Id),
            same(
                format!("{hex64}:v1"),
                format!("docker.io/library/{hex64}:v1"),
            ),
            // Digests as go-digest v1.0.0 validates them.
            same(
                format!("app@sha384:{}", "b".repeat(96)),
                format!("docker.io/library/app@sha384:{}", "b".repeat(96)),
            ),
            same(
                format!("app@sha512:{}", "a".repeat(128)),
                format!("docker.io/library/app@sha512:{}", "a".repeat(128)),
            ),
            bad(format!("nginx@sha256:{}", "F".repeat(64)), Digest),
            bad(format!("nginx@sha256:{}", "a".repeat(63)), Digest),
            bad(format!("nginx@sha256:{}", "a".repeat(65)), Digest),
            bad(format!("nginx@sha512:{}", "a".repeat(64)), Digest),
            bad(format!("nginx@md5:{}", "a".repeat(32)), Digest),
            bad(format!("nginx@blake3:{hex64}"), Digest),
            bad(format!("nginx@SHA256:{hex64}"), Upper),
            bad(format!("nginx@sha256+b64:{hex64}"), Digest),
            bad("nginx@sha256:abc", Format),
            bad("nginx@", Format),
            bad(format!("nginx@{FF}@{FF}"), Format),
            // IPv6: one spelling per address.
            folded(
                "[2001:DB8::1]:5000/repo",
                "[2001:DB8::1]:5000/repo",
                "[2001:db8::1]:5000/repo",
            ),
            same("[::1]/repo", "[::1]/repo"),
            same("[::]/repo", "[::]/repo"),
            same("[2001:db8::1:0:0:1]/r", "[2001:db8::1:0:0:1]/r"),
            same("[2001:db8:0:1:1:1:1:1]/r", "[2001:db8:0:1:1:1:1:1]/r"),
            refused("[2001:db8:0::1]/repo", "[2001:db8:0::1]/repo", Host),
            refused("[2001:0db8::1]/repo", "[2001:0db8::1]/repo", Host),
            refused("[2001:db8:0:0:1:0:0:1]/r", "[2001:db8:0:0:1:0:0:1]/r", Host),
            refused("[2001:db8::1:1:1:1:1]/r", "[2001:db8::1:1:1:1:1]/r", Host),
            refused("[0:0:0:0:0:0:0:1]/r", "[0:0:0:0:0:0:0:1]/r", Host),
            refused("[1:2:3:4:5:6:7:8:9]/r", "[1:2:3:4:5:6:7:8:9]/r", Host),
            refused("[:]/r", "[:]/r", Host),
            bad("[::1/repo", Format),
            bad("[::1]x/repo", Format),
            // Ports.
            same("host:65535/x", "host:65535/x"),
            refused("host:65536/x", "host:65536/x", Host),
            refused("host:05000/x", "host:05000/x", Host),
            refused("host:0/x", "host:0/x", Host),
            refused(
                format!("host:{}/x", "9".repeat(40)),
                format!("host:{}/x", "9".repeat(40)),
                Host,
            ),
            bad("host.com:port/app", Format),
            // Length, counted on the normalized name: docker.io/library/ is 18 long.
            same(
                "a".repeat(237),
                format!("docker.io/library/{}", "a".repeat(237)),
            ),
            refused(
                "a".repeat(238),
                format!("docker.io/library/{}", "a".repeat(238)),
                Long,
            ),
            same(
                format!("harbor.example.com/{}", "a".repeat(236)),
                format!("harbor.example.com/{}", "a".repeat(236)),
            ),
            refused(
                format!("harbor.example.com/{}", "a".repeat(237)),
                format!("harbor.example.com/{}", "a".repeat(237)),
                Long,
            ),
            // `index.docker.io` becomes `docker.io` before the runtime counts; `INDEX.DOCKER.IO`
            // does not, and older runtimes count its 15 characters.
            same(
                format!("index.docker.io/a/{}", "b".repeat(238)),
                format!("docker.io/a/{}", "b".repeat(238)),
            ),
            refused(
                format!("INDEX.DOCKER.IO/a/{}", "b".repeat(238)),
                format!("INDEX.DOCKER.IO/a/{}", "b".repeat(238)),
                Long,
            ),
            // Tags.
            same(
                format!("app:{}", "a".repeat(128)),
                format!("docker.io/library/app:{}", "a".repeat(128)),
            ),
            bad(format!("app:{}", "a".repeat(129)), Format),
            same("app:_x", "docker.io/library/app:_x"),
            same(
                "app:V1_Release.2-rc",
                "docker.io/library/app:V1_Release.2-rc",
            ),
            bad("nginx:", Format),
            bad("nginx:-tag", Format),
            bad("nginx:.tag", Format),
            bad("nginx:tag:tag", Format),
            // Names.
            bad("Nginx", Upper),
            bad("docker.io/Library/nginx", Upper),
            bad("harbor.example.com/Team/App:v1", Upper),
            bad("Foo_bar/x", Upper),
            same("a_b/c__d/e-f/g.h", "docker.io/a_b/c__d/e-f/g.h"),
            same("foo---bar", "docker.io/library/foo---bar"),
            bad("https://harbor.example.com/app", Format),
            bad("harbor.example.com//app", Format),
            bad("harbor.example.com/app/", Format),
            bad("/app", Format),
            bad("app-", Format),
            bad("a..b", Format),
            bad("a___b", Format),
            bad("app name", Format),
            bad("app\t", Format),
            bad("nginx\n", Format),
            bad("-host.com/app", Format),
            bad("nginx:ü", Format),
            bad("ｎginx", Format),
            bad("nginx\u{0}", Format),
        ]
    }

    fn all_cases() -> Vec<Case> {
        let mut cases = upstream_cases();
        cases.extend(own_cases());
        cases
    }

    /// `registry/repository[:tag][@digest]`, the tag only when written.
    fn written(r: &ImageRef) -> String {
        let mut s = format!("{}/{}", r.registry(), r.repository());
        if let Some(t) = r.tag().filter(|_| !r.is_implicit_latest()) {
            s += &format!(":{t}");
        }
        if let Some(d) = r.digest() {
            s += &format!("@{d}");
        }
        s
    }

    #[test]
    fn policies_see_the_default_https_port_as_no_port() {
        // (input, registry as looked up, name as matched)
        for (input, registry, name) in [
            ("b.gbc.io:443/repo", "b.gbc.io:443", "b.gbc.io/repo"),
            (
                "Harbor.Example.com:443/evil/x:1",
                "harbor.example.com:443",
                "harbor.example.com/evil/x",
            ),
            ("[::1]:443/app", "[::1]:443", "[::1]/app"),
            ("b.gbc.io:8443/repo", "b.gbc.io:8443", "b.gbc.io:8443/repo"),
            ("docker.io:443/evil/x", "docker.io", "docker.io/evil/x"),
        ] {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!((r.registry(), r.name()), (registry, name), "{input}");
        }
    }

    #[test]
    fn parses_like_the_runtime() {
        let cases = all_cases();
        assert!(cases.len() >= 300, "{} cases", cases.len());
        for c in &cases {
            match (ImageRef::parse(&c.input), &c.want) {
                (Ok(r), Ok(want)) => assert_eq!(&written(&r), want, "{:?}", c.input),
                (Err(e), Err(want)) => assert_eq!(kind(&e), *want, "{:?}: {e}", c.input),
                (got, want) => panic!("{:?}: got {got:?}, expected {want:?}", c.input),
            }
        }
    }

    #[test]
    fn upstream_cases_are_all_carried_once() {
        let cases = upstream_cases();
        let mut inputs: Vec<&str> = cases.iter().map(|c| c.input.as_str()).collect();
        inputs.sort_unstable();
        let before = inputs.len();
        inputs.dedup();
        assert_eq!(inputs.len(), before, "a case is listed twice");
        assert!(before >= 250, "{before} upstream cases");
    }

    /// Where imagegate and the runtime disagree, imagegate refuses for one of its
    /// documented reasons, or names the same image with its host folded; it never
    /// accepts what the runtime refuses.
    #[test]
    fn imagegate_fails_closed() {
        for c in all_cases() {
            match (&c.runtime, &c.want) {
                (None, Ok(w)) => {
                    panic!("{:?}: the runtime refuses it, imagegate reads {w}", c.input)
                }
                (None, Err(_)) => {}
                (Some(_), Err(k)) => assert!(
                    [Kind::Id, Kind::Host, Kind::Long].contains(k),
                    "{:?}: refused as {k:?}, which the runtime accepts",
                    c.input
                ),
                (Some(runtime), Ok(w)) => {
                    let (host, rest) = runtime
                        .split_once('/')
                        .expect("a normalized name has a host");
                    let host = normalize_host(host).expect("a valid host");
                    let name_part = rest.split([':', '@']).next().unwrap_or_default();
                    let folded = if host == DOCKER_HUB && !name_part.contains('/') {
                        format!("{host}/library/{rest}")
                    } else {
                        format!("{host}/{rest}")
                    };
                    assert_eq!(w, &folded, "{:?}: not the runtime's {runtime}", c.input);
                }
            }
        }
    }

    /// Regression (tests/fuzz.rs): `Foo/bar` was host `foo`, written out as
    /// `foo/bar`, which is Docker Hub's; the inspector resolved that form. Every
    /// accepted reference now writes out as one that names the same image.
    #[test]
    fn every_accepted_reference_writes_out_as_itself() {
        for c in all_cases() {
            let Ok(r) = ImageRef::parse(&c.input) else {
                continue;
            };
            let again = ImageRef::parse(&r.to_string())
                .unwrap_or_else(|e| panic!("{:?} -> {r}: {e}", c.input));
            assert_eq!(
                (again.registry(), again.name(), again.tag(), again.digest()),
                (r.registry(), r.name(), r.tag(), r.digest()),
                "{:?}",
                c.input
            );
        }
        for input in ["Foo/bar", "FOO/bar:v1", "Registry/team/app:v1"] {
            let e = ImageRef::parse(input).unwrap_err();
            assert!(matches!(e, ReferenceError::Host(_)), "{input:?}: {e:?}");
            assert!(!e.runtime_refuses(), "{input:?}");
        }
        let e = ImageRef::parse("MyOrg/app:v1").unwrap_err().to_string();
        assert!(
            e.contains("write `docker.io/myorg/app:v1`") && e.contains("`myorg:5000/...`"),
            "{e}"
        );
        for ok in ["LOCALHOST/app", "Foo.example.com/app", "Foo:5000/app"] {
            let r = ImageRef::parse(ok).unwrap();
            assert_eq!(ImageRef::parse(&r.to_string()).unwrap().name(), r.name());
        }
    }

    /// Regression (tests/fuzz.rs): a name too long for older runtimes only, with an
    /// invalid digest, was refused as too long (a deliberate refusal, "the runtime
    /// accepts it"), though every runtime refuses the digest.
    #[test]
    fn an_invalid_digest_is_named_before_a_length_only_older_runtimes_refuse() {
        let long = format!("a/{}", "b".repeat(250));
        let upper = format!("{long}@sha256:{}", "A".repeat(64));
        let e = ImageRef::parse(&upper).unwrap_err();
        assert!(matches!(e, ReferenceError::Digest(_)), "{e:?}");
        assert!(e.runtime_refuses());
        let valid = format!("{long}@sha256:{}", "a".repeat(64));
        let e = ImageRef::parse(&valid).unwrap_err();
        assert!(matches!(e, ReferenceError::TooLong { .. }), "{e:?}");
        assert!(!e.runtime_refuses());
    }

    #[test]
    fn the_cache_answers_like_the_parser() {
        for c in all_cases() {
            let direct = ImageRef::parse(&c.input);
            for _ in 0..2 {
                let cached = ImageRef::parse_cached(&c.input).map(|r| (*r).clone());
                assert_eq!(cached, direct, "{:?}", c.input);
            }
        }
    }

    #[test]
    fn accessors_and_display_show_the_normalized_form() {
        // (input, registry, repository, tag, digest, implicit latest, Display)
        let d = format!("sha256:{}", "e3".repeat(32));
        type Row<'a> = (
            String,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            bool,
            String,
        );
        let table: Vec<Row> = vec![
            (
                "nginx".into(),
                "docker.io",
                "library/nginx",
                Some("latest"),
                None,
                true,
                "docker.io/library/nginx:latest".into(),
            ),
            (
                "nginx:latest".into(),
                "docker.io",
                "library/nginx",
                Some("latest"),
                None,
                false,
                "docker.io/library/nginx:latest".into(),
            ),
            (
                "INDEX.docker.io/x/y:1".into(),
                "docker.io",
                "x/y",
                Some("1"),
                None,
                false,
                "docker.io/x/y:1".into(),
            ),
            (
                "localhost:5000/a:b".into(),
                "localhost:5000",
                "a",
                Some("b"),
                None,
                false,
                "localhost:5000/a:b".into(),
            ),
            (
                format!("app@{d}"),
                "docker.io",
                "library/app",
                None,
                Some(d.as_str()),
                false,
                format!("docker.io/library/app@{d}"),
            ),
            (
                format!("Ghcr.IO/o/r:v@{d}"),
                "ghcr.io",
                "o/r",
                Some("v"),
                Some(d.as_str()),
                false,
                format!("ghcr.io/o/r:v@{d}"),
            ),
            (
                "[2001:DB8::1]:5000/r".into(),
                "[2001:db8::1]:5000",
                "r",
                Some("latest"),
                None,
                true,
                "[2001:db8::1]:5000/r:latest".into(),
            ),
        ];
        for (input, registry, repository, tag, digest, implicit, shown) in table {
            let r = ImageRef::parse(&input).unwrap();
            assert_eq!(r.registry(), registry, "{input}");
            assert_eq!(r.repository(), repository, "{input}");
            assert_eq!(r.name(), format!("{registry}/{repository}"), "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest(), digest, "{input}");
            assert_eq!(r.is_implicit_latest(), implicit, "{input}");
            assert_eq!(r.to_string(), shown, "{input}");
            assert_eq!(
                ImageRef::parse(&shown).unwrap().to_string(),
                shown,
                "{shown} again"
            );
        }
    }

    #[test]
    fn messages_say_what_to_write() {
        let table: &[(&str, &[&str])] = &[
            (
                "harbor.example.com/Team/App:v1",
                &[
                    "must be lowercase",
                    "`harbor.example.com/team/app:v1` would be valid",
                ],
            ),
            ("Nginx", &["must be lowercase", "`nginx` would be valid"]),
            ("nginx@SHA256:0123", &["must be lowercase"]),
            (
                "sha256:abcd",
                &["image ID", "registry/repository@sha256:<digest>"],
            ),
            (ID, &["image ID", "cached"]),
            (
                "https://harbor.example.com/app",
                &["no scheme", "write `harbor.example.com/app`"],
            ),
            ("nginx:-x", &["the tag `-x` is not valid"]),
            ("nginx@sha256:abc", &["is not a digest"]),
            ("[2001:db8:0::1]/r", &["canonical form, `[2001:db8::1]`"]),
            ("[fd00123]:5000/r", &["`[fd00123]` is not an IPv6 address"]),
            ("host:05000/x", &["leading zero: write `5000`"]),
            ("host:70000/x", &["out of range"]),
            (
                "ab..c",
                &["invalid reference format", "lowercase letters and digits"],
            ),
        ];
        for (input, fragments) in table {
            let msg = ImageRef::parse(input).unwrap_err().to_string();
            for f in *fragments {
                assert!(msg.contains(f), "{input:?}: {msg:?} lacks {f:?}");
            }
        }
        let too_long = ImageRef::parse(&"a".repeat(238)).unwrap_err().to_string();
        assert!(too_long.contains("256 characters long"), "{too_long}");
        let d = format!("nginx@sha256:{}", "A".repeat(64));
        let msg = ImageRef::parse(&d).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("write `sha256:{}`", "a".repeat(64))),
            "{msg}"
        );
        let msg = ImageRef::parse(&format!("nginx@sha256:{}", "a".repeat(63)))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("digest length: 63 hex digits where 64"),
            "{msg}"
        );
        let msg = ImageRef::parse(&format!("nginx@md5:{}", "a".repeat(32)))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unsupported digest algorithm `md5`"), "{msg}");
    }

    #[test]
    fn which_refusals_the_runtime_shares() {
        // (input, the runtime refuses it too)
        let table = [
            ("Nginx", true),
            ("nginx:-x", true),
            (ID, true),
            ("sha256:abcd", false),
            ("host:05000/x", false),
            (&*"a".repeat(238), false),
            (&*"a".repeat(248), true),
        ];
        for (input, runtime) in table {
            let e = ImageRef::parse(input).unwrap_err();
            assert_eq!(e.runtime_refuses(), runtime, "{input:?}: {e}");
        }
    }

    /// Hostile sizes: every shape answers (an error), never panics, and the work is
    /// one pass (a quadratic parser would take minutes on these).
    #[test]
    fn huge_inputs_are_refused_in_one_pass() {
        let n = 1 << 18;
        for input in [
            "a".repeat(n),
            "a/".repeat(n),
            ":".repeat(n),
            "@".repeat(n),
            "[".repeat(n),
            format!("[{}]/x", ":".repeat(n)),
            format!("host:{}/x", "9".repeat(n)),
            format!("x@sha256:{}", "a".repeat(n)),
            format!("x@{}:{}", "a-".repeat(n), "0".repeat(64)),
            format!("x:{}", "a".repeat(n)),
            format!("{}/x", "A".repeat(n)),
            "a-".repeat(n) + "a",
            format!("sha256:{}", "a".repeat(n)),
        ] {
            assert!(ImageRef::parse(&input).is_err(), "{}...", &input[..20]);
            assert!(ImageRef::parse_cached(&input).is_err());
        }
    }

    /// Inputs assembled from grammar fragments by a seeded generator: every one gets
    /// an answer without panicking, the cache agrees, and whatever is accepted is
    /// normalized (lowercase registry, at most 255 characters, never an image ID) and
    /// written out again as a reference naming the same image.
    #[test]
    fn generated_inputs_keep_the_invariants() {
        const PIECES: &[&str] = &[
            "a",
            "z",
            "0",
            "9",
            "A",
            "Z",
            ".",
            "_",
            "__",
            "-",
            ":",
            "/",
            "/",
            "@",
            "[",
            "]",
            "::1",
            "sha256:",
            "sha256",
            "blake3:",
            "docker.io",
            "INDEX.DOCKER.IO",
            "localhost",
            ":5000",
            ":443",
            ":05000",
            "library/",
            "ex.com",
            "Foo",
            "ffffffffffffffffffffffffffffffff",
            "@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ":v1",
            " ",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = 1 + next(8);
            let input: String = (0..len).map(|_| PIECES[next(PIECES.len())]).collect();
            let parsed = ImageRef::parse(&input);
            assert_eq!(
                ImageRef::parse_cached(&input).map(|r| (*r).clone()),
                parsed,
                "{input:?}"
            );
            let Ok(r) = parsed else { continue };
            accepted += 1;
            assert_eq!(r.registry(), r.registry().to_ascii_lowercase(), "{input:?}");
            assert!(r.name().len() <= NAME_TOTAL_LENGTH_MAX, "{input:?}");
            let id_name = IMAGE_ID_ALGORITHMS
                .iter()
                .any(|a| r.repository() == format!("library/{a}"));
            let hex_tag = r
                .tag()
                .is_some_and(|t| t.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(input.contains('/') || !(id_name && hex_tag), "{input:?}");
            // Every normalized form names the same image again.
            let again =
                ImageRef::parse(&r.to_string()).unwrap_or_else(|e| panic!("{input:?} -> {r}: {e}"));
            assert_eq!(
                (again.name(), again.tag(), again.digest()),
                (r.name(), r.tag(), r.digest()),
                "{input:?}"
            );
        }
        assert!(
            accepted > 500,
            "the generator should reach valid references: {accepted}"
        );
    }

    #[test]
    fn ipv6_canonical_form_follows_rfc_5952() {
        for (written, canonical) in [
            ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("0:0:0:0:0:0:0:0", "::"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("1:0:0:0:0:0:0:0", "1::"),
            ("FE80:0:0:0:ABCD:0:0:0", "fe80::abcd:0:0:0"),
        ] {
            assert_eq!(
                ipv6_canonical(written.parse().unwrap()),
                canonical,
                "{written}"
            );
        }
    }

    #[test]
    fn hosts_normalize_for_config_and_patterns() {
        for (written, want) in [
            ("Harbor.Example.com", Ok("harbor.example.com")),
            ("harbor.example.com:8443", Ok("harbor.example.com:8443")),
            ("INDEX.DOCKER.IO", Ok("docker.io")),
            ("registry-1.docker.io:443", Ok("docker.io")),
            ("docker.io:8443", Ok("docker.io:8443")),
            ("[::1]:5000", Ok("[::1]:5000")),
            ("[0::1]", Err(())),
            ("host:0x50", Err(())),
            ("[::1", Err(())),
            ("[::1]5000", Err(())),
        ] {
            let got = normalize_host(written).map_err(|_| ());
            assert_eq!(got.as_deref().map_err(|_| ()), want, "{written}");
        }
    }
}
