//! The offline commands: `check`, `policy validate`, `policy schema`.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{BIN, policy};
use serde_json::Value;

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run imagegate");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        let enforce = policy(
            "registries",
            "excludeNamespaces: [kube-system]\nregistries:\n  allow: [harbor.example.com]\ntags:\n  forbid: [latest]",
        );
        let audit = policy("digests", "mode: Audit\ntags:\n  requireDigest: true");
        std::fs::write(
            dir.path().join("policies/a.yaml"),
            format!("{enforce}---\n{audit}"),
        )
        .unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.dir.path().join(name), text).unwrap();
        self.path(name)
    }

    fn check(&self, extra: &[&str], stdin: Option<&str>) -> Output {
        let policies = self.path("policies");
        let mut args = vec!["check", "--policies", &policies];
        args.extend_from_slice(extra);
        run(&args, stdin)
    }
}

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
        - name: migrate
          image: harbor.example.com/shop/migrate:v3
      containers:
        - name: app
          image: nginx
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: b}
---
apiVersion: v1
kind: List
items:
  - apiVersion: batch/v1
    kind: CronJob
    metadata: {name: report}
    spec:
      schedule: "0 * * * *"
      jobTemplate:
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: report
                  image: harbor.example.com/shop/report:v1
  - apiVersion: v1
    kind: Pod
    metadata: {name: system, namespace: kube-system}
    spec:
      containers:
        - name: x
          image: quay.io/x/y:latest
---
"#;

#[test]
fn check_reports_each_violation_and_exits_1_on_enforce_denials() {
    let f = Fixture::new();
    let file = f.write("app.yaml", MANIFESTS);
    let out = f.check(&[&file], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        format!(
            "{file}: Deployment/web (namespace shop): DENY: container \"app\" image \"nginx\": registry \"docker.io\" is not allowed here"
        ),
        format!(
            "{file}: Deployment/web (namespace shop): DENY: container \"app\" image \"nginx\": no tag means \"latest\", which is forbidden"
        ),
        format!(
            "{file}: Deployment/web (namespace shop): AUDIT would deny: init container \"migrate\" image \"harbor.example.com/shop/migrate:v3\": a digest is required"
        ),
        format!(
            "{file}: Deployment/web (namespace shop): AUDIT would deny: container \"app\" image \"nginx\": a digest is required"
        ),
        format!(
            "{file}: CronJob/report (namespace default): AUDIT would deny: container \"report\""
        ),
        format!("{file}: Pod/system (namespace kube-system): AUDIT would deny: container \"x\""),
    ];
    assert_eq!(lines.len(), expected.len(), "{stdout}");
    for (line, prefix) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(prefix.as_str()),
            "{line}\n  should start with\n{prefix}"
        );
    }
    assert!(
        text(&out.stderr).contains("3 object(s) checked, 1 denied, 6 finding(s)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_exits_0_when_only_audit_findings_remain_and_reads_stdin() {
    let f = Fixture::new();
    let clean = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  containers:\n    - name: a\n      image: harbor.example.com/a/b:v1\n";
    let out = f.check(&["-"], Some(clean));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("-: Pod/ok (namespace default): AUDIT would deny"),
        "{}",
        text(&out.stdout)
    );
    // --namespace sets the namespace of objects that name none.
    let out = f.check(
        &["--namespace", "kube-system", "-"],
        Some(&clean.replace("harbor.example.com/a/b:v1", "nginx")),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "kube-system is excluded: {}",
        text(&out.stdout)
    );
    let out = f.check(
        &["-"],
        Some(&clean.replace("harbor.example.com/a/b:v1", "nginx")),
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_json_output_is_machine_readable() {
    let f = Fixture::new();
    let file = f.write("app.yaml", MANIFESTS);
    let out = f.check(&["--output", "json", &file], None);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["objectsChecked"], 3);
    assert_eq!(report["denied"], 1);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 6);
    let deny = &findings[0];
    assert_eq!(deny["kind"], "Deployment");
    assert_eq!(deny["name"], "web");
    assert_eq!(deny["namespace"], "shop");
    assert_eq!(deny["container"], "app");
    assert_eq!(deny["containerType"], "container");
    assert_eq!(deny["image"], "nginx");
    assert_eq!(deny["policy"], "registries");
    assert_eq!(deny["rule"], "registries.allow");
    assert_eq!(deny["mode"], "Enforce");
}

#[test]
fn check_fails_clearly_on_unreadable_input() {
    let f = Fixture::new();
    let bad_yaml = f.write("bad.yaml", "kind: Pod\n  spec: [");
    let out = f.check(&[&bad_yaml], None);
    assert_eq!(out.status.code(), Some(2), "unreadable is not denied");
    assert!(
        text(&out.stderr).contains("bad.yaml: not valid YAML"),
        "{}",
        text(&out.stderr)
    );
    let out = f.check(&[&f.path("missing.yaml")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("reading"),
        "{}",
        text(&out.stderr)
    );
    let broken = f.write(
        "broken.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: nginx}\n",
    );
    let out = f.check(&[&broken], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("broken.yaml: Pod"),
        "{}",
        text(&out.stderr)
    );
    // Broken policies: exit 2 with the policy errors.
    f.write(
        "policies/z.yaml",
        &policy("z", "registries:\n  allow: ['https://x.io']"),
    );
    let out = f.check(
        &[&f.write("ok.yaml", "kind: ConfigMap\napiVersion: v1\n")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("z.yaml:7: spec.registries.allow[0]"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn policy_validate_prints_every_error_and_exits_non_zero() {
    let f = Fixture::new();
    let out = run(&["policy", "validate", &f.path("policies")], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 valid policies"));

    let bad = f.write(
        "bad.yaml",
        &format!(
            "{}---\n{}",
            policy("one", "registries:\n  allow: ['https://harbor.example.com']\nblockedImages: ['x@sha256:abc']"),
            policy("one", "tags:\n  allow: ['[']")
        ),
    );
    let out = run(&["policy", "validate", &bad], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for fragment in [
        "3 errors in the policy files",
        "bad.yaml:7: spec.registries.allow[0]: a registry pattern takes a host, not a URL: write `harbor.example.com/**`",
        "bad.yaml:8: spec.blockedImages[0]: patterns match names and tags, not digests",
        "bad.yaml:16: spec.tags.allow[0]: invalid regular expression",
    ] {
        assert!(err.contains(fragment), "{err}\nlacks: {fragment}");
    }
    let out = run(
        &[
            "policy",
            "validate",
            &f.write("typo.yaml", &policy("t", "blockedImage: [x]")),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("typo.yaml:6: unknown field `blockedImage`"),
        "{}",
        text(&out.stderr)
    );
}

/// The reload rules hold offline too: an empty or comments-only file and a file that
/// is not UTF-8 are errors (`policy validate` exits 1, `check` exits 2).
#[test]
fn empty_and_non_utf8_policy_files_are_errors_offline() {
    let f = Fixture::new();
    let good = policy("p", "tags:\n  forbid: [latest]");
    // A byte that is not UTF-8 in the middle of line 5.
    let at = good.match_indices('\n').nth(3).unwrap().0 + 3;
    let mut not_utf8 = good.clone().into_bytes();
    not_utf8[at] = 0xe9;
    // (name, content, message)
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "empty.yaml",
            Vec::new(),
            "empty.yaml: the file holds no policy document".into(),
        ),
        (
            "comments.yaml",
            b"# TODO\n   \n".to_vec(),
            "comments.yaml: the file holds no policy document".into(),
        ),
        (
            "latin1.yaml",
            not_utf8,
            format!("latin1.yaml:5: byte {at}: the file is not valid UTF-8 (byte 0xe9)"),
        ),
    ];
    for (name, bytes, message) in cases {
        let path = f.path(name);
        std::fs::write(&path, &bytes).unwrap();
        let out = run(&["policy", "validate", &path], None);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = text(&out.stderr);
        assert!(err.contains(&message), "{err}\nlacks: {message}");
        assert!(err.contains("1 error in the policy files"), "{err}");
        let out = run(
            &["check", "--policies", &path, "-"],
            Some("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n"),
        );
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&message),
            "{}",
            text(&out.stderr)
        );
    }
}

/// Patterns that silently meant something else, or nothing, are load-time errors
/// with file, line, field and what to write.
#[test]
fn policy_validate_refuses_bare_hosts_and_patterns_that_match_nothing() {
    let f = Fixture::new();
    let bad = f.write(
        "hosts.yaml",
        &policy(
            "hosts",
            "blockedImages: ['ghcr.io']\nexcludeImages: ['localhost:5000']\nregistries:\n  allow: ['\\\\']",
        ),
    );
    let out = run(&["policy", "validate", &bad], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for fragment in [
        "3 errors in the policy files",
        "hosts.yaml:6: spec.blockedImages[0]: `ghcr.io` is read as a Docker Hub image (docker.io/library/...), not as a registry: write `ghcr.io/**`",
        "hosts.yaml:7: spec.excludeImages[0]: `localhost:5000` is read as a Docker Hub image (docker.io/library/...), not as a registry: write `localhost:5000/**`",
        "hosts.yaml:9: spec.registries.allow[0]: ",
        "a backslash never appears in an image name",
    ] {
        assert!(err.contains(fragment), "{err}\nlacks: {fragment}");
    }
}

#[test]
fn the_committed_json_schema_is_current() {
    let out = run(&["policy", "schema"], None);
    assert!(out.status.success());
    let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/imagepolicy.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        generated, committed,
        "run `cargo run -- policy schema > schema/imagepolicy.schema.json`"
    );
    assert_eq!(
        generated["additionalProperties"], false,
        "unknown fields are refused"
    );
}

#[test]
fn the_default_policy_is_valid() {
    let out = run(
        &[
            "policy",
            "validate",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// `check` is offline: signature rules are skipped, and it says so; the rest of
/// the policy still judges. `policy validate` answers the guides' shorthand with
/// the YAML to write.
#[test]
fn check_skips_signature_rules_and_says_so() {
    let f = Fixture::new();
    let key = "-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEiSeHy5TtW0vYtMdWkM8TsCtWhk9jfl4jBLnqpzQQ59ROS2U2ApJ6lehITLu3jgIFK0lWQcxqbaGBGkgb5WJxUg==\\n-----END PUBLIC KEY-----\\n";
    let signed = policy(
        "signed",
        &format!(
            "allowedRegistries: [harbor.example.com]\nsignatures:\n  authorities:\n    - {{name: release, key: {{inline: \"{key}\"}}}}"
        ),
    );
    let policies = f.write("signed.yaml", &signed);
    let pod = f.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n    - {name: app, image: 'harbor.example.com/app:v1'}\n    - {name: side, image: 'quay.io/x/y:v1'}\n",
    );
    let out = run(&["check", "--policies", &policies, &pod], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("registry \"quay.io\" is not allowed here"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("harbor.example.com/app:v1\": "),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "note: policy signed: signature and attestation rules skipped: `check` is offline"
        ),
        "{stderr}"
    );
    let out = run(
        &["check", "--output", "json", "--policies", &policies, &pod],
        None,
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["skipped"][0]
            .as_str()
            .unwrap()
            .contains("policy signed"),
        "{report}"
    );

    let shorthand = f.write(
        "short.yaml",
        &policy("short", "requiredSignatures: true\nminimumSeverity: HIGH"),
    );
    let out = run(&["policy", "validate", &shorthand], None);
    let stderr = text(&out.stderr) + &text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("spec.requiredSignatures: imagegate has no default signing authority"),
        "{stderr}"
    );
    assert!(
        stderr.contains("attestations:\n        - name: scan"),
        "{stderr}"
    );
}
