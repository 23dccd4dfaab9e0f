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
        .map(|v| (v.policy.to_string(), v.rule.to_string()))
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
        // A tag beside a digest is unchecked without preflight, and a digest alone
        // names no version: the allow-list cannot be satisfied by either.
        ("prod-eu", digest, pairs(&[("tags", "tags.allow")]), vec![]),
        (
            "prod-eu",
            format!("harbor.example.com/app/web@{D}"),
            pairs(&[("tags", "tags.allow")]),
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
        (
            "dev",
            "INDEX.DOCKER.IO/library/vulnerable-image:2",
            &["docker.io/library/vulnerable-image is blocked (pattern \"vulnerable-image:*\")"],
        ),
        (
            "dev",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &[
                "image reference refused: this is an image ID",
                "name the image as `registry/repository@sha256:<digest>`",
            ],
        ),
        (
            "dev",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &[
                "not a valid image reference: this is an image ID",
                "InvalidImageName",
            ],
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
    let w = pod("prod-eu", "harbor.example.com/app/web:v1.0.0");
    let d = decide(&policies, &w, &Facts::default());
    assert!(d.allowed());
    let warnings = d.audit_warnings(&w);
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

mod registry {
    use crate::engine::{ClusterNodes, NodeView};

    use super::*;
    use crate::engine::{FailureKind, ManifestFacts};
    use crate::engine::{ImageFacts, LookupFailure, Needs, needs};
    use crate::platform::Platform;

    const REGISTRY_POLICIES: &str = r#"
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: pin}
spec:
  namespaces: ["pin", "audit"]
  pinDigests: true
  skipPinning: ["harbor.example.com/sidecars/**"]
  onRegistryError: Warn
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: arch}
spec:
  namespaces: ["multi"]
  architectures: {require: [amd64, arm64]}
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: arch-mutate}
spec:
  namespaces: ["mutate"]
  architectures: {onMismatch: AddNodeAffinity}
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: audit-pin}
spec:
  mode: Audit
  namespaces: ["audit-only"]
  pinDigests: true
  pinDigestsOn: [Pod, Deployment]
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: pin-templates}
spec:
  namespaces: ["templates"]
  pinDigests: true
  pinDigestsOn: [Deployment]
"#;

    fn policies() -> PolicySet {
        PolicySet::compile(&load_sources(&[("r.yaml", REGISTRY_POLICIES)])).unwrap()
    }

    fn workload(kind: &str, ns: &str, image: &str, extra: serde_json::Value) -> Workload {
        let mut spec = json!({"containers": [{"name": "app", "image": image}]});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let (group, object) = match kind {
            "Pod" => ("", json!({"metadata": {"name": "web"}, "spec": spec})),
            _ => (
                "apps",
                json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": spec}}}),
            ),
        };
        Workload::from_object(group, kind, ns, &object)
            .unwrap()
            .unwrap()
    }

    fn found(image: &str, platforms: &[&str]) -> Facts {
        let manifest = (!platforms.is_empty()).then(|| ManifestFacts {
            is_index: platforms.len() > 1,
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
        });
        let mut facts = Facts::default();
        facts.images.insert(
            image.into(),
            ImageFacts::Found {
                tag_check: None,
                digest: D.into(),
                manifest,
            },
        );
        facts
    }

    fn failed(image: &str, kind: FailureKind) -> Facts {
        let mut facts = Facts::default();
        let failure = LookupFailure::new(kind, "the registry said no");
        facts
            .images
            .insert(image.into(), ImageFacts::Failed(failure));
        facts
    }

    /// One untainted Node per `os/arch`, all in zone `a`.
    fn platform_nodes(platforms: &[&str]) -> ClusterNodes {
        let nodes = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (os, arch) = p.split_once('/').unwrap();
                crate::platform::Node {
                    name: format!("node-{i}"),
                    labels: [
                        ("kubernetes.io/arch", arch),
                        ("kubernetes.io/os", os),
                        ("topology.kubernetes.io/zone", "a"),
                    ]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into(),
                    ..Default::default()
                }
            })
            .collect();
        ClusterNodes::Listed(std::sync::Arc::new(nodes))
    }

    /// One Linux Node per architecture, untainted.
    fn cluster_nodes(archs: &[&str]) -> ClusterNodes {
        let nodes = archs
            .iter()
            .enumerate()
            .map(|(i, arch)| crate::platform::Node {
                name: format!("node-{i}"),
                labels: [("kubernetes.io/arch", *arch), ("kubernetes.io/os", "linux")]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into(),
                ..Default::default()
            })
            .collect();
        ClusterNodes::Listed(std::sync::Arc::new(nodes))
    }

    fn patches(d: &Decision) -> Vec<serde_json::Value> {
        d.patches
            .iter()
            .map(|p| serde_json::to_value(p).unwrap())
            .collect()
    }

    #[test]
    fn pins_digests_where_the_policy_says() {
        let img = "harbor.example.com/app/web:v1";
        let pin = json!([{"op": "replace", "path": "/spec/containers/0/image", "value": format!("{img}@{D}")}]);
        let tpl = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": format!("{img}@{D}")}]);
        let implicit = json!([{"op": "replace", "path": "/spec/containers/0/image",
            "value": format!("harbor.example.com/app/web:latest@{D}")}]);
        let none = json!([]);
        // (kind, namespace, image, expected patches, expected warning fragment)
        let table: Vec<(&str, &str, String, &serde_json::Value, Option<&str>)> = vec![
            ("Pod", "pin", img.into(), &pin, None),
            (
                "Pod",
                "pin",
                "harbor.example.com/app/web".into(),
                &implicit,
                None,
            ),
            ("Deployment", "pin", img.into(), &none, None),
            ("Pod", "pin", format!("{img}@{D}"), &none, None),
            (
                "Pod",
                "pin",
                "harbor.example.com/sidecars/envoy:v1".into(),
                &none,
                None,
            ),
            ("Pod", "other", img.into(), &none, None),
            ("Deployment", "templates", img.into(), &tpl, None),
            ("Pod", "templates", img.into(), &none, None),
            (
                "Deployment",
                "audit-only",
                img.into(),
                &none,
                Some(
                    "would pin: container \"app\" image \"harbor.example.com/app/web:v1\" to harbor.example.com/app/web:v1@sha256:",
                ),
            ),
        ];
        for (kind, ns, image, expected, warning) in table {
            let w = workload(kind, ns, &image, json!({}));
            let d = decide(&policies(), &w, &found(&image, &[]));
            assert!(d.allowed(), "{kind} {ns} {image}");
            assert_eq!(
                serde_json::Value::Array(patches(&d)),
                *expected,
                "{kind} {ns} {image}"
            );
            match warning {
                Some(w) => assert!(
                    d.would_mutate.iter().any(|x| x.starts_with(w)),
                    "{:?}",
                    d.would_mutate
                ),
                None => assert!(d.would_mutate.is_empty(), "{:?}", d.would_mutate),
            }
            assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        }
    }

    #[test]
    fn a_denied_container_is_not_pinned() {
        let text = format!(
            "{REGISTRY_POLICIES}---\napiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: only-harbor}}\nspec:\n  namespaces: [pin]\n  registries: {{allow: [harbor.example.com]}}\n"
        );
        let policies = PolicySet::compile(&load_sources(&[("r.yaml", &text)])).unwrap();
        let img = "quay.io/app/web:v1";
        let d = decide(
            &policies,
            &workload("Pod", "pin", img, json!({})),
            &found(img, &[]),
        );
        assert!(!d.allowed());
        assert!(d.patches.is_empty(), "{:?}", d.patches);
    }

    #[test]
    fn failed_lookups_deny_or_warn() {
        let img = "harbor.example.com/app/web:v1";
        // (failure, allowed, warned)
        let table = [
            (FailureKind::ManifestUnknown, false, false),
            (FailureKind::Unauthorized, false, false),
            (FailureKind::Timeout, true, true),
            (FailureKind::ConnectionRefused, true, true),
            (FailureKind::TlsUnknownAuthority, true, true),
            (FailureKind::RateLimited, true, true),
            (FailureKind::UnusableAnswer, true, true),
        ];
        for (kind, allowed, warned) in table {
            let d = decide(
                &policies(),
                &workload("Pod", "pin", img, json!({})),
                &failed(img, kind.clone()),
            );
            assert_eq!(d.allowed(), allowed, "{kind:?}");
            assert_eq!(!d.warnings.is_empty(), warned, "{kind:?}");
            if !allowed {
                assert_eq!(d.violations[0].rule, Rule::Preflight);
                assert_eq!(&*d.violations[0].message, "the registry said no");
            } else {
                assert!(d.warnings[0].contains("the registry said no (admitted because policy pin has onRegistryError: Warn)"), "{:?}", d.warnings);
            }
            assert!(d.patches.is_empty());
        }
        // onRegistryError defaults to Deny.
        let d = decide(
            &policies(),
            &workload("Pod", "multi", img, json!({})),
            &failed(img, FailureKind::Timeout),
        );
        assert!(!d.allowed());
    }

    #[test]
    fn architectures_are_checked_against_where_the_pod_may_run() {
        let img = "harbor.example.com/app/web:v1";
        let arm_selector = json!({"nodeSelector": {"kubernetes.io/arch": "arm64"}});
        let amd_selector = json!({"nodeSelector": {"kubernetes.io/arch": "amd64"}});
        // (namespace, platforms, pod extras, node archs, expected violation fragment)
        type Case<'a> = (
            &'a str,
            Vec<&'a str>,
            serde_json::Value,
            Option<Vec<&'a str>>,
            Option<&'a str>,
        );
        let table: Vec<Case> = vec![
            (
                "multi",
                vec!["linux/amd64", "linux/arm64"],
                json!({}),
                None,
                None,
            ),
            (
                "multi",
                vec!["linux/amd64"],
                json!({}),
                None,
                Some(
                    "the image has no linux/arm64 variant (it has linux/amd64); the pod may run on arm64 nodes (from policy), where it would crash with \"exec format error\"",
                ),
            ),
            (
                "multi",
                vec!["linux/amd64"],
                amd_selector.clone(),
                None,
                None,
            ),
            (
                "multi",
                vec!["linux/amd64"],
                arm_selector.clone(),
                None,
                Some("(from nodeSelector)"),
            ),
            (
                "multi",
                vec!["linux/arm64/v8", "linux/amd64"],
                arm_selector.clone(),
                None,
                None,
            ),
            (
                "multi",
                vec!["linux/amd64"],
                json!({}),
                Some(vec!["amd64"]),
                None,
            ),
            (
                "multi",
                vec!["linux/arm/v7"],
                json!({}),
                Some(vec!["arm64"]),
                None,
            ),
            (
                "multi",
                vec!["linux/amd64", "unknown/unknown"],
                json!({}),
                Some(vec!["amd64", "s390x"]),
                Some("no linux/s390x variant"),
            ),
            (
                "mutate",
                vec!["linux/amd64"],
                arm_selector.clone(),
                None,
                Some("from nodeSelector"),
            ),
        ];
        for (ns, platforms, extra, nodes, expected) in table {
            let w = workload("Pod", ns, img, extra.clone());
            let mut facts = found(img, &platforms);
            facts.nodes = nodes.map(|n| cluster_nodes(&n));
            let d = decide(&policies(), &w, &facts);
            match expected {
                None => assert!(
                    d.allowed(),
                    "{ns} {platforms:?} {extra}: {:?}",
                    d.violations
                ),
                Some(fragment) => {
                    assert!(!d.allowed(), "{ns} {platforms:?} {extra}");
                    assert_eq!(d.violations[0].rule, Rule::Architectures);
                    assert!(
                        d.violations[0].message.contains(fragment),
                        "{}",
                        d.violations[0].message
                    );
                }
            }
        }
    }

    #[test]
    fn add_node_affinity_instead_of_denying() {
        let img = "harbor.example.com/app/web:v1";
        let arch = json!({"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]});
        let os = json!({"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]});
        let zone = json!({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]});
        let required = |terms: serde_json::Value| json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}});
        let add = |path: &str, value: serde_json::Value| json!({"op": "add", "path": path, "value": value});
        let base = "/spec/affinity";
        let two = ["linux/amd64", "linux/arm64"];
        let three = ["linux/amd64", "linux/arm64", "windows/amd64"];
        // (case, nodes, image platforms, pod extras, expected patch)
        #[rustfmt::skip]
        type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], serde_json::Value, serde_json::Value);
        let table: Vec<Case> = vec![
            (
                "no affinity: the whole affinity is added",
                &two,
                &["linux/amd64"],
                json!({}),
                json!([add(
                    base,
                    json!({"nodeAffinity": required(json!([{"matchExpressions": [arch]}]))})
                )]),
            ),
            (
                "other affinities and unknown fields are left alone",
                &two,
                &["linux/amd64"],
                json!({"affinity": {"podAntiAffinity": {"x": 1}, "futureAffinity": {"y": 2}}}),
                json!([add(
                    &format!("{base}/nodeAffinity"),
                    required(json!([{"matchExpressions": [arch]}]))
                )]),
            ),
            (
                "preferred only: the required part is added",
                &two,
                &["linux/amd64"],
                json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [zone]}}]}}}),
                json!([add(
                    &format!("{base}/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution"),
                    json!({"nodeSelectorTerms": [{"matchExpressions": [arch]}]})
                )]),
            ),
            (
                "each term gets the expression; an empty term matches nothing and is left alone",
                &two,
                &["linux/amd64"],
                json!({"affinity": {"nodeAffinity": required(json!([{"matchExpressions": [zone], "futureField": true}, {}, {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["x"]}]}]))}}),
                json!([
                    add(
                        &format!(
                            "{base}/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions/-"
                        ),
                        arch.clone()
                    ),
                    add(
                        &format!(
                            "{base}/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/2/matchExpressions"
                        ),
                        json!([arch])
                    ),
                ]),
            ),
            (
                "a Windows node: the OS is selected too",
                &three,
                &["linux/amd64", "linux/arm64/v8"],
                json!({}),
                json!([add(
                    base,
                    json!({"nodeAffinity": required(json!([{"matchExpressions": [os]}]))})
                )]),
            ),
            (
                "a Windows node and an amd64-only image",
                &three,
                &["linux/amd64"],
                json!({}),
                json!([add(
                    base,
                    json!({"nodeAffinity": required(json!([{"matchExpressions": [os, arch]}]))})
                )]),
            ),
        ];
        for (case, nodes, platforms, extra, expected) in table {
            let w = workload("Pod", "mutate", img, extra);
            let mut facts = found(img, platforms);
            facts.nodes = Some(platform_nodes(nodes));
            let d = decide(&policies(), &w, &facts);
            assert!(d.allowed(), "{case}: {:?}", d.violations);
            assert_eq!(serde_json::Value::Array(patches(&d)), expected, "{case}");
            assert_eq!(d.unless_mutated.len(), 1, "{case}");
            // The patched pod is admitted as it is, without a patch.
            let mut object = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": img}]}});
            if let Some(extra) = w.raw_affinity.clone() {
                object["spec"]["affinity"] = extra;
            }
            let patch: json_patch::Patch = serde_json::from_value(expected).unwrap();
            json_patch::patch(&mut object, &patch).unwrap();
            let patched = Workload::from_object("", "Pod", "mutate", &object)
                .unwrap()
                .unwrap();
            let d = decide(&policies(), &patched, &facts);
            assert!(
                d.allowed() && d.patches.is_empty() && d.unless_mutated.is_empty(),
                "{case}: {d:?}"
            );
        }

        // No patch where it cannot land or cannot be exact: denied with the reason.
        let mut update = workload("Pod", "mutate", img, json!({}));
        update.change = crate::admission::SpecChange::PodUpdate;
        let template_update = workload("Deployment", "mutate", img, json!({}));
        let mut facts = found(img, &["linux/amd64"]);
        facts.nodes = Some(platform_nodes(&two));
        let d = decide(&policies(), &update, &facts);
        assert!(!d.allowed() && d.patches.is_empty());
        assert!(d.violations[0].message.contains("a Pod's spec cannot change after it is created, but for its images, so imagegate adds no node affinity to this request"), "{}", d.violations[0].message);
        let d = decide(&policies(), &template_update, &facts);
        assert!(d.allowed(), "a workload's template may change");
        assert_eq!(d.patches[0].path().as_str(), "/spec/template/spec/affinity");
        let mut facts = found(img, &["linux/amd64", "windows/arm64"]);
        facts.nodes = Some(platform_nodes(&[
            "linux/amd64",
            "linux/arm64",
            "windows/arm64",
        ]));
        let d = decide(
            &policies(),
            &workload("Pod", "mutate", img, json!({})),
            &facts,
        );
        assert!(!d.allowed() && d.patches.is_empty());
        assert!(
            d.violations[0].message.contains(
                "no node affinity on kubernetes.io/os and kubernetes.io/arch selects exactly"
            ),
            "{}",
            d.violations[0].message
        );
    }

    #[test]
    fn registries_the_nodes_see_differently_follow_on_registry_error() {
        let img = "harbor.example.com/app/web:v1";
        let view = NodeView::NodeCredentials {
            pattern: "harbor.example.com".into(),
        };
        let mirror = NodeView::Mirror {
            pattern: "*.example.com".into(),
        };
        // (namespace: "pin" warns, "multi" denies; failure; view; allowed; fragment)
        #[rustfmt::skip]
        let table = [
            ("pin", FailureKind::Unauthorized, Some(view.clone()), true, "the nodes pull from harbor.example.com with credentials imagegate cannot see (it matches \"harbor.example.com\" in nodeCredentials of imagegate's configuration: a kubelet credential provider or the node's own config.json), so the node's pull may still succeed (admitted because policy pin has onRegistryError: Warn)"),
            ("pin", FailureKind::ManifestUnknown, Some(mirror.clone()), true, "the nodes pull harbor.example.com through a mirror (it matches \"*.example.com\" in mirrors of imagegate's configuration)"),
            ("multi", FailureKind::ManifestUnknown, Some(view.clone()), false, "the registry said no; the nodes pull from harbor.example.com with credentials imagegate cannot see (it matches \"harbor.example.com\" in nodeCredentials of imagegate's configuration: a kubelet credential provider or the node's own config.json), so the node's pull may still succeed: denied because policy arch has onRegistryError: Deny (Warn admits such images with a warning)"),
            ("pin", FailureKind::Unauthorized, None, false, "the registry said no"),
        ];
        for (ns, kind, node_view, allowed, fragment) in table {
            let mut facts = failed(img, kind.clone());
            if let Some(ImageFacts::Failed(f)) = facts.images.get_mut(img) {
                f.node_view = node_view.clone();
            }
            let d = decide(&policies(), &workload("Pod", ns, img, json!({})), &facts);
            assert_eq!(d.allowed(), allowed, "{ns} {kind:?} {node_view:?}");
            let text = match allowed {
                true => d.warnings.join("\n"),
                false => d.violations[0].message.to_string(),
            };
            assert!(text.contains(fragment), "{text}");
        }
    }

    #[test]
    fn pull_policy_never_is_not_looked_up_and_said_so() {
        let img = "harbor.example.com/app/web:v1";
        let mut w = workload("Pod", "multi", img, json!({}));
        w.containers[0].never_pulled = true;
        // Even with a failed lookup in the facts (another container's), nothing is
        // judged from the registry for this one.
        let d = decide(&policies(), &w, &failed(img, FailureKind::ManifestUnknown));
        assert!(d.allowed(), "{:?}", d.violations);
        assert_eq!(
            d.not_checked,
            [
                "container \"app\" image \"harbor.example.com/app/web:v1\": imagePullPolicy: Never, so the registry was not asked (no pull pre-flight, pinning or architecture check): the image must already be on the node [policy arch]"
            ]
        );
        // Static rules still apply to it.
        let text = format!(
            "{REGISTRY_POLICIES}---\napiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: only-quay}}\nspec:\n  registries: {{allow: [quay.io]}}\n"
        );
        let guarded = PolicySet::compile(&load_sources(&[("r.yaml", &text)])).unwrap();
        assert!(!decide(&guarded, &w, &Facts::default()).allowed());
    }

    #[test]
    fn nodes_that_cannot_be_read_are_said_and_follow_on_registry_error() {
        let img = "harbor.example.com/app/web:v1";
        let why = "listing the Nodes from the Kubernetes API server took the whole admission deadline of 8.0 s";
        let unavailable = |platforms: &[&str]| {
            let mut facts = found(img, platforms);
            facts.nodes = Some(ClusterNodes::Unavailable(why.into()));
            facts
        };
        // No require list ("mutate"): nothing says where the pod runs. Deny.
        let d = decide(
            &policies(),
            &workload("Pod", "mutate", img, json!({})),
            &unavailable(&["linux/amd64"]),
        );
        assert!(!d.allowed());
        assert!(
            d.violations[0].message.starts_with(&format!(
                "cannot tell which architectures the pod may run on: {why}"
            )),
            "{}",
            d.violations[0].message
        );
        // A require list ("multi"): judged from it, and the message says the Nodes are unknown.
        let d = decide(
            &policies(),
            &workload("Pod", "multi", img, json!({})),
            &unavailable(&["linux/amd64"]),
        );
        assert!(!d.allowed());
        assert!(
            d.violations[0].message.contains(&format!(
                "(from policy; the cluster's Nodes are unknown: {why})"
            )),
            "{}",
            d.violations[0].message
        );
        assert!(
            decide(
                &policies(),
                &workload("Pod", "multi", img, json!({})),
                &unavailable(&["linux/amd64", "linux/arm64"])
            )
            .allowed()
        );
    }

    #[test]
    fn windows_nodes_need_windows_images() {
        let img = "harbor.example.com/app/web:v1";
        let mut facts = found(img, &["linux/amd64", "linux/arm64"]);
        facts.nodes = Some(platform_nodes(&["linux/amd64", "windows/amd64"]));
        let d = decide(
            &policies(),
            &workload("Pod", "multi", img, json!({})),
            &facts,
        );
        assert!(!d.allowed());
        assert!(d.violations[0].message.contains("the image has no windows/amd64 variant (it has linux/amd64, linux/arm64); the pod may run on windows/amd64 nodes (from the 2 of the cluster's 2 nodes the pod can be scheduled on), where it would crash with \"exec format error\"; build and push the image for windows/amd64 too, or keep the pod off those nodes (nodeSelector kubernetes.io/os: linux, kubernetes.io/arch: amd64)"), "{}", d.violations[0].message);
        let linux = workload(
            "Pod",
            "multi",
            img,
            json!({"nodeSelector": {"kubernetes.io/os": "linux"}}),
        );
        assert!(decide(&policies(), &linux, &facts).allowed());
        let windows_image = found(img, &["windows/amd64"]);
        let mut facts = windows_image.clone();
        facts.nodes = Some(platform_nodes(&["linux/amd64", "windows/amd64"]));
        let windows = workload("Pod", "multi", img, json!({"os": {"name": "windows"}}));
        assert!(decide(&policies(), &windows, &facts).allowed());
    }

    #[test]
    fn needs_name_only_the_lookups_the_rules_read() {
        let img = "harbor.example.com/app/web:v1";
        let table = [
            (
                "pin",
                Needs {
                    images: [(img.to_string(), false)].into(),
                    nodes: false,
                    ..Needs::default()
                },
            ),
            (
                "multi",
                Needs {
                    images: [(img.to_string(), true)].into(),
                    nodes: true,
                    ..Needs::default()
                },
            ),
            ("elsewhere", Needs::default()),
        ];
        for (ns, expected) in table {
            assert_eq!(
                needs(&policies(), &workload("Pod", ns, img, json!({}))),
                expected,
                "{ns}"
            );
        }
        let with_selector = workload(
            "Pod",
            "multi",
            img,
            json!({"nodeSelector": {"kubernetes.io/arch": "arm64"}}),
        );
        assert!(
            needs(&policies(), &with_selector).nodes,
            "the pod names its architecture, and the Nodes still say which fit it (taints, OS)"
        );
        let mut never = workload("Pod", "multi", img, json!({}));
        never.containers[0].never_pulled = true;
        assert!(
            needs(&policies(), &never).is_empty(),
            "imagePullPolicy: Never is never looked up"
        );
        // An image refused by name is never looked up (no requests to hosts the
        // policy forbids).
        let text = format!(
            "{REGISTRY_POLICIES}---\napiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: only-harbor}}\nspec:\n  registries: {{allow: [harbor.example.com]}}\n"
        );
        let guarded = PolicySet::compile(&load_sources(&[("r.yaml", &text)])).unwrap();
        assert!(
            needs(
                &guarded,
                &workload(
                    "Pod",
                    "pin",
                    "169.254.169.254/latest/meta-data:x",
                    json!({})
                )
            )
            .is_empty()
        );
        assert!(!needs(&guarded, &workload("Pod", "pin", img, json!({}))).is_empty());
        // Static-only policies need nothing from the registry.
        assert!(
            needs(
                &super::policies(),
                &workload("Pod", "prod-eu", img, json!({}))
            )
            .is_empty()
        );
    }
}

/// A tag written beside a digest: the node pulls the digest and ignores the tag, so
/// no tag-scoped rule may be satisfied (or escaped) by a tag nobody checked.
mod tag_beside_digest {
    use super::*;
    use crate::engine::{ImageFacts, TagCheck, needs};
    use std::collections::BTreeMap;

    const VERSION_POLICIES: &str = r#"
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: blocked}
spec:
  blockedImages: ["vulnerable-image:*", "nginx:1.14.*"]
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: releases}
spec:
  namespaces: [prod]
  images: ["harbor.example.com/**"]
  excludeImages: ["harbor.example.com/tools/debug:1.0"]
  tags:
    allow: ['^v\d+\.\d+\.\d+$']
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: checked}
spec:
  namespaces: [checked]
  preflight: true
  blockedImages: ["nginx:1.14.*"]
  tags:
    allow: ['^1\.\d+$', '^v\d+\.\d+\.\d+$']
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: scoped}
spec:
  namespaces: [scoped]
  images: ["nginx:1.14.*"]
  registries: {allow: [harbor.example.com]}
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: mutable}
spec:
  namespaces: [mutable]
  preflight: true
  tags: {forbid: [latest]}
"#;

    /// The digest of 1.14.2 in the attack; another digest for "the tag moved".
    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn policies() -> PolicySet {
        PolicySet::compile(&load_sources(&[("v.yaml", VERSION_POLICIES)])).unwrap()
    }

    fn with_tag(image: &str, check: Option<TagCheck>) -> Facts {
        let mut facts = Facts::default();
        let digest = image.rsplit_once('@').map(|(_, d)| d).unwrap_or(OLD);
        facts.images.insert(
            image.into(),
            ImageFacts::Found {
                digest: digest.into(),
                tag_check: check,
                manifest: None,
            },
        );
        facts
    }

    #[test]
    fn each_attack_is_denied_and_each_checked_tag_counts() {
        let points = |d: &str| Some(TagCheck::PointsTo(d.into()));
        let unresolved = Some(TagCheck::Unresolved("harbor.example.com has no tag".into()));
        // (namespace, image, facts (None: offline), denied by, message fragment)
        type Case = (
            &'static str,
            String,
            Option<Facts>,
            Vec<(&'static str, &'static str)>,
            &'static str,
        );
        let table: Vec<Case> = vec![
            // The README's own example: a digest of a blocked repository.
            (
                "dev",
                format!("vulnerable-image@{OLD}"),
                None,
                vec![("blocked", "blockedImages")],
                "blocked (pattern \"vulnerable-image:*\") unless its version is known, and the reference names only a digest",
            ),
            // A decorative tag beside the digest of a blocked version, offline.
            (
                "dev",
                format!("nginx:1.25@{OLD}"),
                None,
                vec![("blocked", "blockedImages")],
                "nothing checked that the tag points to that digest; turn on preflight",
            ),
            // The blocked version written as the tag: blocked whatever is checked.
            (
                "dev",
                format!("nginx:1.14.2@{OLD}"),
                None,
                vec![("blocked", "blockedImages")],
                "docker.io/library/nginx is blocked (pattern \"nginx:1.14.*\"); use",
            ),
            // With preflight: the tag points elsewhere, both digests are named.
            (
                "checked",
                format!("nginx:1.25@{OLD}"),
                Some(with_tag(&format!("nginx:1.25@{OLD}"), points(NEW))),
                vec![
                    ("blocked", "blockedImages"),
                    ("checked", "blockedImages"),
                    ("checked", "tags.allow"),
                ],
                "tag \"1.25\" points to sha256:2222222222222222222222222222222222222222222222222222222222222222 in the registry, not to sha256:1111111111111111111111111111111111111111111111111111111111111111",
            ),
            // The tag could not be resolved: still unknown.
            (
                "checked",
                format!("nginx:1.25@{OLD}"),
                Some(with_tag(&format!("nginx:1.25@{OLD}"), unresolved.clone())),
                vec![
                    ("blocked", "blockedImages"),
                    ("checked", "blockedImages"),
                    ("checked", "tags.allow"),
                ],
                "beside the digest could not be checked (harbor.example.com has no tag)",
            ),
            // tags.allow: a decorative release tag unchecked, and a digest alone.
            (
                "prod",
                format!("harbor.example.com/app/web:v1.2.3@{OLD}"),
                None,
                vec![("releases", "tags.allow")],
                "the version must match one of the allowed tag patterns (^v\\d+\\.\\d+\\.\\d+$), and the node pulls the digest",
            ),
            (
                "prod",
                format!("harbor.example.com/app/web@{OLD}"),
                None,
                vec![("releases", "tags.allow")],
                "the reference names only a digest",
            ),
            (
                "prod",
                format!("harbor.example.com/app/web:v1.2.3@{OLD}"),
                Some(with_tag(
                    &format!("harbor.example.com/app/web:v1.2.3@{OLD}"),
                    points(NEW),
                )),
                vec![("releases", "tags.allow")],
                "the tag was moved",
            ),
            // A tag-scoped exclusion does not exempt an unchecked version.
            (
                "prod",
                format!("harbor.example.com/tools/debug:1.0@{OLD}"),
                None,
                vec![("releases", "tags.allow")],
                "the node pulls the digest and ignores tag \"1.0\"",
            ),
            // A tag-scoped `images` governs an unknown version, not a known other one.
            (
                "scoped",
                format!("nginx@{OLD}"),
                None,
                vec![("blocked", "blockedImages"), ("scoped", "registries.allow")],
                "registry \"docker.io\" is not allowed",
            ),
            ("scoped", "nginx:1.25".into(), None, vec![], ""),
            // A forbidden tag stays forbidden beside a digest, checked or not
            // (imagegate pins `nginx` as `nginx:latest@sha256:...`).
            (
                "mutable",
                format!("nginx:latest@{OLD}"),
                Some(with_tag(&format!("nginx:latest@{OLD}"), points(OLD))),
                vec![("mutable", "tags.forbid")],
                "tag \"latest\" is forbidden",
            ),
            // Checked tags count: each of these is admitted.
            (
                "checked",
                format!("nginx:1.25@{OLD}"),
                Some(with_tag(&format!("nginx:1.25@{OLD}"), points(OLD))),
                vec![],
                "",
            ),
            (
                "prod",
                format!("harbor.example.com/app/web:v1.2.3@{OLD}"),
                Some(with_tag(
                    &format!("harbor.example.com/app/web:v1.2.3@{OLD}"),
                    points(OLD),
                )),
                vec![],
                "",
            ),
            (
                "prod",
                format!("harbor.example.com/tools/debug:1.0@{OLD}"),
                Some(with_tag(
                    &format!("harbor.example.com/tools/debug:1.0@{OLD}"),
                    points(OLD),
                )),
                vec![],
                "",
            ),
            ("dev", "nginx:1.25".into(), None, vec![], ""),
        ];
        let policies = policies();
        for (ns, image, facts, denied, fragment) in table {
            let w = pod(ns, &image);
            let d = decide(&policies, &w, &facts.unwrap_or_default());
            assert_eq!(found(&d.violations), pairs(&denied), "{ns} {image}");
            if !denied.is_empty() {
                let msg = d.denial_message(&w);
                assert!(
                    msg.contains(fragment),
                    "{ns} {image}: {msg}\nlacks {fragment}"
                );
            }
        }
    }

    #[test]
    fn only_what_no_lookup_could_admit_is_left_unlooked() {
        // (namespace, image, looked up?)
        let table = [
            // Blocked by the tag as written: denied whatever the registry says.
            ("checked", format!("nginx:1.14.2@{OLD}"), false),
            // A lookup could show the tag points to this digest: look it up.
            ("checked", format!("nginx:1.25@{OLD}"), true),
            ("checked", "nginx:1.25".to_string(), true),
            ("mutable", format!("nginx:latest@{OLD}"), true),
        ];
        let policies = policies();
        for (ns, image, looked_up) in table {
            let n = needs(&policies, &pod(ns, &image));
            let expected: BTreeMap<String, bool> = if looked_up {
                [(image.clone(), false)].into()
            } else {
                BTreeMap::new()
            };
            assert_eq!(n.images, expected, "{ns} {image}");
        }
    }
}

/// `imagePullSecrets` and `requirePullSecret`: the patch in every starting shape,
/// applied to the object; reinvocation; pinning in the same patch; Audit.
mod pull_secrets {
    use std::collections::HashMap;

    use super::*;
    use crate::admission::SpecChange;
    use crate::engine::{ImageFacts, SecretFacts, ServiceAccountSecrets, needs};

    const PULL_POLICIES: &str = r#"
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: harbor}
spec:
  namespaces: [team, templates-default]
  imagePullSecrets:
    - {registry: harbor.example.com, secretName: registry-harbor}
    - {registry: "*.dkr.ecr.eu-west-1.amazonaws.com", secretName: ecr-pull}
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: pin}
spec:
  namespaces: [team]
  pinDigests: true
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: audit}
spec:
  mode: Audit
  namespaces: [audit]
  imagePullSecrets: [{registry: harbor.example.com, secretName: registry-harbor}]
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: templates}
spec:
  namespaces: [templates]
  imagePullSecrets: [{registry: harbor.example.com, secretName: registry-harbor}]
  injectPullSecretsOn: [Deployment, CronJob]
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: required}
spec:
  namespaces: [required]
  imagePullSecrets: [{registry: harbor.example.com, secretName: registry-harbor}]
  requirePullSecret: Deny
  message: "Ask #platform."
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: warned}
spec:
  namespaces: [warned]
  imagePullSecrets: [{registry: harbor.example.com, secretName: registry-harbor}]
  requirePullSecret: Warn
  injectPullSecretsOn: []
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: only-quay}
spec:
  namespaces: [quay-only]
  registries: {allow: [quay.io]}
  imagePullSecrets: [{registry: harbor.example.com, secretName: registry-harbor}]
"#;

    const HARBOR: &str = "harbor.example.com/app/web:v1";
    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v2";

    fn policies() -> PolicySet {
        PolicySet::compile(&load_sources(&[("s.yaml", PULL_POLICIES)])).unwrap()
    }

    /// An object of `kind` whose pod spec is `spec`.
    fn object(kind: &str, spec: serde_json::Value) -> serde_json::Value {
        match kind {
            "Pod" => json!({"metadata": {"name": "web"}, "spec": spec}),
            "CronJob" => json!({"metadata": {"name": "web"},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
            _ => json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": spec}}}),
        }
    }

    fn read(kind: &str, ns: &str, object: &serde_json::Value, change: SpecChange) -> Workload {
        let group = match kind {
            "Pod" => "",
            "CronJob" => "batch",
            _ => "apps",
        };
        let mut w = Workload::from_object(group, kind, ns, object)
            .unwrap()
            .unwrap();
        w.change = change;
        if change == SpecChange::EphemeralContainers {
            w.retain_ephemeral();
        }
        w
    }

    fn with_sa(secrets: &[&str]) -> Facts {
        let mut facts = Facts::default();
        facts.pull_secrets.service_account = Some(ServiceAccountSecrets {
            name: "default".into(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
        });
        facts
    }

    /// Applies the decision's patch to `object`.
    fn apply(object: &serde_json::Value, d: &Decision) -> serde_json::Value {
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &d.patches).expect("the patch applies");
        patched
    }

    #[test]
    fn the_patch_is_right_in_every_starting_shape_and_a_second_pass_adds_nothing() {
        let harbor = json!([{"name": "app", "image": HARBOR}]);
        let both = json!([{"name": "app", "image": HARBOR}, {"name": "side", "image": ECR}]);
        let secret = |n: &str| json!({"name": n});
        // (kind, namespace, pod spec, what the request may change, the ServiceAccount's
        // secrets (None: not read), the list after the patch (None: no field))
        type Case = (
            &'static str,
            &'static str,
            serde_json::Value,
            SpecChange,
            Option<Vec<&'static str>>,
            Option<serde_json::Value>,
        );
        let any = SpecChange::Any;
        let table: Vec<Case> = vec![
            // Absent, null, empty, filled, already listed.
            (
                "Pod",
                "team",
                json!({"containers": harbor}),
                any,
                None,
                Some(json!([secret("registry-harbor")])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": harbor, "imagePullSecrets": null}),
                any,
                None,
                Some(json!([secret("registry-harbor")])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": harbor, "imagePullSecrets": []}),
                any,
                None,
                Some(json!([secret("registry-harbor")])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": harbor, "imagePullSecrets": [secret("other")]}),
                any,
                None,
                Some(json!([secret("other"), secret("registry-harbor")])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": harbor, "imagePullSecrets": [secret("registry-harbor")]}),
                any,
                None,
                Some(json!([secret("registry-harbor")])),
            ),
            // From the ServiceAccount: it counts only when the pod names none.
            (
                "Pod",
                "team",
                json!({"containers": harbor}),
                any,
                Some(vec!["registry-harbor"]),
                None,
            ),
            (
                "Pod",
                "team",
                json!({"containers": harbor, "imagePullSecrets": []}),
                any,
                Some(vec!["registry-harbor"]),
                Some(json!([])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": harbor, "imagePullSecrets": [secret("other")]}),
                any,
                Some(vec!["registry-harbor"]),
                Some(json!([secret("other"), secret("registry-harbor")])),
            ),
            // The ServiceAccount's other secrets are kept: naming one would drop them.
            (
                "Pod",
                "team",
                json!({"containers": harbor}),
                any,
                Some(vec!["dockerhub"]),
                Some(json!([secret("dockerhub"), secret("registry-harbor")])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": harbor, "imagePullSecrets": []}),
                any,
                Some(vec!["dockerhub"]),
                Some(json!([secret("dockerhub"), secret("registry-harbor")])),
            ),
            // Every container kind; one secret per registry used; none for others.
            (
                "Pod",
                "team",
                json!({"containers": both}),
                any,
                None,
                Some(json!([secret("registry-harbor"), secret("ecr-pull")])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": [{"name": "a", "image": "nginx:1.27"}],
                "initContainers": [{"name": "i", "image": ECR}]}),
                any,
                None,
                Some(json!([secret("ecr-pull")])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": [{"name": "a", "image": "nginx:1.27"}],
                "ephemeralContainers": [{"name": "dbg", "image": HARBOR}]}),
                any,
                None,
                Some(json!([secret("registry-harbor")])),
            ),
            (
                "Pod",
                "team",
                json!({"containers": [{"name": "a", "image": "nginx:1.27"}]}),
                any,
                None,
                None,
            ),
            (
                "Pod",
                "elsewhere",
                json!({"containers": harbor}),
                any,
                None,
                None,
            ),
            // Two containers of one registry: one entry.
            (
                "Pod",
                "team",
                json!({"containers": [{"name": "a", "image": HARBOR}, {"name": "b", "image": "harbor.example.com/x:1"}]}),
                any,
                None,
                Some(json!([secret("registry-harbor")])),
            ),
            // Templates only where the policy lists their kind.
            (
                "Deployment",
                "team",
                json!({"containers": harbor}),
                any,
                None,
                None,
            ),
            (
                "Deployment",
                "templates",
                json!({"containers": harbor}),
                any,
                None,
                Some(json!([secret("registry-harbor")])),
            ),
            (
                "Deployment",
                "templates",
                json!({"containers": harbor, "imagePullSecrets": [secret("x")]}),
                any,
                None,
                Some(json!([secret("x"), secret("registry-harbor")])),
            ),
            (
                "CronJob",
                "templates",
                json!({"containers": harbor}),
                any,
                None,
                Some(json!([secret("registry-harbor")])),
            ),
            (
                "Pod",
                "templates",
                json!({"containers": harbor}),
                any,
                None,
                None,
            ),
            // What the request cannot change is not patched.
            (
                "Pod",
                "team",
                json!({"containers": harbor}),
                SpecChange::PodUpdate,
                None,
                None,
            ),
            (
                "Pod",
                "team",
                json!({"containers": [{"name": "a", "image": "nginx:1.27"}],
                "ephemeralContainers": [{"name": "dbg", "image": HARBOR}]}),
                SpecChange::EphemeralContainers,
                None,
                None,
            ),
            // A container denied by another rule gets nothing.
            (
                "Pod",
                "quay-only",
                json!({"containers": harbor}),
                any,
                None,
                None,
            ),
        ];
        let policies = policies();
        for (kind, ns, spec, change, sa, expected) in table {
            let case = format!("{kind} {ns} {spec} {change:?} sa {sa:?}");
            let object = object(kind, spec);
            let w = read(kind, ns, &object, change);
            let facts = sa.as_deref().map(with_sa).unwrap_or_default();
            let d = decide(&policies, &w, &facts);
            let patched = apply(&object, &d);
            let list = patched.pointer(&format!("{}/imagePullSecrets", w.pod_spec_pointer));
            let before = object.pointer(&format!("{}/imagePullSecrets", w.pod_spec_pointer));
            match &expected {
                Some(e) => assert_eq!(list, Some(e), "{case}"),
                None => assert_eq!(list, before, "{case}"),
            }
            if ns != "quay-only" {
                assert!(d.allowed(), "{case}: {:?}", d.violations);
            }
            // The second pass (reinvocation) finds everything there.
            let again = decide(&policies, &read(kind, ns, &patched, change), &facts);
            assert!(again.patches.is_empty(), "{case}: {:?}", again.patches);
        }
    }

    #[test]
    fn pins_and_pull_secrets_come_out_as_one_patch() {
        let spec = json!({"containers": [{"name": "app", "image": HARBOR}, {"name": "side", "image": "nginx:1.27"}],
                          "imagePullSecrets": [{"name": "dockerhub"}]});
        let object = object("Pod", spec);
        let w = read("Pod", "team", &object, SpecChange::Any);
        let mut facts = Facts::default();
        for image in [HARBOR, "nginx:1.27"] {
            facts.images.insert(
                image.into(),
                ImageFacts::Found {
                    digest: D.into(),
                    tag_check: None,
                    manifest: None,
                },
            );
        }
        let d = decide(&policies(), &w, &facts);
        assert!(d.allowed(), "{:?}", d.violations);
        let patched = apply(&object, &d);
        assert_eq!(
            patched["spec"],
            json!({"containers": [{"name": "app", "image": format!("{HARBOR}@{D}")},
                                  {"name": "side", "image": format!("nginx:1.27@{D}")}],
                   "imagePullSecrets": [{"name": "dockerhub"}, {"name": "registry-harbor"}]})
        );
        // Reinvoked on the patched pod: the pins and the secret are there.
        let mut pinned = Facts::default();
        for image in [format!("{HARBOR}@{D}"), format!("nginx:1.27@{D}")] {
            pinned.images.insert(
                image,
                ImageFacts::Found {
                    digest: D.into(),
                    tag_check: Some(crate::engine::TagCheck::PointsTo(D.into())),
                    manifest: None,
                },
            );
        }
        let again = decide(
            &policies(),
            &read("Pod", "team", &patched, SpecChange::Any),
            &pinned,
        );
        assert!(again.patches.is_empty(), "{:?}", again.patches);
        assert!(again.allowed());
    }

    #[test]
    fn audit_reports_the_would_be_addition_and_changes_nothing() {
        let object = object(
            "Pod",
            json!({"containers": [{"name": "app", "image": HARBOR}]}),
        );
        let w = read("Pod", "audit", &object, SpecChange::Any);
        let d = decide(&policies(), &w, &Facts::default());
        assert!(d.patches.is_empty(), "{:?}", d.patches);
        assert_eq!(
            d.would_mutate,
            [format!(
                "would add imagePullSecret \"registry-harbor\" to Pod \"web\": container \"app\" image \"{HARBOR}\" needs it for registry harbor.example.com [policy audit, rule imagePullSecrets]"
            )]
        );
    }

    #[test]
    fn require_pull_secret_says_what_is_wrong_with_the_secret() {
        let docker_config = |matching: bool| SecretFacts::DockerConfig {
            keys: vec!["quay.io".into(), "https://index.docker.io/v1/".into()],
            matches: if matching {
                HashMap::from([(HARBOR.to_string(), "harbor.example.com".to_string())])
            } else {
                HashMap::new()
            },
        };
        // (namespace (`-listed`: the pod lists the secret itself), the secret (None:
        // not gathered), what the request may change, expected: None admitted
        // silently, Some((denied, fragment)))
        type Case = (
            &'static str,
            Option<SecretFacts>,
            SpecChange,
            Option<(bool, &'static str)>,
        );
        let table: Vec<Case> = vec![
            ("required", Some(docker_config(true)), SpecChange::Any, None),
            // Offline (imagegate check): not evaluated.
            ("required", None, SpecChange::Any, None),
            (
                "required",
                Some(SecretFacts::Missing),
                SpecChange::Any,
                Some((
                    true,
                    "pull secret \"registry-harbor\" (for registry harbor.example.com) does not exist in namespace \"required\", so the node pulls without credentials and fails with \"authentication required\"; create it: kubectl create secret docker-registry registry-harbor --docker-server=harbor.example.com --docker-username=USER --docker-password=PASSWORD -n required. Ask #platform. [policy required, rule requirePullSecret]",
                )),
            ),
            (
                "required",
                Some(SecretFacts::WrongType("Opaque".into())),
                SpecChange::Any,
                Some((
                    true,
                    "pull secret \"registry-harbor\" in namespace \"required\" has type \"Opaque\", not kubernetes.io/dockerconfigjson (or kubernetes.io/dockercfg), and the kubelet uses only those",
                )),
            ),
            (
                "required",
                Some(SecretFacts::WrongType(String::new())),
                SpecChange::Any,
                Some((true, "has no type (Opaque)")),
            ),
            (
                "required",
                Some(SecretFacts::Invalid(
                    "docker config is not valid JSON (line 1, column 2)".into(),
                )),
                SpecChange::Any,
                Some((
                    true,
                    "holds no usable docker config (docker config is not valid JSON (line 1, column 2))",
                )),
            ),
            (
                "required",
                Some(docker_config(false)),
                SpecChange::Any,
                Some((
                    true,
                    "has no auths entry matching harbor.example.com (its auths keys: \"quay.io\", \"https://index.docker.io/v1/\")",
                )),
            ),
            (
                "required",
                Some(SecretFacts::DockerConfig {
                    keys: vec![],
                    matches: HashMap::new(),
                }),
                SpecChange::Any,
                Some((true, "(it has no auths entry at all)")),
            ),
            (
                "required",
                Some(SecretFacts::Unreadable(
                    "secrets \"registry-harbor\" is forbidden".into(),
                )),
                SpecChange::Any,
                Some((
                    true,
                    "could not be read (secrets \"registry-harbor\" is forbidden), so imagegate cannot tell whether it fits",
                )),
            ),
            // kubectl debug cannot add it: the pod lacks it, whatever the secret holds.
            (
                "required",
                Some(docker_config(true)),
                SpecChange::EphemeralContainers,
                Some((
                    true,
                    "the pod does not list pull secret \"registry-harbor\", which policy required names for registry harbor.example.com, and imagegate cannot add it: a kubectl debug request (pods/ephemeralcontainers) changes only the ephemeral containers; add {\"name\": \"registry-harbor\"} to spec.imagePullSecrets",
                )),
            ),
            (
                "required",
                Some(docker_config(true)),
                SpecChange::PodUpdate,
                Some((
                    true,
                    "imagegate cannot add it: a Pod's spec cannot change after it is created, but for its images",
                )),
            ),
            // Warn admits, with the reason; a policy that adds to no kind judges the pod.
            (
                "warned-listed",
                Some(SecretFacts::Missing),
                SpecChange::Any,
                Some((false, "does not exist in namespace \"warned\"")),
            ),
            (
                "warned",
                Some(docker_config(true)),
                SpecChange::Any,
                Some((
                    false,
                    "imagegate cannot add it: policy warned adds pull secrets to no kind",
                )),
            ),
        ];
        let policies = policies();
        for (ns, secret, change, expected) in table {
            let mut spec = match change {
                SpecChange::EphemeralContainers => {
                    json!({"containers": [{"name": "a", "image": "nginx:1.27"}],
                    "ephemeralContainers": [{"name": "app", "image": HARBOR}]})
                }
                _ => json!({"containers": [{"name": "app", "image": HARBOR}]}),
            };
            // A pod that lists the secret itself.
            let ns = match ns.strip_suffix("-listed") {
                Some(ns) => {
                    spec["imagePullSecrets"] = json!([{"name": "registry-harbor"}]);
                    ns
                }
                None => ns,
            };
            let object = object("Pod", spec);
            let w = read("Pod", ns, &object, change);
            let mut facts = Facts::default();
            if let Some(s) = &secret {
                facts
                    .pull_secrets
                    .secrets
                    .insert("registry-harbor".into(), s.clone());
            }
            let d = decide(&policies, &w, &facts);
            let case = format!("{ns} {secret:?} {change:?}");
            match expected {
                None => {
                    assert!(
                        d.allowed() && d.warnings.is_empty(),
                        "{case}: {:?} {:?}",
                        d.violations,
                        d.warnings
                    );
                    // Unless the mutating webhook's patch lands, the validating one denies.
                    assert_eq!(d.unless_mutated.len(), 1, "{case}");
                    assert!(
                        d.unless_mutated[0]
                            .message
                            .contains("imagegate's mutating webhook adds; it is missing, so the patch never landed"),
                        "{:?}",
                        d.unless_mutated
                    );
                }
                Some((true, fragment)) => {
                    assert!(!d.allowed(), "{case}");
                    assert_eq!(d.violations.len(), 1, "{case}");
                    assert_eq!(d.violations[0].rule, Rule::RequirePullSecret);
                    let msg = d.denial_message(&w);
                    assert!(msg.contains(fragment), "{case}: {msg}\nlacks {fragment}");
                }
                Some((false, fragment)) => {
                    assert!(d.allowed(), "{case}");
                    assert_eq!(d.warnings.len(), 1, "{case}: {:?}", d.warnings);
                    assert!(
                        d.warnings[0].contains(fragment),
                        "{case}: {}",
                        d.warnings[0]
                    );
                    assert!(
                        d.warnings[0].ends_with(
                            "(admitted because policy warned has requirePullSecret: Warn)"
                        ),
                        "{}",
                        d.warnings[0]
                    );
                }
            }
        }
        // Hostile auths keys are quoted with control characters escaped, and cut.
        let facts = Facts {
            pull_secrets: crate::engine::PullSecretFacts {
                service_account: None,
                secrets: HashMap::from([(
                    "registry-harbor".to_string(),
                    SecretFacts::DockerConfig {
                        keys: vec![format!("evil\n{}", "k".repeat(500)); 9],
                        matches: HashMap::new(),
                    },
                )]),
            },
            ..Facts::default()
        };
        let w = read(
            "Pod",
            "required",
            &object(
                "Pod",
                json!({"containers": [{"name": "app", "image": HARBOR}]}),
            ),
            SpecChange::Any,
        );
        let msg = decide(&policies, &w, &facts).denial_message(&w);
        assert!(
            !msg.contains("evil\n") && msg.contains("\"evil\\nkkk"),
            "{msg}"
        );
        assert!(msg.contains("and 4 more") && msg.len() < 2000, "{msg}");
    }

    #[test]
    fn needs_name_the_secrets_to_read_and_the_ones_the_lookups_use() {
        let policies = policies();
        let harbor = json!({"containers": [{"name": "app", "image": HARBOR}]});
        // (kind, namespace, spec, secrets to check, ServiceAccount needed, injected)
        let table = [
            (
                "Pod",
                "team",
                harbor.clone(),
                vec![],
                true,
                vec!["registry-harbor"],
            ),
            (
                "Pod",
                "team",
                json!({"containers": [{"name": "app", "image": HARBOR}], "imagePullSecrets": [{"name": "x"}]}),
                vec![],
                false,
                vec!["registry-harbor"],
            ),
            (
                "Pod",
                "team",
                json!({"containers": [{"name": "app", "image": HARBOR}], "imagePullSecrets": [{"name": "registry-harbor"}]}),
                vec![],
                false,
                vec![],
            ),
            // Its Pods will get it: the template's lookups use it too.
            (
                "Deployment",
                "team",
                harbor.clone(),
                vec![],
                true,
                vec!["registry-harbor"],
            ),
            ("Pod", "audit", harbor.clone(), vec![], true, vec![]),
            (
                "Pod",
                "required",
                harbor.clone(),
                vec!["registry-harbor"],
                true,
                vec!["registry-harbor"],
            ),
            (
                "Pod",
                "warned",
                harbor.clone(),
                vec!["registry-harbor"],
                true,
                vec![],
            ),
            (
                "Pod",
                "team",
                json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
                vec![],
                false,
                vec![],
            ),
            // Refused by name: no secret, nothing read.
            ("Pod", "quay-only", harbor.clone(), vec![], false, vec![]),
        ];
        for (kind, ns, spec, check, sa, injected) in table {
            let w = read(kind, ns, &object(kind, spec.clone()), SpecChange::Any);
            let n = needs(&policies, &w);
            let case = format!("{kind} {ns} {spec}");
            let checked: Vec<&str> = n.pull_secrets.keys().map(String::as_str).collect();
            assert_eq!(checked, check, "{case}");
            if let Some(images) = n.pull_secrets.get("registry-harbor") {
                assert_eq!(images.iter().collect::<Vec<_>>(), [HARBOR], "{case}");
            }
            assert_eq!(n.service_account, sa, "{case}");
            assert_eq!(n.injected_pull_secrets, injected, "{case}");
        }
    }
}
