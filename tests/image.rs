//! The container image deploy/ runs: built by `scripts/build-image.sh` (a static
//! musl binary in an image FROM scratch, with Debian's buildah), pushed to a real
//! registry, checked (user, entrypoint, no shell, CA bundle, a static binary that
//! runs), and judged by imagegate itself: the binary taken out of the pushed image
//! serves the webhook and admits, pins and checks the architectures of
//! deploy/deployment.yaml pointing at the image.
//!
//! The image is built with the `image-ci` profile (an unoptimised binary, about
//! half the build time of a release build); `IMAGEGATE_IMAGE_TARGET_DIR` moves
//! its build directory (default `target/image`).

mod common;
mod support;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};
use support::images;
use support::kube::{FakeApiServer, node};
use support::registry::{Kind, Registry};

const REPOSITORY: &str = "platform/imagegate";

#[tokio::test]
async fn the_image_is_built_pushed_checked_and_judged_by_imagegate_itself() {
    let registry = Registry::start(Kind::Plain).await;
    let work = tempfile::tempdir().unwrap();
    let reference = registry.reference(&format!("{REPOSITORY}:test"));
    let digestfile = work.path().join("digest");
    let started = std::time::Instant::now();
    let out = Command::new("scripts/build-image.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--profile", "image-ci", "--tag", "imagegate:test", "--push"])
        .arg(&reference)
        .arg("--tls-verify=false")
        .arg("--digestfile")
        .arg(&digestfile)
        .output()
        .expect("run scripts/build-image.sh");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "build-image.sh failed:\n{log}");
    eprintln!("image built and pushed in {:?}", started.elapsed());
    let digest = std::fs::read_to_string(&digestfile)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // The manifest and config, as the registry serves them.
    let client = images::client(&registry);
    let auth = images::auth(&registry);
    let pushed = images::reference(&registry, &format!("{REPOSITORY}@{digest}"));
    let (manifest, got) = images::fetch_manifest_json(&client, &auth, &pushed)
        .await
        .unwrap();
    assert_eq!(got, digest);
    assert_eq!(manifest["mediaType"], images::OCI_MANIFEST, "{manifest}");
    let config = blob(&client, &pushed, &manifest["config"]).await;
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "non-root: {c}");
    assert_eq!(c["Entrypoint"], json!(["/imagegate"]), "{c}");
    assert_eq!(c["Cmd"], json!(["serve"]), "{c}");
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .contains(&json!("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")),
        "{c}"
    );
    assert_eq!(
        c["Labels"]["org.opencontainers.image.title"], "imagegate",
        "{c}"
    );

    // The layers hold the binary and the CA bundle, and no shell at all.
    let mut files = Vec::new();
    for (i, layer) in manifest["layers"].as_array().unwrap().iter().enumerate() {
        let path = work.path().join(format!("layer-{i}.tar.gz"));
        std::fs::write(&path, blob(&client, &pushed, layer).await).unwrap();
        let listing = Command::new("tar").arg("-tzf").arg(&path).output().unwrap();
        assert!(
            listing.status.success(),
            "{}",
            String::from_utf8_lossy(&listing.stderr)
        );
        files.extend(
            String::from_utf8(listing.stdout)
                .unwrap()
                .lines()
                .map(|l| l.trim_start_matches("./").to_string()),
        );
        let ok = Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(work.path())
            .status()
            .unwrap();
        assert!(ok.success());
    }
    assert!(files.iter().any(|f| f == "imagegate"), "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f == "etc/ssl/certs/ca-certificates.crt"),
        "{files:?}"
    );
    for f in &files {
        let name = f.rsplit('/').find(|s| !s.is_empty()).unwrap_or_default();
        assert!(
            !["sh", "bash", "ash", "dash", "busybox"].contains(&name)
                && !f.starts_with("bin/")
                && !f.starts_with("usr/"),
            "a shell or a userland in the image: {f} ({files:?})"
        );
    }
    let bundle =
        std::fs::read_to_string(work.path().join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(
        bundle.matches("BEGIN CERTIFICATE").count() > 50,
        "a real CA bundle"
    );

    // The binary is static (no program interpreter) and runs here.
    let binary = work.path().join("imagegate");
    assert!(
        !has_interpreter(&binary),
        "the binary needs a dynamic loader"
    );
    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("imagegate {}", env!("CARGO_PKG_VERSION"))
    );

    judged_by_itself(&registry, &binary, &reference, &digest).await;
}

/// The image's own binary serves the webhook and judges deploy/deployment.yaml
/// pointing at the image: pre-flight, pinning, architectures.
async fn judged_by_itself(registry: &Registry, binary: &Path, reference: &str, digest: &str) {
    let api = FakeApiServer::start().await;
    api.add_node("amd64-1", "amd64");
    let mut arm = node("arm64-1", "arm64", "linux");
    arm["spec"]["taints"] = json!([{"key": "pool", "value": "arm", "effect": "NoSchedule"}]);
    api.add_node_object(arm);
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    api.kubeconfig(kubeconfig.path());
    let config = format!(
        "registries:\n  - host: \"{}\"\n    insecure: true\n",
        registry.host()
    );
    let gate = policy(
        "install",
        "preflight: true\npinDigests: true\npinDigestsOn: [Deployment]\narchitectures: {}\ntags:\n  forbid: [latest]",
    );
    let ig = Imagegate::launch(Launch {
        policies: &[("install.yaml", &gate)],
        config: Some(&config),
        kubeconfig: Some(kubeconfig.path()),
        bin: Some(binary),
        ..Launch::default()
    })
    .await;
    assert!(ig.log().contains("policies loaded"), "{}", ig.log());

    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/deployment.yaml"),
    )
    .unwrap();
    let mut deployment: Value = serde_saphyr::from_str(&text).unwrap();
    let container = "/spec/template/spec/containers/0/image";
    *deployment.pointer_mut(container).unwrap() = json!(reference);
    deployment["metadata"]["namespace"] = json!("team");
    let r = ig
        .review("/validate", &review("CREATE", &deployment, None, None))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let r = ig
        .review("/mutate", &review("CREATE", &deployment, None, None))
        .await;
    let patch: Value = {
        use base64::Engine;
        let b64 = r["patch"].as_str().expect("a pin");
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        patch,
        json!([{"op": "replace", "path": container, "value": format!("{reference}@{digest}")}])
    );
    // On the tainted arm64 pool the amd64-only image would crash: denied.
    let mut on_arm = deployment.clone();
    on_arm["spec"]["template"]["spec"]["tolerations"] =
        json!([{"key": "pool", "operator": "Exists"}]);
    let r = ig
        .review("/validate", &review("CREATE", &on_arm, None, None))
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the image has no linux/arm64 variant (it has linux/amd64)"),
        "{msg}"
    );
    // A tag that was never pushed fails the pre-flight.
    let mut missing = deployment.clone();
    *missing.pointer_mut(container).unwrap() =
        json!(registry.reference(&format!("{REPOSITORY}:0.0.0-missing")));
    let r = ig
        .review("/validate", &review("CREATE", &missing, None, None))
        .await;
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("manifest unknown"),
        "{r}"
    );
}

async fn blob(
    client: &oci_client::Client,
    reference: &oci_client::Reference,
    descriptor: &Value,
) -> Vec<u8> {
    let descriptor = oci_client::manifest::OciDescriptor {
        media_type: descriptor["mediaType"].as_str().unwrap().to_string(),
        digest: descriptor["digest"].as_str().unwrap().to_string(),
        size: descriptor["size"].as_i64().unwrap(),
        ..Default::default()
    };
    let mut out = Vec::new();
    client
        .pull_blob(reference, &descriptor, &mut out)
        .await
        .unwrap();
    out
}

/// Whether an ELF file has a PT_INTERP program header (a dynamic loader).
fn has_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}
