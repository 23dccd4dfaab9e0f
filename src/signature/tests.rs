//! The attack matrix and the supported formats, table-driven, on material the test
//! signer ([`super::testing`]) makes: keys, a Fulcio CA, a CT log and Rekor logs
//! created by the test.

use std::sync::{Arc, OnceLock};

use serde_json::json;

use super::testing::{
    self as t, BundleSigner, Fulcio, IssuerExt, KeyKind, LeafSpec, Rekor, TestKey,
};
use super::*;

const REPO: &str = "registry.test/acme/app";
const OTHER_REPO: &str = "registry.test/evil/app";
const SAN: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const SLSA: &str = "https://slsa.dev/provenance/v1";

fn image_digest() -> String {
    t::digest_of(b"the image manifest under admission")
}

fn other_digest() -> String {
    t::digest_of(b"another image's manifest")
}

/// Keys, a Fulcio CA, a CT log and a Rekor log, made once for all tests.
struct World {
    fulcio: Fulcio,
    ct: t::CtLog,
    rekor: Rekor,
    /// Not in any trust root.
    other_rekor: Rekor,
    other_ct: t::CtLog,
    other_fulcio: Fulcio,
    root: Arc<TrustRoot>,
    p256: TestKey,
    p256_other: TestKey,
    p384: TestKey,
    rsa: TestKey,
    rsa_pss: TestKey,
    ed25519: TestKey,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let fulcio = Fulcio::new("fulcio");
        let ct = t::CtLog::new();
        let rekor = Rekor::new("rekor.test");
        let root =
            TrustRoot::from_trusted_root_json(&t::trusted_root(&[&fulcio], &[&rekor], &[&ct]))
                .expect("the test trust root");
        World {
            other_fulcio: Fulcio::new("other"),
            other_ct: t::CtLog::new(),
            other_rekor: Rekor::new("other.rekor.test"),
            fulcio,
            ct,
            rekor,
            root,
            p256: TestKey::generate(KeyKind::EcdsaP256),
            p256_other: TestKey::generate(KeyKind::EcdsaP256),
            p384: TestKey::generate(KeyKind::EcdsaP384),
            rsa: TestKey::generate(KeyKind::RsaPkcs1),
            rsa_pss: TestKey::generate(KeyKind::RsaPss),
            ed25519: TestKey::generate(KeyKind::Ed25519),
        }
    })
}

fn public(key: &TestKey) -> PublicKey {
    PublicKey::from_pem(key.public_pem().as_bytes()).expect("the test key")
}

fn key_authority(key: &TestKey, mode: TransparencyLog, root: Option<Arc<TrustRoot>>) -> Authority {
    Authority::key("release", public(key), mode, root).expect("authority")
}

fn keyless_authority(subject: Matcher, issuer: Matcher, mode: TransparencyLog) -> Authority {
    Authority::keyless(
        "ci",
        Identity { subject, issuer },
        mode,
        world().root.clone(),
    )
    .expect("authority")
}

fn exact(s: &str) -> Matcher {
    Matcher::exact(s, "test").unwrap()
}

fn ci() -> Authority {
    keyless_authority(exact(SAN), exact(ISSUER), TransparencyLog::Optional)
}

fn legacy(parts: t::LayerParts, kind: LegacyKind) -> Material {
    Material::Legacy(LegacyLayer {
        origin: format!(
            "{REPO}:sha256-test.{} layer 0",
            if kind == LegacyKind::Signature {
                "sig"
            } else {
                "att"
            }
        ),
        kind,
        media_type: parts.media_type,
        digest: parts.digest,
        annotations: parts.annotations,
        bytes: parts.bytes,
    })
}

fn bundle(bytes: Vec<u8>) -> Material {
    Material::Bundle(BundleLayer {
        origin: "referrer sha256:test layer 0".into(),
        media_type: t::BUNDLE_V03_MEDIA_TYPE.into(),
        bytes,
    })
}

fn subject() -> Subject {
    Subject::image(REPO, &image_digest()).unwrap()
}

/// A `.sig` layer signed with `key`, optionally logged in `rekor`.
fn key_sig(key: &TestKey, payload: &[u8], rekor: Option<&Rekor>) -> Material {
    let signature = key.sign(payload);
    let mut ann = Vec::new();
    if let Some(rekor) = rekor {
        let body = Rekor::hashedrekord_body(&signature, &key.public_pem(), &t::sha256(payload));
        let entry = rekor.log(body, t::MARCH_2024_NOON, 7, 0);
        ann.push((
            "dev.sigstore.cosign/bundle".to_string(),
            entry.cosign_annotation(),
        ));
    }
    legacy(
        t::sig_layer(payload, &signature, ann),
        LegacyKind::Signature,
    )
}

fn payload() -> Vec<u8> {
    t::simple_signing(REPO, &image_digest(), &[])
}

fn leaf(spec: &LeafSpec) -> t::Leaf {
    world().fulcio.issue(spec, Some(&world().ct))
}

/// How a keyless `.sig` layer's Rekor entry is made.
enum Log<'a> {
    None,
    /// The genuine entry, in this log, at this time.
    At(&'a Rekor, i64),
    /// A genuine SET over this body instead of the signature's.
    Body(Vec<u8>),
}

fn keyless_sig(leaf: &t::Leaf, payload: &[u8], log: Log<'_>) -> Material {
    keyless_sig_signed(leaf, payload, &leaf.key.sign(payload), log)
}

fn keyless_sig_signed(leaf: &t::Leaf, payload: &[u8], signature: &[u8], log: Log<'_>) -> Material {
    let w = world();
    let mut ann = t::cert_annotations(leaf, &w.fulcio);
    let entry = match log {
        Log::None => None,
        Log::At(rekor, time) => Some(rekor.log(
            Rekor::hashedrekord_body(signature, &leaf.pem(), &t::sha256(payload)),
            time,
            42,
            0,
        )),
        Log::Body(body) => Some(w.rekor.log(body, t::MARCH_2024_NOON, 42, 0)),
    };
    if let Some(e) = entry {
        ann.push(("dev.sigstore.cosign/bundle".into(), e.cosign_annotation()));
    }
    legacy(t::sig_layer(payload, signature, ann), LegacyKind::Signature)
}

fn ok_keyless_sig(spec: &LeafSpec) -> Material {
    keyless_sig(
        &leaf(spec),
        &payload(),
        Log::At(&world().rekor, t::MARCH_2024_NOON),
    )
}

/// A keyless v0.3 DSSE bundle with an inclusion proof and checkpoint.
fn keyless_dsse_bundle(spec: &LeafSpec, statement: &[u8], rekor: &Rekor) -> Vec<u8> {
    let leaf = leaf(spec);
    let sig = leaf.key.sign(&t::pae(t::IN_TOTO, statement));
    let env = t::envelope(t::IN_TOTO, statement, std::slice::from_ref(&sig));
    let entry = rekor.log(
        Rekor::dsse_body(&env, statement, &sig, &leaf.pem()),
        t::MARCH_2024_NOON,
        1000,
        13,
    );
    t::dsse_bundle(
        t::BUNDLE_V03_MEDIA_TYPE,
        BundleSigner::Certificate(&leaf),
        statement,
        &sig,
        &[&entry],
    )
}

fn key_dsse_bundle(key: &TestKey, statement: &[u8], hint: bool) -> Vec<u8> {
    let sig = key.sign(&t::pae(t::IN_TOTO, statement));
    t::dsse_bundle(
        t::BUNDLE_V03_MEDIA_TYPE,
        BundleSigner::Key(key, hint),
        statement,
        &sig,
        &[],
    )
}

enum Expect {
    Verified(MaterialKind),
    Failed(FailureKind, &'static str),
}

struct Case {
    name: &'static str,
    subject: Subject,
    materials: Vec<Material>,
    authority: Authority,
    options: Options,
    expect: Expect,
}

fn case(
    name: &'static str,
    materials: Vec<Material>,
    authority: Authority,
    expect: Expect,
) -> Case {
    Case {
        name,
        subject: subject(),
        materials,
        authority,
        options: Options::default(),
        expect,
    }
}

use Expect::{Failed, Verified};
use FailureKind as F;
use MaterialKind::{Attestation, Signature};
use TransparencyLog::{Off, Optional, Required};

fn cases() -> Vec<Case> {
    let w = world();
    let spec = LeafSpec::new(SAN, ISSUER);
    let statement = t::statement(&image_digest(), VULN, json!({"scanner": {"result": {}}}));
    let mut cases = vec![
        // Keys.
        case("key .sig, P-256", vec![key_sig(&w.p256, &payload(), None)], key_authority(&w.p256, Optional, None), Verified(Signature)),
        case("key .sig, P-384", vec![key_sig(&w.p384, &payload(), None)], key_authority(&w.p384, Optional, None), Verified(Signature)),
        case("key .sig, RSA PKCS#1", vec![key_sig(&w.rsa, &payload(), None)], key_authority(&w.rsa, Optional, None), Verified(Signature)),
        case("key .sig, RSA PSS", vec![key_sig(&w.rsa_pss, &payload(), None)], key_authority(&w.rsa_pss, Optional, None), Verified(Signature)),
        case("key .sig, Ed25519", vec![key_sig(&w.ed25519, &payload(), None)], key_authority(&w.ed25519, Optional, None), Verified(Signature)),
        case("key bundle, P-384 DSSE", vec![bundle(key_dsse_bundle(&w.p384, &statement, true))], key_authority(&w.p384, Optional, None), Verified(Attestation)),
        case("key bundle, Ed25519 DSSE", vec![bundle(key_dsse_bundle(&w.ed25519, &statement, true))], key_authority(&w.ed25519, Optional, None), Verified(Attestation)),
        case("key bundle, RSA PSS DSSE", vec![bundle(key_dsse_bundle(&w.rsa_pss, &statement, false))], key_authority(&w.rsa_pss, Optional, None), Verified(Attestation)),
        case("key bundle, cosign sign/v1 statement is a signature",
            vec![bundle(key_dsse_bundle(&w.p256, &t::statement(&image_digest(), t::COSIGN_SIGN_PREDICATE, json!({})), true))],
            key_authority(&w.p256, Optional, None), Verified(Signature)),
        case("key message-signature bundle over the image digest",
            vec![bundle({
                let d = t::sha256(b"the image manifest under admission");
                t::message_bundle(t::BUNDLE_V03_MEDIA_TYPE, BundleSigner::Key(&w.p256, true), &d, &w.p256.sign(b"the image manifest under admission"), &[])
            })],
            key_authority(&w.p256, Optional, None), Verified(Signature)),
        case("key .sig with a hashedrekord entry, tlog Required", vec![key_sig(&w.p256, &payload(), Some(&w.rekor))], key_authority(&w.p256, Required, Some(w.root.clone())), Verified(Signature)),
        // Attack: wrong key.
        case("wrong key: bundle names its key", vec![bundle(key_dsse_bundle(&w.p256_other, &statement, true))], key_authority(&w.p256, Optional, None), Failed(F::WrongKey, "signed by another key")),
        case("wrong key: the log names the key", vec![key_sig(&w.p256_other, &payload(), Some(&w.rekor))], key_authority(&w.p256, Optional, Some(w.root.clone())), Failed(F::WrongKey, "signed by another key")),
        case("wrong key: legacy, nothing names the key", vec![key_sig(&w.p256_other, &payload(), None)], key_authority(&w.p256, Optional, None), Failed(F::BadSignature, "signed by another key, or changed after signing")),
        // Attack: payload changed after signing.
        case("tampered: key bundle statement changed", vec![bundle({
                let sig = w.p256.sign(&t::pae(t::IN_TOTO, &statement));
                let forged = t::statement(&image_digest(), VULN, json!({"scanner": {"result": {"Results": []}}}));
                t::dsse_bundle(t::BUNDLE_V03_MEDIA_TYPE, BundleSigner::Key(&w.p256, true), &forged, &sig, &[])
            })], key_authority(&w.p256, Optional, None), Failed(F::Tampered, "changed after signing")),
        case("tampered: keyless .sig payload changed", vec![{
                let l = leaf(&spec);
                let sig = l.key.sign(&payload());
                let changed = t::simple_signing(REPO, &image_digest(), &[("tag", "v2")]);
                keyless_sig_signed(&l, &changed, &sig, Log::None)
            }], ci(), Failed(F::Tampered, "changed after signing")),
        case("tampered: keyless .sig payload changed, genuine log entry of the original", vec![{
                let l = leaf(&spec);
                let sig = l.key.sign(&payload());
                let body = Rekor::hashedrekord_body(&sig, &l.pem(), &t::sha256(&payload()));
                let changed = t::simple_signing(REPO, &image_digest(), &[("tag", "v2")]);
                keyless_sig_signed(&l, &changed, &sig, Log::Body(body))
            }], ci(), Failed(F::Tampered, "changed after signing")),
        // Attack: another image's digest.
        case("legacy payload names another digest", vec![key_sig(&w.p256, &t::simple_signing(REPO, &other_digest(), &[]), None)], key_authority(&w.p256, Optional, None), Failed(F::DigestMismatch, "made for another image")),
        case("statement names another digest", vec![bundle(key_dsse_bundle(&w.p256, &t::statement(&other_digest(), VULN, json!({})), true))], key_authority(&w.p256, Optional, None), Failed(F::DigestMismatch, "the statement names sha256:")),
        case("keyless bundle statement names another digest", vec![bundle(keyless_dsse_bundle(&spec, &t::statement(&other_digest(), VULN, json!({})), &w.rekor))], ci(), Failed(F::DigestMismatch, "the statement names sha256:")),
        // Attack: a valid signature copied from another repository.
        case("signature copied from another repository", vec![key_sig(&w.p256, &t::simple_signing(OTHER_REPO, &image_digest(), &[]), None)], key_authority(&w.p256, Optional, None), Failed(F::RepositoryMismatch, "made for repository registry.test/evil/app")),
        // Attack: expired certificate without a log entry.
        case("expired certificate, no log entry", vec![keyless_sig(&leaf(&spec), &payload(), Log::None)], ci(), Failed(F::CertificateExpired, "certificate expired at 2024-03-02T00:00:00Z and no log entry or timestamp proves it was used before")),
        case("expired certificate, log ignored (Off)", vec![ok_keyless_sig(&spec)], keyless_authority(exact(SAN), exact(ISSUER), Off), Failed(F::CertificateExpired, "transparencyLog is Off")),
        case("certificate valid now, no log entry", vec![keyless_sig(&leaf(&LeafSpec { validity: t::Validity::long(), ..spec.clone() }), &payload(), Log::None)], ci(), Failed(F::NoTimeProof, "needs one")),
        case("log time outside the certificate's validity", vec![keyless_sig(&leaf(&spec), &payload(), Log::At(&w.rekor, t::MARCH_2024_NOON + 5 * 86_400))], ci(), Failed(F::CertificateNotValidAtTime, "")),
        // Attack: log entry signed by another Rekor key.
        case("log entry signed by another Rekor key", vec![keyless_sig(&leaf(&spec), &payload(), Log::At(&w.other_rekor, t::MARCH_2024_NOON))], ci(), Failed(F::LogUntrusted, "not signed by a Rekor key of the trust root")),
        // Attack: a log body that doesn't match the signature.
        case("log body of another payload", vec![{
                let l = leaf(&spec);
                let sig = l.key.sign(&payload());
                let body = Rekor::hashedrekord_body(&sig, &l.pem(), &t::sha256(b"another payload"));
                keyless_sig_signed(&l, &payload(), &sig, Log::Body(body))
            }], ci(), Failed(F::LogMismatch, "the log entry does not match this signature")),
        case("log body of another certificate", vec![{
                let l = leaf(&spec);
                let other = leaf(&spec);
                let sig = l.key.sign(&payload());
                let body = Rekor::hashedrekord_body(&sig, &other.pem(), &t::sha256(&payload()));
                keyless_sig_signed(&l, &payload(), &sig, Log::Body(body))
            }], ci(), Failed(F::LogMismatch, "the log entry does not match this signature")),
        // Attack: a SET over `{}` (sigstore-rs 0.15 accepted it).
        case("SET over {}", vec![keyless_sig(&leaf(&spec), &payload(), Log::Body(b"{}".to_vec()))], ci(), Failed(F::LogMismatch, "its body is not a Rekor entry")),
        // Keyless identities.
        case("keyless .sig with SET, chain and SCT", vec![ok_keyless_sig(&spec)], ci(), Verified(Signature)),
        case("keyless, subject regexp", vec![ok_keyless_sig(&spec)], keyless_authority(Matcher::regex(r"^https://github\.com/acme/", "s").unwrap(), exact(ISSUER), Optional), Verified(Signature)),
        case("keyless, email subject", vec![ok_keyless_sig(&LeafSpec::new("dev@acme.test", "https://accounts.google.com"))], keyless_authority(exact("dev@acme.test"), exact("https://accounts.google.com"), Optional), Verified(Signature)),
        case("wrong subject", vec![ok_keyless_sig(&spec)], keyless_authority(exact("https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main"), exact(ISSUER), Optional), Failed(F::IdentityMismatch, "identity mismatch: got https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1, expected https://github.com/evil/")),
        case("wrong subject regexp", vec![ok_keyless_sig(&spec)], keyless_authority(Matcher::regex("^https://github.com/evil/", "s").unwrap(), exact(ISSUER), Optional), Failed(F::IdentityMismatch, "expected regexp ^https://github.com/evil/")),
        case("wrong issuer", vec![ok_keyless_sig(&spec)], keyless_authority(exact(SAN), exact("https://accounts.google.com"), Optional), Failed(F::IssuerMismatch, "issuer mismatch: got https://token.actions.githubusercontent.com, expected https://accounts.google.com")),
        case("issuer only in the new extension (.1.8)", vec![ok_keyless_sig(&LeafSpec { issuer: IssuerExt::V8Only(ISSUER.into()), ..spec.clone() })], ci(), Verified(Signature)),
        case("issuer only in the old extension (.1.1)", vec![ok_keyless_sig(&LeafSpec { issuer: IssuerExt::V1Only(ISSUER.into()), ..spec.clone() })], ci(), Verified(Signature)),
        case("wrong issuer, only in the new extension", vec![ok_keyless_sig(&LeafSpec { issuer: IssuerExt::V8Only("https://evil.test".into()), ..spec.clone() })], ci(), Failed(F::IssuerMismatch, "got https://evil.test")),
        case("wrong issuer, only in the old extension", vec![ok_keyless_sig(&LeafSpec { issuer: IssuerExt::V1Only("https://evil.test".into()), ..spec.clone() })], ci(), Failed(F::IssuerMismatch, "got https://evil.test")),
        case("two different issuers", vec![ok_keyless_sig(&LeafSpec { issuer: IssuerExt::Conflicting { v1: "https://evil.test".into(), v8: ISSUER.into() }, ..spec.clone() })], ci(), Failed(F::IssuerMismatch, "two different issuers")),
        case("no issuer", vec![ok_keyless_sig(&LeafSpec { issuer: IssuerExt::None, ..spec.clone() })], ci(), Failed(F::IssuerMismatch, "names no OIDC issuer")),
        // SCT.
        case("SCT from an unknown CT key", vec![keyless_sig(&w.fulcio.issue(&spec, Some(&w.other_ct)), &payload(), Log::At(&w.rekor, t::MARCH_2024_NOON))], ci(), Failed(F::SctInvalid, "SCT")),
        case("no SCT, the trust root has CT logs", vec![keyless_sig(&w.fulcio.issue(&LeafSpec { sct: false, ..spec.clone() }, None), &payload(), Log::At(&w.rekor, t::MARCH_2024_NOON))], ci(), Failed(F::SctInvalid, "SCT")),
        // Chains.
        case("certificate from another CA", vec![keyless_sig(&w.other_fulcio.issue(&spec, Some(&w.ct)), &payload(), Log::At(&w.rekor, t::MARCH_2024_NOON))], ci(), Failed(F::UntrustedCertificate, "does not chain to a Fulcio CA")),
        case("bundle ships its own root", vec![bundle({
                let l = leaf(&spec);
                let sig = l.key.sign(&t::pae(t::IN_TOTO, &statement));
                let env = t::envelope(t::IN_TOTO, &statement, std::slice::from_ref(&sig));
                let entry = w.rekor.log(Rekor::dsse_body(&env, &statement, &sig, &l.pem()), t::MARCH_2024_NOON, 5, 8);
                t::dsse_bundle("application/vnd.dev.sigstore.bundle+json;version=0.2", BundleSigner::Chain(&l, vec![w.fulcio.intermediate_der.clone(), w.fulcio.root_der.clone()]), &statement, &sig, &[&entry])
            })], ci(), Failed(F::UntrustedCertificate, "ships its own root")),
        case("bundle v0.2 with chain (no root), inclusion proof", vec![bundle({
                let l = leaf(&spec);
                let sig = l.key.sign(&t::pae(t::IN_TOTO, &statement));
                let env = t::envelope(t::IN_TOTO, &statement, std::slice::from_ref(&sig));
                let entry = w.rekor.log(Rekor::dsse_body(&env, &statement, &sig, &l.pem()), t::MARCH_2024_NOON, 5, 8);
                t::dsse_bundle("application/vnd.dev.sigstore.bundle+json;version=0.2", BundleSigner::Chain(&l, vec![w.fulcio.intermediate_der.clone()]), &statement, &sig, &[&entry])
            })], ci(), Verified(Attestation)),
        // Bundles with inclusion proofs.
        case("keyless v0.3 DSSE bundle: attestation of another predicate type", vec![bundle(keyless_dsse_bundle(&spec, &t::statement(&image_digest(), SLSA, json!({"buildDefinition": {}})), &w.rekor))], ci(), Verified(Attestation)),
        case("keyless v0.3 bundle, log Required", vec![bundle(keyless_dsse_bundle(&spec, &statement, &w.rekor))], keyless_authority(exact(SAN), exact(ISSUER), Required), Verified(Attestation)),
        case("inclusion proof with a flipped hash", vec![bundle({
                let mut b: serde_json::Value = serde_json::from_slice(&keyless_dsse_bundle(&spec, &statement, &w.rekor)).unwrap();
                let h = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0];
                let mut bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, h.as_str().unwrap()).unwrap();
                bytes[0] ^= 1;
                *h = json!(t::b64(&bytes));
                b.to_string().into_bytes()
            })], ci(), Failed(F::LogInvalid, "inclusion proof")),
        case("checkpoint and SET by another Rekor key", vec![bundle(keyless_dsse_bundle(&spec, &statement, &w.other_rekor))], ci(), Failed(F::LogUntrusted, "Rekor key of the trust root")),
        // Transparency log requirement.
        case("key, tlog Required, no entry", vec![key_sig(&w.p256, &payload(), None)], key_authority(&w.p256, Required, Some(w.root.clone())), Failed(F::LogRequired, "requires one")),
        case("key bundle, tlog Required, no entry", vec![bundle(key_dsse_bundle(&w.p256, &statement, true))], key_authority(&w.p256, Required, Some(w.root.clone())), Failed(F::LogRequired, "transparencyLog: Required")),
        case("key with an entry of an unknown log, tlog Off", vec![key_sig(&w.p256, &payload(), Some(&w.other_rekor))], key_authority(&w.p256, Off, None), Verified(Signature)),
        case("key with an entry of an unknown log, tlog Optional", vec![key_sig(&w.p256, &payload(), Some(&w.other_rekor))], key_authority(&w.p256, Optional, Some(w.root.clone())), Failed(F::LogUntrusted, "not signed by a Rekor key")),
        case("key with an entry, no trust root, tlog Optional", vec![key_sig(&w.p256, &payload(), Some(&w.rekor))], key_authority(&w.p256, Optional, None), Failed(F::NoTrustRoot, "set transparencyLog: Off")),
        case("RSA-PSS with a Rekor entry", vec![key_sig(&w.rsa_pss, &payload(), Some(&w.rekor))], key_authority(&w.rsa_pss, Optional, Some(w.root.clone())), Failed(F::NotSupported, "RSA-PSS")),
        // Kinds.
        case("keyless material, key authority", vec![ok_keyless_sig(&spec)], key_authority(&w.p256, Optional, None), Failed(F::KindMismatch, "signed keyless")),
        case("key material, keyless authority", vec![key_sig(&w.p256, &payload(), None)], ci(), Failed(F::KindMismatch, "signed with a key")),
        // Garbage.
        case("garbage bundle", vec![bundle(b"\x00\x01 not json".to_vec())], ci(), Failed(F::Malformed, "")),
        case("garbage JSON bundle", vec![bundle(b"{\"mediaType\": 5}".to_vec())], ci(), Failed(F::Malformed, "cannot be read")),
        case("bundle of an unknown version", vec![bundle(br#"{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=9.9","verificationMaterial":{"publicKey":{}},"messageSignature":{"signature":""}}"#.to_vec())], ci(), Failed(F::Unsupported, "version")),
        case("garbage .att layer", vec![legacy(t::att_layer(b"garbage", vec![]), LegacyKind::Attestation)], ci(), Failed(F::Malformed, "not a DSSE envelope")),
        case("layer bytes that do not match the digest", vec![legacy(t::LayerParts { digest: other_digest(), ..t::sig_layer(&payload(), &w.p256.sign(&payload()), vec![]) }, LegacyKind::Signature)], key_authority(&w.p256, Optional, None), Failed(F::Malformed, "hash to")),
        case(".sig layer without a signature annotation", vec![legacy(t::LayerParts { annotations: Default::default(), ..t::sig_layer(&payload(), b"x", vec![]) }, LegacyKind::Signature)], key_authority(&w.p256, Optional, None), Failed(F::Malformed, "carries no signature")),
        case("signed payload that is not simple-signing", vec![key_sig(&w.p256, b"{\"hello\":1}", None)], key_authority(&w.p256, Optional, None), Failed(F::Malformed, "simple-signing")),
        case("statement of an unknown _type", vec![bundle(key_dsse_bundle(&w.p256, br#"{"_type":"https://example.test/Statement","subject":[],"predicateType":"x"}"#, true))], key_authority(&w.p256, Optional, None), Failed(F::Unsupported, "_type")),
        // Legacy attestations.
        case("keyless .att with an intoto 0.0.2 entry", vec![{
                let l = leaf(&spec);
                let sig = l.key.sign(&t::pae(t::IN_TOTO, &statement));
                let env = t::envelope(t::IN_TOTO, &statement, std::slice::from_ref(&sig));
                let e = w.rekor.log(Rekor::intoto_body(&env, &statement, &sig, &l.pem()), t::MARCH_2024_NOON, 3, 0);
                let mut ann = t::cert_annotations(&l, &w.fulcio);
                ann.push(("dev.sigstore.cosign/bundle".into(), e.cosign_annotation()));
                legacy(t::att_layer(&env, ann), LegacyKind::Attestation)
            }], ci(), Verified(Attestation)),
        case("keyless .att with an intoto 0.0.1 entry", vec![{
                let l = leaf(&spec);
                let sig = l.key.sign(&t::pae(t::IN_TOTO, &statement));
                let env = t::envelope(t::IN_TOTO, &statement, std::slice::from_ref(&sig));
                let body = t::canonical_json(&json!({"apiVersion": "0.0.1", "kind": "intoto", "spec": {"content": {"hash": {"algorithm": "sha256", "value": t::sha256_hex(&env)}}, "publicKey": t::b64(l.pem().as_bytes())}}));
                let e = w.rekor.log(body, t::MARCH_2024_NOON, 3, 0);
                let mut ann = t::cert_annotations(&l, &w.fulcio);
                ann.push(("dev.sigstore.cosign/bundle".into(), e.cosign_annotation()));
                legacy(t::att_layer(&env, ann), LegacyKind::Attestation)
            }], ci(), Failed(F::NotSupported, "intoto 0.0.1")),
        // RFC 3161 timestamps from the legacy annotation are checked, never skipped.
        case("keyless .sig with a timestamp no TSA of the trust root signed", vec![{
                let l = leaf(&spec);
                let sig = l.key.sign(&payload());
                let e = w.rekor.log(Rekor::hashedrekord_body(&sig, &l.pem(), &t::sha256(&payload())), t::MARCH_2024_NOON, 4, 0);
                let mut ann = t::cert_annotations(&l, &w.fulcio);
                ann.push(("dev.sigstore.cosign/bundle".into(), e.cosign_annotation()));
                ann.push(("dev.sigstore.cosign/rfc3161timestamp".into(), json!({"SignedRFC3161Timestamp": t::b64(b"not a timestamp token")}).to_string()));
                legacy(t::sig_layer(&payload(), &sig, ann), LegacyKind::Signature)
            }], ci(), Failed(F::TimestampInvalid, "RFC 3161")),
        case("key .sig with a timestamp, no trust root: a key needs no time", vec![{
                let sig = w.p256.sign(&payload());
                let ts = json!({"SignedRFC3161Timestamp": t::b64(b"not a timestamp token")}).to_string();
                legacy(t::sig_layer(&payload(), &sig, vec![("dev.sigstore.cosign/rfc3161timestamp".into(), ts)]), LegacyKind::Signature)
            }], key_authority(&w.p256, Optional, None), Verified(Signature)),
        case("key .sig with a timestamp, trust root without TSA: ignored", vec![{
                let sig = w.p256.sign(&payload());
                let ts = json!({"SignedRFC3161Timestamp": t::b64(b"not a timestamp token")}).to_string();
                legacy(t::sig_layer(&payload(), &sig, vec![("dev.sigstore.cosign/rfc3161timestamp".into(), ts)]), LegacyKind::Signature)
            }], key_authority(&w.p256, Optional, Some(w.root.clone())), Verified(Signature)),
        case("malformed timestamp annotation", vec![{
                let sig = w.p256.sign(&payload());
                legacy(t::sig_layer(&payload(), &sig, vec![("dev.sigstore.cosign/rfc3161timestamp".into(), "{".into())]), LegacyKind::Signature)
            }], key_authority(&w.p256, Optional, None), Failed(F::Malformed, "rfc3161timestamp")),
        case("key .att, second of two signatures is the authority's", vec![{
                let sigs = vec![w.p256_other.sign(&t::pae(t::IN_TOTO, &statement)), w.p256.sign(&t::pae(t::IN_TOTO, &statement))];
                legacy(t::att_layer(&t::envelope(t::IN_TOTO, &statement, &sigs), vec![]), LegacyKind::Attestation)
            }], key_authority(&w.p256, Optional, None), Verified(Attestation)),
    ];

    // Trust root from PEM files: the Rekor key as PEM works.
    let pem_root = TrustRoot::from_pem(&TrustRootPem {
        fulcio_chains: vec![w.fulcio.chain_pem().into_bytes()],
        rekor_keys: vec![w.rekor.key.public_pem().into_bytes()],
        ctlog_keys: vec![w.ct.key.public_pem().into_bytes()],
        tsa_chains: vec![],
    })
    .unwrap();
    let pem_authority = |mode| {
        Authority::keyless(
            "ci",
            Identity {
                subject: exact(SAN),
                issuer: exact(ISSUER),
            },
            mode,
            pem_root.clone(),
        )
        .unwrap()
    };
    cases.push(case(
        "PEM trust root (Rekor key as PEM), log Required",
        vec![ok_keyless_sig(&spec)],
        pem_authority(Required),
        Verified(Signature),
    ));
    cases.push(case(
        "PEM trust root: log entry of another Rekor",
        vec![keyless_sig(
            &leaf(&spec),
            &payload(),
            Log::At(&w.other_rekor, t::MARCH_2024_NOON),
        )],
        pem_authority(Required),
        Failed(F::LogUntrusted, ""),
    ));

    // Mirrors and normalization.
    let mut mirror = case(
        "signature for an allowed mirror",
        vec![key_sig(
            &w.p256,
            &t::simple_signing(OTHER_REPO, &image_digest(), &[]),
            None,
        )],
        key_authority(&w.p256, Optional, None),
        Verified(Signature),
    );
    mirror.options.allowed_repositories = vec![OTHER_REPO.into()];
    cases.push(mirror);
    let mut hub = case(
        "docker-reference spelled index.docker.io",
        vec![key_sig(
            &w.p256,
            &t::simple_signing("index.docker.io/library/nginx", &image_digest(), &[]),
            None,
        )],
        key_authority(&w.p256, Optional, None),
        Verified(Signature),
    );
    hub.subject = Subject::image("nginx", &image_digest()).unwrap();
    cases.push(hub);
    let mut no_repo = case(
        "legacy signature, no repository to compare",
        vec![key_sig(&w.p256, &payload(), None)],
        key_authority(&w.p256, Optional, None),
        Failed(F::RepositoryMismatch, "no repository was given"),
    );
    no_repo.subject = Subject::digest(&image_digest()).unwrap();
    cases.push(no_repo);

    // Annotations (cosign -a).
    let mut ann_ok = case(
        "required annotation present",
        vec![key_sig(
            &w.p256,
            &t::simple_signing(REPO, &image_digest(), &[("env", "prod")]),
            None,
        )],
        key_authority(&w.p256, Optional, None),
        Verified(Signature),
    );
    ann_ok
        .options
        .required_annotations
        .insert("env".into(), "prod".into());
    cases.push(ann_ok);
    let mut ann_bad = case(
        "required annotation different",
        vec![key_sig(
            &w.p256,
            &t::simple_signing(REPO, &image_digest(), &[("env", "dev")]),
            None,
        )],
        key_authority(&w.p256, Optional, None),
        Failed(F::AnnotationMismatch, "is `dev`, not `prod`"),
    );
    ann_bad
        .options
        .required_annotations
        .insert("env".into(), "prod".into());
    cases.push(ann_bad);

    // Bounds.
    let mut small = case(
        "bundle over the size bound",
        vec![bundle(key_dsse_bundle(&w.p256, &statement, true))],
        key_authority(&w.p256, Optional, None),
        Failed(F::TooLarge, "at most 100"),
    );
    small.options.limits.max_material_bytes = 100;
    cases.push(small);
    cases
}

#[test]
fn attack_matrix_and_formats() {
    let mut failures = Vec::new();
    for c in cases() {
        let report = match verify(
            &c.subject,
            &c.materials,
            std::slice::from_ref(&c.authority),
            &c.options,
        ) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: input error {e}", c.name));
                continue;
            }
        };
        let outcome = &report.materials[0].outcomes[0];
        match (&c.expect, &outcome.result) {
            (Verified(kind), Ok(v)) if v.kind == *kind => {}
            (Failed(kind, text), Err(f)) if f.kind == *kind && f.message.contains(text) => {}
            (_, got) => failures.push(format!("{}: got {got:?}", c.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn results_carry_what_the_engine_needs() {
    let w = world();
    let spec = LeafSpec {
        claims: vec![(12, "https://github.com/acme/app".into())],
        ..LeafSpec::new(SAN, ISSUER)
    };
    let slsa = t::statement(
        &image_digest(),
        SLSA,
        json!({"buildDefinition": {"buildType": "x"}}),
    );
    let materials = vec![
        bundle(b"garbage".to_vec()),
        bundle(keyless_dsse_bundle(&spec, &slsa, &w.rekor)),
        ok_keyless_sig(&spec),
    ];
    let report = verify(
        &subject(),
        &materials,
        &[
            ci(),
            Authority::keyless(
                "other",
                Identity {
                    subject: exact("someone@else.test"),
                    issuer: exact(ISSUER),
                },
                Optional,
                w.root.clone(),
            )
            .unwrap(),
        ],
        &Options::default(),
    )
    .unwrap();
    assert_eq!(report.materials.len(), 3);
    assert!(report.signature_verified("ci"));
    let attestations: Vec<_> = report.attestations("ci", SLSA).collect();
    assert_eq!(attestations.len(), 1);
    assert_eq!(
        attestations[0].predicate.as_ref().unwrap()["buildDefinition"]["buildType"],
        "x"
    );
    assert_eq!(
        report.attestations("ci", VULN).count(),
        0,
        "an attestation of another type is not a vuln scan"
    );
    let (_, verified) = report.verified("ci").next().unwrap();
    match &verified.signer {
        SignerInfo::Certificate {
            subject,
            issuer,
            claims,
        } => {
            assert_eq!(subject, &vec![SAN.to_string()]);
            assert_eq!(issuer.as_deref(), Some(ISSUER));
            assert_eq!(
                claims.get("sourceRepositoryURI").map(String::as_str),
                Some("https://github.com/acme/app")
            );
        }
        other => panic!("expected a certificate signer, got {other:?}"),
    }
    assert!(verified.sct_verified);
    let log = verified.log.as_ref().expect("a log proof");
    assert_eq!(log.entry, "dsse/0.0.1");
    assert_eq!(log.integrated_time.as_deref(), Some("2024-03-01T12:00:00Z"));
    // The other authority: an identity mismatch says more than the garbage bundle.
    assert!(!report.signature_verified("other"));
    let (origin, best) = report.best_failure("other").unwrap();
    assert_eq!(best.kind, FailureKind::IdentityMismatch, "{best}");
    assert!(
        origin.contains("referrer") || origin.contains(".sig"),
        "{origin}"
    );
    assert_eq!(report.failures("other").count(), 3);
    // The JSON form (for `imagegate verify --output json`) names outcomes.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["materials"][0]["outcomes"][0]["failure"]["kind"],
        "malformed"
    );
    assert_eq!(
        json["materials"][1]["outcomes"][0]["verified"]["kind"],
        "attestation"
    );
}

#[test]
fn an_empty_authority_list_never_passes() {
    let w = world();
    let materials = vec![key_sig(&w.p256, &payload(), None)];
    assert_eq!(
        verify(&subject(), &materials, &[], &Options::default()),
        Err(InputError::NoAuthorities)
    );
}

#[test]
fn call_level_bounds_and_mistakes() {
    let w = world();
    let one = vec![key_sig(&w.p256, &payload(), None)];
    let a = key_authority(&w.p256, Optional, None);
    let twice = [a.clone(), a.clone()];
    assert_eq!(
        verify(&subject(), &one, &twice, &Options::default()),
        Err(InputError::DuplicateAuthority("release".into()))
    );
    let many: Vec<Material> = (0..65).map(|_| one[0].clone()).collect();
    assert!(matches!(
        verify(
            &subject(),
            &many,
            std::slice::from_ref(&a),
            &Options::default()
        ),
        Err(InputError::TooManyMaterials { count: 65, max: 64 })
    ));
    // No material: nothing verified, nothing failed; the engine says "no signatures found".
    let report = verify(
        &subject(),
        &[],
        std::slice::from_ref(&a),
        &Options::default(),
    )
    .unwrap();
    assert!(report.materials.is_empty() && report.best_failure("release").is_none());
}

#[test]
fn subjects_and_repositories_are_normalized() {
    let d = image_digest();
    for (input, want) in [
        ("nginx", "docker.io/library/nginx"),
        (
            "index.docker.io/library/nginx:1.25",
            "docker.io/library/nginx",
        ),
        ("ghcr.io/acme/app:v1", "ghcr.io/acme/app"),
    ] {
        assert_eq!(
            Subject::image(input, &d).unwrap().repository(),
            Some(want),
            "{input}"
        );
    }
    assert!(Subject::image("Bad/Upper", &d).is_err());
    for bad in [
        "sha256:abc",
        "md5:00",
        "",
        &format!("sha256:{}", "g".repeat(64)),
    ] {
        assert!(Subject::digest(bad).is_err(), "{bad}");
    }
    assert_eq!(
        Subject::digest(&d.to_uppercase().replace("SHA256", "sha256"))
            .unwrap()
            .digest_str(),
        d
    );
}

#[test]
fn keys_and_trust_roots_are_read_strictly() {
    let w = world();
    for (input, want) in [
        ("not pem".to_string(), "no PEM block"),
        (t::pem("EC PRIVATE KEY", b"x"), "private key"),
        (
            w.p256.public_pem() + &w.p384.public_pem(),
            "several public keys",
        ),
        (t::pem("PUBLIC KEY", b"garbage"), ""),
    ] {
        let err = PublicKey::from_pem(input.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    assert_eq!(public(&w.p256).bundle_hint(), w.p256.hint());
    // PEM trust roots: a key that cannot be read is an error, never dropped.
    for (pem, want) in [
        (
            TrustRootPem {
                rekor_keys: vec![b"garbage".to_vec()],
                ..Default::default()
            },
            "Rekor key file 1",
        ),
        (
            TrustRootPem {
                rekor_keys: vec![t::pem("CERTIFICATE", b"x").into_bytes()],
                ..Default::default()
            },
            "expected PUBLIC KEY",
        ),
        (
            TrustRootPem {
                fulcio_chains: vec![t::pem("CERTIFICATE", b"garbage").into_bytes()],
                ..Default::default()
            },
            "a certificate cannot be read",
        ),
        (TrustRootPem::default(), "empty"),
    ] {
        let err = TrustRoot::from_pem(&pem).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    let err = TrustRoot::from_trusted_root_json(b"{")
        .unwrap_err()
        .to_string();
    assert!(err.contains("trusted_root.json"), "{err}");
    // A keyless authority needs a Fulcio CA.
    let rekor_only = TrustRoot::from_pem(&TrustRootPem {
        rekor_keys: vec![w.rekor.key.public_pem().into_bytes()],
        ..Default::default()
    })
    .unwrap();
    assert!(
        Authority::keyless(
            "ci",
            Identity {
                subject: exact(SAN),
                issuer: exact(ISSUER)
            },
            Optional,
            rekor_only
        )
        .is_err()
    );
    assert!(Matcher::regex("(", "subject").is_err());
    assert!(Matcher::regex("", "subject").is_err());
}
