//! `imagegate verify`: the signature verifier on files, offline. A bundle, or a
//! legacy `.sig` / `.att` manifest and its layer blobs, against a digest, one or
//! more authorities and a trust root. Nothing is fetched.
//!
//! Exit codes: 0 verified, 1 not verified (the reason is printed), 2 bad input
//! (unreadable files, a key or trust root that cannot be used, wrong flags).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::signature::{
    self, Authority, BundleLayer, Identity, LegacyKind, LegacyLayer, Matcher, MaterialKind,
    Options, PublicKey, Report, Subject, TransparencyLog, TrustRoot, TrustRootPem, Verified,
};

/// The most bytes read from one input file (a bundle or layer may carry an SBOM).
const MAX_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  imagegate verify --image ghcr.io/acme/app@sha256:... --bundle app.sigstore.json \\\n    --certificate-identity-regexp '^https://github\\.com/acme/' \\\n    --certificate-oidc-issuer https://token.actions.githubusercontent.com \\\n    --trusted-root trusted_root.json\n  imagegate verify --image ghcr.io/acme/app@sha256:... --sig-manifest sig.json --blobs blobs/ \\\n    --key cosign.pub --transparency-log off"
)]
pub(super) struct VerifyArgs {
    /// The image: `repository@sha256:<hex>` (the docker-reference rule compares
    /// against its repository).
    #[arg(long, conflicts_with_all = ["digest", "artifact"])]
    image: Option<String>,
    /// The digest being verified, `sha256:<hex>` (with --repository for legacy
    /// signatures).
    #[arg(long, conflicts_with = "artifact")]
    digest: Option<String>,
    /// The image's repository, with --digest or --artifact.
    #[arg(long)]
    repository: Option<String>,
    /// A file whose SHA-256 is the digest (a blob, or an image manifest).
    #[arg(long)]
    artifact: Option<PathBuf>,

    /// A Sigstore bundle file (repeatable).
    #[arg(long)]
    bundle: Vec<PathBuf>,
    /// An OCI index listing referrers (the referrers API's answer, or the
    /// `sha256-<hex>` tag-schema fallback index): each listed manifest is read from
    /// --blobs, and each of its layers that is a Sigstore bundle (selected by the
    /// layer's media type, not the manifest's artifactType) is verified.
    #[arg(long)]
    referrers_index: Vec<PathBuf>,
    /// A referrer manifest (its bundle layers are read from --blobs).
    #[arg(long)]
    referrer_manifest: Vec<PathBuf>,
    /// A legacy `.sig` manifest (its layers are read from --blobs).
    #[arg(long)]
    sig_manifest: Vec<PathBuf>,
    /// A legacy `.att` manifest (its layers are read from --blobs).
    #[arg(long)]
    att_manifest: Vec<PathBuf>,
    /// Directory of manifests and layer blobs, each file named with its digest
    /// (`sha256:<hex>`, `sha256-<hex>`, or a name containing the hex digest).
    #[arg(long)]
    blobs: Option<PathBuf>,
    /// One legacy `.sig` layer blob (simple-signing payload), with --annotation.
    #[arg(long)]
    sig_layer: Vec<PathBuf>,
    /// One legacy `.att` layer blob (DSSE envelope), with --annotation.
    #[arg(long)]
    att_layer: Vec<PathBuf>,
    /// An annotation of the --sig-layer / --att-layer layers: KEY=VALUE.
    #[arg(long = "annotation")]
    annotations: Vec<String>,
    /// An annotation whose value is a file's content: KEY=FILE.
    #[arg(long = "annotation-file")]
    annotation_files: Vec<String>,

    /// A public key authority (PEM); repeatable, each is one authority named after
    /// the file.
    #[arg(long)]
    key: Vec<PathBuf>,
    /// Keyless: the certificate subject (email or URI), exactly.
    #[arg(long, conflicts_with = "certificate_identity_regexp")]
    certificate_identity: Option<String>,
    /// Keyless: a regular expression the subject must match (anywhere, as cosign:
    /// anchor it with ^...$).
    #[arg(long)]
    certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer, exactly.
    #[arg(long, conflicts_with = "certificate_oidc_issuer_regexp")]
    certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression the OIDC issuer must match.
    #[arg(long)]
    certificate_oidc_issuer_regexp: Option<String>,

    /// A Sigstore trusted_root.json.
    #[arg(long, conflicts_with_all = ["fulcio_chain", "rekor_key", "ctlog_key", "tsa_chain"])]
    trusted_root: Option<PathBuf>,
    /// A Fulcio CA chain (PEM); repeatable.
    #[arg(long)]
    fulcio_chain: Vec<PathBuf>,
    /// A Rekor public key (PEM); repeatable.
    #[arg(long)]
    rekor_key: Vec<PathBuf>,
    /// A CT log public key (PEM); repeatable.
    #[arg(long)]
    ctlog_key: Vec<PathBuf>,
    /// A TSA chain (PEM, leaf first); repeatable.
    #[arg(long)]
    tsa_chain: Vec<PathBuf>,

    /// Whether a transparency log entry is required, optional (verified when
    /// present), or ignored.
    #[arg(long, default_value = "optional")]
    transparency_log: TlogArg,
    /// Another repository a legacy signature may name (a mirror); repeatable.
    #[arg(long)]
    allow_repository: Vec<String>,
    /// An annotation the signature must carry, KEY=VALUE (cosign's -a).
    #[arg(long)]
    require_annotation: Vec<String>,
    /// Count attestations of this predicate type instead of signatures (`*`: any).
    #[arg(long)]
    predicate_type: Option<String>,
    /// Count any material that verifies, signature or attestation.
    #[arg(long, conflicts_with = "predicate_type")]
    any_material: bool,
    /// How many authorities must verify (default 1).
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TlogArg {
    Required,
    Optional,
    Off,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

pub(super) fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let prepared = match prepare(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("imagegate verify: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = match signature::verify(
        &prepared.subject,
        &prepared.materials,
        &prepared.authorities,
        &prepared.options,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("imagegate verify: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let summary = summarize(&args, &prepared, &report);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
        Output::Text => print_text(&prepared, &report, &summary),
    }
    Ok(if summary.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

struct Prepared {
    subject: Subject,
    materials: Vec<signature::Material>,
    authorities: Vec<Authority>,
    options: Options,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{} is {} bytes; at most {MAX_FILE_BYTES} are read",
            path.display(),
            meta.len()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn prepare(args: &VerifyArgs) -> anyhow::Result<Prepared> {
    let subject = match (&args.image, &args.digest, &args.artifact) {
        (Some(image), _, _) => {
            let (repo, digest) = image
                .rsplit_once('@')
                .context("--image takes repository@sha256:<hex>")?;
            Subject::image(repo, digest)?
        }
        (None, Some(digest), _) => {
            let s = Subject::digest(digest)?;
            match &args.repository {
                Some(r) => s.with_repository(r)?,
                None => s,
            }
        }
        (None, None, Some(path)) => {
            let s = Subject::blob(read(path)?);
            match &args.repository {
                Some(r) => s.with_repository(r)?,
                None => s,
            }
        }
        (None, None, None) => bail!("say what is verified: --image, --digest or --artifact"),
    };

    let mut materials = Vec::new();
    for path in &args.bundle {
        let bytes = read(path)?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .filter(|m| signature::is_bundle_media_type(m))
            .unwrap_or_else(|| signature::BUNDLE_MEDIA_TYPES[0].to_string());
        materials.push(signature::Material::Bundle(BundleLayer {
            origin: format!("bundle {}", path.display()),
            media_type,
            bytes,
        }));
    }
    let need_blobs = || {
        args.blobs
            .as_deref()
            .context("--referrers-index, --referrer-manifest, --sig-manifest and --att-manifest need --blobs DIR")
    };
    let mut referrers = args.referrer_manifest.clone();
    for path in &args.referrers_index {
        let blobs = need_blobs()?;
        for digest in index_manifests(path)? {
            referrers.push(find_by_digest(blobs, &digest)?.with_context(|| {
                format!(
                    "the referrer manifest {digest} listed in {} is not in {}",
                    path.display(),
                    blobs.display()
                )
            })?);
        }
    }
    for path in &referrers {
        materials.extend(referrer_bundles(path, need_blobs()?)?);
    }
    for (kind, manifests) in [
        (LegacyKind::Signature, &args.sig_manifest),
        (LegacyKind::Attestation, &args.att_manifest),
    ] {
        for path in manifests {
            let blobs = need_blobs()?;
            materials.extend(manifest_layers(path, kind, blobs)?);
        }
    }
    let mut layer_annotations = BTreeMap::new();
    for a in &args.annotations {
        let (k, v) = a.split_once('=').context("--annotation takes KEY=VALUE")?;
        layer_annotations.insert(k.to_string(), v.to_string());
    }
    for a in &args.annotation_files {
        let (k, f) = a
            .split_once('=')
            .context("--annotation-file takes KEY=FILE")?;
        let v = String::from_utf8(read(Path::new(f))?).context("annotation files are text")?;
        layer_annotations.insert(k.to_string(), v);
    }
    for (kind, paths) in [
        (LegacyKind::Signature, &args.sig_layer),
        (LegacyKind::Attestation, &args.att_layer),
    ] {
        for path in paths {
            let bytes = read(path)?;
            materials.push(signature::Material::Legacy(LegacyLayer {
                origin: format!("layer {}", path.display()),
                kind,
                media_type: match kind {
                    LegacyKind::Signature => signature::SIMPLE_SIGNING_MEDIA_TYPE,
                    LegacyKind::Attestation => signature::DSSE_MEDIA_TYPE,
                }
                .to_string(),
                digest: format!("sha256:{}", hex::encode(sha256(&bytes))),
                annotations: layer_annotations.clone(),
                bytes,
            }));
        }
    }
    // No material at all is an answer, not bad input: "no signatures found" (an
    // unsigned image, or an empty referrers index).

    let trust_root = trust_root(args)?;
    let mode = match args.transparency_log {
        TlogArg::Required => TransparencyLog::Required,
        TlogArg::Optional => TransparencyLog::Optional,
        TlogArg::Off => TransparencyLog::Off,
    };
    let mut authorities = Vec::new();
    for path in &args.key {
        let key = PublicKey::from_pem(&read(path)?)
            .with_context(|| format!("the key {}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| path.display().to_string());
        let name = if authorities.iter().any(|a: &Authority| a.name() == name) {
            path.display().to_string()
        } else {
            name
        };
        authorities.push(Authority::key(name, key, mode, trust_root.clone())?);
    }
    let subject_m = match (
        &args.certificate_identity,
        &args.certificate_identity_regexp,
    ) {
        (Some(s), _) => Some(Matcher::exact(s.clone(), "subject")?),
        (None, Some(r)) => Some(Matcher::regex(r, "subject")?),
        _ => None,
    };
    let issuer_m = match (
        &args.certificate_oidc_issuer,
        &args.certificate_oidc_issuer_regexp,
    ) {
        (Some(s), _) => Some(Matcher::exact(s.clone(), "issuer")?),
        (None, Some(r)) => Some(Matcher::regex(r, "issuer")?),
        _ => None,
    };
    match (subject_m, issuer_m) {
        (Some(subject), Some(issuer)) => {
            let root = trust_root
                .clone()
                .context("a keyless identity needs a trust root: --trusted-root, or --fulcio-chain with --rekor-key / --ctlog-key")?;
            authorities.push(Authority::keyless(
                "keyless",
                Identity { subject, issuer },
                mode,
                root,
            )?);
        }
        (None, None) => {}
        _ => bail!(
            "a keyless identity needs both a subject (--certificate-identity[-regexp]) and an issuer (--certificate-oidc-issuer[-regexp])"
        ),
    }
    if authorities.is_empty() {
        bail!(
            "no authority: give --key, or --certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp]"
        );
    }
    if args.threshold == 0 {
        bail!("--threshold must be at least 1");
    }

    let mut options = Options::default();
    for r in &args.allow_repository {
        options
            .allowed_repositories
            .push(signature::normalize_repository(r)?);
    }
    for a in &args.require_annotation {
        let (k, v) = a
            .split_once('=')
            .context("--require-annotation takes KEY=VALUE")?;
        options
            .required_annotations
            .insert(k.to_string(), v.to_string());
    }
    Ok(Prepared {
        subject,
        materials,
        authorities,
        options,
    })
}

fn trust_root(args: &VerifyArgs) -> anyhow::Result<Option<Arc<TrustRoot>>> {
    if let Some(path) = &args.trusted_root {
        return Ok(Some(
            TrustRoot::from_trusted_root_json(&read(path)?)
                .with_context(|| format!("the trust root {}", path.display()))?,
        ));
    }
    let files = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| read(p))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let pem = TrustRootPem {
        fulcio_chains: files(&args.fulcio_chain)?,
        rekor_keys: files(&args.rekor_key)?,
        ctlog_keys: files(&args.ctlog_key)?,
        tsa_chains: files(&args.tsa_chain)?,
    };
    if pem.fulcio_chains.is_empty()
        && pem.rekor_keys.is_empty()
        && pem.ctlog_keys.is_empty()
        && pem.tsa_chains.is_empty()
    {
        return Ok(None);
    }
    Ok(Some(TrustRoot::from_pem(&pem).context("the trust root")?))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The file in `dir` whose name contains the digest's hex and whose bytes hash to it.
fn find_by_digest(dir: &Path, digest: &str) -> anyhow::Result<Option<PathBuf>> {
    let hex_part = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("`{digest}` is not a sha256 digest"))?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.contains(hex_part) && hex::encode(sha256(&read(&path)?)) == hex_part {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// The manifest digests an OCI index lists.
fn index_manifests(path: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Desc>,
    }
    #[derive(serde::Deserialize)]
    struct Desc {
        digest: String,
    }
    let index: Index = serde_json::from_slice(&read(path)?)
        .with_context(|| format!("{} is not an OCI index", path.display()))?;
    if index.manifests.len() > signature::Limits::default().max_materials {
        bail!(
            "{} lists {} manifests",
            path.display(),
            index.manifests.len()
        );
    }
    Ok(index.manifests.into_iter().map(|d| d.digest).collect())
}

/// The Sigstore bundle layers of a referrer manifest, chosen by layer media type.
fn referrer_bundles(path: &Path, blobs: &Path) -> anyhow::Result<Vec<signature::Material>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest {
        #[serde(default)]
        layers: Vec<Desc>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Desc {
        media_type: String,
        digest: String,
    }
    let manifest: Manifest = serde_json::from_slice(&read(path)?)
        .with_context(|| format!("{} is not an OCI manifest", path.display()))?;
    let mut out = Vec::new();
    for (i, layer) in manifest.layers.into_iter().enumerate() {
        if !signature::is_bundle_media_type(&layer.media_type) {
            continue;
        }
        let blob = find_by_digest(blobs, &layer.digest)?.with_context(|| {
            format!(
                "the bundle layer {} of {} is not in {}",
                layer.digest,
                path.display(),
                blobs.display()
            )
        })?;
        out.push(signature::Material::Bundle(BundleLayer {
            origin: format!("referrer {} layer {i}", path.display()),
            media_type: layer.media_type,
            bytes: read(&blob)?,
        }));
    }
    Ok(out)
}

/// The layers of a legacy manifest, with their blobs from `blobs`.
fn manifest_layers(
    path: &Path,
    kind: LegacyKind,
    blobs: &Path,
) -> anyhow::Result<Vec<signature::Material>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest {
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Descriptor {
        media_type: String,
        digest: String,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    let manifest: Manifest = serde_json::from_slice(&read(path)?)
        .with_context(|| format!("{} is not an OCI manifest", path.display()))?;
    if manifest.layers.len() > signature::Limits::default().max_materials {
        bail!("{} has {} layers", path.display(), manifest.layers.len());
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(blobs)
        .with_context(|| format!("reading {}", blobs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let mut out = Vec::new();
    for (i, layer) in manifest.layers.into_iter().enumerate() {
        let hex_part = layer.digest.strip_prefix("sha256:").with_context(|| {
            format!(
                "layer {i} of {} has digest {}",
                path.display(),
                layer.digest
            )
        })?;
        let mut found = None;
        for candidate in &entries {
            let name = candidate
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.contains(hex_part) {
                let bytes = read(candidate)?;
                if hex::encode(sha256(&bytes)) == hex_part {
                    found = Some(bytes);
                    break;
                }
            }
        }
        let bytes = found.with_context(|| {
            format!(
                "the blob of layer {i} ({}) is not in {}",
                layer.digest,
                blobs.display()
            )
        })?;
        out.push(signature::Material::Legacy(LegacyLayer {
            origin: format!("{} layer {i}", path.display()),
            kind,
            media_type: layer.media_type,
            digest: layer.digest,
            annotations: layer.annotations,
            bytes,
        }));
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    verified: bool,
    subject: String,
    repository: Option<String>,
    threshold: usize,
    /// What counts: "signature", "attestation <type>", or "any".
    counts: String,
    authorities: Vec<AuthoritySummary>,
    report: Report,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthoritySummary {
    name: String,
    description: String,
    transparency_log: String,
    satisfied: bool,
    /// Why not, when not satisfied.
    reason: Option<String>,
}

fn counts(args: &VerifyArgs, v: &Verified) -> bool {
    if args.any_material {
        return true;
    }
    match &args.predicate_type {
        None => v.kind == MaterialKind::Signature,
        Some(t) => {
            v.kind == MaterialKind::Attestation
                && v.statement
                    .as_ref()
                    .is_some_and(|s| t == "*" || s.predicate_type == *t)
        }
    }
}

fn summarize(args: &VerifyArgs, prepared: &Prepared, report: &Report) -> Summary {
    let counted = if args.any_material {
        "any".to_string()
    } else {
        match &args.predicate_type {
            None => "signature".into(),
            Some(t) => format!("attestation {t}"),
        }
    };
    let authorities: Vec<AuthoritySummary> = prepared
        .authorities
        .iter()
        .map(|a| {
            let verified: Vec<&Verified> = report.verified(a.name()).map(|(_, v)| v).collect();
            let satisfied = verified.iter().any(|v| counts(args, v));
            let reason = if satisfied {
                None
            } else if let Some(v) = verified.first() {
                Some(match (&v.kind, &v.statement) {
                    (MaterialKind::Attestation, Some(s)) => format!(
                        "verified only an attestation of type {}, and {counted} is required",
                        s.predicate_type
                    ),
                    _ => format!("verified only a signature, and {counted} is required"),
                })
            } else {
                Some(match report.best_failure(a.name()) {
                    Some((origin, f)) => format!("{origin}: {f}"),
                    None => "no signatures found".to_string(),
                })
            };
            AuthoritySummary {
                name: a.name().to_string(),
                description: a.describe(),
                transparency_log: a.transparency_log().to_string(),
                satisfied,
                reason,
            }
        })
        .collect();
    let satisfied = authorities.iter().filter(|a| a.satisfied).count();
    if args.threshold > authorities.len() {
        eprintln!(
            "threshold {} cannot be met by {} authorit{}",
            args.threshold,
            authorities.len(),
            if authorities.len() == 1 { "y" } else { "ies" }
        );
    }
    Summary {
        verified: satisfied >= args.threshold,
        subject: prepared.subject.digest_str().to_string(),
        repository: prepared.subject.repository().map(str::to_string),
        threshold: args.threshold,
        counts: counted,
        authorities,
        report: report.clone(),
    }
}

fn print_text(prepared: &Prepared, report: &Report, summary: &Summary) {
    println!(
        "subject {}{}",
        summary.subject,
        summary
            .repository
            .as_ref()
            .map(|r| format!(" in {r}"))
            .unwrap_or_default()
    );
    for (a, s) in prepared.authorities.iter().zip(&summary.authorities) {
        println!(
            "authority {} ({}; transparency log {}): {}",
            s.name,
            s.description,
            s.transparency_log,
            if s.satisfied {
                "verified"
            } else {
                "NOT verified"
            }
        );
        for m in &report.materials {
            for o in m.outcomes.iter().filter(|o| o.authority == a.name()) {
                match &o.result {
                    Ok(v) => println!("  ok  {} ({}): {}", m.origin, m.format, describe(v)),
                    Err(f) => println!("  --  {} ({}): {f}", m.origin, m.format),
                }
            }
        }
        if let Some(reason) = &s.reason {
            println!("  reason: {reason}");
        }
    }
    let satisfied = summary.authorities.iter().filter(|a| a.satisfied).count();
    println!(
        "{}: {satisfied} of {} authorities verified ({}), threshold {}",
        if summary.verified {
            "VERIFIED"
        } else {
            "NOT VERIFIED"
        },
        summary.authorities.len(),
        summary.counts,
        summary.threshold
    );
}

fn describe(v: &Verified) -> String {
    let what = match (&v.kind, &v.statement) {
        (MaterialKind::Signature, _) => "signature".to_string(),
        (MaterialKind::Attestation, Some(s)) => format!("attestation {}", s.predicate_type),
        (MaterialKind::Attestation, None) => "attestation".to_string(),
    };
    let who = match &v.signer {
        signature::SignerInfo::Key { fingerprint } => format!("key {fingerprint}"),
        signature::SignerInfo::Certificate {
            subject, issuer, ..
        } => format!(
            "{} from {}",
            subject.join(", "),
            issuer.as_deref().unwrap_or("no issuer")
        ),
    };
    let log = match &v.log {
        Some(l) => format!(
            "log entry {} ({}{})",
            l.log_index,
            l.entry,
            l.integrated_time
                .as_ref()
                .map(|t| format!(", {t}"))
                .unwrap_or_default()
        ),
        None => "no log entry".into(),
    };
    let times = if v.verified_times.is_empty() {
        String::new()
    } else {
        format!("; verified times {}", v.verified_times.join(", "))
    };
    format!("{what} by {who}; {log}{times}")
}
