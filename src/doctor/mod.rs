//! `imagegate doctor IMAGE`: the checks an experienced engineer runs by hand when a
//! pod is stuck pulling, in order, each with its result and, where it fails, the
//! likely cause and the fix:
//!
//! reference (parsed and normalized as the runtime does) -> DNS -> TCP connect ->
//! TLS (the chain to `--ca` or the system roots, the names and address in the
//! certificate) -> `GET /v2/` and its auth challenge -> which credential matches
//! which `auths` key -> manifest HEAD (the digest, tag against digest) -> manifest
//! GET (the platforms) -> the platforms against `--arch` or the cluster's Nodes ->
//! a cosign signature -> the registry's rate-limit headers.
//!
//! One implementation with the webhook: failures are classified by
//! [`crate::registry::RegistryError`] (and its `classify_tls` / `classify_io` for
//! the steps below any registry client) and explained by
//! [`crate::inspector::messages::explain`], the function that writes the webhook's
//! denials; a pull secret's problems are the ones `requirePullSecret` names
//! ([`crate::engine::pull_secret_problem`]). Only the fix is worded for the
//! operator.
//!
//! Time: every network step has its own timeout (`step_timeout`, 3 s by default)
//! and the whole run a deadline (10 s), so a host that does not answer ends the run
//! within it. A step that depends on a failed one is skipped, saying which.
//!
//! The registry steps go through the [`RegistryClient`] the webhook uses (built at
//! the edge, in `cli::doctor`). `GET /v2/` and the rate-limit HEAD need the HTTP
//! status and headers, which that client does not expose: they are plain reqwest
//! requests, anonymous, without redirects.

pub mod render;
mod tls;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::{Cluster, PullSecret};
use crate::credentials::{Credential, DockerConfig, Keyring};
use crate::engine::{ManifestFacts, SecretFacts, pull_secret_problem};
use crate::inspector::messages::{Audience, CredentialContext, explain};
use crate::reference::ImageRef;
use crate::registry::{self, FailureKind, RegistryClient, RegistryError};

/// The default timeout of each network step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(3);
/// The default deadline of the whole run.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Where a pull secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// A docker config file, already read (`--pull-secret FILE`).
    File { path: String, config: DockerConfig },
    /// A Secret in the namespace (`--pull-secret NAME`), read through the cluster.
    Secret(String),
    /// The pull secrets of this ServiceAccount (`--namespace` without
    /// `--pull-secret`: a pod that names none gets its ServiceAccount's).
    ServiceAccount(String),
}

/// What to check, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub image: String,
    /// `--ca`: (the file as given, its PEM).
    pub ca: Option<(String, Vec<u8>)>,
    /// `--insecure`: the registry serves plain HTTP.
    pub insecure: bool,
    /// `--arch`: `kubernetes.io/arch` values to check the platforms against.
    pub arch: Vec<String>,
    pub pull_secrets: Vec<SecretSource>,
    /// The namespace of the Secrets and the ServiceAccount.
    pub namespace: String,
    pub step_timeout: Duration,
    pub deadline: Duration,
}

/// A step's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Something to know that does not stop the pull.
    Info,
    /// Something that may stop the pull, or stops it in some cases.
    Warn,
    /// The pull fails here.
    Fail,
    /// Not run.
    Skip,
}

/// One step of the run.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub name: &'static str,
    pub status: Status,
    /// One line: what was found.
    pub summary: String,
    /// Why it failed (or warns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The failure class, as the webhook's metrics name it (`manifest-unknown`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// More lines (addresses, certificate names, headers, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    pub duration_ms: u128,
    /// The step ran into its timeout.
    pub timed_out: bool,
}

impl Step {
    fn new(name: &'static str, status: Status, summary: impl Into<String>) -> Step {
        Step {
            name,
            status,
            summary: summary.into(),
            cause: None,
            fix: None,
            kind: None,
            details: Vec::new(),
            duration_ms: 0,
            timed_out: false,
        }
    }

    fn explained(
        name: &'static str,
        status: Status,
        x: crate::inspector::messages::Explanation,
    ) -> Step {
        let mut step = Step::new(name, status, x.headline);
        step.kind = Some(x.kind.as_str());
        step.cause = Some(x.cause);
        let mut fix = x.fix;
        for note in x.notes {
            fix.push_str("; note: ");
            fix.push_str(&note);
        }
        step.fix = Some(fix);
        step
    }
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub image: String,
    /// Whether every step that decides the pull passed.
    pub pullable: bool,
    pub step_timeout_seconds: f64,
    pub deadline_seconds: f64,
    pub steps: Vec<Step>,
}

impl Report {
    /// The first failed step.
    pub fn failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.status == Status::Fail)
    }
}

/// The clients doctor asks through (built at the edge).
pub struct Doctor {
    pub registry: RegistryClient,
    pub cluster: Option<Arc<Cluster>>,
}

/// The run's clock: each step gets its own timeout, within the run's deadline.
struct Clock {
    until: Instant,
    step: Duration,
}

enum Timed<T> {
    /// The step finished, after this long.
    Done(T, Duration),
    /// The step ran into its timeout (after this long, the timeout).
    Late(Duration, Duration),
    /// The run's deadline passed before the step could start.
    NoTime,
}

impl Clock {
    async fn run<T>(&self, f: impl Future<Output = T>) -> Timed<T> {
        let now = Instant::now();
        let left = self.until.saturating_duration_since(now);
        if left.is_zero() {
            return Timed::NoTime;
        }
        let limit = left.min(self.step);
        match tokio::time::timeout(limit, f).await {
            Ok(v) => Timed::Done(v, now.elapsed()),
            Err(_) => Timed::Late(now.elapsed(), limit),
        }
    }
}

/// Runs the steps that remain as skipped, saying why.
fn skip_rest(steps: &mut Vec<Step>, names: &[&'static str], why: &str) {
    for name in names {
        steps.push(Step::new(name, Status::Skip, format!("not run: {why}")));
    }
}

impl Doctor {
    /// Runs every step for `opts.image`.
    pub async fn run(&self, opts: &Options) -> Report {
        let clock = Clock {
            until: Instant::now() + opts.deadline,
            step: opts.step_timeout,
        };
        let mut steps = Vec::new();
        self.steps(opts, &clock, &mut steps).await;
        let pullable = steps.iter().all(|s| s.status != Status::Fail)
            && !steps
                .iter()
                .any(|s| s.status == Status::Skip && s.summary.contains("deadline"));
        Report {
            image: opts.image.clone(),
            pullable,
            step_timeout_seconds: opts.step_timeout.as_secs_f64(),
            deadline_seconds: opts.deadline.as_secs_f64(),
            steps,
        }
    }

    async fn steps(&self, opts: &Options, clock: &Clock, steps: &mut Vec<Step>) {
        // Reference.
        let image = match ImageRef::parse(&opts.image) {
            Ok(image) => image,
            Err(e) => {
                let mut step = Step::new("reference", Status::Fail, "InvalidImageName");
                step.kind = Some("invalid-reference");
                step.cause = Some(format!(
                    "\"{}\" is not a valid image reference: {e}",
                    opts.image
                ));
                step.fix = Some(
                    "write it as [registry[:port]/]repository[:tag][@sha256:digest], lowercase; the pod would fail with InvalidImageName".into(),
                );
                steps.push(step);
                let mut rest = vec!["dns"];
                rest.extend_from_slice(&AFTER_DNS);
                skip_rest(steps, &rest, "the reference does not parse");
                return;
            }
        };
        steps.push(reference_step(&image));
        let (host, port) = endpoint(&image, opts.insecure);

        // DNS.
        let addrs = match clock
            .run(tokio::net::lookup_host((host.clone(), port)))
            .await
        {
            Timed::Done(Ok(addrs), took) => {
                let addrs: Vec<std::net::SocketAddr> = addrs.collect();
                if addrs.is_empty() {
                    steps.push(failed("dns", &image, FailureKind::Dns, "no address", took));
                    skip_rest(steps, &AFTER_DNS, "the registry host does not resolve");
                    return;
                }
                let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                let summary = if host.parse::<std::net::IpAddr>().is_ok() {
                    format!("{host} is an IP address: nothing to resolve")
                } else {
                    format!("{host} is {}", list.join(", "))
                };
                let mut step = Step::new("dns", Status::Pass, summary);
                step.duration_ms = took.as_millis();
                steps.push(step);
                addrs
            }
            Timed::Done(Err(e), took) => {
                let mut step = failed("dns", &image, FailureKind::Dns, &e.to_string(), took);
                step.details.push(format!("looking up {host}: {e}"));
                steps.push(step);
                skip_rest(steps, &AFTER_DNS, "the registry host does not resolve");
                return;
            }
            other => {
                steps.push(timed_out(
                    "dns",
                    &image,
                    &other,
                    &format!("resolving {host}"),
                ));
                skip_rest(steps, &AFTER_DNS, why_skipped(&other, "dns"));
                return;
            }
        };

        // TCP.
        let connect = async {
            let mut last = None;
            for addr in &addrs {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(stream) => return Ok((stream, *addr)),
                    Err(e) => last = Some((e, *addr)),
                }
            }
            Err(last.expect("at least one address"))
        };
        let stream = match clock.run(connect).await {
            Timed::Done(Ok((stream, addr)), took) => {
                let mut step = Step::new("tcp", Status::Pass, format!("connected to {addr}"));
                step.duration_ms = took.as_millis();
                steps.push(step);
                stream
            }
            Timed::Done(Err((e, addr)), took) => {
                let kind = registry::classify_io(&e).unwrap_or(FailureKind::Other);
                let mut step = failed(
                    "tcp",
                    &image,
                    kind,
                    &format!("connecting to {addr}: {e}"),
                    took,
                );
                step.details.push(format!("connecting to {addr}: {e}"));
                steps.push(step);
                skip_rest(steps, &AFTER_DNS[1..], "no TCP connection");
                return;
            }
            other => {
                let what = format!(
                    "connecting to {} (nothing answered: a firewall that drops packets, a wrong address, or a host that is down)",
                    addrs[0]
                );
                steps.push(timed_out("tcp", &image, &other, &what));
                skip_rest(steps, &AFTER_DNS[1..], why_skipped(&other, "tcp"));
                return;
            }
        };

        // TLS.
        if opts.insecure {
            steps.push(Step::new(
                "tls",
                Status::Skip,
                "not run: plain HTTP (--insecure); the nodes' runtime must be configured to pull from this registry over plain HTTP",
            ));
            drop(stream);
        } else {
            let ca = opts.ca.as_ref().map(|(_, pem)| pem.as_slice());
            match clock.run(tls::handshake(stream, &host, ca)).await {
                Timed::Done((seen, Ok(())), took) => {
                    let roots = match &opts.ca {
                        Some((path, _)) => format!("--ca {path} or the system roots"),
                        None => "the system roots".into(),
                    };
                    let mut step = Step::new(
                        "tls",
                        Status::Pass,
                        format!(
                            "{} with {host}; the certificate chains to {roots} and is valid for {host}",
                            seen.protocol.as_deref().unwrap_or("TLS")
                        ),
                    );
                    step.details = certificate_details(&seen);
                    step.duration_ms = took.as_millis();
                    steps.push(step);
                }
                Timed::Done((seen, Err(e)), took) => {
                    let kind = registry::classify_tls(&e);
                    let mut step = failed("tls", &image, kind, &e.to_string(), took);
                    step.details = certificate_details(&seen);
                    step.details.push(format!("rustls: {e}"));
                    if let Some((path, _)) = &opts.ca {
                        step.details
                            .push(format!("trusted: --ca {path} and the system roots"));
                    }
                    steps.push(step);
                    skip_rest(steps, &AFTER_DNS[2..], "the TLS handshake failed");
                    return;
                }
                other => {
                    let what = format!(
                        "the TLS handshake with {host} (the port accepts connections but does not answer a TLS ClientHello: a stuck server, or a port that speaks another protocol)"
                    );
                    steps.push(timed_out("tls", &image, &other, &what));
                    skip_rest(steps, &AFTER_DNS[2..], why_skipped(&other, "tls"));
                    return;
                }
            }
        }

        // GET /v2/.
        let http = match self.http_client(opts) {
            Ok(c) => c,
            Err(e) => {
                steps.push(Step::new(
                    "registry",
                    Status::Fail,
                    format!("cannot build an HTTP client: {e}"),
                ));
                skip_rest(steps, &AFTER_DNS[3..], "no HTTP client");
                return;
            }
        };
        let scheme = if opts.insecure { "http" } else { "https" };
        let base = format!("{scheme}://{}", bracketed(&host, port, opts.insecure));
        let challenge = match clock.run(http.get(format!("{base}/v2/")).send()).await {
            Timed::Done(Ok(resp), took) => {
                let (step, challenge, ok) = v2_step(&image, &resp, took);
                steps.push(step);
                if !ok {
                    skip_rest(steps, &AFTER_DNS[3..], "the registry API does not answer");
                    return;
                }
                challenge
            }
            Timed::Done(Err(e), took) => {
                let e = RegistryError::from_transport(&e);
                let mut step =
                    explained_step("registry", &image, &e, &CredentialContext::default());
                step.duration_ms = took.as_millis();
                steps.push(step);
                skip_rest(steps, &AFTER_DNS[3..], "GET /v2/ failed");
                return;
            }
            other => {
                steps.push(timed_out("registry", &image, &other, "GET /v2/"));
                skip_rest(steps, &AFTER_DNS[3..], why_skipped(&other, "registry"));
                return;
            }
        };

        // Credentials.
        let (keyring, notes, step) = self.credentials(opts, &image, clock, challenge).await;
        steps.push(step);
        let candidates = keyring.lookup(image.registry(), image.repository());
        let keys = keyring.keys();

        // Manifest HEAD.
        let resolved = clock.run(self.resolve(&image, &candidates)).await;
        let (digest, credential) = match resolved {
            Timed::Done(Ok((digest, credential)), took) => {
                let mut step = Step::new(
                    "manifest HEAD",
                    Status::Pass,
                    format!("{} is {digest}", image),
                );
                step.duration_ms = took.as_millis();
                step.details.push(match &credential {
                    Some(c) => format!("with {}", c.describe()),
                    None => "anonymously".into(),
                });
                if let (Some(tag), Some(written)) = (image.tag(), image.digest()) {
                    let by_tag = ImageRef::parse(&format!("{}:{tag}", image.name()));
                    if let Ok(by_tag) = by_tag {
                        let points = self.registry.resolve_digest(&by_tag, credential.as_ref());
                        match clock.run(points).await {
                            Timed::Done(Ok(d), _) if d == written => step
                                .details
                                .push(format!("tag \"{tag}\" points to this digest")),
                            Timed::Done(Ok(d), _) => {
                                step.status = Status::Warn;
                                step.cause = Some(format!(
                                    "tag \"{tag}\" points to {d} now, not to {written}: the node pulls {written} and ignores the tag"
                                ));
                                step.fix = Some("write the digest the tag points to, or drop the tag to say that the digest is what runs".into());
                            }
                            _ => step.details.push(format!(
                                "tag \"{tag}\" beside the digest could not be resolved; the node pulls the digest and ignores it"
                            )),
                        }
                    }
                }
                steps.push(step);
                (digest, credential)
            }
            Timed::Done(Err((e, tried)), took) => {
                let context = CredentialContext {
                    tried: &tried,
                    keys: keys.clone(),
                    notes: &notes,
                };
                let mut step = explained_step("manifest HEAD", &image, &e, &context);
                step.duration_ms = took.as_millis();
                step.details.push(format!("registry: {}", e.detail));
                steps.push(step);
                skip_rest(
                    steps,
                    &["manifest GET", "platforms", "signature", "rate limit"],
                    "the manifest HEAD failed",
                );
                return;
            }
            other => {
                steps.push(timed_out(
                    "manifest HEAD",
                    &image,
                    &other,
                    "HEAD of the manifest",
                ));
                skip_rest(
                    steps,
                    &["manifest GET", "platforms", "signature", "rate limit"],
                    why_skipped(&other, "manifest HEAD"),
                );
                return;
            }
        };

        // Manifest GET.
        let fetched = clock
            .run(
                self.registry
                    .manifest_facts(&image, &digest, credential.as_ref()),
            )
            .await;
        let manifest = match fetched {
            Timed::Done(Ok(m), took) => {
                let what = if m.is_index {
                    "an image index (multi-platform)"
                } else {
                    "a single-platform image manifest"
                };
                let mut step = Step::new(
                    "manifest GET",
                    Status::Pass,
                    format!("{digest} is {what}: {}", platform_list(&m)),
                );
                step.duration_ms = took.as_millis();
                steps.push(step);
                Some(m)
            }
            Timed::Done(Err(e), took) => {
                let tried: Vec<Credential> = credential.iter().cloned().collect();
                let context = CredentialContext {
                    tried: &tried,
                    keys: keys.clone(),
                    notes: &notes,
                };
                let mut step = explained_step("manifest GET", &image, &e, &context);
                step.duration_ms = took.as_millis();
                steps.push(step);
                None
            }
            other => {
                steps.push(timed_out(
                    "manifest GET",
                    &image,
                    &other,
                    "GET of the manifest",
                ));
                None
            }
        };

        // Platforms.
        match &manifest {
            Some(m) => steps.push(self.platforms(opts, clock, m).await),
            None => skip_rest(steps, &["platforms"], "the manifest could not be read"),
        }

        // Signature.
        steps.push(
            self.signature(&image, &digest, credential.as_ref(), clock)
                .await,
        );

        // Rate limits.
        steps.push(rate_limit(&http, &base, &image, &digest, clock).await);
    }

    fn http_client(&self, opts: &Options) -> Result<reqwest::Client, String> {
        // No timeout of its own: each step's timeout is the clock's.
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some((path, pem)) = &opts.ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("--ca {path}: {e}"))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().map_err(|e| e.to_string())
    }

    /// Reads the pull secrets, and says which credential matches which key.
    async fn credentials(
        &self,
        opts: &Options,
        image: &ImageRef,
        clock: &Clock,
        challenge: Challenge,
    ) -> (Keyring, Vec<String>, Step) {
        let started = Instant::now();
        let mut keyring = Keyring::default();
        let mut notes = Vec::new();
        let mut warnings = Vec::new();
        let ns = &opts.namespace;
        for source in &opts.pull_secrets {
            match source {
                SecretSource::File { path, config } => {
                    keyring.add(config, format!("docker config {path}"));
                }
                SecretSource::Secret(name) => match self.read_secret(ns, name, clock).await {
                    Ok(config) => keyring.add(&config, format!("Secret \"{ns}/{name}\"")),
                    Err(facts) => {
                        let written = image.to_string();
                        let problem =
                            pull_secret_problem(&facts, name, image.registry(), &written, ns)
                                .unwrap_or_else(|| {
                                    format!("Secret \"{ns}/{name}\" could not be used")
                                });
                        notes.push(problem.clone());
                        warnings.push(problem);
                    }
                },
                SecretSource::ServiceAccount(sa) => {
                    let Some(cluster) = &self.cluster else {
                        notes.push("no Kubernetes configuration: the ServiceAccount's pull secrets were not read".into());
                        continue;
                    };
                    match clock
                        .run(cluster.service_account_pull_secrets(ns, sa))
                        .await
                    {
                        Timed::Done(Ok(names), _) => {
                            if names.is_empty() {
                                notes.push(format!(
                                    "ServiceAccount \"{ns}/{sa}\" lists no pull secret"
                                ));
                            }
                            for name in names.iter() {
                                match self.read_secret(ns, name, clock).await {
                                    Ok(config) => keyring.add(
                                        &config,
                                        format!("ServiceAccount \"{sa}\" imagePullSecret \"{ns}/{name}\""),
                                    ),
                                    Err(facts) => {
                                        let written = image.to_string();
                                        if let Some(p) = pull_secret_problem(&facts, name, image.registry(), &written, ns) {
                                            notes.push(p.clone());
                                            warnings.push(p);
                                        }
                                    }
                                }
                            }
                        }
                        Timed::Done(Err(e), _) => {
                            notes.push(e.to_string());
                            warnings.push(e.to_string());
                        }
                        _ => warnings.push(format!(
                            "reading ServiceAccount \"{ns}/{sa}\" took longer than {} s",
                            clock.step.as_secs_f64()
                        )),
                    }
                }
            }
        }
        let candidates = keyring.lookup(image.registry(), image.repository());
        let registry = image.registry();
        let mut step = if !candidates.is_empty() {
            let list: Vec<String> = candidates.iter().map(Credential::describe).collect();
            Step::new(
                "credentials",
                Status::Pass,
                format!("for {registry}: {}", list.join(", then ")),
            )
        } else if opts.pull_secrets.is_empty() {
            Step::new(
                "credentials",
                Status::Info,
                "no --pull-secret given: the lookups are anonymous",
            )
        } else {
            let keys: Vec<String> = keyring
                .keys()
                .iter()
                .map(|(source, key)| format!("\"{key}\" in {source}"))
                .collect();
            let mut step = Step::new(
                "credentials",
                Status::Warn,
                format!("no auths key matches {registry}"),
            );
            step.cause = Some(if keys.is_empty() {
                "the pull secrets given hold no auths entry".into()
            } else {
                format!("auths keys seen: {}", keys.join(", "))
            });
            step.fix = Some(format!(
                "add an auths entry for {registry} (keys match like the kubelet: host[:port], optionally with https:// and a path)"
            ));
            step
        };
        if challenge.needs_auth && candidates.is_empty() && step.status != Status::Warn {
            step.status = Status::Warn;
            step.cause = Some(format!(
                "{registry} asks for credentials (GET /v2/ answered 401)"
            ));
            step.fix =
                Some("pass the pod's pull secret with --pull-secret (and --namespace)".into());
        }
        if !warnings.is_empty() {
            step.status = Status::Warn;
            let joined = warnings.join("; ");
            step.cause = Some(match step.cause.take() {
                Some(c) => format!("{c}; {joined}"),
                None => joined,
            });
        }
        step.duration_ms = started.elapsed().as_millis();
        (keyring, notes, step)
    }

    /// A Secret as the kubelet reads it; the problem (as facts) when it cannot be used.
    async fn read_secret(
        &self,
        ns: &str,
        name: &str,
        clock: &Clock,
    ) -> Result<Arc<DockerConfig>, SecretFacts> {
        let Some(cluster) = &self.cluster else {
            return Err(SecretFacts::Unreadable(
                "no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster) to read it with".into(),
            ));
        };
        match clock.run(cluster.read_pull_secret(ns, name)).await {
            Timed::Done(Ok(PullSecret::Config(config)), _) => Ok(config),
            Timed::Done(Ok(PullSecret::Missing), _) => Err(SecretFacts::Missing),
            Timed::Done(Ok(PullSecret::WrongType(t)), _) => Err(SecretFacts::WrongType(t)),
            Timed::Done(Ok(PullSecret::Invalid(why)), _) => Err(SecretFacts::Invalid(why)),
            Timed::Done(Err(e), _) => Err(SecretFacts::Unreadable(e.message)),
            _ => Err(SecretFacts::Unreadable(format!(
                "the API server did not answer within {} s",
                clock.step.as_secs_f64()
            ))),
        }
    }

    /// The digest, trying each matching credential in order (anonymously when none
    /// matches), as the kubelet tries them.
    async fn resolve(
        &self,
        image: &ImageRef,
        candidates: &[Credential],
    ) -> Result<(String, Option<Credential>), (RegistryError, Vec<Credential>)> {
        if candidates.is_empty() {
            return match self.registry.resolve_digest(image, None).await {
                Ok(d) => Ok((d, None)),
                Err(e) => Err((e, Vec::new())),
            };
        }
        let mut last = None;
        for c in candidates {
            match self.registry.resolve_digest(image, Some(c)).await {
                Ok(d) => return Ok((d, Some(c.clone()))),
                Err(e) if e.kind == FailureKind::Unauthorized => last = Some(e),
                Err(e) => return Err((e, vec![c.clone()])),
            }
        }
        Err((last.expect("one candidate was tried"), candidates.to_vec()))
    }

    async fn platforms(&self, opts: &Options, clock: &Clock, m: &ManifestFacts) -> Step {
        let (archs, from): (BTreeSet<String>, String) = if !opts.arch.is_empty() {
            (opts.arch.iter().cloned().collect(), "--arch".into())
        } else if let Some(cluster) = &self.cluster {
            let archs = async {
                cluster.nodes().await.map(|nodes| {
                    nodes
                        .iter()
                        .filter_map(|n| n.arch().map(str::to_string))
                        .collect::<BTreeSet<String>>()
                })
            };
            match clock.run(archs).await {
                Timed::Done(Ok(a), _) if !a.is_empty() => (a, "the cluster's Nodes".into()),
                Timed::Done(Ok(_), _) => {
                    return Step::new(
                        "platforms",
                        Status::Info,
                        format!(
                            "{}; the cluster lists no Node architecture, give --arch to check",
                            platform_list(m)
                        ),
                    );
                }
                Timed::Done(Err(e), _) => {
                    return Step::new(
                        "platforms",
                        Status::Info,
                        format!(
                            "{}; the cluster's Nodes could not be listed ({e}), give --arch to check",
                            platform_list(m)
                        ),
                    );
                }
                _ => {
                    return Step::new(
                        "platforms",
                        Status::Info,
                        format!(
                            "{}; listing the cluster's Nodes took longer than {} s, give --arch to check",
                            platform_list(m),
                            clock.step.as_secs_f64()
                        ),
                    );
                }
            }
        } else {
            return Step::new(
                "platforms",
                Status::Info,
                format!(
                    "{}; give --arch (or a Kubernetes configuration) to check them against the nodes",
                    platform_list(m)
                ),
            );
        };
        let (ok, missing): (Vec<String>, Vec<String>) = archs
            .into_iter()
            .partition(|a| crate::platform::covers(a, &m.platforms));
        if missing.is_empty() {
            return Step::new(
                "platforms",
                Status::Pass,
                format!(
                    "{} covers {} (from {from})",
                    platform_list(m),
                    ok.join(", ")
                ),
            );
        }
        let missing_list: Vec<String> = missing.iter().map(|a| format!("linux/{a}")).collect();
        let mut step = Step::new(
            "platforms",
            Status::Fail,
            format!("no {} variant", missing_list.join(", ")),
        );
        step.kind = Some("platform-missing");
        step.cause = Some(format!(
            "the image has {} and no {} variant; on {} nodes (from {from}) the pod would crash with \"exec format error\" (or the pull fails with \"no matching manifest\")",
            platform_list(m),
            missing_list.join(", "),
            missing.join(", ")
        ));
        step.fix = Some(format!(
            "build and push the image for {} too (docker buildx build --platform {} --push), or keep the pod off those nodes (nodeSelector kubernetes.io/arch)",
            missing_list.join(", "),
            m.platforms
                .iter()
                .map(ToString::to_string)
                .chain(missing_list.iter().cloned())
                .collect::<Vec<_>>()
                .join(",")
        ));
        step
    }

    /// A cosign signature in the tag scheme (`sha256-<hex>.sig`).
    async fn signature(
        &self,
        image: &ImageRef,
        digest: &str,
        credential: Option<&Credential>,
        clock: &Clock,
    ) -> Step {
        let tag = format!("{}.sig", digest.replacen(':', "-", 1));
        let Ok(sig) = ImageRef::parse(&format!("{}:{tag}", image.name())) else {
            return Step::new(
                "signature",
                Status::Info,
                "not checked: the digest is not sha256",
            );
        };
        match clock
            .run(self.registry.resolve_digest(&sig, credential))
            .await
        {
            Timed::Done(Ok(d), took) => {
                let mut step = Step::new(
                    "signature",
                    Status::Pass,
                    format!("a cosign signature is at tag {tag} ({d})"),
                );
                step.duration_ms = took.as_millis();
                step
            }
            Timed::Done(Err(e), took) if e.kind == FailureKind::ManifestUnknown => {
                let mut step = Step::new(
                    "signature",
                    Status::Info,
                    format!(
                        "no cosign signature (no tag {tag}); a policy that requires signatures would deny this image"
                    ),
                );
                step.duration_ms = took.as_millis();
                step
            }
            Timed::Done(Err(e), took) => {
                let mut step = Step::new(
                    "signature",
                    Status::Warn,
                    format!(
                        "the signature tag {tag} could not be checked: {}",
                        e.kind.as_str()
                    ),
                );
                step.details.push(e.detail);
                step.duration_ms = took.as_millis();
                step
            }
            _ => Step::new(
                "signature",
                Status::Warn,
                format!(
                    "the signature tag {tag} could not be checked within {} s",
                    clock.step.as_secs_f64()
                ),
            ),
        }
    }
}

/// The steps after DNS, in order.
const AFTER_DNS: [&str; 9] = [
    "tcp",
    "tls",
    "registry",
    "credentials",
    "manifest HEAD",
    "manifest GET",
    "platforms",
    "signature",
    "rate limit",
];

/// `host` and the port the registry is reached on (Docker Hub's API host for
/// `docker.io`).
fn endpoint(image: &ImageRef, insecure: bool) -> (String, u16) {
    let registry = match image.registry() {
        "docker.io" => "registry-1.docker.io",
        r => r,
    };
    let default = if insecure { 80 } else { 443 };
    if let Some(rest) = registry.strip_prefix('[') {
        // [v6]:port
        if let Some((ip, port)) = rest.split_once(']') {
            let port = port
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or(default);
            return (ip.to_string(), port);
        }
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => {
            (h.to_string(), p.parse().unwrap_or(default))
        }
        _ => (registry.to_string(), default),
    }
}

fn bracketed(host: &str, port: u16, insecure: bool) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let default = if insecure { 80 } else { 443 };
    if port == default {
        host
    } else {
        format!("{host}:{port}")
    }
}

fn reference_step(image: &ImageRef) -> Step {
    let mut parts = vec![
        format!("registry {}", image.registry()),
        format!("repository {}", image.repository()),
    ];
    if let Some(tag) = image.tag() {
        parts.push(if image.is_implicit_latest() {
            format!("tag {tag} (implied: no tag means \"latest\")")
        } else {
            format!("tag {tag}")
        });
    }
    if let Some(d) = image.digest() {
        parts.push(format!("digest {d} (what the node pulls)"));
    }
    Step::new(
        "reference",
        Status::Pass,
        format!("{image}: {}", parts.join(", ")),
    )
}

/// A failed step explained with the webhook's classification, worded for doctor.
fn explained_step(
    name: &'static str,
    image: &ImageRef,
    e: &RegistryError,
    credentials: &CredentialContext<'_>,
) -> Step {
    Step::explained(
        name,
        Status::Fail,
        explain(image, e, credentials, Audience::Doctor),
    )
}

fn failed(
    name: &'static str,
    image: &ImageRef,
    kind: FailureKind,
    detail: &str,
    took: Duration,
) -> Step {
    let e = RegistryError::new(kind, detail);
    let mut step = explained_step(name, image, &e, &CredentialContext::default());
    step.duration_ms = took.as_millis();
    step
}

fn timed_out<T>(name: &'static str, image: &ImageRef, timed: &Timed<T>, what: &str) -> Step {
    match timed {
        Timed::Late(took, limit) => {
            let detail = format!(
                "{what}: no answer within {} s (the step's timeout)",
                limit.as_secs_f64()
            );
            let mut step = failed(name, image, FailureKind::Timeout, &detail, *took);
            step.summary = format!("timeout after {} s", limit.as_secs_f64());
            step.timed_out = true;
            step.details.push(detail);
            step
        }
        _ => Step::new(name, Status::Skip, "not run: the run's deadline passed"),
    }
}

fn why_skipped<T>(timed: &Timed<T>, step: &str) -> &'static str {
    match timed {
        Timed::NoTime => "the run's deadline passed",
        _ => match step {
            "dns" => "resolving the host timed out",
            "tcp" => "the TCP connection timed out",
            "tls" => "the TLS handshake timed out",
            _ => "the previous step timed out",
        },
    }
}

/// What `GET /v2/` said about authentication.
#[derive(Debug, Default, Clone)]
struct Challenge {
    needs_auth: bool,
}

fn v2_step(image: &ImageRef, resp: &reqwest::Response, took: Duration) -> (Step, Challenge, bool) {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(300).collect::<String>())
    };
    let mut details = Vec::new();
    if let Some(v) = header("docker-distribution-api-version") {
        details.push(format!("Docker-Distribution-API-Version: {v}"));
    }
    let (mut step, challenge, ok) = match status {
        200 => (
            Step::new(
                "registry",
                Status::Pass,
                "GET /v2/: 200, the registry API answers and lets anonymous clients in",
            ),
            Challenge::default(),
            true,
        ),
        401 => {
            let www = header("www-authenticate").unwrap_or_default();
            let summary = if www.is_empty() {
                "GET /v2/: 401 without a WWW-Authenticate challenge".to_string()
            } else {
                format!("GET /v2/: 401, the registry asks for credentials: {www}")
            };
            let scheme = www
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if scheme == "bearer" {
                details.push("token authentication: credentials are exchanged for a token at the realm above".into());
            } else if scheme == "basic" {
                details.push("basic authentication: each request carries the credentials".into());
            }
            (
                Step::new("registry", Status::Pass, summary),
                Challenge { needs_auth: true },
                true,
            )
        }
        429 => {
            let e = RegistryError::new(
                FailureKind::RateLimited,
                format!("GET /v2/ answered {status}"),
            );
            (
                explained_step("registry", image, &e, &CredentialContext::default()),
                Challenge::default(),
                false,
            )
        }
        404 => {
            let mut step = Step::new("registry", Status::Fail, "GET /v2/: 404");
            step.kind = Some("not-a-registry");
            step.cause = Some(format!(
                "{} does not serve the registry API (GET /v2/ answered 404): a web server or proxy answers there",
                image.registry()
            ));
            step.fix = Some("check the registry host and port in the image reference".into());
            (step, Challenge::default(), false)
        }
        code => {
            let e = RegistryError::new(
                FailureKind::Server(code),
                format!("GET /v2/ answered {code}"),
            );
            (
                explained_step("registry", image, &e, &CredentialContext::default()),
                Challenge::default(),
                false,
            )
        }
    };
    step.details.extend(details);
    step.duration_ms = took.as_millis();
    (step, challenge, ok)
}

fn platform_list(m: &ManifestFacts) -> String {
    if m.platforms.is_empty() {
        return "no platform".into();
    }
    m.platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn certificate_details(seen: &tls::Handshake) -> Vec<String> {
    let mut out = Vec::new();
    if !seen.presented {
        return out;
    }
    if seen.dns_names.is_empty() {
        out.push("the certificate names no DNS name".into());
    } else {
        out.push(format!(
            "certificate DNS names: {}",
            seen.dns_names.join(", ")
        ));
    }
    if let Some((ip, ok)) = seen.valid_for_ip {
        out.push(if ok {
            format!("certificate valid for IP address {ip}")
        } else {
            format!("certificate NOT valid for IP address {ip} (no such IP in its subject alternative names)")
        });
    }
    out
}

/// The registry's rate-limit headers, from one anonymous HEAD of the manifest.
async fn rate_limit(
    http: &reqwest::Client,
    base: &str,
    image: &ImageRef,
    digest: &str,
    clock: &Clock,
) -> Step {
    let url = format!("{base}/v2/{}/manifests/{digest}", image.repository());
    let head = http
        .head(url)
        .header(reqwest::header::ACCEPT, registry::ACCEPT.join(", "))
        .send();
    match clock.run(head).await {
        Timed::Done(Ok(resp), took) => {
            let found: Vec<String> = registry::rate_limit_headers(resp.headers())
                .map(|joined| joined.split(", ").map(str::to_string).collect())
                .unwrap_or_default();
            let status = resp.status().as_u16();
            let mut step = if status == 429 {
                let e = RegistryError::new(FailureKind::RateLimited, found.join(", "));
                explained_step("rate limit", image, &e, &CredentialContext::default())
            } else if found.is_empty() {
                Step::new(
                    "rate limit",
                    Status::Info,
                    format!("no rate-limit headers on an anonymous HEAD (HTTP {status})"),
                )
            } else {
                let exhausted = found
                    .iter()
                    .any(|h| h.starts_with("ratelimit-remaining: 0"));
                Step::new(
                    "rate limit",
                    if exhausted {
                        Status::Warn
                    } else {
                        Status::Info
                    },
                    found.join(", "),
                )
            };
            step.duration_ms = took.as_millis();
            step
        }
        Timed::Done(Err(e), _) => Step::new(
            "rate limit",
            Status::Info,
            format!(
                "not read: {}",
                RegistryError::from_transport(&e).kind.as_str()
            ),
        ),
        _ => Step::new(
            "rate limit",
            Status::Info,
            format!("not read within {} s", clock.step.as_secs_f64()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_registry_host_and_port() {
        let table = [
            ("nginx", false, ("registry-1.docker.io", 443)),
            (
                "harbor.example.com/app:v1",
                false,
                ("harbor.example.com", 443),
            ),
            (
                "harbor.example.com:8443/app:v1",
                false,
                ("harbor.example.com", 8443),
            ),
            ("10.0.0.5:5000/app", true, ("10.0.0.5", 5000)),
            ("localhost/app", true, ("localhost", 80)),
            ("[::1]:5000/app", false, ("::1", 5000)),
        ];
        for (image, insecure, (host, port)) in table {
            let image = ImageRef::parse(image).unwrap();
            assert_eq!(
                endpoint(&image, insecure),
                (host.to_string(), port),
                "{image}"
            );
        }
        assert_eq!(bracketed("::1", 5000, false), "[::1]:5000");
        assert_eq!(
            bracketed("harbor.example.com", 443, false),
            "harbor.example.com"
        );
        assert_eq!(bracketed("10.0.0.5", 5000, true), "10.0.0.5:5000");
    }
}
