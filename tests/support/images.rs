//! Real images pushed with oci-client (the project's one registry client).
//!
//! Every image has one gzip-compressed tar layer holding one small file whose text
//! names the platform, so each platform has its own layer, config and manifest
//! digests; the same platform and format always give the same digests. Manifests,
//! configs and indexes are written here as exact bytes and pushed with
//! `push_manifest_raw`, so the digest returned is the SHA-256 of what the registry
//! stores, and Docker media types (which oci-client's typed push would not write)
//! are possible.
//!
//! Authentication: oci-client keeps the first [`RegistryAuth`] it is given per
//! registry host, so use one client per set of credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use oci_client::client::{
    Certificate, CertificateEncoding, ClientConfig, ClientProtocol, ImageData, linux_amd64_resolver,
};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{Value, json};
use sha2::Digest;

use super::registry::{Kind, Registry, install_crypto_provider};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// What distribution 2.8 answers when it rewrites a manifest to schema 1.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";

/// Every manifest type, as a client that understands them all sends in Accept.
pub const ALL_MANIFEST_TYPES: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// Layer types the images here use, for `Client::pull`.
pub const LAYER_TYPES: &[&str] = &[OCI_LAYER_GZIP, DOCKER_LAYER_GZIP];

/// The index annotations buildx puts on an attestation manifest's entry.
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
pub const REFERENCE_DIGEST_ANNOTATION: &str = "vnd.docker.reference.digest";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest, config, gzip layer, and OCI image index.
    Oci,
    /// Docker schema 2 manifest, container config, rootfs gzip layer, manifest list.
    Docker,
}

impl Format {
    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::Docker => DOCKER_MANIFEST,
        }
    }

    pub fn index_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_LIST,
        }
    }

    pub fn config_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_CONFIG,
            Format::Docker => DOCKER_CONFIG,
        }
    }

    pub fn layer_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_LAYER_GZIP,
            Format::Docker => DOCKER_LAYER_GZIP,
        }
    }
}

// ---------------------------------------------------------------------------
// Clients

/// Client settings for `registry`: plain HTTP for [`Kind::Plain`], HTTPS trusting
/// only the test CA otherwise. Timeouts of 10 s; an index resolves to linux/amd64.
pub fn client_config(registry: &Registry) -> ClientConfig {
    client_config_for(registry.kind().is_tls(), registry.ca_pem().as_deref())
}

/// Client settings for HTTPS (`https`) or HTTP; with `ca_pem`, HTTPS trusts only
/// that CA, without it the system's roots.
pub fn client_config_for(https: bool, ca_pem: Option<&str>) -> ClientConfig {
    ClientConfig {
        protocol: if https {
            ClientProtocol::Https
        } else {
            ClientProtocol::Http
        },
        tls_certs_only: ca_pem
            .map(|pem| {
                vec![Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.as_bytes().to_vec(),
                }]
            })
            .unwrap_or_default(),
        platform_resolver: Some(Box::new(linux_amd64_resolver)),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    }
}

/// A client for `registry` (see [`client_config`]).
pub fn client(registry: &Registry) -> Client {
    install_crypto_provider();
    Client::new(client_config(registry))
}

/// An HTTPS client that does not trust the test CA (the system's roots only).
pub fn client_without_ca(registry: &Registry) -> Client {
    install_crypto_provider();
    let _ = registry;
    Client::new(client_config_for(true, None))
}

/// The credentials the registry wants: basic for [`Kind::Htpasswd`], anonymous
/// otherwise (for [`Kind::Token`], pass [`basic`] credentials of a token user).
pub fn auth(registry: &Registry) -> RegistryAuth {
    match registry.kind() {
        Kind::Htpasswd { user, password } => basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

pub fn basic(user: &str, password: &str) -> RegistryAuth {
    RegistryAuth::Basic(user.to_string(), password.to_string())
}

/// `127.0.0.1:PORT/<repository_and_tag>` (or `[::1]:PORT/...`) parsed by imagegate's
/// parser, as oci-client's reference for pushing (oci-spec's parser refuses IPv6
/// hosts, so it is built from the parts).
pub fn reference(registry: &Registry, repository_and_tag: &str) -> Reference {
    let image = imagegate::reference::ImageRef::parse(&registry.reference(repository_and_tag))
        .expect("image reference");
    let (host, repository) = (image.registry().to_string(), image.repository().to_string());
    match (image.tag(), image.digest()) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(host, repository, tag.into(), digest.into())
        }
        (None, Some(digest)) => Reference::with_digest(host, repository, digest.into()),
        (tag, None) => Reference::with_tag(
            host,
            repository,
            tag.unwrap_or(imagegate::reference::IMPLICIT_TAG).into(),
        ),
    }
}

// ---------------------------------------------------------------------------
// Building

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A blob with its descriptor fields.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub data: Vec<u8>,
    pub digest: String,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: sha256_digest(&data),
            data,
        }
    }

    pub fn json(media_type: &str, value: &Value) -> Blob {
        Blob::new(
            media_type,
            serde_json::to_vec(value).expect("serialize JSON"),
        )
    }

    /// The descriptor: mediaType, digest, size.
    pub fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.data.len(),
        })
    }
}

/// An image ready to push: layers, config and manifest.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub layers: Vec<Blob>,
    pub config: Blob,
    /// The manifest; its digest is the image digest.
    pub manifest: Blob,
}

/// A one-layer image for `os/arch[/variant]` in `format`.
pub fn build_image(arch: &str, os: &str, variant: Option<&str>, format: Format) -> BuiltImage {
    let platform = platform_string(os, arch, variant);
    let text = format!("imagegate test image for {platform}\n");
    let tar = tar(&[("etc/imagegate-test-platform", text.as_bytes())]);
    let diff_id = sha256_digest(&tar);
    let layer = Blob::new(format.layer_type(), gzip(&tar));

    let mut config = json!({
        "architecture": arch,
        "os": os,
        "created": "2026-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/true"],
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{
            "created": "2026-01-01T00:00:00Z",
            "created_by": format!("imagegate test layer for {platform}"),
        }],
    });
    if let Some(v) = variant {
        config["variant"] = json!(v);
    }
    let config = Blob::json(format.config_type(), &config);
    let manifest = Blob::json(
        format.manifest_type(),
        &json!({
            "schemaVersion": 2,
            "mediaType": format.manifest_type(),
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        }),
    );
    BuiltImage {
        layers: vec![layer],
        config,
        manifest,
    }
}

/// A buildx-like attestation manifest for the image `subject_digest` (an OCI
/// manifest with an `unknown/unknown` config and one in-toto SLSA provenance layer).
pub fn build_attestation(repository: &str, subject_digest: &str, platform: &str) -> BuiltImage {
    let hex_digest = subject_digest.trim_start_matches("sha256:");
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": SLSA_PROVENANCE_V02,
        "subject": [{
            "name": format!("pkg:docker/{repository}?platform={}", platform.replace('/', "%2F")),
            "digest": { "sha256": hex_digest },
        }],
        "predicate": {
            "builder": { "id": "https://github.com/imagegate/tests" },
            "buildType": "https://mobyproject.org/buildkit@v1",
        },
    });
    let layer = Blob::json(IN_TOTO, &statement);
    let config = Blob::json(
        OCI_CONFIG,
        &json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.digest] },
        }),
    );
    let mut layer_descriptor = layer.descriptor();
    layer_descriptor["annotations"] = json!({ "in-toto.io/predicate-type": SLSA_PROVENANCE_V02 });
    let manifest = Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer_descriptor],
        }),
    );
    BuiltImage {
        layers: vec![layer],
        config,
        manifest,
    }
}

fn platform_string(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

// ---------------------------------------------------------------------------
// Pushing

/// Pushes a one-layer image for `platform` (`os/arch[/variant]`) to `reference` (a tag or a
/// digest) and returns its manifest digest.
pub async fn push_single(
    client: &Client,
    auth: &RegistryAuth,
    reference: &Reference,
    platform: &str,
    format: Format,
) -> Result<String, OciDistributionError> {
    let mut parts = platform.split('/');
    let (os, arch) = match (parts.next(), parts.next()) {
        (Some(os), Some(arch)) => (os, arch),
        _ => panic!("a platform is os/arch[/variant], not {platform:?}"),
    };
    let image = build_image(arch, os, parts.next(), format);
    push_built(client, auth, reference, &image).await
}

/// Pushes a linux/amd64 OCI image to `repo_tag` on `registry` with the registry's
/// own credentials, and returns its digest.
pub async fn push_amd64(registry: &Registry, repo_tag: &str) -> String {
    push_single(
        &client(registry),
        &auth(registry),
        &reference(registry, repo_tag),
        "linux/amd64",
        Format::Oci,
    )
    .await
    .expect("push")
}

/// Pushes the layers and config of `image`, then its manifest to `reference`.
pub async fn push_built(
    client: &Client,
    auth: &RegistryAuth,
    reference: &Reference,
    image: &BuiltImage,
) -> Result<String, OciDistributionError> {
    client
        .store_auth_if_needed(reference.resolve_registry(), auth)
        .await;
    for blob in image.layers.iter().chain([&image.config]) {
        client
            .push_blob(reference, blob.data.clone(), &blob.digest)
            .await?;
    }
    push_manifest_bytes(
        client,
        auth,
        reference,
        &image.manifest.data,
        &image.manifest.media_type,
    )
    .await
}

/// PUTs exact manifest bytes with `content_type`; returns their digest.
pub async fn push_manifest_bytes(
    client: &Client,
    auth: &RegistryAuth,
    reference: &Reference,
    body: &[u8],
    content_type: &str,
) -> Result<String, OciDistributionError> {
    client
        .store_auth_if_needed(reference.resolve_registry(), auth)
        .await;
    let digest = sha256_digest(body);
    let location = client
        .push_manifest_raw(
            reference,
            body.to_vec(),
            content_type.parse().expect("content type header"),
        )
        .await?;
    if !location.ends_with(&digest) {
        return Err(OciDistributionError::GenericError(Some(format!(
            "the registry stored the manifest at {location}, not at {digest}"
        ))));
    }
    Ok(digest)
}

/// Pushes one image per `(os, arch, variant)` by digest, then an index (OCI image
/// index or Docker manifest list) of them to `reference`. With `with_attestation`,
/// each image also gets a buildx-like attestation manifest and the index an
/// `unknown/unknown` entry for it (annotations `vnd.docker.reference.type:
/// attestation-manifest` and `vnd.docker.reference.digest: <image digest>`), after
/// the platform entries. Returns the index digest and the image digests, in the
/// order of `platforms` (attestations not included).
pub async fn push_index(
    client: &Client,
    auth: &RegistryAuth,
    reference: &Reference,
    platforms: &[(&str, &str, Option<&str>)],
    format: Format,
    with_attestation: bool,
) -> Result<(String, Vec<String>), OciDistributionError> {
    let mut entries = Vec::new();
    let mut attestation_entries = Vec::new();
    let mut children = Vec::new();
    for &(os, arch, variant) in platforms {
        let image = build_image(arch, os, variant, format);
        let at_digest = by_digest(reference, &image.manifest.digest);
        let digest = push_built(client, auth, &at_digest, &image).await?;
        let mut platform = json!({ "architecture": arch, "os": os });
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        let mut entry = image.manifest.descriptor();
        entry["platform"] = platform;
        entries.push(entry);

        if with_attestation {
            let attestation = build_attestation(
                reference.repository(),
                &digest,
                &platform_string(os, arch, variant),
            );
            let at = by_digest(reference, &attestation.manifest.digest);
            push_built(client, auth, &at, &attestation).await?;
            let mut entry = attestation.manifest.descriptor();
            entry["annotations"] = json!({
                REFERENCE_DIGEST_ANNOTATION: digest,
                REFERENCE_TYPE_ANNOTATION: ATTESTATION_MANIFEST,
            });
            entry["platform"] = json!({ "architecture": "unknown", "os": "unknown" });
            attestation_entries.push(entry);
        }
        children.push(digest);
    }
    entries.extend(attestation_entries);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": format.index_type(),
        "manifests": entries,
    });
    let body = serde_json::to_vec(&index).expect("serialize index");
    let digest = push_manifest_bytes(client, auth, reference, &body, format.index_type()).await?;
    Ok((digest, children))
}

/// `reference`'s repository at `digest`.
pub fn by_digest(reference: &Reference, digest: &str) -> Reference {
    Reference::with_digest(
        reference.registry().to_string(),
        reference.repository().to_string(),
        digest.to_string(),
    )
}

// ---------------------------------------------------------------------------
// Pulling

/// Pulls the image (resolving an index to linux/amd64) with its layers.
pub async fn pull(
    client: &Client,
    auth: &RegistryAuth,
    reference: &Reference,
) -> Result<ImageData, OciDistributionError> {
    client.pull(reference, auth, LAYER_TYPES.to_vec()).await
}

/// GETs the manifest with every manifest type accepted; returns the parsed JSON and
/// the digest.
pub async fn fetch_manifest_json(
    client: &Client,
    auth: &RegistryAuth,
    reference: &Reference,
) -> Result<(Value, String), OciDistributionError> {
    let (bytes, digest) = client
        .pull_manifest_raw(reference, auth, ALL_MANIFEST_TYPES)
        .await?;
    Ok((serde_json::from_slice(&bytes)?, digest))
}

// ---------------------------------------------------------------------------
// Layer bytes

/// A POSIX ustar archive of regular files (mode 0644, mtime 0, owner 0:0).
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        assert!(name.len() < 100, "tar name too long: {name}");
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |field: &mut [u8], value: u64| {
            let text = format!("{value:0width$o}", width = field.len() - 1);
            field[..text.len()].copy_from_slice(text.as_bytes());
        };
        octal(&mut header[100..108], 0o644); // mode
        octal(&mut header[108..116], 0); // uid
        octal(&mut header[116..124], 0); // gid
        octal(&mut header[124..136], data.len() as u64); // size
        octal(&mut header[136..148], 0); // mtime
        header[156] = b'0'; // regular file
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// A valid gzip stream of `data` using stored (uncompressed) deflate blocks: no
/// compression library needed, and any gunzip reads it.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    // Header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        out.push(u8::from(last)); // BFINAL, BTYPE=00 (stored)
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Annotations of an index entry as a map (empty when none).
pub fn annotations(entry: &Value) -> BTreeMap<String, String> {
    entry
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
