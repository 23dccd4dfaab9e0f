//! The rules that read signature facts: `signatures` (who must have signed, the
//! threshold) and `attestations` (a verified statement of a predicate type, and
//! what a vulnerability scan or SLSA provenance says).
//!
//! Verification itself happened in the inspector, against the digest the pod runs;
//! here the engine only judges what verified. Offline (`imagegate check`) there are
//! no image facts, and these rules are skipped.

use serde_json::Value;

use super::{Facts, ImageFacts, Rule, SignatureFacts};
use crate::policy::Policy;
use crate::policy::signatures::{AttestationCheck, Severity, SignaturePolicy};
use crate::policy::spec::RegistryErrorAction;

/// Every signature and attestation rule of `policy` that the image `written`
/// breaks.
pub(super) fn check(policy: &Policy, written: &str, facts: &Facts) -> Vec<(Rule, String)> {
    let mut out = Vec::new();
    let Some(sig) = &policy.signatures else {
        return out;
    };
    // No image facts: offline, where no signature is fetched.
    let Some(image) = facts.images.get(written) else {
        return out;
    };
    let rule = if sig.required {
        Rule::Signatures
    } else {
        Rule::Attestations
    };
    let digest = match image {
        ImageFacts::Found { digest, .. } => digest,
        ImageFacts::Failed(failure) => {
            // Pre-flight already denies this one; under `onRegistryError: Warn` the
            // signatures still cannot be checked, and that fails closed.
            if !(failure.kind.is_definitive()
                || policy.on_registry_error == RegistryErrorAction::Deny)
            {
                out.push((
                    rule,
                    format!(
                        "its signatures cannot be verified because its digest could not be resolved ({}); signatures are verified against the digest, never a tag",
                        failure.message
                    ),
                ));
            }
            return out;
        }
    };
    let Some(found) = facts
        .signatures
        .get(&(written.to_string(), sig.verifier.id))
    else {
        out.push((
            rule,
            format!("the signatures of {digest} were not checked; try again"),
        ));
        return out;
    };
    if let Some(why) = &found.unavailable {
        out.push((rule, why.clone()));
        return out;
    }
    if sig.required
        && let Some(message) = threshold(sig, found)
    {
        out.push((Rule::Signatures, message));
    }
    for check in &sig.attestations {
        if let Err(message) = attestation(check, found, facts.now) {
            out.push((Rule::Attestations, message));
        }
    }
    out
}

/// Where the inspector looked, and what failed on the way.
fn looked(found: &SignatureFacts) -> String {
    let mut s = format!("looked in {}", found.looked_in.join(", "));
    if !found.errors.is_empty() {
        s.push_str("; and could not read ");
        s.push_str(&found.errors.join("; "));
    }
    s
}

fn threshold(sig: &SignaturePolicy, found: &SignatureFacts) -> Option<String> {
    let verified: Vec<&str> = sig
        .authorities
        .iter()
        .filter(|a| {
            found
                .authorities
                .get(&a.name)
                .is_some_and(|f| f.signature_verified)
        })
        .map(|a| a.name.as_str())
        .collect();
    if verified.len() >= sig.threshold {
        return None;
    }
    if found.materials == 0 {
        return Some(format!(
            "no signatures found for {} ({}); sign the image digest with cosign and push the signature to the image's repository",
            found.digest,
            looked(found)
        ));
    }
    let reason = |name: &str| -> String {
        match found.authorities.get(name).and_then(|f| f.failure.as_ref()) {
            Some(f) => f.message.clone(),
            None => "no signature of it was found".into(),
        }
    };
    let not_verified: Vec<String> = sig
        .authorities
        .iter()
        .filter(|a| !verified.contains(&a.name.as_str()))
        .map(|a| format!("{} ({})", a.name, reason(&a.name)))
        .collect();
    let errors = if found.errors.is_empty() {
        String::new()
    } else {
        format!("; could not read {}", found.errors.join("; "))
    };
    if sig.authorities.len() == 1 {
        let a = &sig.authorities[0];
        return Some(format!(
            "not signed by authority {} ({}): {}{errors}",
            a.name,
            a.description,
            reason(&a.name)
        ));
    }
    Some(format!(
        "signature threshold {} of {} not met: verified {}; not verified: {}{errors}",
        sig.threshold,
        sig.authorities.len(),
        if verified.is_empty() {
            "none".to_string()
        } else {
            verified.join(", ")
        },
        not_verified.join(", ")
    ))
}

fn attestation(
    check: &AttestationCheck,
    found: &SignatureFacts,
    now: Option<i64>,
) -> Result<(), String> {
    let authority = found.authorities.get(&check.authority);
    let statements: Vec<_> = authority
        .iter()
        .flat_map(|a| a.statements.iter())
        .filter(|s| s.predicate_type == check.predicate_type)
        .collect();
    if statements.is_empty() {
        let mut msg = format!(
            "attestation {}: no verified {} attestation signed by authority {} for {}",
            check.name, check.predicate_type, check.authority, found.digest
        );
        let others: Vec<&str> = authority
            .iter()
            .flat_map(|a| a.statements.iter())
            .map(|s| s.predicate_type.as_str())
            .collect();
        if !others.is_empty() {
            msg.push_str(&format!(
                " (it verified only: {})",
                dedup(others).join(", ")
            ));
        } else if let Some(f) = authority.and_then(|a| a.failure.as_ref()) {
            msg.push_str(&format!(" ({})", f.message));
        } else if found.materials == 0 {
            msg.push_str(&format!(" (nothing found; {})", looked(found)));
        }
        msg.push_str(
            "; attach it with `cosign attest --type ...` and the authority's key or identity",
        );
        return Err(msg);
    }
    let mut first_error = None;
    for s in statements {
        let judged = match &s.predicate {
            None => Err(format!(
                "its predicate is {} bytes, over the size imagegate reads, so it cannot be judged",
                s.predicate_bytes
            )),
            Some(p) => judge(check, p, now),
        };
        match judged {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(format!(
        "attestation {} ({}): {}",
        check.name,
        check.predicate_type,
        first_error.expect("at least one statement was judged")
    ))
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Judges one verified predicate against a rule's conditions.
fn judge(check: &AttestationCheck, predicate: &Value, now: Option<i64>) -> Result<(), String> {
    if let Some(min) = check.minimum_severity {
        severity(predicate, min)?;
    }
    if let Some((max, written)) = &check.max_age {
        let Some(finished) = predicate
            .pointer("/metadata/scanFinishedOn")
            .and_then(Value::as_str)
        else {
            return Err("the scan has no metadata.scanFinishedOn, so its age is unknown".into());
        };
        let Ok(at) = finished.parse::<jiff::Timestamp>() else {
            return Err(format!(
                "the scan's metadata.scanFinishedOn ({}) is not an RFC 3339 time",
                clip(finished)
            ));
        };
        let Some(now) = now else {
            return Err("the time is unknown, so the scan's age cannot be judged".into());
        };
        let age = now.saturating_sub(at.as_second());
        if age > i64::try_from(max.as_secs()).unwrap_or(i64::MAX) {
            return Err(format!(
                "scan finished {} ago ({}), older than {written}; scan the image again and attach the new result",
                human_age(age),
                clip(finished)
            ));
        }
    }
    if let Some(re) = &check.builder_id {
        let id = predicate
            .pointer("/runDetails/builder/id")
            .or_else(|| predicate.pointer("/builder/id"))
            .and_then(Value::as_str);
        match id {
            None => return Err("the provenance names no builder id".into()),
            Some(id) if !re.is_match(id) => {
                return Err(format!(
                    "builder id \"{}\" does not match {}",
                    clip(id),
                    re.as_str()
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(re) = &check.source_repository {
        let source = [
            "/buildDefinition/externalParameters/workflow/repository",
            "/buildDefinition/resolvedDependencies/0/uri",
            "/invocation/configSource/uri",
            "/materials/0/uri",
        ]
        .iter()
        .find_map(|p| predicate.pointer(p).and_then(Value::as_str));
        match source {
            None => return Err("the provenance names no source repository".into()),
            Some(src) if !re.is_match(src) => {
                return Err(format!(
                    "source repository \"{}\" does not match {}",
                    clip(src),
                    re.as_str()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The cosign vulnerability predicate as Trivy writes it (`--format cosign-vuln`):
/// the report under `scanner.result`, findings under
/// `Results[].Vulnerabilities[]` with `VulnerabilityID` and `Severity`.
/// `UNKNOWN` findings are not counted; a severity imagegate does not know fails.
fn severity(predicate: &Value, min: Severity) -> Result<(), String> {
    let Some(result) = predicate
        .pointer("/scanner/result")
        .filter(|r| r.is_object())
    else {
        return Err(
            "the scan has no scanner.result report (as `trivy --format cosign-vuln` writes it), so its findings are unknown".into(),
        );
    };
    let mut worst: Option<(Severity, String)> = None;
    let mut count = 0usize;
    let results = result.get("Results").and_then(Value::as_array);
    for r in results.into_iter().flatten() {
        let vulns = r.get("Vulnerabilities").and_then(Value::as_array);
        for v in vulns.into_iter().flatten() {
            let id = v
                .get("VulnerabilityID")
                .and_then(Value::as_str)
                .unwrap_or("a finding without VulnerabilityID");
            let raw = v.get("Severity").and_then(Value::as_str).unwrap_or("");
            if raw.trim().eq_ignore_ascii_case("UNKNOWN") {
                continue;
            }
            let Some(sev) = Severity::parse(raw) else {
                return Err(format!(
                    "{} has severity \"{}\", which imagegate does not know (LOW, MEDIUM, HIGH, CRITICAL, UNKNOWN)",
                    clip(id),
                    clip(raw)
                ));
            };
            if sev >= min {
                count += 1;
                if worst.as_ref().is_none_or(|(w, _)| sev > *w) {
                    worst = Some((sev, clip(id)));
                }
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((sev, id)) => {
            let more = if count > 1 {
                format!(" (and {} more at or above {})", count - 1, min.as_str())
            } else {
                String::new()
            };
            Err(format!(
                "{id} at {}, at or above {}{more}; fix or upgrade the affected packages, rebuild, scan and attest again",
                sev.as_str(),
                min.as_str()
            ))
        }
    }
}

/// Registry-supplied text in a message: bounded, no control characters.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(120).collect()
}

/// `9 days`, `5 hours`, `12 minutes`.
fn human_age(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if seconds >= 2 * 86_400 {
        plural(seconds / 86_400, "day")
    } else if seconds >= 2 * 3600 {
        plural(seconds / 3600, "hour")
    } else {
        plural(seconds.max(0) / 60, "minute")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;

    use super::super::{
        AuthorityFacts, Decision, SignatureFailure, SignatureFailureKind, Statement, decide, needs,
    };
    use super::*;
    use crate::admission::Workload;
    use crate::policy::{Mode, PolicySet, load_sources};
    use crate::signature::testing::{KeyKind, TestKey};

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const IMAGE: &str = "harbor.example.com/acme/app:v1";
    const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
    const SLSA: &str = "https://slsa.dev/provenance/v1";
    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn policies(mode: &str, threshold: u32, required: bool) -> PolicySet {
        let key = |k| TestKey::generate(k).public_pem().replace('\n', "\\n");
        let text = format!(
            r#"apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: signed}}
spec:
  mode: {mode}
  images: ["harbor.example.com/**"]
  signatures:
    required: {required}
    threshold: {threshold}
    authorities:
      - {{name: release, key: {{inline: "{}"}}}}
      - {{name: ci, key: {{inline: "{}"}}}}
      - {{name: security, key: {{inline: "{}"}}}}
  attestations:
    - name: scan
      predicateType: {VULN}
      authority: ci
      minimumSeverity: HIGH
      maxAge: 168h
    - name: provenance
      predicateType: {SLSA}
      authority: ci
      builderId: '^https://github\.com/slsa-framework/'
      sourceRepository: '^https://github\.com/acme/'
"#,
            key(KeyKind::EcdsaP256),
            key(KeyKind::Ed25519),
            key(KeyKind::EcdsaP384),
        );
        PolicySet::compile(&load_sources(&[("p.yaml", &text)])).unwrap()
    }

    fn pod(image: &str) -> Workload {
        let object = json!({"metadata": {"name": "web", "namespace": "prod"},
                            "spec": {"containers": [{"name": "app", "image": image}]}});
        Workload::from_object("", "Pod", "prod", &object)
            .unwrap()
            .unwrap()
    }

    fn scan(finished: &str, findings: &[(&str, &str)]) -> Statement {
        let vulns: Vec<_> = findings
            .iter()
            .map(|(id, sev)| json!({"VulnerabilityID": id, "Severity": sev}))
            .collect();
        let p = json!({"scanner": {"uri": "pkg:github/aquasecurity/trivy", "result": {"Results": [{"Target": "x", "Vulnerabilities": vulns}]}},
                       "metadata": {"scanStartedOn": finished, "scanFinishedOn": finished}});
        statement(VULN, p)
    }

    fn provenance(builder: &str, repo: &str) -> Statement {
        statement(
            SLSA,
            json!({"buildDefinition": {"externalParameters": {"workflow": {"repository": repo}}},
                   "runDetails": {"builder": {"id": builder}}}),
        )
    }

    fn statement(predicate_type: &str, p: serde_json::Value) -> Statement {
        Statement {
            predicate_type: predicate_type.into(),
            predicate_bytes: p.to_string().len(),
            predicate: Some(Arc::new(p)),
        }
    }

    fn good_ci() -> AuthorityFacts {
        AuthorityFacts {
            signature_verified: true,
            failure: None,
            statements: vec![
                scan("2025-12-30T00:00:00Z", &[("CVE-2024-0001", "MEDIUM")]),
                provenance(
                    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0",
                    "https://github.com/acme/app",
                ),
            ],
        }
    }

    fn failed(kind: SignatureFailureKind, message: &str) -> AuthorityFacts {
        AuthorityFacts {
            signature_verified: false,
            failure: Some(SignatureFailure {
                kind,
                message: message.into(),
            }),
            statements: vec![],
        }
    }

    fn facts(set: &PolicySet, authorities: &[(&str, AuthorityFacts)], materials: usize) -> Facts {
        let id = set.policies[0].signatures.as_ref().unwrap().verifier.id;
        let mut f = Facts {
            now: Some(NOW),
            ..Facts::default()
        };
        f.images.insert(
            IMAGE.into(),
            ImageFacts::Found {
                digest: D.into(),
                tag_check: None,
                manifest: None,
            },
        );
        f.signatures.insert(
            (IMAGE.into(), id),
            SignatureFacts {
                digest: D.into(),
                looked_in: vec![
                    "referrers".into(),
                    "sha256-e3b0.sig".into(),
                    "sha256-e3b0.att".into(),
                ],
                materials,
                errors: vec![],
                unavailable: None,
                authorities: authorities
                    .iter()
                    .map(|(n, a)| (n.to_string(), a.clone()))
                    .collect::<BTreeMap<_, _>>(),
            },
        );
        f
    }

    fn messages(d: &Decision) -> Vec<String> {
        d.violations
            .iter()
            .chain(&d.audit)
            .map(|v| format!("{}: {}", v.rule, v.message))
            .collect()
    }

    #[test]
    fn signature_and_attestation_rules_judge_the_facts() {
        let ok = || AuthorityFacts {
            signature_verified: true,
            ..AuthorityFacts::default()
        };
        let wrong_key = || failed(SignatureFailureKind::WrongKey, "signed by another key");
        let identity = || {
            failed(
                SignatureFailureKind::IdentityMismatch,
                "identity mismatch: got X, expected Y",
            )
        };
        // (threshold, authorities, materials, expected message fragments; empty: allowed)
        type Case = (
            u32,
            Vec<(&'static str, AuthorityFacts)>,
            usize,
            Vec<&'static str>,
        );
        let table: Vec<Case> = vec![
            (1, vec![("release", ok()), ("ci", good_ci())], 3, vec![]),
            (2, vec![("release", ok()), ("ci", good_ci())], 3, vec![]),
            (
                3,
                vec![
                    ("release", ok()),
                    ("ci", good_ci()),
                    ("security", wrong_key()),
                ],
                3,
                vec![
                    "signatures: signature threshold 3 of 3 not met: verified release, ci; not verified: security (signed by another key)",
                ],
            ),
            (
                2,
                vec![
                    ("release", identity()),
                    (
                        "ci",
                        AuthorityFacts {
                            signature_verified: false,
                            ..good_ci()
                        },
                    ),
                    ("security", wrong_key()),
                ],
                3,
                vec![
                    "threshold 2 of 3 not met: verified none; not verified: release (identity mismatch: got X, expected Y), ci (no signature of it was found), security (signed by another key)",
                ],
            ),
            (
                1,
                vec![],
                0,
                vec![
                    "signatures: no signatures found for sha256:e3b0c442",
                    "looked in referrers, sha256-e3b0.sig, sha256-e3b0.att",
                    "attestations: attestation scan: no verified https://cosign.sigstore.dev/attestation/vuln/v1 attestation signed by authority ci",
                    "attestation provenance: no verified",
                ],
            ),
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                scan(
                                    "2025-12-30T00:00:00Z",
                                    &[
                                        ("CVE-2024-1234", "CRITICAL"),
                                        ("CVE-2024-9", "HIGH"),
                                        ("CVE-1", "UNKNOWN"),
                                    ],
                                ),
                                good_ci().statements[1].clone(),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec![
                    "attestations: attestation scan (https://cosign.sigstore.dev/attestation/vuln/v1): CVE-2024-1234 at CRITICAL, at or above HIGH (and 1 more at or above HIGH)",
                ],
            ),
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                scan("2025-12-23T00:00:00Z", &[]),
                                good_ci().statements[1].clone(),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec!["scan finished 9 days ago (2025-12-23T00:00:00Z), older than 168h"],
            ),
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                scan("yesterday", &[]),
                                good_ci().statements[1].clone(),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec!["is not an RFC 3339 time"],
            ),
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                scan("2025-12-31T00:00:00Z", &[("CVE-X", "SEVERE")]),
                                good_ci().statements[1].clone(),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec!["CVE-X has severity \"SEVERE\", which imagegate does not know"],
            ),
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                good_ci().statements[0].clone(),
                                provenance(
                                    "https://evil.example/builder",
                                    "https://github.com/acme/app",
                                ),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec![
                    "builder id \"https://evil.example/builder\" does not match ^https://github\\.com/slsa-framework/",
                ],
            ),
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                good_ci().statements[0].clone(),
                                provenance(
                                    "https://github.com/slsa-framework/x",
                                    "https://github.com/evil/app",
                                ),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec!["source repository \"https://github.com/evil/app\" does not match"],
            ),
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                statement("https://spdx.dev/Document", json!({})),
                                good_ci().statements[1].clone(),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec![
                    "attestation scan: no verified https://cosign.sigstore.dev/attestation/vuln/v1 attestation signed by authority ci for sha256:e3b0c442",
                    "(it verified only: https://slsa.dev/provenance/v1, https://spdx.dev/Document)",
                ],
            ),
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                Statement {
                                    predicate_type: VULN.into(),
                                    predicate: None,
                                    predicate_bytes: 9 << 20,
                                },
                                good_ci().statements[1].clone(),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec!["its predicate is 9437184 bytes, over the size imagegate reads"],
            ),
            // Two scans: one passing is enough.
            (
                1,
                vec![
                    ("release", ok()),
                    (
                        "ci",
                        AuthorityFacts {
                            statements: vec![
                                scan("2025-01-01T00:00:00Z", &[]),
                                scan("2025-12-31T00:00:00Z", &[]),
                                good_ci().statements[1].clone(),
                            ],
                            ..good_ci()
                        },
                    ),
                ],
                3,
                vec![],
            ),
        ];
        for (threshold, authorities, materials, expected) in table {
            let set = policies("Enforce", threshold, true);
            let d = decide(&set, &pod(IMAGE), &facts(&set, &authorities, materials));
            let got = messages(&d);
            if expected.is_empty() {
                assert!(got.is_empty(), "threshold {threshold}: {got:#?}");
                continue;
            }
            let all = got.join("\n");
            for e in &expected {
                assert!(all.contains(e), "missing {e:?} in:\n{all}");
            }
            assert!(!d.allowed());
        }
    }

    #[test]
    fn audit_warns_required_false_checks_only_attestations_and_offline_skips() {
        // Audit: the would-be denial is a warning.
        let set = policies("Audit", 1, true);
        let w = pod(IMAGE);
        let d = decide(&set, &w, &facts(&set, &[], 0));
        assert!(d.allowed());
        assert!(
            d.audit_warnings(&w)[0].contains("would deny: container \"app\" image \"harbor.example.com/acme/app:v1\": no signatures found"),
            "{:?}",
            d.audit_warnings(&w)
        );
        // required: false: no signature needed, attestations still judged.
        let set = policies("Enforce", 1, false);
        let ci = AuthorityFacts {
            signature_verified: false,
            ..good_ci()
        };
        let d = decide(&set, &pod(IMAGE), &facts(&set, &[("ci", ci)], 2));
        assert!(d.allowed(), "{:?}", messages(&d));
        let d = decide(&set, &pod(IMAGE), &facts(&set, &[], 0));
        assert_eq!(d.violations.len(), 2, "{:?}", messages(&d));
        assert!(d.violations.iter().all(|v| v.rule == Rule::Attestations));
        // Offline: no image facts, nothing judged.
        let d = decide(&set, &pod(IMAGE), &Facts::default());
        assert!(d.allowed());
        // Ungoverned images are neither judged nor looked up.
        let n = needs(&set, &pod("nginx:1.27"));
        assert!(n.signatures.is_empty());
        let n = needs(&set, &pod(IMAGE));
        assert_eq!(n.signatures.len(), 1);
        assert!(n.images.contains_key(IMAGE));
        assert_eq!(set.policies[0].mode, Mode::Enforce);
    }

    #[test]
    fn unavailable_and_unresolved_digests_fail_closed() {
        let set = policies("Enforce", 1, true);
        let id = set.policies[0].signatures.as_ref().unwrap().verifier.id;
        let mut f = facts(&set, &[], 0);
        f.signatures
            .get_mut(&(IMAGE.to_string(), id))
            .unwrap()
            .unavailable = Some(
            "could not fetch the signatures of harbor.example.com/acme/app:v1 within the deadline"
                .into(),
        );
        let d = decide(&set, &pod(IMAGE), &f);
        assert_eq!(
            messages(&d),
            [
                "signatures: could not fetch the signatures of harbor.example.com/acme/app:v1 within the deadline"
            ]
        );
        // No signature facts at all for a looked-up image: denied, not skipped.
        let mut f = facts(&set, &[], 0);
        f.signatures.clear();
        let d = decide(&set, &pod(IMAGE), &f);
        assert!(
            messages(&d)[0].contains("were not checked"),
            "{:?}",
            messages(&d)
        );
    }
}
