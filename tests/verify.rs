//! `imagegate verify`, the real binary, on material the test signer makes: legacy
//! `.sig` manifests with their blobs, bundles found through a referrers index,
//! bundles and blobs given directly; keys and keyless; trusted_root.json and PEM
//! trust roots; exit codes 0 (verified), 1 (not verified, with the reason) and 2
//! (bad input); text and JSON output.

mod common;
#[path = "../src/signature/testing.rs"]
mod signer;

use std::process::Command;

use serde_json::{Value, json};
use signer::{BundleSigner, Fulcio, KeyKind, LeafSpec, Rekor, TestKey};

const REPO: &str = "registry.test/acme/app";
const SAN: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

struct Material {
    dir: tempfile::TempDir,
    digest: String,
}

impl Material {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.dir.path().join(name), bytes).unwrap();
        self.path(name)
    }

    /// Writes a blob into blobs/ under its digest, as a registry would name it.
    fn blob(&self, bytes: &[u8]) -> (String, usize) {
        let digest = signer::digest_of(bytes);
        let blobs = self.dir.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(digest.replace(':', "-")), bytes).unwrap();
        (digest, bytes.len())
    }
}

/// Everything one run of the scenarios needs, made by the test signer.
fn material() -> Material {
    let dir = tempfile::tempdir().unwrap();
    let m = Material {
        digest: signer::digest_of(b"the image manifest"),
        dir,
    };
    let fulcio = Fulcio::new("fulcio");
    let ct = signer::CtLog::new();
    let rekor = Rekor::new("rekor.test");
    m.write(
        "trusted_root.json",
        &signer::trusted_root(&[&fulcio], &[&rekor], &[&ct]),
    );
    m.write("fulcio.pem", fulcio.chain_pem().as_bytes());
    m.write("rekor.pub", rekor.key.public_pem().as_bytes());
    m.write("ctlog.pub", ct.key.public_pem().as_bytes());

    // A keyless legacy .sig manifest: layer 0 keyless with a Rekor entry.
    let leaf = fulcio.issue(&LeafSpec::new(SAN, ISSUER), Some(&ct));
    let payload = signer::simple_signing(REPO, &m.digest, &[]);
    let sig = leaf.key.sign(&payload);
    let entry = rekor.log(
        Rekor::hashedrekord_body(&sig, &leaf.pem(), &signer::sha256(&payload)),
        signer::MARCH_2024_NOON,
        9,
        0,
    );
    let mut ann = signer::cert_annotations(&leaf, &fulcio);
    ann.push((
        "dev.sigstore.cosign/bundle".into(),
        entry.cosign_annotation(),
    ));
    let keyless = signer::sig_layer(&payload, &sig, ann);
    // Layer 1: signed with the release key, no log entry.
    let release = TestKey::generate(KeyKind::EcdsaP256);
    m.write("release.pub", release.public_pem().as_bytes());
    m.write(
        "other.pub",
        TestKey::generate(KeyKind::EcdsaP384)
            .public_pem()
            .as_bytes(),
    );
    let keyed = signer::sig_layer(&payload, &release.sign(&payload), vec![]);
    let mut layers = Vec::new();
    for layer in [&keyless, &keyed] {
        let (digest, size) = m.blob(&layer.bytes);
        layers.push(json!({"mediaType": layer.media_type, "digest": digest, "size": size, "annotations": layer.annotations}));
    }
    let config = m.blob(b"{}");
    m.write(
        "sig.json",
        json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
            "layers": layers,
        })
        .to_string()
        .as_bytes(),
    );

    // A keyless v0.3 bundle as an OCI referrer, listed in an index with the
    // empty-config artifact type (as GHCR's tag-schema fallback shows it).
    let statement = signer::statement(&m.digest, signer::COSIGN_SIGN_PREDICATE, json!({}));
    let dsse_sig = leaf.key.sign(&signer::pae(signer::IN_TOTO, &statement));
    let env = signer::envelope(signer::IN_TOTO, &statement, std::slice::from_ref(&dsse_sig));
    let dsse_entry = rekor.log(
        Rekor::dsse_body(&env, &statement, &dsse_sig, &leaf.pem()),
        signer::MARCH_2024_NOON,
        21,
        6,
    );
    let bundle = signer::dsse_bundle(
        signer::BUNDLE_V03_MEDIA_TYPE,
        BundleSigner::Certificate(&leaf),
        &statement,
        &dsse_sig,
        &[&dsse_entry],
    );
    m.write("bundle.json", &bundle);
    let (bundle_digest, bundle_size) = m.blob(&bundle);
    let referrer = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": signer::BUNDLE_V03_MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config.0, "size": config.1},
        "layers": [{"mediaType": signer::BUNDLE_V03_MEDIA_TYPE, "digest": bundle_digest, "size": bundle_size}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m.digest, "size": 18},
    })
    .to_string();
    let (referrer_digest, referrer_size) = m.blob(referrer.as_bytes());
    m.write(
        "index.json",
        json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": referrer_digest,
                           "size": referrer_size, "artifactType": "application/vnd.oci.empty.v1+json"}],
        })
        .to_string()
        .as_bytes(),
    );
    m.write("empty-index.json", br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#);

    // A blob signed with a key, as `cosign sign-blob --new-bundle-format` does.
    let blob = b"a release tarball";
    m.write("artifact.bin", blob);
    m.write(
        "blob.bundle.json",
        &signer::message_bundle(
            signer::BUNDLE_V03_MEDIA_TYPE,
            BundleSigner::Key(&release, true),
            &signer::sha256(blob),
            &release.sign(blob),
            &[],
        ),
    );
    m.write(
        "garbage.pub",
        b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
    );
    m
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn verify(args: &[String]) -> Run {
    let out = Command::new(common::BIN)
        .arg("verify")
        .args(args)
        .output()
        .expect("run imagegate verify");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn verify_exit_codes_and_reasons() {
    let m = material();
    let image = format!("{REPO}@{}", m.digest);
    let blobs = m.path("blobs");
    let sig = m.path("sig.json");
    let root = m.path("trusted_root.json");
    let keyless = [
        "--certificate-identity",
        SAN,
        "--certificate-oidc-issuer",
        ISSUER,
    ];
    let pem_root = [
        "--fulcio-chain".to_string(),
        m.path("fulcio.pem"),
        "--rekor-key".to_string(),
        m.path("rekor.pub"),
        "--ctlog-key".to_string(),
        m.path("ctlog.pub"),
    ];
    let legacy = |extra: &[&str]| {
        let mut a = args(&["--image", &image, "--sig-manifest", &sig, "--blobs", &blobs]);
        a.extend(args(extra));
        a
    };
    let with = |mut a: Vec<String>, more: &[String]| {
        a.extend_from_slice(more);
        a
    };
    let table: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "legacy keyless, trusted_root.json",
            legacy(&[&keyless[..], &["--trusted-root", &root]].concat()),
            0,
            "VERIFIED: 1 of 1",
        ),
        (
            "legacy keyless, PEM trust root, log required",
            with(
                legacy(&[&keyless[..], &["--transparency-log", "required"]].concat()),
                &pem_root,
            ),
            0,
            "log entry 9 (hashedrekord/0.0.1, 2024-03-01T12:00:00Z)",
        ),
        (
            "legacy keyless, wrong subject",
            legacy(&[
                "--certificate-identity",
                "someone@else.test",
                "--certificate-oidc-issuer",
                ISSUER,
                "--trusted-root",
                &root,
            ]),
            1,
            "identity mismatch: got",
        ),
        (
            "legacy key",
            legacy(&["--key", &m.path("release.pub")]),
            0,
            "ok  ",
        ),
        (
            "legacy key, log required",
            legacy(&[
                "--key",
                &m.path("release.pub"),
                "--transparency-log",
                "required",
                "--trusted-root",
                &root,
            ]),
            1,
            "transparencyLog: Required",
        ),
        (
            "legacy key and keyless, threshold 2",
            legacy(
                &[
                    &[
                        "--key",
                        &m.path("release.pub"),
                        "--threshold",
                        "2",
                        "--trusted-root",
                        &root,
                    ],
                    &keyless[..],
                ]
                .concat(),
            ),
            0,
            "2 of 2 authorities verified",
        ),
        (
            "two keys, one signed, threshold 2",
            legacy(&[
                "--key",
                &m.path("release.pub"),
                "--key",
                &m.path("other.pub"),
                "--threshold",
                "2",
            ]),
            1,
            "1 of 2 authorities verified",
        ),
        (
            "legacy, copied into another repository",
            args(&[
                "--image",
                &format!("registry.test/evil/app@{}", m.digest),
                "--sig-manifest",
                &sig,
                "--blobs",
                &blobs,
                "--key",
                &m.path("release.pub"),
            ]),
            1,
            "made for repository registry.test/acme/app",
        ),
        (
            "legacy, the other repository allowed as a mirror",
            args(&[
                "--image",
                &format!("registry.test/mirror/app@{}", m.digest),
                "--sig-manifest",
                &sig,
                "--blobs",
                &blobs,
                "--key",
                &m.path("release.pub"),
                "--allow-repository",
                REPO,
            ]),
            0,
            "VERIFIED",
        ),
        (
            "referrers index with an empty-config artifactType",
            with(
                args(&[
                    "--image",
                    &image,
                    "--referrers-index",
                    &m.path("index.json"),
                    "--blobs",
                    &blobs,
                    "--trusted-root",
                    &root,
                ]),
                &args(&keyless),
            ),
            0,
            "signature by https://github.com/acme/app",
        ),
        (
            "empty referrers index: no signatures found",
            with(
                args(&[
                    "--image",
                    &image,
                    "--referrers-index",
                    &m.path("empty-index.json"),
                    "--blobs",
                    &blobs,
                    "--trusted-root",
                    &root,
                ]),
                &args(&keyless),
            ),
            1,
            "no signatures found",
        ),
        (
            "bundle for another digest",
            with(
                args(&[
                    "--image",
                    &format!("{REPO}@{}", signer::digest_of(b"x")),
                    "--bundle",
                    &m.path("bundle.json"),
                    "--trusted-root",
                    &root,
                ]),
                &args(&keyless),
            ),
            1,
            "the statement names",
        ),
        (
            "bundle, attestation required, only a signature",
            with(
                args(&[
                    "--image",
                    &image,
                    "--bundle",
                    &m.path("bundle.json"),
                    "--trusted-root",
                    &root,
                    "--predicate-type",
                    "https://slsa.dev/provenance/v1",
                ]),
                &args(&keyless),
            ),
            1,
            "verified only a signature",
        ),
        (
            "blob with a key bundle",
            args(&[
                "--artifact",
                &m.path("artifact.bin"),
                "--bundle",
                &m.path("blob.bundle.json"),
                "--key",
                &m.path("release.pub"),
            ]),
            0,
            "VERIFIED",
        ),
        (
            "keyless without a trust root",
            legacy(&keyless),
            2,
            "needs a trust root",
        ),
        (
            "unreadable key",
            legacy(&["--key", &m.path("garbage.pub")]),
            2,
            "the public key cannot be read",
        ),
        (
            "missing blob",
            args(&[
                "--image",
                &image,
                "--sig-manifest",
                &sig,
                "--blobs",
                &m.path(""),
                "--key",
                &m.path("release.pub"),
            ]),
            2,
            "is not in",
        ),
        ("no authority", legacy(&[]), 2, "no authority"),
        (
            "not a digest",
            args(&[
                "--image",
                &format!("{REPO}@sha256:abc"),
                "--key",
                &m.path("release.pub"),
            ]),
            2,
            "is not a digest",
        ),
    ];
    let mut failures = Vec::new();
    for (name, a, code, needle) in table {
        let run = verify(&a);
        let all = format!("{}{}", run.stdout, run.stderr);
        if run.code != code || !all.contains(needle) {
            failures.push(format!(
                "{name}: exit {} (want {code}), output:\n{all}",
                run.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn verify_json_output() {
    let m = material();
    let image = format!("{REPO}@{}", m.digest);
    let run = verify(&args(&[
        "--image",
        &image,
        "--sig-manifest",
        &m.path("sig.json"),
        "--blobs",
        &m.path("blobs"),
        "--key",
        &m.path("release.pub"),
        "--key",
        &m.path("other.pub"),
        "--output",
        "json",
    ]));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["verified"], true);
    assert_eq!(out["subject"], m.digest);
    assert_eq!(out["repository"], REPO);
    assert_eq!(out["authorities"][0]["name"], "release");
    assert_eq!(out["authorities"][0]["satisfied"], true);
    assert_eq!(out["authorities"][1]["satisfied"], false);
    assert!(
        out["authorities"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("signed keyless")
            || out["authorities"][1]["reason"]
                .as_str()
                .unwrap()
                .contains("another key")
    );
    let materials = out["report"]["materials"].as_array().unwrap();
    assert_eq!(materials.len(), 2);
    assert_eq!(materials[0]["format"], "legacy .sig layer");
    assert_eq!(
        materials[0]["outcomes"][0]["failure"]["kind"],
        "kindMismatch"
    );
    assert_eq!(materials[1]["outcomes"][0]["verified"]["kind"], "signature");
    assert_eq!(
        materials[1]["outcomes"][1]["failure"]["kind"],
        "badSignature"
    );
}
