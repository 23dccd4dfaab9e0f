//! `imagegate check`: the webhook's engine on manifests, offline, for CI.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::admission::Workload;
use crate::engine::{self, Facts, Violation};
use crate::policy::Mode;

#[derive(Debug, clap::Args)]
pub(super) struct CheckArgs {
    /// A policy file or a directory of them.
    #[arg(long, env = "IMAGEGATE_POLICIES", default_value = "policies/")]
    policies: PathBuf,
    /// Namespace for objects that name none.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// `text`: one line per violation; `json`: a machine-readable report.
    #[arg(long, default_value = "text")]
    output: Output,
    /// Manifest files (multi-document YAML or JSON, List objects); `-` reads stdin.
    #[arg(required = true)]
    files: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Finding {
    file: String,
    kind: String,
    name: String,
    namespace: String,
    /// `container`, `init container` or `ephemeral container`.
    container_type: &'static str,
    container: String,
    image: String,
    policy: String,
    rule: &'static str,
    mode: &'static str,
    message: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    objects_checked: usize,
    denied: usize,
    findings: Vec<Finding>,
    /// Rules not evaluated offline, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<String>,
}

/// Exit codes: 0 nothing an Enforce policy denies, 1 something is denied, 2 the
/// input or the policies could not be read.
pub(super) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let policies = match crate::policy::load(&args.policies) {
        Ok(p) => p,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = match evaluate(&args, &policies) {
        Ok(report) => report,
        Err(e) => {
            // 2, not 1: CI must tell a broken manifest from a denied one.
            eprintln!("{e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => {
            for f in &report.findings {
                let action = if f.mode == "Enforce" {
                    "DENY"
                } else {
                    "AUDIT would deny"
                };
                println!(
                    "{}: {}/{} (namespace {}): {action}: {} \"{}\" image \"{}\": {} [policy {}, rule {}]",
                    f.file,
                    f.kind,
                    f.name,
                    f.namespace,
                    f.container_type,
                    f.container,
                    f.image,
                    f.message,
                    f.policy,
                    f.rule
                );
            }
            for note in &report.skipped {
                eprintln!("note: {note}");
            }
            eprintln!(
                "{} object(s) checked, {} denied, {} finding(s)",
                report.objects_checked,
                report.denied,
                report.findings.len()
            );
        }
    }
    Ok(if report.denied > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every object of every file, judged.
fn evaluate(args: &CheckArgs, policies: &crate::policy::PolicySet) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for p in policies.policies.iter().filter(|p| p.signatures.is_some()) {
        report.skipped.push(format!(
            "policy {}: signature and attestation rules skipped: `check` is offline and fetches no signatures; the webhook verifies them against each image's digest",
            p.name
        ));
    }
    for file in &args.files {
        let text = read(file)?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| anyhow::anyhow!("{file}: not valid YAML: {e}"))?;
        for object in docs.iter().flat_map(flatten) {
            let api_version = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let workload = Workload::from_object(group, kind, &args.namespace, object)
                .with_context(|| format!("{file}: {kind}"))?;
            let Some(workload) = workload else { continue };
            report.objects_checked += 1;
            let decision = engine::decide(policies, &workload, &Facts::default());
            if !decision.allowed() {
                report.denied += 1;
            }
            for v in decision.violations.iter().chain(&decision.audit) {
                report.findings.push(finding(file, &workload, v));
            }
        }
    }
    Ok(report)
}

fn read(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}

/// A `List` (`v1/List`, `DeploymentList`, ...) stands for its items.
fn flatten(object: &Value) -> Vec<&Value> {
    let is_list = object
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    match object.get("items").and_then(Value::as_array) {
        Some(items) if is_list => items.iter().flat_map(flatten).collect(),
        _ if object.is_object() => vec![object],
        _ => vec![],
    }
}

fn finding(file: &str, w: &Workload, v: &Violation) -> Finding {
    Finding {
        file: file.to_string(),
        kind: w.kind.clone(),
        name: w.name.clone(),
        namespace: w.namespace.clone(),
        container_type: v.container_in(w).kind.noun(),
        container: v.container_in(w).name.clone(),
        image: v.container_in(w).image.clone(),
        policy: v.policy.to_string(),
        rule: v.rule.as_str(),
        mode: match v.mode {
            Mode::Enforce => "Enforce",
            Mode::Audit => "Audit",
        },
        message: v.message.to_string(),
    }
}
