//! A test signer, separate from the verifier: it makes real cosign / Sigstore
//! material the way cosign, Fulcio, a CT log and Rekor make it, with keys the test
//! generates. It uses only external crates (aws-lc-rs for keys and signatures,
//! rcgen for certificates, x509-cert to read back the to-be-signed certificate for
//! the SCT) and never the verifier's code, so a bug in one cannot hide in the
//! other.
//!
//! It is compiled into the library's unit tests (`#[cfg(test)]`) and, by path,
//! into the integration tests (`tests/support/signer.rs`), so that tests that push
//! signatures to a real registry use the same material.
//!
//! - [`TestKey`]: ECDSA P-256 / P-384, RSA (PKCS#1 v1.5 or PSS), Ed25519 keys.
//! - [`Fulcio`]: a root and an intermediate CA issuing short-lived code-signing
//!   certificates with the Fulcio issuer extensions and an embedded SCT.
//! - [`CtLog`]: signs SCTs (RFC 6962 precertificate entries).
//! - [`Rekor`]: hashedrekord / dsse / intoto bodies, SETs over the canonical entry,
//!   inclusion proofs in an RFC 6962 tree, and signed checkpoints.
//! - Payloads: simple-signing, in-toto statements, DSSE envelopes and PAE.
//! - Material: legacy `.sig` / `.att` layers with cosign's annotations, Sigstore
//!   bundles v0.1-v0.3, and `trusted_root.json` / PEM trust roots.
#![allow(dead_code)]

use std::collections::BTreeMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// 2024-03-01T12:00:00Z: inside [`Validity::march_2024`].
pub const MARCH_2024_NOON: i64 = 1_709_294_400;

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

pub fn pem(tag: &str, der: &[u8]) -> String {
    let body = b64(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

/// JSON with object keys sorted at every level and no whitespace (what Rekor stores
/// and signs; the values here are ASCII, so this is RFC 8785).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    // serde_json's map may keep insertion order (feature preserve_order): write
    // out by hand, keys sorted, to be independent of it.
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).expect("a string"));
                    out.push(':');
                    write(&map[*k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&serde_json::to_string(other).expect("a scalar")),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out.into_bytes()
}

/// Key types of key-based signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    /// RSA 2048, PKCS#1 v1.5 with SHA-256 (cosign's RSA scheme).
    RsaPkcs1,
    /// RSA 2048, PSS with SHA-256.
    RsaPss,
    Ed25519,
}

enum Private {
    Ecdsa(sig::EcdsaKeyPair),
    /// The key, and whether it signs with PSS (else PKCS#1 v1.5).
    Rsa(aws_lc_rs::rsa::KeyPair, bool),
    Ed25519(sig::Ed25519KeyPair),
}

/// A signing key.
pub struct TestKey {
    kind: KeyKind,
    private: Private,
    spki: Vec<u8>,
    pkcs8: Vec<u8>,
}

impl TestKey {
    pub fn generate(kind: KeyKind) -> Self {
        let rng = SystemRandom::new();
        match kind {
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => {
                let alg = if kind == KeyKind::EcdsaP256 {
                    &sig::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &sig::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("ECDSA key");
                let key = sig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("ECDSA key");
                let spki = key.public_key().as_der().expect("SPKI").as_ref().to_vec();
                TestKey {
                    kind,
                    pkcs8: pkcs8.as_ref().to_vec(),
                    private: Private::Ecdsa(key),
                    spki,
                }
            }
            KeyKind::RsaPkcs1 | KeyKind::RsaPss => {
                let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("RSA key");
                let spki = key.public_key().as_der().expect("SPKI").as_ref().to_vec();
                let pkcs8 = key.as_der().expect("PKCS#8").as_ref().to_vec();
                TestKey {
                    kind,
                    private: Private::Rsa(key, kind == KeyKind::RsaPss),
                    spki,
                    pkcs8,
                }
            }
            KeyKind::Ed25519 => {
                let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key");
                let key = sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
                let spki = key.public_key().as_der().expect("SPKI").as_ref().to_vec();
                TestKey {
                    kind,
                    pkcs8: pkcs8.as_ref().to_vec(),
                    private: Private::Ed25519(key),
                    spki,
                }
            }
        }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.private {
            Private::Ecdsa(k) => k.sign(&rng, message).expect("sign").as_ref().to_vec(),
            Private::Rsa(k, pss) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                let padding: &'static dyn sig::RsaEncoding = if *pss {
                    &sig::RSA_PSS_SHA256
                } else {
                    &sig::RSA_PKCS1_SHA256
                };
                k.sign(padding, &rng, message, &mut out).expect("sign");
                out
            }
            Private::Ed25519(k) => k.sign(message).as_ref().to_vec(),
        }
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki)
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// cosign's key hint in bundles: base64 of SHA-256 of the DER public key.
    pub fn hint(&self) -> String {
        b64(&sha256(&self.spki))
    }
}

/// A certificate's validity, day-granular.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: (i32, u8, u8),
    pub not_after: (i32, u8, u8),
}

impl Validity {
    /// 2024-03-01T00:00Z to 2024-03-02T00:00Z: expired today, valid at
    /// [`MARCH_2024_NOON`].
    pub fn march_2024() -> Self {
        Validity {
            not_before: (2024, 3, 1),
            not_after: (2024, 3, 2),
        }
    }

    /// Valid from 2020 to 2099: valid now.
    pub fn long() -> Self {
        Validity {
            not_before: (2020, 1, 1),
            not_after: (2099, 1, 1),
        }
    }
}

/// A Certificate Transparency log.
pub struct CtLog {
    pub key: TestKey,
}

impl CtLog {
    pub fn new() -> Self {
        CtLog {
            key: TestKey::generate(KeyKind::EcdsaP256),
        }
    }

    pub fn log_id(&self) -> [u8; 32] {
        sha256(self.key.spki())
    }

    /// An SCT (RFC 6962 §3.2) over a precertificate entry.
    pub fn sct(&self, issuer_spki: &[u8], precert_tbs: &[u8], timestamp_ms: u64) -> Vec<u8> {
        let mut signed = vec![0u8, 0u8]; // v1, certificate_timestamp
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
        signed.extend_from_slice(&sha256(issuer_spki));
        let len = precert_tbs.len() as u32;
        signed.extend_from_slice(&len.to_be_bytes()[1..]);
        signed.extend_from_slice(precert_tbs);
        signed.extend_from_slice(&0u16.to_be_bytes()); // no extensions
        let signature = self.key.sign(&signed);
        let mut sct = vec![0u8];
        sct.extend_from_slice(&self.log_id());
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&(signature.len() as u16).to_be_bytes());
        sct.extend_from_slice(&signature);
        sct
    }
}

impl Default for CtLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the OIDC issuer goes in the certificate.
#[derive(Debug, Clone)]
pub enum IssuerExt {
    /// Both extensions (what Fulcio writes today).
    Both(String),
    /// Only 1.3.6.1.4.1.57264.1.1 (old Fulcio).
    V1Only(String),
    /// Only 1.3.6.1.4.1.57264.1.8.
    V8Only(String),
    /// Different values in each.
    Conflicting {
        v1: String,
        v8: String,
    },
    None,
}

/// What a Fulcio certificate says.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// An email or a URI (a value with `://` is a URI).
    pub san: String,
    pub issuer: IssuerExt,
    pub validity: Validity,
    /// Embed an SCT from this log (its timestamp is `not_before`).
    pub sct: bool,
    /// Fulcio CI claims: (OID suffix after 1.3.6.1.4.1.57264.1., DER UTF8String value).
    pub claims: Vec<(u64, String)>,
}

impl LeafSpec {
    pub fn new(san: &str, issuer: &str) -> Self {
        LeafSpec {
            san: san.to_string(),
            issuer: IssuerExt::Both(issuer.to_string()),
            validity: Validity::march_2024(),
            sct: true,
            claims: Vec::new(),
        }
    }
}

/// A Fulcio certificate and its key.
pub struct Leaf {
    pub der: Vec<u8>,
    pub key: TestKey,
}

impl Leaf {
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }
}

/// A Fulcio CA: a root and an intermediate (ECDSA P-384, like Sigstore's).
pub struct Fulcio {
    root_key: rcgen::KeyPair,
    root_params: rcgen::CertificateParams,
    pub root_der: Vec<u8>,
    intermediate_key: rcgen::KeyPair,
    intermediate_params: rcgen::CertificateParams,
    pub intermediate_der: Vec<u8>,
}

fn ca_params(cn: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "imagegate-test");
    dn.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    p
}

impl Fulcio {
    pub fn new(name: &str) -> Self {
        let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let root_params = ca_params(&format!("{name} root"));
        let root_der = root_params
            .self_signed(&root_key)
            .expect("root")
            .der()
            .to_vec();
        let intermediate_key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let mut intermediate_params = ca_params(&format!("{name} intermediate"));
        intermediate_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        intermediate_params.use_authority_key_identifier_extension = true;
        let issuer = rcgen::Issuer::from_params(&root_params, &root_key);
        let intermediate_der = intermediate_params
            .signed_by(&intermediate_key, &issuer)
            .expect("intermediate")
            .der()
            .to_vec();
        Fulcio {
            root_key,
            root_params,
            root_der,
            intermediate_key,
            intermediate_params,
            intermediate_der,
        }
    }

    /// Intermediate then root, PEM (the chain cosign and Fulcio hand out).
    pub fn chain_pem(&self) -> String {
        pem("CERTIFICATE", &self.intermediate_der) + &pem("CERTIFICATE", &self.root_der)
    }

    pub fn intermediate_pem(&self) -> String {
        pem("CERTIFICATE", &self.intermediate_der)
    }

    pub fn root_pem(&self) -> String {
        pem("CERTIFICATE", &self.root_der)
    }

    /// Issues a code-signing certificate for a fresh ECDSA P-256 key, with the SCT
    /// of `ct` embedded when the spec asks for one.
    pub fn issue(&self, spec: &LeafSpec, ct: Option<&CtLog>) -> Leaf {
        let key = TestKey::generate(KeyKind::EcdsaP256);
        let rc_key = rcgen::KeyPair::try_from(key.pkcs8()).expect("rcgen key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let ia5 = |s: &str| rcgen::string::Ia5String::try_from(s.to_string()).expect("IA5");
        params.subject_alt_names = vec![if spec.san.contains("://") {
            rcgen::SanType::URI(ia5(&spec.san))
        } else {
            rcgen::SanType::Rfc822Name(ia5(&spec.san))
        }];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        let (y, m, d) = spec.validity.not_before;
        params.not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = spec.validity.not_after;
        params.not_after = rcgen::date_time_ymd(y, m, d);
        let mut serial = [0u8; 16];
        serial.copy_from_slice(&sha256(key.spki())[..16]);
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let fulcio = |n: u64| [1u64, 3, 6, 1, 4, 1, 57264, 1, n];
        let utf8 = |s: &str| {
            let mut der = vec![0x0c];
            der.extend_from_slice(&der_len(s.len()));
            der.extend_from_slice(s.as_bytes());
            der
        };
        let mut exts = Vec::new();
        match &spec.issuer {
            IssuerExt::Both(i) => {
                exts.push(rcgen::CustomExtension::from_oid_content(
                    &fulcio(1),
                    i.as_bytes().to_vec(),
                ));
                exts.push(rcgen::CustomExtension::from_oid_content(
                    &fulcio(8),
                    utf8(i),
                ));
            }
            IssuerExt::V1Only(i) => exts.push(rcgen::CustomExtension::from_oid_content(
                &fulcio(1),
                i.as_bytes().to_vec(),
            )),
            IssuerExt::V8Only(i) => exts.push(rcgen::CustomExtension::from_oid_content(
                &fulcio(8),
                utf8(i),
            )),
            IssuerExt::Conflicting { v1, v8 } => {
                exts.push(rcgen::CustomExtension::from_oid_content(
                    &fulcio(1),
                    v1.as_bytes().to_vec(),
                ));
                exts.push(rcgen::CustomExtension::from_oid_content(
                    &fulcio(8),
                    utf8(v8),
                ));
            }
            IssuerExt::None => {}
        }
        for (n, value) in &spec.claims {
            exts.push(rcgen::CustomExtension::from_oid_content(
                &fulcio(*n),
                utf8(value),
            ));
        }
        params.custom_extensions = exts;
        let issuer = rcgen::Issuer::from_params(&self.intermediate_params, &self.intermediate_key);
        let precert = params.signed_by(&rc_key, &issuer).expect("certificate");
        let der = match (spec.sct, ct) {
            (true, Some(ct)) => {
                // The SCT signs the TBSCertificate without the SCT extension; rcgen
                // writes custom extensions last, so adding it last keeps the rest.
                use x509_cert::der::{Decode, Encode};
                let parsed = x509_cert::Certificate::from_der(precert.der()).expect("parse");
                let tbs = parsed.tbs_certificate.to_der().expect("TBS");
                let (y, m, d) = spec.validity.not_before;
                let ts = rcgen::date_time_ymd(y, m, d).unix_timestamp() as u64 * 1000 + 1000;
                let sct = ct.sct(&self.intermediate_spki(), &tbs, ts);
                let mut list = Vec::new();
                list.extend_from_slice(&((sct.len() + 2) as u16).to_be_bytes());
                list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
                list.extend_from_slice(&sct);
                let mut octets = vec![0x04];
                octets.extend_from_slice(&der_len(list.len()));
                octets.extend_from_slice(&list);
                params
                    .custom_extensions
                    .push(rcgen::CustomExtension::from_oid_content(
                        &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
                        octets,
                    ));
                params
                    .signed_by(&rc_key, &issuer)
                    .expect("certificate")
                    .der()
                    .to_vec()
            }
            _ => precert.der().to_vec(),
        };
        Leaf { der, key }
    }

    fn intermediate_spki(&self) -> Vec<u8> {
        use rcgen::PublicKeyData;
        self.intermediate_key.subject_public_key_info()
    }
}

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else if len < 0x100 {
        vec![0x81, len as u8]
    } else {
        vec![0x82, (len >> 8) as u8, len as u8]
    }
}

/// A Rekor v1 log.
pub struct Rekor {
    pub key: TestKey,
    pub origin: String,
}

/// A logged entry: what the SET signed and what a bundle or annotation carries.
#[derive(Debug, Clone)]
pub struct Entry {
    pub body: Vec<u8>,
    pub integrated_time: i64,
    pub log_index: u64,
    pub log_id: [u8; 32],
    pub set: Vec<u8>,
    pub kind: String,
    pub version: String,
    pub proof: Option<Proof>,
}

/// An inclusion proof and its signed checkpoint.
#[derive(Debug, Clone)]
pub struct Proof {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: [u8; 32],
    pub hashes: Vec<[u8; 32]>,
    pub checkpoint: String,
}

fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = leaves.len().next_power_of_two() / 2;
    node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
}

/// RFC 6962 §2.1.1 audit path.
fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = leaves.len().next_power_of_two() / 2;
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

impl Rekor {
    pub fn new(name: &str) -> Self {
        Rekor {
            key: TestKey::generate(KeyKind::EcdsaP256),
            origin: format!("{name} - 1234567890"),
        }
    }

    pub fn log_id(&self) -> [u8; 32] {
        sha256(self.key.spki())
    }

    /// hashedrekord 0.0.1 over `payload_sha256`, signed with `signature` by the
    /// key or certificate in `verifier_pem`.
    pub fn hashedrekord_body(
        signature: &[u8],
        verifier_pem: &str,
        payload_sha256: &[u8; 32],
    ) -> Vec<u8> {
        canonical_json(&json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(payload_sha256)}},
                "signature": {"content": b64(signature), "publicKey": {"content": b64(verifier_pem.as_bytes())}},
            },
        }))
    }

    /// dsse 0.0.1 for an envelope of one signature.
    pub fn dsse_body(
        envelope: &[u8],
        payload: &[u8],
        signature: &[u8],
        verifier_pem: &str,
    ) -> Vec<u8> {
        canonical_json(&json!({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": sha256_hex(envelope)},
                "payloadHash": {"algorithm": "sha256", "value": sha256_hex(payload)},
                "signatures": [{"signature": b64(signature), "verifier": b64(verifier_pem.as_bytes())}],
            },
        }))
    }

    /// intoto 0.0.2 (what cosign 2 logs for `attest`).
    pub fn intoto_body(
        envelope: &[u8],
        payload: &[u8],
        signature: &[u8],
        verifier_pem: &str,
    ) -> Vec<u8> {
        canonical_json(&json!({
            "apiVersion": "0.0.2", "kind": "intoto",
            "spec": {"content": {
                "envelope": {
                    "payloadType": IN_TOTO,
                    "signatures": [{"publicKey": b64(verifier_pem.as_bytes()), "sig": b64(b64(signature).as_bytes())}],
                },
                "hash": {"algorithm": "sha256", "value": sha256_hex(envelope)},
                "payloadHash": {"algorithm": "sha256", "value": sha256_hex(payload)},
            }},
        }))
    }

    /// Logs `body` at `integrated_time`: the SET over the canonical entry, and an
    /// inclusion proof with a signed checkpoint in a tree of `tree_size` entries
    /// (the others are made up) when `tree_size` is not zero.
    pub fn log(
        &self,
        body: Vec<u8>,
        integrated_time: i64,
        log_index: u64,
        tree_size: u64,
    ) -> Entry {
        let kind: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let kind_name = kind["kind"].as_str().unwrap_or("").to_string();
        let version = kind["apiVersion"].as_str().unwrap_or("").to_string();
        let set = self.key.sign(&canonical_json(&json!({
            "body": b64(&body),
            "integratedTime": integrated_time,
            "logID": hex::encode(self.log_id()),
            "logIndex": log_index,
        })));
        let proof = (tree_size > 0).then(|| {
            let index = (log_index % tree_size) as usize;
            let leaves: Vec<[u8; 32]> = (0..tree_size as usize)
                .map(|i| {
                    if i == index {
                        leaf_hash(&body)
                    } else {
                        leaf_hash(format!("entry {i}").as_bytes())
                    }
                })
                .collect();
            let root = mth(&leaves);
            let note = format!("{}\n{}\n{}\n", self.origin, tree_size, b64(&root));
            let mut signed = sha256(self.key.spki())[..4].to_vec();
            signed.extend_from_slice(&self.key.sign(note.as_bytes()));
            let name = self.origin.split(' ').next().unwrap_or("rekor");
            Proof {
                log_index: index as u64,
                tree_size,
                root_hash: root,
                hashes: path(index, &leaves),
                checkpoint: format!("{note}\n\u{2014} {name} {}\n", b64(&signed)),
            }
        });
        Entry {
            body,
            integrated_time,
            log_index,
            log_id: self.log_id(),
            set,
            kind: kind_name,
            version,
            proof,
        }
    }
}

impl Entry {
    /// The `dev.sigstore.cosign/bundle` annotation.
    pub fn cosign_annotation(&self) -> String {
        json!({
            "SignedEntryTimestamp": b64(&self.set),
            "Payload": {
                "body": b64(&self.body),
                "integratedTime": self.integrated_time,
                "logIndex": self.log_index,
                "logID": hex::encode(self.log_id),
            },
        })
        .to_string()
    }

    /// The bundle `tlogEntries[]` item.
    pub fn bundle_entry(&self) -> Value {
        let mut e = json!({
            "logIndex": self.log_index.to_string(),
            "logId": {"keyId": b64(&self.log_id)},
            "kindVersion": {"kind": self.kind, "version": self.version},
            "integratedTime": self.integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": b64(&self.set)},
            "canonicalizedBody": b64(&self.body),
        });
        if let Some(p) = &self.proof {
            e["inclusionProof"] = json!({
                "logIndex": p.log_index.to_string(),
                "rootHash": b64(&p.root_hash),
                "treeSize": p.tree_size.to_string(),
                "hashes": p.hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": p.checkpoint},
            });
        }
        e
    }
}

/// A cosign simple-signing payload.
pub fn simple_signing(
    docker_reference: &str,
    digest: &str,
    annotations: &[(&str, &str)],
) -> Vec<u8> {
    let optional: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": if optional.is_empty() { Value::Null } else { Value::Object(optional) },
    })
    .to_string()
    .into_bytes()
}

/// An in-toto Statement v1 about `digest`.
pub fn statement(digest: &str, predicate_type: &str, predicate: Value) -> Vec<u8> {
    let hex_part = digest.strip_prefix("sha256:").unwrap_or(digest);
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "", "digest": {"sha256": hex_part}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
    .to_string()
    .into_bytes()
}

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope JSON with these signatures.
pub fn envelope(payload_type: &str, payload: &[u8], signatures: &[Vec<u8>]) -> Vec<u8> {
    json!({
        "payloadType": payload_type,
        "payload": b64(payload),
        "signatures": signatures.iter().map(|s| json!({"keyid": "", "sig": b64(s)})).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes()
}

/// A legacy layer as a registry holds it: descriptor fields and blob.
#[derive(Debug, Clone)]
pub struct LayerParts {
    pub media_type: String,
    pub digest: String,
    pub annotations: BTreeMap<String, String>,
    pub bytes: Vec<u8>,
}

/// The certificate annotations of a keyless legacy layer.
pub fn cert_annotations(leaf: &Leaf, fulcio: &Fulcio) -> Vec<(String, String)> {
    vec![
        ("dev.sigstore.cosign/certificate".into(), leaf.pem()),
        ("dev.sigstore.cosign/chain".into(), fulcio.chain_pem()),
    ]
}

/// A `.sig` layer: `payload` signed with `signature`, plus extra annotations
/// (certificate, chain, Rekor bundle...).
pub fn sig_layer(
    payload: &[u8],
    signature: &[u8],
    annotations: Vec<(String, String)>,
) -> LayerParts {
    let mut a: BTreeMap<String, String> = annotations.into_iter().collect();
    a.insert("dev.cosignproject.cosign/signature".into(), b64(signature));
    LayerParts {
        media_type: SIMPLE_SIGNING_MEDIA_TYPE.into(),
        digest: digest_of(payload),
        annotations: a,
        bytes: payload.to_vec(),
    }
}

/// An `.att` layer: a DSSE envelope, plus extra annotations.
pub fn att_layer(envelope: &[u8], annotations: Vec<(String, String)>) -> LayerParts {
    let mut a: BTreeMap<String, String> = annotations.into_iter().collect();
    a.insert("dev.cosignproject.cosign/signature".into(), String::new());
    LayerParts {
        media_type: DSSE_MEDIA_TYPE.into(),
        digest: digest_of(envelope),
        annotations: a,
        bytes: envelope.to_vec(),
    }
}

/// What a bundle's verification material holds.
pub enum BundleSigner<'a> {
    /// `publicKey` with this key's hint (or an empty hint).
    Key(&'a TestKey, bool),
    /// v0.3 `certificate`.
    Certificate(&'a Leaf),
    /// v0.1/v0.2 `x509CertificateChain`: the leaf, then these certificates.
    Chain(&'a Leaf, Vec<Vec<u8>>),
}

/// A Sigstore bundle of `media_type` with a DSSE envelope (one signature).
pub fn dsse_bundle(
    media_type: &str,
    signer: BundleSigner<'_>,
    payload: &[u8],
    signature: &[u8],
    entries: &[&Entry],
) -> Vec<u8> {
    let content = json!({"dsseEnvelope": {
        "payloadType": IN_TOTO, "payload": b64(payload),
        "signatures": [{"sig": b64(signature), "keyid": ""}],
    }});
    bundle(media_type, signer, content, entries)
}

/// A Sigstore bundle with a message signature over a message of `digest`.
pub fn message_bundle(
    media_type: &str,
    signer: BundleSigner<'_>,
    digest: &[u8; 32],
    signature: &[u8],
    entries: &[&Entry],
) -> Vec<u8> {
    let content = json!({"messageSignature": {
        "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
        "signature": b64(signature),
    }});
    bundle(media_type, signer, content, entries)
}

fn bundle(
    media_type: &str,
    signer: BundleSigner<'_>,
    content: Value,
    entries: &[&Entry],
) -> Vec<u8> {
    let material = match signer {
        BundleSigner::Key(k, hint) => {
            json!({"publicKey": {"hint": if hint { k.hint() } else { String::new() }}})
        }
        BundleSigner::Certificate(l) => json!({"certificate": {"rawBytes": b64(&l.der)}}),
        BundleSigner::Chain(l, rest) => {
            let mut certs = vec![json!({"rawBytes": b64(&l.der)})];
            certs.extend(rest.iter().map(|c| json!({"rawBytes": b64(c)})));
            json!({"x509CertificateChain": {"certificates": certs}})
        }
    };
    let mut doc = json!({
        "mediaType": media_type,
        "verificationMaterial": material,
    });
    doc["verificationMaterial"]["tlogEntries"] =
        Value::Array(entries.iter().map(|e| e.bundle_entry()).collect());
    if let (Value::Object(d), Value::Object(c)) = (&mut doc, content) {
        d.extend(c);
    }
    doc.to_string().into_bytes()
}

/// A `trusted_root.json` with these CAs, Rekor logs and CT logs (validity from 2020).
pub fn trusted_root(fulcio: &[&Fulcio], rekor: &[&Rekor], ct: &[&CtLog]) -> Vec<u8> {
    let valid = json!({"start": "2020-01-01T00:00:00Z"});
    let log = |spki: &[u8], url: &str| {
        json!({
            "baseUrl": url, "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": valid},
            "logId": {"keyId": b64(&sha256(spki))},
        })
    };
    json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": rekor.iter().map(|r| log(r.key.spki(), "https://rekor.test")).collect::<Vec<_>>(),
        "certificateAuthorities": fulcio.iter().map(|f| json!({
            "subject": {"organization": "imagegate-test", "commonName": "test"},
            "uri": "https://fulcio.test",
            "certChain": {"certificates": [{"rawBytes": b64(&f.intermediate_der)}, {"rawBytes": b64(&f.root_der)}]},
            "validFor": valid,
        })).collect::<Vec<_>>(),
        "ctlogs": ct.iter().map(|c| log(c.key.spki(), "https://ct.test")).collect::<Vec<_>>(),
        "timestampAuthorities": [],
    })
    .to_string()
    .into_bytes()
}
