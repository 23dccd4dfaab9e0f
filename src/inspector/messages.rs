//! What a person reads when a registry lookup fails: what happened, its likely
//! cause, and the fix.
//!
//! One implementation for two readers: the webhook's denials (the application team,
//! in `kubectl apply` output) and `imagegate doctor` (the operator at a terminal).
//! Both classify the failure the same way ([`crate::registry::RegistryError`]) and
//! call [`explain`]; only the fix differs where the reader can act differently
//! ([`Audience`]): the team adds a pull secret to the pod, the operator also passes
//! `--ca` or `--pull-secret` to doctor and configures the nodes.

use std::time::Duration;

use crate::credentials::Credential;
use crate::engine::LookupFailure;
use crate::reference::ImageRef;
use crate::registry::{DETAIL_CHARS, FailureKind, RegistryError, sanitize};

/// Who reads the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A denial of the webhook, read in `kubectl apply` output.
    Webhook,
    /// `imagegate doctor`, run by an operator.
    Doctor,
}

/// The credentials that were in play, for `unauthorized`.
#[derive(Debug, Clone, Default)]
pub struct CredentialContext<'a> {
    /// The credentials the registry refused, in the order tried (empty: anonymous).
    pub tried: &'a [Credential],
    /// Every (source, `auths` key) that was available, matching or not.
    pub keys: Vec<(String, String)>,
    /// What went wrong finding credentials (a missing Secret, ...).
    pub notes: &'a [String],
}

/// A failure explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub kind: FailureKind,
    /// The error as the runtime and the registry name it: `manifest unknown`,
    /// `unauthorized`, `x509: certificate signed by unknown authority`, ...
    pub headline: String,
    /// What happened and the likely cause.
    pub cause: String,
    /// What to do.
    pub fix: String,
    /// Side notes (a pull secret that does not exist, ...).
    pub notes: Vec<String>,
}

impl Explanation {
    /// One line: `headline: cause; fix` and the notes.
    pub fn message(&self) -> String {
        let mut msg = format!("{}: {}; {}", self.headline, self.cause, self.fix);
        for note in &self.notes {
            msg.push_str("; note: ");
            msg.push_str(note);
        }
        msg
    }
}

/// Explains a failed request about `image`.
pub fn explain(
    image: &ImageRef,
    e: &RegistryError,
    credentials: &CredentialContext<'_>,
    audience: Audience,
) -> Explanation {
    let registry = image.registry();
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    let what = match (image.tag(), image.digest()) {
        (_, Some(digest)) => format!("{}@{digest}", image.name()),
        (Some(tag), None) => format!("{}:{tag}", image.name()),
        (None, None) => image.name().to_string(),
    };
    let doctor = audience == Audience::Doctor;
    // Registry text is sanitized where it is read; once more here, so that no
    // path can bring a raw body into a denial.
    let detail = sanitize(&e.detail, 2 * DETAIL_CHARS);
    let (headline, cause, fix): (&str, String, String) = match &e.kind {
        FailureKind::ManifestUnknown => (
            "manifest unknown",
            format!("{registry} has no {what}"),
            if image.digest().is_some() {
                "a digest exists only in the repository it was pushed to: check that this digest was pushed to this repository and not deleted since, or use the tag it was built as (the pod would end in ImagePullBackOff)".to_string()
            } else {
                "check the image name and tag for typos and that the tag was pushed (the pod would end in ImagePullBackOff)".to_string()
            },
        ),
        FailureKind::Unauthorized => {
            let (cause, fix) = unauthorized(registry, credentials, audience);
            ("unauthorized", cause, fix)
        }
        FailureKind::TlsUnknownAuthority => (
            "x509: certificate signed by unknown authority",
            format!(
                "the TLS certificate of {registry} is not signed by a CA {} trusts",
                if doctor {
                    "this machine (or --ca)"
                } else {
                    "imagegate"
                }
            ),
            if doctor {
                format!(
                    "pass the registry's CA with --ca FILE to check with it; for pulls, install it on every node (containerd: /etc/containerd/certs.d/{registry}/ca.crt; Docker: /etc/docker/certs.d/{registry}/ca.crt) and in imagegate's registry configuration (registries[].caFile)"
                )
            } else {
                "add the registry's CA to imagegate's registry configuration (registries[].caFile) and to the nodes' container runtime, or their pulls fail the same way".to_string()
            },
        ),
        FailureKind::TlsWrongName => (
            "TLS",
            format!(
                "the certificate of {registry} is not valid for \"{host}\" (a registry reached by IP address needs that IP in the certificate's subject alternative names)"
            ),
            "reissue the certificate with that name or IP, or reach the registry by a name the certificate has".to_string(),
        ),
        FailureKind::Tls => (
            "TLS handshake failed",
            format!("the TLS handshake with {registry} failed ({})", detail),
            if doctor {
                "if the registry serves plain HTTP, run doctor with --insecure, and configure the nodes' runtime for a plain-HTTP registry (containerd: a hosts.toml for it) and imagegate's registry configuration (registries[].insecure: true)".to_string()
            } else {
                "if the registry serves plain HTTP, list it in imagegate's registry configuration with insecure: true".to_string()
            },
        ),
        FailureKind::ConnectionRefused => (
            "connection refused",
            format!("nothing answers at {registry}"),
            "check the registry host and port and that the registry is running".to_string(),
        ),
        FailureKind::Dns => (
            "DNS",
            format!("the registry host \"{host}\" does not resolve"),
            "check the registry name".to_string(),
        ),
        FailureKind::Timeout => (
            "timeout",
            format!("{registry} did not answer in time"),
            "check that the registry is up and reachable from here (a firewall that drops packets, a proxy, a wrong address)".to_string(),
        ),
        FailureKind::RateLimited => (
            "429 toomanyrequests",
            format!("{registry} is rate-limiting pulls ({})", detail),
            "pull with credentials (an imagePullSecret; authenticated pulls have higher limits) or through a mirror or pull-through cache".to_string(),
        ),
        FailureKind::Server(code) => (
            "registry error",
            format!("{registry} answered HTTP {code} for {what} ({})", detail),
            "the registry is failing: check its health and logs, and try again".to_string(),
        ),
        FailureKind::TooLarge => (
            "too large",
            format!("{detail} for {what}"),
            "imagegate refuses oversized answers, and so should the registry (a manifest is at most 4 MiB); check the registry or the proxy in front of it".to_string(),
        ),
        FailureKind::NotAManifest => (
            "not a manifest",
            format!("{registry} did not answer for {what} with an image manifest or index ({detail})"),
            "check the registry URL and any proxy, login page or captive portal in front of it".to_string(),
        ),
        FailureKind::DigestMismatch => (
            "digest mismatch",
            detail.clone(),
            "the registry or a proxy altered the content, and the node's pull would fail its verification the same way: check the registry and any proxy in front of it".to_string(),
        ),
        FailureKind::AddressRefused => (
            "address refused",
            format!("looking up {what} would connect to an address imagegate does not reach ({detail})"),
            format!("if {registry} is a real registry there, list it in imagegate's registry configuration (registries[]) or allow its network (allowNetworks)"),
        ),
        FailureKind::NodeLocal => (
            "node-local registry",
            format!("{registry} is each node's own loopback, where the kubelet pulls from a registry running on the node; imagegate runs in its own pod and cannot see that registry, so it cannot check {what}"),
            format!("push the image to a registry reachable from the cluster, or list {registry} in imagegate's registry configuration (registries[]) if imagegate runs beside it"),
        ),
        FailureKind::UnusableAnswer => (
            "unusable answer",
            format!("the answer of {registry} could not be used ({detail})"),
            format!("this is a fault of the registry or its token server, not of the pod: ask whoever runs {registry} to fix it"),
        ),
        FailureKind::KubernetesApi | FailureKind::Other => (
            "lookup failed",
            format!("looking up {what} at {registry} failed: {}", detail),
            "check the registry's address and that it speaks the OCI distribution API".to_string(),
        ),
    };
    Explanation {
        kind: e.kind.clone(),
        headline: headline.to_string(),
        cause,
        fix,
        notes: credentials.notes.to_vec(),
    }
}

/// The webhook's message for a failed lookup of `image`.
pub(super) fn failure(
    image: &ImageRef,
    e: &RegistryError,
    credentials: &CredentialContext<'_>,
) -> LookupFailure {
    LookupFailure::new(
        e.kind.clone(),
        explain(image, e, credentials, Audience::Webhook).message(),
    )
}

fn unauthorized(
    registry: &str,
    credentials: &CredentialContext<'_>,
    audience: Audience,
) -> (String, String) {
    if credentials.tried.is_empty() {
        let seen = if credentials.keys.is_empty() {
            match audience {
                Audience::Webhook => "the pod has no pull secret".to_string(),
                Audience::Doctor => "no --pull-secret was given".to_string(),
            }
        } else {
            let list: Vec<String> = credentials
                .keys
                .iter()
                .map(|(source, key)| format!("\"{key}\" in {source}"))
                .collect();
            format!("auths keys seen: {}", list.join(", "))
        };
        let cause = format!(
            "{registry} refused anonymous access, and no pull secret has an auths key matching {registry} ({seen})"
        );
        let fix = match audience {
            Audience::Webhook => format!(
                "add a kubernetes.io/dockerconfigjson imagePullSecret for {registry} to the pod or its ServiceAccount"
            ),
            Audience::Doctor => format!(
                "pass the pod's pull secret (--namespace NS --pull-secret NAME, or --pull-secret FILE with a docker config.json) with an auths entry for {registry}; the pod needs it in spec.imagePullSecrets or its ServiceAccount's"
            ),
        };
        (cause, fix)
    } else {
        let list: Vec<String> = credentials
            .tried
            .iter()
            .map(|c| match c.is_anonymous() {
                true => format!("anonymous access ({})", c.describe()),
                false => format!("the credentials of {}", c.describe()),
            })
            .collect();
        let fix = if credentials.tried.iter().all(Credential::is_anonymous) {
            format!(
                "an empty auths entry means anonymous access (as for the container runtime): put the user and password or token for {registry} in that secret"
            )
        } else {
            "check the user and password or token in that secret and that it may pull this repository".to_string()
        };
        (format!("{registry} refused {}", list.join(", then ")), fix)
    }
}

/// The message for a lookup still running when the admission deadline passed.
/// `api_time`: how much of the deadline reading pull secrets from the Kubernetes API
/// took before the registry was asked.
pub(super) fn late(
    written: &str,
    platforms: bool,
    deadline: Duration,
    api_time: Duration,
) -> LookupFailure {
    let lookup = if platforms {
        "its digest and platforms"
    } else {
        "its digest"
    };
    let mut message = format!(
        "timeout: the registry lookup of \"{written}\" ({lookup}) did not finish within the admission deadline of {:.1} s",
        deadline.as_secs_f64()
    );
    if api_time * 2 >= deadline {
        message.push_str(&format!(
            "; reading the pull secrets from the Kubernetes API server took {:.1} s of it, so the API server is slow, and the registry may be too",
            api_time.as_secs_f64()
        ));
    } else {
        message.push_str("; the registry is slow or unreachable");
    }
    LookupFailure::new(FailureKind::Timeout, message)
}

/// The message for an image the registry was never asked about, because reading the
/// pull secrets from the Kubernetes API server (`reads`, still in flight) took the
/// whole deadline.
pub(super) fn kubernetes_late(
    written: &str,
    reads: &[String],
    deadline: Duration,
) -> LookupFailure {
    let what = if reads.is_empty() {
        "the pull secrets".to_string()
    } else {
        reads.join(", ")
    };
    LookupFailure::new(
        FailureKind::KubernetesApi,
        format!(
            "timeout: reading {what} from the Kubernetes API server took the whole admission deadline of {:.1} s, so the registry was not asked about \"{written}\"; the API server is slow or unreachable from imagegate (check its health and imagegate's network access to it)",
            deadline.as_secs_f64()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(tried: &[Credential]) -> CredentialContext<'_> {
        CredentialContext {
            tried,
            keys: Vec::new(),
            notes: &[],
        }
    }

    /// Every class has a headline, a cause and a fix, for both readers; the
    /// webhook's message is `headline: cause; fix`.
    #[test]
    fn every_class_is_explained_for_both_readers() {
        let image = ImageRef::parse("harbor.example.com:8443/team/app:v1").unwrap();
        let kinds = [
            FailureKind::ManifestUnknown,
            FailureKind::Unauthorized,
            FailureKind::TlsUnknownAuthority,
            FailureKind::TlsWrongName,
            FailureKind::Tls,
            FailureKind::ConnectionRefused,
            FailureKind::Dns,
            FailureKind::Timeout,
            FailureKind::RateLimited,
            FailureKind::Server(503),
            FailureKind::Other,
        ];
        for kind in kinds {
            let e = RegistryError::new(kind.clone(), "detail");
            for audience in [Audience::Webhook, Audience::Doctor] {
                let x = explain(&image, &e, &creds(&[]), audience);
                assert!(
                    !x.headline.is_empty() && !x.cause.is_empty() && !x.fix.is_empty(),
                    "{kind:?} {audience:?}: {x:?}"
                );
                assert_eq!(
                    x.message(),
                    format!("{}: {}; {}", x.headline, x.cause, x.fix)
                );
            }
        }
        // Where the reader can act differently, the fix differs.
        let e = RegistryError::new(FailureKind::TlsUnknownAuthority, "");
        let doctor = explain(&image, &e, &creds(&[]), Audience::Doctor);
        assert!(
            doctor
                .fix
                .starts_with("pass the registry's CA with --ca FILE"),
            "{doctor:?}"
        );
        assert!(
            doctor
                .fix
                .contains("/etc/containerd/certs.d/harbor.example.com:8443/ca.crt")
        );
        let webhook = explain(&image, &e, &creds(&[]), Audience::Webhook);
        assert!(
            webhook
                .fix
                .starts_with("add the registry's CA to imagegate's registry configuration")
        );
        // A digest that is not there is not a typo in a tag.
        let digest = format!("harbor.example.com/app@sha256:{}", "a".repeat(64));
        let e = RegistryError::new(FailureKind::ManifestUnknown, "");
        let x = explain(
            &ImageRef::parse(&digest).unwrap(),
            &e,
            &creds(&[]),
            Audience::Webhook,
        );
        assert!(
            x.fix
                .starts_with("a digest exists only in the repository it was pushed to"),
            "{x:?}"
        );
    }
}
