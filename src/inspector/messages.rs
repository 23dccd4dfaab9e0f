//! What a user reads when a lookup fails: what happened, what was tried, the fix.

use std::time::Duration;

use super::Credentials;
use crate::credentials::Credential;
use crate::engine::LookupFailure;
use crate::reference::ImageRef;
use crate::registry::{DETAIL_CHARS, FailureKind, RegistryError, sanitize};

/// The message for a failed lookup of `image`. `tried` lists the credentials the
/// registry refused (empty: anonymous).
pub(super) fn failure(
    image: &ImageRef,
    e: &RegistryError,
    tried: &[Credential],
    credentials: &Credentials,
) -> LookupFailure {
    let registry = image.registry();
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    let what = match (image.tag(), image.digest()) {
        (_, Some(digest)) => format!("{}@{digest}", image.name()),
        (Some(tag), None) => format!("{}:{tag}", image.name()),
        (None, None) => image.name().to_string(),
    };
    // Registry text is sanitized where it is read; once more here, so that no
    // path can bring a raw body into a denial.
    let detail = sanitize(&e.detail, 2 * DETAIL_CHARS);
    let message = match &e.kind {
        FailureKind::ManifestUnknown => format!(
            "manifest unknown: {registry} has no {what}; check the image name and tag for typos and that the tag was pushed (the pod would end in ImagePullBackOff)"
        ),
        FailureKind::Unauthorized => unauthorized(registry, tried, credentials),
        FailureKind::TlsUnknownAuthority => format!(
            "x509: certificate signed by unknown authority: the TLS certificate of {registry} is not signed by a CA imagegate trusts; add the registry's CA to imagegate's registry configuration (registries[].caFile) and to the nodes' container runtime, or their pulls fail the same way"
        ),
        FailureKind::TlsWrongName => format!(
            "TLS: the certificate of {registry} is not valid for \"{host}\" (a registry reached by IP address needs that IP in the certificate's subject alternative names); reissue the certificate with that name or IP, or reach the registry by a name the certificate has"
        ),
        FailureKind::Tls => format!(
            "TLS handshake with {registry} failed ({detail}); if the registry serves plain HTTP, list it in imagegate's registry configuration with insecure: true"
        ),
        FailureKind::ConnectionRefused => {
            format!(
                "connection refused: nothing answers at {registry}; check the registry host and port and that the registry is running"
            )
        }
        FailureKind::Dns => {
            format!("DNS: the registry host \"{host}\" does not resolve; check the registry name")
        }
        FailureKind::Timeout => format!("timeout: {registry} did not answer in time"),
        FailureKind::RateLimited => format!(
            "429 toomanyrequests: {registry} is rate-limiting pulls ({detail}); pull with credentials (an imagePullSecret; authenticated pulls have higher limits) or through a mirror or pull-through cache"
        ),
        FailureKind::Server(code) => {
            format!("{registry} answered HTTP {code} for {what} ({detail})")
        }
        FailureKind::TooLarge => format!(
            "too large: {detail} for {what}; imagegate refuses oversized answers, and so should the registry (a manifest is at most 4 MiB); check the registry or the proxy in front of it"
        ),
        FailureKind::NotAManifest => format!(
            "not a manifest: {registry} did not answer for {what} with an image manifest or index ({detail}); check the registry URL and any proxy, login page or captive portal in front of it"
        ),
        FailureKind::DigestMismatch => format!(
            "digest mismatch: {detail}; the registry or a proxy altered the content, and the node's pull would fail its verification the same way"
        ),
        FailureKind::AddressRefused => format!(
            "address refused: looking up {what} would connect to an address imagegate does not reach ({detail}); if {registry} is a real registry there, list it in imagegate's registry configuration (registries[]) or allow its network (allowNetworks)"
        ),
        FailureKind::NodeLocal => format!(
            "node-local registry: {registry} is each node's own loopback, where the kubelet pulls from a registry running on the node; imagegate runs in its own pod and cannot see that registry, so it cannot check {what}; push the image to a registry reachable from the cluster, or list {registry} in imagegate's registry configuration (registries[]) if imagegate runs beside it"
        ),
        FailureKind::UnusableAnswer => format!(
            "the answer of {registry} could not be used ({detail}); this is a fault of the registry or its token server, not of the pod: ask whoever runs {registry} to fix it"
        ),
        FailureKind::Other => format!("looking up {what} at {registry} failed: {detail}"),
    };
    LookupFailure {
        kind: e.kind.clone(),
        message,
    }
}

fn unauthorized(registry: &str, tried: &[Credential], credentials: &Credentials) -> String {
    let mut msg = if tried.is_empty() {
        let keys = credentials.keyring.keys();
        let seen = if keys.is_empty() {
            "the pod has no pull secret".to_string()
        } else {
            let list: Vec<String> = keys
                .iter()
                .map(|(source, key)| format!("\"{key}\" in {source}"))
                .collect();
            format!("auths keys seen: {}", list.join(", "))
        };
        format!(
            "unauthorized: {registry} refused anonymous access, and no pull secret has an auths key matching {registry} ({seen}); add a kubernetes.io/dockerconfigjson imagePullSecret for {registry} to the pod or its ServiceAccount"
        )
    } else {
        let list: Vec<String> = tried.iter().map(Credential::describe).collect();
        format!(
            "unauthorized: {registry} refused the credentials of {}; check the user and password or token in that secret and that it may pull this repository",
            list.join(", then ")
        )
    };
    for note in &credentials.notes {
        msg.push_str("; note: ");
        msg.push_str(note);
    }
    msg
}

/// The message for a lookup still running when the admission deadline passed.
pub(super) fn late(written: &str, platforms: bool, deadline: Duration) -> LookupFailure {
    let lookup = if platforms {
        "its digest and platforms"
    } else {
        "its digest"
    };
    LookupFailure {
        kind: FailureKind::Timeout,
        message: format!(
            "timeout: the registry lookup of \"{written}\" ({lookup}) did not finish within the admission deadline of {:.1} s; the registry is slow or unreachable",
            deadline.as_secs_f64()
        ),
    }
}
