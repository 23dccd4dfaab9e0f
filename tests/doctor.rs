//! `imagegate doctor`, the real binary, against the real registry setups (plain,
//! TLS with and without the right CA, a certificate without the IP address, basic
//! auth with right, wrong and no credentials, token auth, a missing tag, a
//! single-platform image against another architecture), Secrets read through a
//! real kube Client from a local API server, and hosts that do not answer. Each
//! test asserts the step that fails and the advice printed.

mod common;
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::images;
use support::kube::FakeApiServer;
use support::registry::{Kind, Registry};
use support::token::{Grant, TokenServer, TokenServerConfig};

const PASSWORD: &str = "Dq2-doctor-never-prints";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: not JSON:\n{}\n{}", self.stdout, self.stderr))
    }

    /// The step named `name` of a JSON report.
    fn step(&self, name: &str) -> Value {
        let report = self.json();
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no step {name}: {report:#}"))
    }

    /// The name of the first failed step.
    fn failed_step(&self) -> String {
        let report = self.json();
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["status"] == "fail")
            .map(|s| s["name"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// Runs `imagegate doctor ARGS`, with no Kubernetes configuration unless
/// `kubeconfig` is given.
async fn doctor(args: &[&str], kubeconfig: Option<&std::path::Path>) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(common::BIN);
    command
        .arg("doctor")
        .args(args)
        .env("HOME", home.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match kubeconfig {
        Some(k) => command.env("KUBECONFIG", k),
        None => command.env("KUBECONFIG", home.path().join("no-kubeconfig")),
    };
    let started = Instant::now();
    let out = command.output().await.expect("run imagegate doctor");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    };
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "a password was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn contains(v: &Value, field: &str, fragment: &str) {
    let text = v[field].as_str().unwrap_or_default();
    assert!(
        text.contains(fragment),
        "{field} of {v:#}\nlacks {fragment:?}"
    );
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn plain_registry_missing_tag_missing_digest_and_architectures() {
    let registry = Registry::start(Kind::Plain).await;
    let digest = images::push_amd64(&registry, "team/app:v1").await;
    let image = registry.reference("team/app:v1");

    // The image can be pulled: exit 0, every deciding step passes.
    let run = doctor(
        &["--insecure", "--arch", "amd64", "--output", "json", &image],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let report = run.json();
    assert_eq!(report["pullable"], true);
    for (name, status) in [
        ("reference", "pass"),
        ("dns", "pass"),
        ("tcp", "pass"),
        ("tls", "skip"),
        ("registry", "pass"),
        ("credentials", "info"),
        ("manifest HEAD", "pass"),
        ("manifest GET", "pass"),
        ("platforms", "pass"),
        ("signature", "info"),
        ("rate limit", "info"),
    ] {
        assert_eq!(run.step(name)["status"], status, "{name}: {report:#}");
    }
    contains(&run.step("manifest HEAD"), "summary", &digest);
    contains(
        &run.step("manifest GET"),
        "summary",
        "a single-platform image manifest: linux/amd64",
    );
    contains(&run.step("signature"), "summary", "no cosign signature");

    // A tag that was never pushed.
    let run = doctor(
        &[
            "--insecure",
            "--output",
            "json",
            &registry.reference("team/app:v2"),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.failed_step(), "manifest HEAD");
    let step = run.step("manifest HEAD");
    assert_eq!(step["kind"], "manifest-unknown");
    contains(
        &step,
        "cause",
        &format!(
            "{} has no {}",
            registry.host(),
            registry.reference("team/app:v2")
        ),
    );
    contains(
        &step,
        "fix",
        "check the image name and tag for typos and that the tag was pushed",
    );
    assert_eq!(run.step("manifest GET")["status"], "skip");

    // A digest that is not in this repository: not a typo in a tag.
    let missing = format!(
        "{}@sha256:{}",
        registry.reference("team/app"),
        "0".repeat(64)
    );
    let run = doctor(&["--insecure", "--output", "json", &missing], None).await;
    assert_eq!(run.failed_step(), "manifest HEAD");
    contains(
        &run.step("manifest HEAD"),
        "fix",
        "a digest exists only in the repository it was pushed to",
    );

    // A single-platform image against another architecture.
    let run = doctor(
        &["--insecure", "--arch", "arm64", "--output", "json", &image],
        None,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.failed_step(), "platforms");
    let step = run.step("platforms");
    contains(
        &step,
        "cause",
        "the image has linux/amd64 and no linux/arm64 variant; on arm64 nodes (from --arch) the pod would crash with \"exec format error\"",
    );
    contains(
        &step,
        "fix",
        "build and push the image for linux/arm64 too (docker buildx build --platform linux/amd64,linux/arm64 --push)",
    );

    // Plain HTTP without --insecure: the TLS step fails and says what to do.
    let run = doctor(&["--output", "json", &image], None).await;
    assert_eq!(run.failed_step(), "tls");
    let step = run.step("tls");
    assert_eq!(step["kind"], "tls");
    contains(
        &step,
        "fix",
        "if the registry serves plain HTTP, run doctor with --insecure",
    );

    // As a person reads it, piped: plain text, no colour.
    let run = doctor(&["--insecure", "--arch", "arm64", &image], None).await;
    assert!(!run.stdout.contains('\x1b'), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("FAIL  platforms      no linux/arm64 variant"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("                     fix:   build and push the image for linux/arm64 too"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("The image cannot be pulled: no linux/arm64 variant (step platforms).\n"),
        "{}",
        run.stdout
    );
    let run = doctor(&["--insecure", "--color", "always", &image], None).await;
    assert!(run.stdout.contains("\x1b[32mPASS\x1b[0m"), "{}", run.stdout);
}

#[tokio::test]
async fn tls_with_and_without_the_right_ca_and_a_certificate_without_the_ip() {
    let tls = Registry::start(Kind::Tls).await;
    let no_ip = Registry::start(Kind::TlsWithoutIpSan).await;
    images::push_amd64(&tls, "team/app:v1").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(&dir, "ca.crt", &tls.ca_pem().unwrap());
    let no_ip_ca = write(&dir, "no-ip-ca.crt", &no_ip.ca_pem().unwrap());
    let image = tls.reference("team/app:v1");

    let run = doctor(&["--ca", &ca, "--output", "json", &image], None).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let step = run.step("tls");
    assert_eq!(step["status"], "pass");
    contains(
        &step,
        "summary",
        &format!("the certificate chains to --ca {ca} or the system roots"),
    );
    let details = step["details"].to_string();
    assert!(
        details.contains("certificate DNS names: localhost"),
        "{details}"
    );
    assert!(
        details.contains("certificate valid for IP address 127.0.0.1"),
        "{details}"
    );

    let run = doctor(&["--output", "json", &image], None).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.failed_step(), "tls");
    let step = run.step("tls");
    assert_eq!(step["kind"], "tls-unknown-authority");
    assert_eq!(
        step["summary"],
        "x509: certificate signed by unknown authority"
    );
    contains(
        &step,
        "fix",
        "pass the registry's CA with --ca FILE to check with it; for pulls, install it on every node (containerd: /etc/containerd/certs.d/",
    );

    let run = doctor(
        &[
            "--ca",
            &no_ip_ca,
            "--output",
            "json",
            &no_ip.reference("team/app:v1"),
        ],
        None,
    )
    .await;
    assert_eq!(run.failed_step(), "tls");
    let step = run.step("tls");
    assert_eq!(step["kind"], "tls-wrong-name");
    contains(
        &step,
        "cause",
        "is not valid for \"127.0.0.1\" (a registry reached by IP address needs that IP in the certificate's subject alternative names)",
    );
    assert!(
        step["details"]
            .to_string()
            .contains("certificate NOT valid for IP address 127.0.0.1"),
        "{step:#}"
    );
}

#[tokio::test]
async fn basic_auth_with_right_wrong_and_no_credentials_from_files_and_secrets() {
    let registry = Registry::start(Kind::htpasswd("robot", PASSWORD)).await;
    images::push_amd64(&registry, "team/app:v1").await;
    let host = registry.host();
    let image = registry.reference("team/app:v1");
    let dir = tempfile::tempdir().unwrap();
    let ca = write(&dir, "ca.crt", &registry.ca_pem().unwrap());
    let right = write(
        &dir,
        "right.json",
        &json!({"auths": {format!("https://{host}"): {"username": "robot", "password": PASSWORD}}})
            .to_string(),
    );
    let wrong = write(
        &dir,
        "wrong.json",
        &json!({"auths": {host.clone(): {"username": "robot", "password": "nope"}}}).to_string(),
    );
    let other = write(
        &dir,
        "other.json",
        &json!({"auths": {"quay.io": {"username": "q", "password": "x"}}}).to_string(),
    );

    // Right: the credential and the key it matched are named.
    let run = doctor(
        &[
            "--ca",
            &ca,
            "--pull-secret",
            &right,
            "--output",
            "json",
            &image,
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    contains(
        &run.step("credentials"),
        "summary",
        &format!(
            "for {host}: user \"robot\" from docker config {right} (auths key \"https://{host}\")"
        ),
    );
    contains(
        &run.step("registry"),
        "summary",
        "GET /v2/: 401, the registry asks for credentials: Basic realm=\"imagegate-test\"",
    );

    // Wrong: refused, naming the secret and key, never the password.
    let run = doctor(
        &[
            "--ca",
            &ca,
            "--pull-secret",
            &wrong,
            "--output",
            "json",
            &image,
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.failed_step(), "manifest HEAD");
    let step = run.step("manifest HEAD");
    assert_eq!(step["kind"], "unauthorized");
    contains(
        &step,
        "cause",
        &format!(
            "{host} refused the credentials of user \"robot\" from docker config {wrong} (auths key \"{host}\")"
        ),
    );
    contains(
        &step,
        "fix",
        "check the user and password or token in that secret",
    );

    // None: the challenge is noted, and the fix says how to pass the pod's secret.
    let run = doctor(&["--ca", &ca, "--output", "json", &image], None).await;
    assert_eq!(run.failed_step(), "manifest HEAD");
    assert_eq!(run.step("credentials")["status"], "warn");
    let step = run.step("manifest HEAD");
    contains(
        &step,
        "cause",
        &format!(
            "{host} refused anonymous access, and no pull secret has an auths key matching {host} (no --pull-secret was given)"
        ),
    );
    contains(
        &step,
        "fix",
        "pass the pod's pull secret (--namespace NS --pull-secret NAME, or --pull-secret FILE",
    );

    // A secret for another registry: no key matches, and the keys seen are named.
    let run = doctor(
        &[
            "--ca",
            &ca,
            "--pull-secret",
            &other,
            "--output",
            "json",
            &image,
        ],
        None,
    )
    .await;
    let step = run.step("credentials");
    assert_eq!(step["status"], "warn");
    contains(
        &step,
        "cause",
        &format!("auths keys seen: \"quay.io\" in docker config {other}"),
    );

    // Secrets through the Kubernetes API: by name, and the ServiceAccount's.
    let api = FakeApiServer::start().await;
    api.add_pull_secret(
        "team",
        "regcred",
        &json!({"auths": {host.clone(): {"username": "robot", "password": PASSWORD}}}),
    );
    api.add_opaque_secret("team", "opaque");
    api.add_service_account("team", "default", &["regcred"]);
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    let run = doctor(
        &[
            "--ca",
            &ca,
            "-n",
            "team",
            "--pull-secret",
            "regcred",
            "--output",
            "json",
            &image,
        ],
        Some(&kubeconfig),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    contains(
        &run.step("credentials"),
        "summary",
        "from Secret \"team/regcred\"",
    );
    let run = doctor(
        &["--ca", &ca, "-n", "team", "--output", "json", &image],
        Some(&kubeconfig),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    contains(
        &run.step("credentials"),
        "summary",
        "from ServiceAccount \"default\" imagePullSecret \"team/regcred\"",
    );
    assert!(api.count("/serviceaccounts/default") >= 1);
    // A Secret that is not a pull secret, and one that does not exist: said as
    // requirePullSecret says it.
    let run = doctor(
        &[
            "--ca",
            &ca,
            "-n",
            "team",
            "--pull-secret",
            "opaque",
            "--pull-secret",
            "ghost",
            "--output",
            "json",
            &image,
        ],
        Some(&kubeconfig),
    )
    .await;
    assert_eq!(run.failed_step(), "manifest HEAD");
    let step = run.step("credentials");
    assert_eq!(step["status"], "warn");
    contains(
        &step,
        "cause",
        "pull secret \"opaque\" in namespace \"team\" has type \"Opaque\", not kubernetes.io/dockerconfigjson",
    );
    contains(&step, "cause", "pull secret \"ghost\" (for registry");
    contains(&step, "cause", "does not exist in namespace \"team\"");
}

#[tokio::test]
async fn token_auth() {
    let tokens = TokenServer::start(TokenServerConfig::default().user(
        "ci",
        PASSWORD,
        &[Grant::new("team/app", &["pull", "push"])],
    ));
    let registry = Registry::start(tokens.kind()).await;
    images::push_single(
        &images::client(&registry),
        &images::basic("ci", PASSWORD),
        &images::reference(&registry, "team/app:v1"),
        "linux/arm64",
        images::Format::Oci,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(&dir, "ca.crt", &registry.ca_pem().unwrap());
    let creds = write(
        &dir,
        "config.json",
        &json!({"auths": {registry.host(): {"username": "ci", "password": PASSWORD}}}).to_string(),
    );
    let run = doctor(
        &[
            "--ca",
            &ca,
            "--pull-secret",
            &creds,
            "--arch",
            "arm64",
            "--output",
            "json",
            &registry.reference("team/app:v1"),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    contains(
        &run.step("registry"),
        "summary",
        "the registry asks for credentials: Bearer realm=",
    );
    // Without credentials, the token server grants nothing.
    let run = doctor(
        &[
            "--ca",
            &ca,
            "--output",
            "json",
            &registry.reference("team/app:v1"),
        ],
        None,
    )
    .await;
    assert_eq!(run.failed_step(), "manifest HEAD");
    assert_eq!(run.step("manifest HEAD")["kind"], "unauthorized");
}

#[tokio::test]
async fn a_host_that_does_not_answer_ends_the_run_within_ten_seconds() {
    // Accepts connections, never answers: the TLS handshake (or GET /v2/ over plain
    // HTTP) runs into its own timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    // A full backlog: the kernel drops the SYN, so the connect itself hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = socket.listen(1).unwrap();
    let full_addr = full.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(full_addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    // (image, extra args, the step that times out)
    let table = [
        (format!("{silent_addr}/team/app:v1"), vec![], "tls"),
        (
            format!("{silent_addr}/team/app:v1"),
            vec!["--insecure"],
            "registry",
        ),
        (format!("{full_addr}/team/app:v1"), vec![], "tcp"),
    ];
    for (image, extra, step) in table {
        let mut args: Vec<&str> = extra.clone();
        args.extend(["--output", "json", &image]);
        let run = doctor(&args, None).await;
        assert!(
            run.took < Duration::from_secs(10),
            "{image} {extra:?}: {:?}",
            run.took
        );
        assert_eq!(run.code, 1);
        assert_eq!(run.failed_step(), step, "{image} {extra:?}: {}", run.stdout);
        let s = run.step(step);
        assert_eq!(s["timedOut"], true, "{s:#}");
        assert_eq!(s["kind"], "timeout");
        assert_eq!(s["summary"], "timeout after 3 s");
        assert!(
            s["details"]
                .to_string()
                .contains("no answer within 3 s (the step's timeout)"),
            "{s:#}"
        );
        // The text says it too.
        let mut args: Vec<&str> = extra.clone();
        args.push(&image);
        let run = doctor(&args, None).await;
        assert!(
            run.stdout
                .contains("each network step stops after 3 s, the whole run after 10 s"),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout
                .contains(&format!("FAIL  {step:13}  timeout after 3 s")),
            "{}",
            run.stdout
        );
    }
    drop((silent, full, fillers));
}

#[tokio::test]
async fn unreadable_input_is_exit_code_two() {
    let run = doctor(&["--ca", "/nonexistent/ca.crt", "nginx"], None).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("reading --ca /nonexistent/ca.crt"),
        "{}",
        run.stderr
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = write(
        &dir,
        "config.json",
        &format!("{{\"auths\": {{\"r.io\": {{\"password\": \"{PASSWORD}"),
    );
    let run = doctor(&["--pull-secret", &broken, "nginx"], None).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("docker config is not valid JSON"),
        "{}",
        run.stderr
    );
    let run = doctor(&["--arch", "linux/arm/v7", "nginx"], None).await;
    assert_eq!(run.code, 2);
}
