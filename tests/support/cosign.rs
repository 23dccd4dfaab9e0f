//! cosign material pushed next to images, as cosign does: legacy `.sig` / `.att`
//! manifests under `sha256-<hex>.sig|.att`, and Sigstore bundles as referrer
//! manifests listed in the `sha256-<hex>` index (the referrers tag schema). The
//! material itself comes from the test signer ([`super::signer`]).

use serde_json::{Value, json};

use super::images::{self, Blob};
use super::registry::Registry;
use super::signer::{self, BundleSigner, LayerParts, TestKey};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Pushes a manifest of `layers` (with their annotations) to `repo:tag`.
pub async fn push_layers(
    registry: &Registry,
    repo: &str,
    tag: &str,
    layers: &[LayerParts],
) -> String {
    let client = images::client(registry);
    let auth = images::auth(registry);
    let reference = images::reference(registry, &format!("{repo}:{tag}"));
    client
        .store_auth_if_needed(reference.resolve_registry(), &auth)
        .await;
    let config = Blob::new("application/vnd.oci.image.config.v1+json", b"{}".to_vec());
    client
        .push_blob(&reference, config.data.clone(), &config.digest)
        .await
        .unwrap();
    let mut descriptors = Vec::new();
    for l in layers {
        let digest = signer::digest_of(&l.bytes);
        client
            .push_blob(&reference, l.bytes.clone(), &digest)
            .await
            .unwrap();
        descriptors.push(json!({"mediaType": l.media_type, "digest": digest, "size": l.bytes.len(), "annotations": l.annotations}));
    }
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(), "layers": descriptors});
    images::push_manifest_bytes(
        &client,
        &auth,
        &reference,
        manifest.to_string().as_bytes(),
        OCI_MANIFEST,
    )
    .await
    .unwrap()
}

/// Pushes each bundle as a referrer manifest of `subject` (by digest) and lists
/// them in the `sha256-<hex>` index, as cosign v3 does on a registry without the
/// referrers API. The index entries carry the empty-config artifact type: the
/// layer's media type is what counts.
pub async fn push_bundles(
    registry: &Registry,
    repo: &str,
    subject: &str,
    bundles: &[(&str, Vec<u8>)],
) {
    let client = images::client(registry);
    let auth = images::auth(registry);
    let tag_ref = images::reference(registry, &format!("{repo}:{}", tag_of(subject)));
    client
        .store_auth_if_needed(tag_ref.resolve_registry(), &auth)
        .await;
    let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
    client
        .push_blob(&tag_ref, empty.data.clone(), &empty.digest)
        .await
        .unwrap();
    let mut entries = Vec::new();
    for (media_type, bytes) in bundles {
        let digest = signer::digest_of(bytes);
        client
            .push_blob(&tag_ref, bytes.clone(), &digest)
            .await
            .unwrap();
        let referrer = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": media_type,
            "config": empty.descriptor(),
            "layers": [{"mediaType": media_type, "digest": digest, "size": bytes.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 100},
        })
        .to_string();
        let referrer_digest = signer::digest_of(referrer.as_bytes());
        let at = images::by_digest(&tag_ref, &referrer_digest);
        images::push_manifest_bytes(&client, &auth, &at, referrer.as_bytes(), OCI_MANIFEST)
            .await
            .unwrap();
        entries.push(
            json!({"mediaType": OCI_MANIFEST, "digest": referrer_digest, "size": referrer.len(),
                            "artifactType": "application/vnd.oci.empty.v1+json"}),
        );
    }
    let index =
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).to_string();
    images::push_manifest_bytes(&client, &auth, &tag_ref, index.as_bytes(), OCI_INDEX)
        .await
        .unwrap();
}

/// Pushes a linux/amd64 image of its own (an annotation names it, so every
/// repository's image has another digest) and returns its digest.
pub async fn push_unique(registry: &Registry, repo_tag: &str) -> String {
    let mut image = images::build_image("amd64", "linux", None, images::Format::Oci);
    let mut manifest: Value = serde_json::from_slice(&image.manifest.data).unwrap();
    manifest["annotations"] = json!({"org.imagegate.test": repo_tag});
    image.manifest = Blob::json(OCI_MANIFEST, &manifest);
    images::push_built(
        &images::client(registry),
        &images::auth(registry),
        &images::reference(registry, repo_tag),
        &image,
    )
    .await
    .unwrap()
}

pub fn tag_of(digest: &str) -> String {
    format!("sha256-{}", digest.strip_prefix("sha256:").unwrap())
}

pub fn key_sig(key: &TestKey, docker_reference: &str, digest: &str) -> LayerParts {
    let payload = signer::simple_signing(docker_reference, digest, &[]);
    signer::sig_layer(&payload, &key.sign(&payload), vec![])
}

/// A key-based DSSE bundle of `predicate_type` about `digest`, no log entry.
pub fn key_bundle(key: &TestKey, digest: &str, predicate_type: &str, predicate: Value) -> Vec<u8> {
    let statement = signer::statement(digest, predicate_type, predicate);
    let sig = key.sign(&signer::pae(signer::IN_TOTO, &statement));
    signer::dsse_bundle(
        signer::BUNDLE_V03_MEDIA_TYPE,
        BundleSigner::Key(key, true),
        &statement,
        &sig,
        &[],
    )
}
