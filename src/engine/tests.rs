use serde_json::json;

use super::*;
use crate::admission::Workload;
use crate::policy::load_sources;

const POLICIES: &str = r#"
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: registries}
spec:
  excludeNamespaces: ["kube-*"]
  registries:
    allow: ["harbor.example.com", "registry.k8s.io/**"]
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: blocked}
spec:
  blockedImages: ["harbor.example.com/legacy/**", "vulnerable-image:*"]
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: tags}
spec:
  namespaces: ["prod-*"]
  images: ["harbor.example.com/**"]
  excludeImages: ["harbor.example.com/tools/**"]
  tags:
    forbid: ["latest", "*-dev"]
    allow: ['^v\d+\.\d+\.\d+$', '^v\d+\.\d+\.\d+-dev$']
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: digests}
spec:
  mode: Audit
  namespaces: ["prod-*"]
  tags:
    requireDigest: true
  message: "Ask #platform for help."
"#;

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn policies() -> PolicySet {
    PolicySet::compile(&load_sources(&[("p.yaml", POLICIES)])).unwrap()
}

fn pod(namespace: &str, image: &str) -> Workload {
    let object = json!({"metadata": {"name": "web", "namespace": namespace},
                        "spec": {"containers": [{"name": "app", "image": image}]}});
    Workload::from_object("", "Pod", namespace, &object)
        .unwrap()
        .unwrap()
}

type Found = Vec<(String, String)>;

fn found(vs: &[Violation]) -> Found {
    vs.iter()
        .map(|v| (v.policy.clone(), v.rule.to_string()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Found {
    items
        .iter()
        .map(|(p, r)| (p.to_string(), r.to_string()))
        .collect()
}

#[test]
fn each_rule_and_each_mode() {
    let digest = format!("harbor.example.com/app/web:v1.2.3@{D}");
    // (namespace, image, enforce violations, audit violations)
    let table: Vec<(&str, String, Found, Found)> = vec![
        (
            "dev",
            "harbor.example.com/app/web:v1.2.3".into(),
            vec![],
            vec![],
        ),
        (
            "dev",
            "nginx:1.25".into(),
            pairs(&[("registries", "registries.allow")]),
            vec![],
        ),
        (
            "dev",
            "harbor.example.com.evil.com/app/web:v1".into(),
            pairs(&[("registries", "registries.allow")]),
            vec![],
        ),
        ("kube-system", "nginx:1.25".into(), vec![], vec![]),
        ("dev", "registry.k8s.io/pause:3.9".into(), vec![], vec![]),
        (
            "dev",
            "harbor.example.com/legacy/app:v1.0.0".into(),
            pairs(&[("blocked", "blockedImages")]),
            vec![],
        ),
        (
            "kube-system",
            "vulnerable-image:2".into(),
            pairs(&[("blocked", "blockedImages")]),
            vec![],
        ),
        (
            "dev",
            "harbor.example.com/app/web:latest".into(),
            vec![],
            vec![],
        ),
        (
            "prod-eu",
            "harbor.example.com/app/web:latest".into(),
            pairs(&[("tags", "tags.forbid"), ("tags", "tags.allow")]),
            pairs(&[("digests", "tags.requireDigest")]),
        ),
        (
            "prod-eu",
            "harbor.example.com/app/web".into(),
            pairs(&[("tags", "tags.forbid"), ("tags", "tags.allow")]),
            pairs(&[("digests", "tags.requireDigest")]),
        ),
        (
            "prod-eu",
            "harbor.example.com/app/web:v1.2.3-dev".into(),
            pairs(&[("tags", "tags.forbid")]),
            pairs(&[("digests", "tags.requireDigest")]),
        ),
        (
            "prod-eu",
            "harbor.example.com/app/web:1.2.3".into(),
            pairs(&[("tags", "tags.allow")]),
            pairs(&[("digests", "tags.requireDigest")]),
        ),
        (
            "prod-eu",
            "harbor.example.com/tools/x:latest".into(),
            vec![],
            pairs(&[("digests", "tags.requireDigest")]),
        ),
        ("prod-eu", digest, vec![], vec![]),
        (
            "prod-eu",
            format!("harbor.example.com/app/web@{D}"),
            vec![],
            vec![],
        ),
        (
            "dev",
            "Harbor.example.com/App".into(),
            pairs(&[("imagegate", "reference")]),
            vec![],
        ),
        (
            "dev",
            "".into(),
            pairs(&[("imagegate", "reference")]),
            vec![],
        ),
    ];
    let policies = policies();
    for (ns, image, enforce, audit) in table {
        let d = decide(&policies, &pod(ns, &image), &Facts::default());
        assert_eq!(found(&d.violations), enforce, "enforce: {ns} {image}");
        assert_eq!(found(&d.audit), audit, "audit: {ns} {image}");
        assert_eq!(d.allowed(), enforce.is_empty());
    }
}

#[test]
fn messages_tell_the_user_what_to_do() {
    let policies = policies();
    // (namespace, image, fragments the message must contain)
    let table: &[(&str, &str, &[&str])] = &[
        (
            "dev",
            "nginx:1.25",
            &[
                "registry \"docker.io\" is not allowed here; allowed: harbor.example.com, registry.k8s.io/**",
                "[policy registries, rule registries.allow]",
            ],
        ),
        (
            "dev",
            "vulnerable-image:2",
            &["docker.io/library/vulnerable-image is blocked (pattern \"vulnerable-image:*\")"],
        ),
        (
            "prod-eu",
            "harbor.example.com/app/web",
            &[
                "no tag means \"latest\", which is forbidden",
                "use a release tag or a digest",
            ],
        ),
        (
            "prod-eu",
            "harbor.example.com/app/web:latest",
            &["tag \"latest\" is forbidden (pattern \"latest\")"],
        ),
        (
            "prod-eu",
            "harbor.example.com/app/web:1.2.3",
            &["tag \"1.2.3\" matches none of the allowed tag patterns (^v\\d+\\.\\d+\\.\\d+$"],
        ),
        (
            "dev",
            "Harbor.example.com/App",
            &["repository name must be lowercase", "InvalidImageName"],
        ),
    ];
    for (ns, image, fragments) in table {
        let w = pod(ns, image);
        let d = decide(&policies, &w, &Facts::default());
        let msg = d.denial_message(&w);
        assert!(
            msg.starts_with(&format!(
                "imagegate denied Pod \"web\" in namespace \"{ns}\""
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("container \"app\" image \"{image}\"")),
            "{msg}"
        );
        for f in *fragments {
            assert!(msg.contains(f), "{msg}\nlacks {f}");
        }
    }
    let d = decide(
        &policies,
        &pod("prod-eu", "harbor.example.com/app/web:v1.0.0"),
        &Facts::default(),
    );
    assert!(d.allowed());
    let warnings = d.audit_warnings();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("would deny: container \"app\""),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("a digest is required; pin the image as harbor.example.com/app/web:v1.0.0@sha256:<digest>"), "{}", warnings[0]);
    assert!(
        warnings[0].ends_with("Ask #platform for help. [policy digests, rule tags.requireDigest]"),
        "{}",
        warnings[0]
    );
}

#[test]
fn every_violation_of_every_container_is_listed() {
    let object = json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "harbor.example.com/ok:v1.0.0"}]}}}});
    let w = Workload::from_object("apps", "Deployment", "dev", &object)
        .unwrap()
        .unwrap();
    let d = decide(&policies(), &w, &Facts::default());
    let msg = d.denial_message(&w);
    assert!(
        msg.starts_with(
            "imagegate denied Deployment \"web\" in namespace \"dev\": 2 image policy violations"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("\n- init container \"init\" image \"busybox\""),
        "{msg}"
    );
    assert!(msg.contains("\n- container \"a\" image \"nginx\""), "{msg}");
    assert!(!msg.contains("\"b\""), "{msg}");
}

#[test]
fn no_policies_allow_everything_valid() {
    let d = decide(
        &PolicySet::default(),
        &pod("dev", "anything:latest"),
        &Facts::default(),
    );
    assert!(d.allowed() && d.audit.is_empty());
}
