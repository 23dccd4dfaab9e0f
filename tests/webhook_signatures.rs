//! Signature and attestation policies through the real binary and the real
//! registry (Debian's docker-registry 2.8, which has no referrers API: the
//! `sha256-<hex>` tag-schema fallback is exercised for real). The material is made
//! by the test signer (src/signature/testing.rs: keys, a Fulcio CA with SCTs, a CT
//! log, Rekor logs) and pushed next to the images with oci-client: legacy `.sig`
//! and `.att` manifests, and Sigstore bundles as referrer manifests listed in the
//! `sha256-<hex>` index. Each attack is denied with its own reason; the cache and
//! the coalescing are proven by counting the registry's requests.

mod common;
mod support;

use common::*;
use serde_json::{Value, json};
use support::cosign::{
    OCI_MANIFEST, key_bundle, key_sig, push_bundles, push_layers, push_unique, tag_of,
};
use support::images::{self, Blob};
use support::registry::{Kind, Registry};
use support::signer::{
    self, BundleSigner, CtLog, Fulcio, KeyKind, LayerParts, LeafSpec, Rekor, TestKey, Validity,
};
const SAN: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";

fn insecure(registry: &Registry) -> String {
    format!(
        "registries:\n  - host: \"{}\"\n    insecure: true\n",
        registry.host()
    )
}

/// The keyless world: a Fulcio CA, a CT log and a Rekor log the test made.
struct Keyless {
    fulcio: Fulcio,
    ct: CtLog,
    rekor: Rekor,
}

impl Keyless {
    fn new() -> Self {
        Keyless {
            fulcio: Fulcio::new("fulcio"),
            ct: CtLog::new(),
            rekor: Rekor::new("rekor.test"),
        }
    }

    /// A keyless `.sig` layer for `san`, logged by `rekor` (a body over
    /// `logged_payload`, normally the payload itself).
    fn sig(
        &self,
        san: &str,
        reference: &str,
        digest: &str,
        rekor: &Rekor,
        validity: Validity,
        logged: bool,
    ) -> LayerParts {
        self.sig_issued(ISSUER, san, reference, digest, rekor, validity, logged)
    }

    /// Like [`Keyless::sig`], with the certificate's OIDC issuer.
    #[allow(clippy::too_many_arguments)]
    fn sig_issued(
        &self,
        issuer: &str,
        san: &str,
        reference: &str,
        digest: &str,
        rekor: &Rekor,
        validity: Validity,
        logged: bool,
    ) -> LayerParts {
        let mut spec = LeafSpec::new(san, issuer);
        spec.validity = validity;
        let leaf = self.fulcio.issue(&spec, Some(&self.ct));
        let payload = signer::simple_signing(reference, digest, &[]);
        let sig = leaf.key.sign(&payload);
        let mut ann = signer::cert_annotations(&leaf, &self.fulcio);
        if logged {
            let entry = rekor.log(
                Rekor::hashedrekord_body(&sig, &leaf.pem(), &signer::sha256(&payload)),
                signer::MARCH_2024_NOON,
                9,
                0,
            );
            ann.push((
                "dev.sigstore.cosign/bundle".into(),
                entry.cosign_annotation(),
            ));
        }
        signer::sig_layer(&payload, &sig, ann)
    }

    /// A keyless `.sig` whose log entry describes another payload.
    fn sig_with_foreign_body(&self, reference: &str, digest: &str) -> LayerParts {
        let leaf = self
            .fulcio
            .issue(&LeafSpec::new(SAN, ISSUER), Some(&self.ct));
        let payload = signer::simple_signing(reference, digest, &[]);
        let sig = leaf.key.sign(&payload);
        let other = b"another payload";
        let entry = self.rekor.log(
            Rekor::hashedrekord_body(&leaf.key.sign(other), &leaf.pem(), &signer::sha256(other)),
            signer::MARCH_2024_NOON,
            10,
            0,
        );
        let mut ann = signer::cert_annotations(&leaf, &self.fulcio);
        ann.push((
            "dev.sigstore.cosign/bundle".into(),
            entry.cosign_annotation(),
        ));
        signer::sig_layer(&payload, &sig, ann)
    }

    /// A keyless `.att` layer (intoto 0.0.2 entry) of a vulnerability scan.
    fn scan_att(&self, digest: &str, finished: &str, findings: &[(&str, &str)]) -> LayerParts {
        let vulns: Vec<Value> = findings
            .iter()
            .map(|(id, s)| json!({"VulnerabilityID": id, "Severity": s}))
            .collect();
        let predicate = json!({
            "invocation": {}, "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.58.0", "version": "0.58.0",
            "result": {"SchemaVersion": 2, "Results": [{"Target": "app", "Vulnerabilities": vulns}]}},
            "metadata": {"scanStartedOn": finished, "scanFinishedOn": finished},
        });
        self.att(digest, VULN, predicate)
    }

    /// A keyless `.att` layer (intoto 0.0.2 entry) of any predicate.
    fn att(&self, digest: &str, predicate_type: &str, predicate: Value) -> LayerParts {
        let leaf = self
            .fulcio
            .issue(&LeafSpec::new(SAN, ISSUER), Some(&self.ct));
        let statement = signer::statement(digest, predicate_type, predicate);
        let sig = leaf.key.sign(&signer::pae(signer::IN_TOTO, &statement));
        let env = signer::envelope(signer::IN_TOTO, &statement, std::slice::from_ref(&sig));
        let entry = self.rekor.log(
            Rekor::intoto_body(&env, &statement, &sig, &leaf.pem()),
            signer::MARCH_2024_NOON,
            3,
            0,
        );
        let mut ann = signer::cert_annotations(&leaf, &self.fulcio);
        ann.push((
            "dev.sigstore.cosign/bundle".into(),
            entry.cosign_annotation(),
        ));
        signer::att_layer(&env, ann)
    }
}

fn rfc3339_days_ago(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = now - days * 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let (z, secs) = (t.div_euclid(86_400) + 719_468, t.rem_euclid(86_400));
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

async fn judge(ig: &Imagegate, images: &[(&str, &str)]) -> (bool, String) {
    let pod = object("Pod", "web", images);
    let r = ig
        .review("/validate", &review("CREATE", &pod, None, None))
        .await;
    let msg = r["status"]["message"].as_str().unwrap_or("").to_string();
    (r["allowed"] == true, msg)
}

#[tokio::test]
async fn key_based_signatures_in_every_location_and_the_attacks_each_denied_with_its_reason() {
    let registry = Registry::start(Kind::Plain).await;
    let host = registry.host();
    let release = TestKey::generate(KeyKind::EcdsaP256);
    let security = TestKey::generate(KeyKind::Ed25519);
    let other = TestKey::generate(KeyKind::EcdsaP256);
    let name = |repo: &str| format!("{host}/{repo}");

    // Signed with the release key: a legacy .sig (a).
    let a = push_unique(&registry, "acme/legacy:v1").await;
    push_layers(
        &registry,
        "acme/legacy",
        &format!("{}.sig", tag_of(&a)),
        &[key_sig(&release, &name("acme/legacy"), &a)],
    )
    .await;
    // A key-based bundle in the sha256-<hex> index (b).
    let b = push_unique(&registry, "acme/bundle:v1").await;
    push_bundles(
        &registry,
        "acme/bundle",
        &b,
        &[(
            signer::BUNDLE_V03_MEDIA_TYPE,
            key_bundle(&release, &b, signer::COSIGN_SIGN_PREDICATE, json!({})),
        )],
    )
    .await;
    // Wrong key: a bundle naming the key that signed it (a legacy .sig names none,
    // and then "another key, or changed content" is all that can be said).
    let c = push_unique(&registry, "acme/wrongkey:v1").await;
    push_bundles(
        &registry,
        "acme/wrongkey",
        &c,
        &[(
            signer::BUNDLE_V03_MEDIA_TYPE,
            key_bundle(&other, &c, signer::COSIGN_SIGN_PREDICATE, json!({})),
        )],
    )
    .await;
    // Payload tampered after signing: a bundle whose statement changed after the
    // release key signed it.
    let d = push_unique(&registry, "acme/tampered:v1").await;
    let statement = signer::statement(&d, signer::COSIGN_SIGN_PREDICATE, json!({}));
    let sig = release.sign(&signer::pae(signer::IN_TOTO, &statement));
    let changed = signer::statement(&d, signer::COSIGN_SIGN_PREDICATE, json!({"changed": true}));
    let tampered = signer::dsse_bundle(
        signer::BUNDLE_V03_MEDIA_TYPE,
        BundleSigner::Key(&release, true),
        &changed,
        &sig,
        &[],
    );
    push_bundles(
        &registry,
        "acme/tampered",
        &d,
        &[(signer::BUNDLE_V03_MEDIA_TYPE, tampered)],
    )
    .await;
    // A legacy .sig by another key: no key named in the material.
    let l = push_unique(&registry, "acme/legacykey:v1").await;
    push_layers(
        &registry,
        "acme/legacykey",
        &format!("{}.sig", tag_of(&l)),
        &[key_sig(&other, &name("acme/legacykey"), &l)],
    )
    .await;
    // A payload naming another image's digest.
    let e = push_unique(&registry, "acme/otherdigest:v1").await;
    push_layers(
        &registry,
        "acme/otherdigest",
        &format!("{}.sig", tag_of(&e)),
        &[key_sig(&release, &name("acme/otherdigest"), &a)],
    )
    .await;
    // A valid signature copied from another repository (same digest there).
    let f = push_unique(&registry, "acme/copied:v1").await;
    let genuine = key_sig(&release, &name("acme/original"), &f);
    push_layers(
        &registry,
        "acme/copied",
        &format!("{}.sig", tag_of(&f)),
        &[genuine],
    )
    .await;
    // Nothing anywhere.
    let g = push_unique(&registry, "acme/unsigned:v1").await;
    // A referrer whose layer is garbage.
    let h = push_unique(&registry, "acme/garbage:v1").await;
    push_bundles(
        &registry,
        "acme/garbage",
        &h,
        &[(
            signer::BUNDLE_V03_MEDIA_TYPE,
            b"garbage, not a bundle".to_vec(),
        )],
    )
    .await;
    // Threshold: signed by release only, where release and security must both sign.
    let i = push_unique(&registry, "two/app:v1").await;
    push_layers(
        &registry,
        "two/app",
        &format!("{}.sig", tag_of(&i)),
        &[key_sig(&release, &name("two/app"), &i)],
    )
    .await;
    // A failure on one path does not hide the other: garbage in the index, a good .sig.
    let j = push_unique(&registry, "acme/mixed:v1").await;
    push_bundles(
        &registry,
        "acme/mixed",
        &j,
        &[(signer::BUNDLE_V03_MEDIA_TYPE, b"{}".to_vec())],
    )
    .await;
    push_layers(
        &registry,
        "acme/mixed",
        &format!("{}.sig", tag_of(&j)),
        &[key_sig(&release, &name("acme/mixed"), &j)],
    )
    .await;
    // Both signers on two/both: threshold met, the bundle found does not stop the .sig search.
    let k = push_unique(&registry, "two/both:v1").await;
    push_bundles(
        &registry,
        "two/both",
        &k,
        &[(
            signer::BUNDLE_V03_MEDIA_TYPE,
            key_bundle(&security, &k, signer::COSIGN_SIGN_PREDICATE, json!({})),
        )],
    )
    .await;
    push_layers(
        &registry,
        "two/both",
        &format!("{}.sig", tag_of(&k)),
        &[key_sig(&release, &name("two/both"), &k)],
    )
    .await;

    let pem = |k: &TestKey| k.public_pem().replace('\n', "\\n");
    let acme = policy(
        "signed",
        &format!(
            "images: [\"{host}/acme/**\"]\nsignatures:\n  authorities:\n    - {{name: release, key: {{inline: \"{}\"}}, transparencyLog: Off}}",
            pem(&release)
        ),
    );
    let two = policy(
        "two-signers",
        &format!(
            "images: [\"{host}/two/**\"]\nsignatures:\n  threshold: 2\n  authorities:\n    - {{name: release, key: {{inline: \"{}\"}}, transparencyLog: Off}}\n    - {{name: security, key: {{inline: \"{}\"}}, transparencyLog: Off}}",
            pem(&release),
            pem(&security)
        ),
    );
    let ig = Imagegate::start_with(
        &[("acme.yaml", &acme), ("two.yaml", &two)],
        Some(&insecure(&registry)),
        None,
    )
    .await;

    for repo in ["acme/legacy", "acme/bundle", "acme/mixed", "two/both"] {
        let (allowed, msg) =
            judge(&ig, &[("app", &registry.reference(&format!("{repo}:v1")))]).await;
        assert!(allowed, "{repo}: {msg}");
    }
    // (image, fragments of the denial)
    let table: Vec<(&str, Vec<String>)> = vec![
        (
            "acme/wrongkey",
            vec![
                "not signed by authority release".into(),
                "[policy signed, rule signatures]".into(),
            ],
        ),
        (
            "acme/tampered",
            vec!["not signed by authority release".into()],
        ),
        (
            "acme/legacykey",
            vec!["signed by another key, or changed after signing".into()],
        ),
        ("acme/otherdigest", vec![format!("{a}")]),
        ("acme/copied", vec![format!("{host}/acme/original")]),
        (
            "acme/unsigned",
            vec![format!(
                "no signatures found for {g} (looked in referrers (the registry has no referrers API), {t}, {t}.sig, {t}.att)",
                t = tag_of(&g)
            )],
        ),
        (
            "acme/garbage",
            vec!["not signed by authority release".into()],
        ),
        (
            "two/app",
            vec![
                "signature threshold 2 of 2 not met: verified release; not verified: security ("
                    .into(),
            ],
        ),
    ];
    let mut reasons = Vec::new();
    for (repo, fragments) in &table {
        let (allowed, msg) =
            judge(&ig, &[("app", &registry.reference(&format!("{repo}:v1")))]).await;
        assert!(!allowed, "{repo} must be denied");
        for f in fragments {
            assert!(msg.contains(f.as_str()), "{repo}: {f:?} not in {msg}");
        }
        reasons.push(msg.split(": ").skip(2).collect::<Vec<_>>().join(": "));
    }
    // Each attack has its own reason.
    for (n, r) in reasons.iter().enumerate() {
        for (m, s) in reasons.iter().enumerate() {
            if n != m {
                assert_ne!(
                    r, s,
                    "{} and {} are denied for the same reason",
                    table[n].0, table[m].0
                );
            }
        }
    }
    println!("{}", reasons.join("\n"));
    // The attacks name their classes: signed by another key, changed content,
    // another digest, another repository, garbage.
    assert!(reasons[0].to_lowercase().contains("key"), "{}", reasons[0]);
    assert!(
        reasons[6].contains("bundle") || reasons[6].contains("JSON"),
        "{}",
        reasons[6]
    );
}

#[tokio::test]
async fn keyless_signatures_and_scans_through_sig_and_att() {
    let registry = Registry::start(Kind::Plain).await;
    let host = registry.host();
    let world = Keyless::new();
    let name = |repo: &str| format!("{host}/{repo}");
    let fresh = rfc3339_days_ago(1);
    let stale = rfc3339_days_ago(9);

    let good = push_unique(&registry, "ci/good:v1").await;
    push_layers(
        &registry,
        "ci/good",
        &format!("{}.sig", tag_of(&good)),
        &[world.sig(
            SAN,
            &name("ci/good"),
            &good,
            &world.rekor,
            Validity::march_2024(),
            true,
        )],
    )
    .await;
    push_layers(
        &registry,
        "ci/good",
        &format!("{}.att", tag_of(&good)),
        &[world.scan_att(&good, &fresh, &[("CVE-2024-0001", "MEDIUM")])],
    )
    .await;

    let wrong_subject = push_unique(&registry, "ci/subject:v1").await;
    push_layers(
        &registry,
        "ci/subject",
        &format!("{}.sig", tag_of(&wrong_subject)),
        &[world.sig(
            "https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main",
            &name("ci/subject"),
            &wrong_subject,
            &world.rekor,
            Validity::march_2024(),
            true,
        )],
    )
    .await;

    let wrong_issuer = push_unique(&registry, "ci/issuer:v1").await;
    push_layers(
        &registry,
        "ci/issuer",
        &format!("{}.sig", tag_of(&wrong_issuer)),
        &[world.sig_issued(
            "https://accounts.evil.example",
            SAN,
            &name("ci/issuer"),
            &wrong_issuer,
            &world.rekor,
            Validity::march_2024(),
            true,
        )],
    )
    .await;

    let expired = push_unique(&registry, "ci/expired:v1").await;
    push_layers(
        &registry,
        "ci/expired",
        &format!("{}.sig", tag_of(&expired)),
        &[world.sig(
            SAN,
            &name("ci/expired"),
            &expired,
            &world.rekor,
            Validity::march_2024(),
            false,
        )],
    )
    .await;

    let foreign_rekor = Rekor::new("rekor.evil");
    let other_log = push_unique(&registry, "ci/otherlog:v1").await;
    push_layers(
        &registry,
        "ci/otherlog",
        &format!("{}.sig", tag_of(&other_log)),
        &[world.sig(
            SAN,
            &name("ci/otherlog"),
            &other_log,
            &foreign_rekor,
            Validity::march_2024(),
            true,
        )],
    )
    .await;

    let body = push_unique(&registry, "ci/body:v1").await;
    push_layers(
        &registry,
        "ci/body",
        &format!("{}.sig", tag_of(&body)),
        &[world.sig_with_foreign_body(&name("ci/body"), &body)],
    )
    .await;

    let critical = push_unique(&registry, "ci/critical:v1").await;
    push_layers(
        &registry,
        "ci/critical",
        &format!("{}.sig", tag_of(&critical)),
        &[world.sig(
            SAN,
            &name("ci/critical"),
            &critical,
            &world.rekor,
            Validity::march_2024(),
            true,
        )],
    )
    .await;
    push_layers(
        &registry,
        "ci/critical",
        &format!("{}.att", tag_of(&critical)),
        &[world.scan_att(
            &critical,
            &fresh,
            &[("CVE-2024-1234", "CRITICAL"), ("CVE-2024-5", "LOW")],
        )],
    )
    .await;

    let old = push_unique(&registry, "ci/old:v1").await;
    push_layers(
        &registry,
        "ci/old",
        &format!("{}.sig", tag_of(&old)),
        &[world.sig(
            SAN,
            &name("ci/old"),
            &old,
            &world.rekor,
            Validity::march_2024(),
            true,
        )],
    )
    .await;
    push_layers(
        &registry,
        "ci/old",
        &format!("{}.att", tag_of(&old)),
        &[world.scan_att(&old, &stale, &[])],
    )
    .await;

    // An attestation of another predicate type only.
    let sbom = push_unique(&registry, "ci/sbom:v1").await;
    push_layers(
        &registry,
        "ci/sbom",
        &format!("{}.sig", tag_of(&sbom)),
        &[world.sig(
            SAN,
            &name("ci/sbom"),
            &sbom,
            &world.rekor,
            Validity::march_2024(),
            true,
        )],
    )
    .await;
    push_layers(
        &registry,
        "ci/sbom",
        &format!("{}.att", tag_of(&sbom)),
        &[world.att(
            &sbom,
            "https://spdx.dev/Document",
            json!({"spdxVersion": "SPDX-2.3"}),
        )],
    )
    .await;

    let ig_dir = tempfile::tempdir().unwrap();
    let root = ig_dir.path().join("trusted_root.json");
    std::fs::write(
        &root,
        signer::trusted_root(&[&world.fulcio], &[&world.rekor], &[&world.ct]),
    )
    .unwrap();
    let keyless = policy(
        "keyless",
        &format!(
            "images: [\"{host}/ci/**\"]\nsignatures:\n  authorities:\n    - name: ci\n      keyless: {{issuer: {ISSUER}, subjectRegExp: '^https://github\\.com/acme/'}}\n      trustRoot: {{path: {}}}\nattestations:\n  - {{name: scan, predicateType: {VULN}, authority: ci, minimumSeverity: HIGH, maxAge: 168h}}",
            root.display()
        ),
    );
    let ig = Imagegate::start_with(
        &[("keyless.yaml", &keyless)],
        Some(&insecure(&registry)),
        None,
    )
    .await;

    let (allowed, msg) = judge(&ig, &[("app", &registry.reference("ci/good:v1"))]).await;
    assert!(allowed, "{msg}");
    let table: Vec<(&str, &[&str])> = vec![
        ("ci/subject", &["identity", "https://github.com/evil/app"]),
        ("ci/issuer", &["https://accounts.evil.example"]),
        ("ci/expired", &["expired"]),
        ("ci/otherlog", &["not signed by authority ci"]),
        ("ci/body", &["not signed by authority ci"]),
        (
            "ci/critical",
            &[
                "attestation scan (https://cosign.sigstore.dev/attestation/vuln/v1): CVE-2024-1234 at CRITICAL, at or above HIGH",
                "[policy keyless, rule attestations]",
            ],
        ),
        ("ci/old", &["scan finished 9 days ago", "older than 168h"]),
        (
            "ci/sbom",
            &[
                "attestation scan: no verified https://cosign.sigstore.dev/attestation/vuln/v1 attestation signed by authority ci",
                "(it verified only: https://spdx.dev/Document)",
            ],
        ),
    ];
    let mut reasons = Vec::new();
    for (repo, fragments) in &table {
        let (allowed, msg) =
            judge(&ig, &[("app", &registry.reference(&format!("{repo}:v1")))]).await;
        assert!(!allowed, "{repo} must be denied");
        for f in *fragments {
            assert!(msg.contains(f), "{repo}: {f:?} not in {msg}");
        }
        reasons.push(msg.split(": ").skip(2).collect::<Vec<_>>().join(": "));
    }
    println!("{}", reasons.join("\n"));
    for (n, r) in reasons.iter().enumerate() {
        for (m, s) in reasons.iter().enumerate() {
            if n != m {
                assert_ne!(
                    r, s,
                    "{} and {} are denied for the same reason",
                    table[n].0, table[m].0
                );
            }
        }
    }
}

#[tokio::test]
async fn eight_containers_and_fifty_pods_cost_one_signature_fetch_and_audit_warns() {
    let registry = Registry::start(Kind::Plain).await;
    let host = registry.host();
    let release = TestKey::generate(KeyKind::EcdsaP256);
    let digest = push_unique(&registry, "acme/hot:v1").await;
    let sig_tag = format!("{}.sig", tag_of(&digest));
    push_layers(
        &registry,
        "acme/hot",
        &sig_tag,
        &[key_sig(&release, &format!("{host}/acme/hot"), &digest)],
    )
    .await;
    push_unique(&registry, "audit/unsigned:v1").await;
    let pem = release.public_pem().replace('\n', "\\n");
    let signed = policy(
        "signed",
        &format!(
            "images: [\"{host}/acme/**\"]\nsignatures:\n  authorities:\n    - {{name: release, key: {{inline: \"{pem}\"}}, transparencyLog: Off}}"
        ),
    );
    let audit = policy(
        "audit-signed",
        &format!(
            "mode: Audit\nimages: [\"{host}/audit/**\"]\nsignatures:\n  authorities:\n    - {{name: release, key: {{inline: \"{pem}\"}}, transparencyLog: Off}}"
        ),
    );
    let ig = Imagegate::start_with(
        &[("s.yaml", &signed), ("a.yaml", &audit)],
        Some(&insecure(&registry)),
        None,
    )
    .await;
    let image = registry.reference("acme/hot:v1");
    registry.reset_counts();
    let containers: Vec<(String, String)> =
        (0..8).map(|n| (format!("c{n}"), image.clone())).collect();
    let refs: Vec<(&str, &str)> = containers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (allowed, msg) = judge(&ig, &refs).await;
    assert!(allowed, "{msg}");
    let ig = std::sync::Arc::new(ig);
    let admissions = (0..50).map(|n| {
        let ig = ig.clone();
        let image = image.clone();
        tokio::spawn(async move {
            let pod = object("Pod", &format!("web-{n}"), &[("app", &image)]);
            ig.review("/validate", &review("CREATE", &pod, None, None))
                .await["allowed"]
                == true
        })
    });
    for allowed in futures::future::join_all(admissions).await {
        assert!(allowed.unwrap());
    }
    // The registry writes its log as it goes: wait for the one read, then check
    // that no other came.
    let sig_path = format!("/manifests/{sig_tag}");
    registry
        .wait_for_count("GET", &sig_path, 1, std::time::Duration::from_secs(5))
        .await;
    registry
        .wait_for_count("GET", "/blobs/", 2, std::time::Duration::from_secs(1))
        .await;
    let sig_reads = registry.count("GET", &sig_path);
    assert_eq!(sig_reads, 1, "{:#?}", registry.requests());
    assert_eq!(
        registry.count("GET", &format!("/manifests/{}.att", tag_of(&digest))),
        1
    );
    // docker-registry 2.8 does not log the referrers route it lacks; the
    // tag-schema index read after its 404 shows that path ran once.
    let index_reads = registry
        .requests()
        .iter()
        .filter(|(m, uri)| m == "GET" && uri.ends_with(&format!("/manifests/{}", tag_of(&digest))))
        .count();
    assert_eq!(index_reads, 1, "{:#?}", registry.requests());
    assert_eq!(
        registry.count("GET", "/blobs/"),
        1,
        "one signature layer, fetched once"
    );

    // 51 admissions: one miss, the rest hits (cached, or joined the fetch in flight).
    let metrics = ig.metrics().await;
    assert!(
        metrics.contains("imagegate_cache_requests_total{fact=\"signatures\",result=\"miss\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("imagegate_cache_requests_total{fact=\"signatures\",result=\"hit\"} 50"),
        "{metrics}"
    );

    // Audit: the unsigned image is admitted with the would-be denial as a warning.
    let pod = object(
        "Pod",
        "web",
        &[("app", &registry.reference("audit/unsigned:v1"))],
    );
    let r = ig
        .review("/validate", &review("CREATE", &pod, None, None))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("would deny: container \"app\""),
        "{warning}"
    );
    assert!(
        warning.contains("no signatures found for sha256:"),
        "{warning}"
    );
}

/// Pushes `bundle` as a referrer manifest of `subject` to the registry (by digest)
/// and lists it in the proxy's referrers answer.
async fn push_referrer(
    registry: &Registry,
    proxy: &support::referrers::ReferrersProxy,
    repo: &str,
    subject: &str,
    layer_media_type: &str,
    artifact_type: &str,
    bytes: &[u8],
) {
    let client = images::client(registry);
    let auth = images::auth(registry);
    let reference = images::reference(registry, &format!("{repo}:unused"));
    client
        .store_auth_if_needed(reference.resolve_registry(), &auth)
        .await;
    let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
    client
        .push_blob(&reference, empty.data.clone(), &empty.digest)
        .await
        .unwrap();
    let digest = signer::digest_of(bytes);
    client
        .push_blob(&reference, bytes.to_vec(), &digest)
        .await
        .unwrap();
    let referrer = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [{"mediaType": layer_media_type, "digest": digest, "size": bytes.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 100},
    })
    .to_string();
    let referrer_digest = signer::digest_of(referrer.as_bytes());
    images::push_manifest_bytes(
        &client,
        &auth,
        &images::by_digest(&reference, &referrer_digest),
        referrer.as_bytes(),
        OCI_MANIFEST,
    )
    .await
    .unwrap();
    proxy.add(
        repo,
        subject,
        json!({"mediaType": OCI_MANIFEST, "digest": referrer_digest, "size": referrer.len(), "artifactType": artifact_type}),
    );
}

#[tokio::test]
async fn bundles_through_the_referrers_api_keyless_signature_and_scan() {
    let registry = Registry::start(Kind::Plain).await;
    let proxy = support::referrers::ReferrersProxy::start(&registry.url()).await;
    let host = proxy.host();
    let world = Keyless::new();
    let digest = push_unique(&registry, "ref/app:v1").await;
    // A keyless cosign v3 signature bundle (DSSE, cosign sign predicate).
    let dsse = |predicate_type: &str, predicate: Value| {
        let leaf = world
            .fulcio
            .issue(&LeafSpec::new(SAN, ISSUER), Some(&world.ct));
        let statement = signer::statement(&digest, predicate_type, predicate);
        let sig = leaf.key.sign(&signer::pae(signer::IN_TOTO, &statement));
        let env = signer::envelope(signer::IN_TOTO, &statement, std::slice::from_ref(&sig));
        let entry = world.rekor.log(
            Rekor::dsse_body(&env, &statement, &sig, &leaf.pem()),
            signer::MARCH_2024_NOON,
            21,
            6,
        );
        signer::dsse_bundle(
            signer::BUNDLE_V03_MEDIA_TYPE,
            BundleSigner::Certificate(&leaf),
            &statement,
            &sig,
            &[&entry],
        )
    };
    let signature = dsse(signer::COSIGN_SIGN_PREDICATE, json!({}));
    let fresh = rfc3339_days_ago(0);
    let scan = dsse(
        VULN,
        json!({"scanner": {"uri": "pkg:github/aquasecurity/trivy", "result": {"Results": [{"Target": "app", "Vulnerabilities": [{"VulnerabilityID": "CVE-2024-7", "Severity": "LOW"}]}]}},
               "metadata": {"scanFinishedOn": fresh}}),
    );
    let empty_type = "application/vnd.oci.empty.v1+json";
    // The signature listed with the empty-config artifact type (selected by its
    // layer), a garbage bundle and an SBOM beside it.
    push_referrer(
        &registry,
        &proxy,
        "ref/app",
        &digest,
        signer::BUNDLE_V03_MEDIA_TYPE,
        empty_type,
        &signature,
    )
    .await;
    push_referrer(
        &registry,
        &proxy,
        "ref/app",
        &digest,
        signer::BUNDLE_V03_MEDIA_TYPE,
        signer::BUNDLE_V03_MEDIA_TYPE,
        b"not json",
    )
    .await;
    push_referrer(
        &registry,
        &proxy,
        "ref/app",
        &digest,
        "application/spdx+json",
        "application/spdx+json",
        b"{\"spdxVersion\":\"SPDX-2.3\"}",
    )
    .await;
    // Another repository with no material of its own.
    push_unique(&registry, "ref/bad:v1").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    std::fs::write(
        &root,
        signer::trusted_root(&[&world.fulcio], &[&world.rekor], &[&world.ct]),
    )
    .unwrap();
    let p = policy(
        "referrers",
        &format!(
            "images: [\"{host}/ref/**\"]\nsignatures:\n  authorities:\n    - name: ci\n      keyless: {{issuer: {ISSUER}, subject: '{SAN}'}}\n      trustRoot: {{path: {}}}\nattestations:\n  - {{name: scan, predicateType: {VULN}, authority: ci, minimumSeverity: HIGH, maxAge: 24h}}",
            root.display()
        ),
    );
    let config = format!(
        "registries:\n  - host: \"{host}\"\n    insecure: true\nsignatureTtlSeconds: 3\nsignatureFailureTtlSeconds: 3\n"
    );
    let ig = Imagegate::start_with(&[("p.yaml", &p)], Some(&config), None).await;
    let image = format!("{host}/ref/app:v1");
    // Without the scan: the signature verifies, the attestation is missing.
    let (allowed, msg) = judge(&ig, &[("app", &image)]).await;
    assert!(!allowed);
    assert!(!msg.contains("rule signatures"), "{msg}");
    assert!(msg.contains("attestation scan: no verified"), "{msg}");
    assert_eq!(proxy.answered(), 1);
    // Within the TTL the answer is cached.
    judge(&ig, &[("app", &image)]).await;
    assert_eq!(proxy.answered(), 1);
    assert_eq!(
        registry.count("GET", &format!("/manifests/{}", tag_of(&digest))),
        2,
        "the legacy .sig and .att tags were asked too, not the tag-schema index: {:#?}",
        registry.requests()
    );
    // Two bundle layers (the signature and the garbage) fetched; the SBOM never.
    registry
        .wait_for_count("GET", "/blobs/", 3, std::time::Duration::from_secs(2))
        .await;
    assert_eq!(
        registry.count("GET", "/blobs/"),
        2,
        "{:#?}",
        registry.requests()
    );
    // The scan arrives as one more referrer; once the cached result expires
    // (signatureTtlSeconds, 300 s by default, 3 s here) it is found.
    push_referrer(
        &registry,
        &proxy,
        "ref/app",
        &digest,
        signer::BUNDLE_V03_MEDIA_TYPE,
        VULN,
        &scan,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let (allowed, msg) = judge(&ig, &[("app", &image)]).await;
    assert_eq!(proxy.answered(), 2);
    assert!(allowed, "{msg}");
    // Another repository does not borrow this one's signatures: the cache key
    // names the repository.
    let (allowed, msg) = judge(&ig, &[("app", &format!("{host}/ref/bad:v1"))]).await;
    assert!(!allowed);
    assert!(msg.contains("no signatures found"), "{msg}");
}

#[tokio::test]
async fn signatures_not_fetched_within_the_deadline_deny_with_that_reason() {
    let registry = Registry::start(Kind::Plain).await;
    let proxy = support::referrers::ReferrersProxy::start(&registry.url()).await;
    let host = proxy.host();
    let release = TestKey::generate(KeyKind::EcdsaP256);
    let digest = push_unique(&registry, "slow/app:v1").await;
    let sig_tag = format!("{}.sig", tag_of(&digest));
    push_layers(
        &registry,
        "slow/app",
        &sig_tag,
        &[key_sig(&release, &format!("{host}/slow/app"), &digest)],
    )
    .await;
    proxy.delay(&sig_tag, std::time::Duration::from_secs(4));
    let pem = release.public_pem().replace('\n', "\\n");
    let p = policy(
        "signed",
        &format!(
            "images: [\"{host}/slow/**\"]\nsignatures:\n  authorities:\n    - {{name: release, key: {{inline: \"{pem}\"}}, transparencyLog: Off}}"
        ),
    );
    let config =
        format!("registries:\n  - host: \"{host}\"\n    insecure: true\ndeadlineSeconds: 1.5\n");
    let ig = Imagegate::start_with(&[("p.yaml", &p)], Some(&config), None).await;
    let image = format!("{host}/slow/app:v1");
    let started = std::time::Instant::now();
    let (allowed, msg) = judge(&ig, &[("app", &image)]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!allowed);
    assert!(
        msg.contains(&format!("could not fetch the signatures of {image} ({digest}) within the admission deadline of 1.5 s")),
        "{msg}"
    );
    // Once the registry answers in time, the same image is admitted.
    proxy.delay(&sig_tag, std::time::Duration::ZERO);
    let (allowed, msg) = judge(&ig, &[("app", &image)]).await;
    assert!(allowed, "{msg}");
}

/// An image with more referrers than imagegate reads (SBOMs and scan reports of
/// other tools, listed first), on three pages: every page is read, and the one
/// referrer whose artifact type is a Sigstore bundle is read first, and verifies.
#[tokio::test]
async fn a_bundle_listed_after_many_other_referrers_is_still_read() {
    let registry = Registry::start(Kind::Plain).await;
    let proxy = support::referrers::ReferrersProxy::start(&registry.url()).await;
    let host = proxy.host();
    let release = TestKey::generate(KeyKind::EcdsaP256);
    let digest = push_unique(&registry, "many/app:v1").await;
    let listed = imagegate::inspector::MAX_REFERRERS + 8;
    for i in 0..listed {
        // Listed only, never pushed: the 31 read after the bundle are not found,
        // which is reported beside the verified signature and does not deny.
        let fake = signer::digest_of(format!("sbom {i}").as_bytes());
        proxy.add(
            "many/app",
            &digest,
            json!({"mediaType": OCI_MANIFEST, "digest": fake, "size": 300, "artifactType": "application/spdx+json"}),
        );
    }
    push_referrer(
        &registry,
        &proxy,
        "many/app",
        &digest,
        signer::BUNDLE_V03_MEDIA_TYPE,
        signer::BUNDLE_V03_MEDIA_TYPE,
        &key_bundle(&release, &digest, signer::COSIGN_SIGN_PREDICATE, json!({})),
    )
    .await;
    let pem = release.public_pem().replace('\n', "\\n");
    let p = policy(
        "signed",
        &format!(
            "images: [\"{host}/many/**\"]\nsignatures:\n  authorities:\n    - {{name: release, key: {{inline: \"{pem}\"}}, transparencyLog: Off}}"
        ),
    );
    let config = format!("registries:\n  - host: \"{host}\"\n    insecure: true\n");
    proxy.paginate(16);
    let ig = Imagegate::start_with(&[("p.yaml", &p)], Some(&config), None).await;
    let (allowed, msg) = judge(&ig, &[("app", &format!("{host}/many/app:v1"))]).await;
    assert!(allowed, "{msg}");
    assert_eq!(proxy.answered(), 3, "pages of 16, 16 and 9 referrers");
    // The bundle's manifest and 31 others were asked for by digest, no more.
    assert_eq!(
        registry.count("GET", "/manifests/sha256:"),
        imagegate::inspector::MAX_REFERRERS,
        "{:#?}",
        registry.requests()
    );
}
