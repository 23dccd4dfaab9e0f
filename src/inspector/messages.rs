//! What a user reads when a lookup fails: what happened, what was tried, the fix.

use std::time::Duration;

use super::Credentials;
use crate::credentials::Credential;
use crate::engine::LookupFailure;
use crate::reference::ImageRef;
use crate::registry::{FailureKind, RegistryError};

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
            "TLS handshake with {registry} failed ({}); if the registry serves plain HTTP, list it in imagegate's registry configuration with insecure: true",
            e.detail
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
            "429 toomanyrequests: {registry} is rate-limiting pulls ({}); pull with credentials (an imagePullSecret; authenticated pulls have higher limits) or through a mirror or pull-through cache",
            e.detail
        ),
        FailureKind::Server(code) => {
            format!("{registry} answered HTTP {code} for {what} ({})", e.detail)
        }
        FailureKind::KubernetesApi | FailureKind::Other => {
            format!("looking up {what} at {registry} failed: {}", e.detail)
        }
    };
    LookupFailure::new(e.kind.clone(), message)
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
        let list: Vec<String> = tried
            .iter()
            .map(|c| match c.is_anonymous() {
                true => format!("anonymous access ({})", c.describe()),
                false => format!("the credentials of {}", c.describe()),
            })
            .collect();
        let fix = if tried.iter().all(Credential::is_anonymous) {
            format!(
                "an empty auths entry means anonymous access (as for the container runtime): put the user and password or token for {registry} in that secret"
            )
        } else {
            "check the user and password or token in that secret and that it may pull this repository".to_string()
        };
        format!(
            "unauthorized: {registry} refused {}; {fix}",
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
