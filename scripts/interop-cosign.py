#!/usr/bin/env python3
"""Interop check: runs `imagegate verify` on real cosign / Sigstore material and
prints the agreement table (case, expected, got, reason).

Usage: scripts/interop-cosign.py INTEROP_DIR [--bin PATH] [--verbose]

INTEROP_DIR holds the material (cases.jsonl, SOURCES.md, the conformance suite in
conformance-sigstore-bundle-verify/). It is NOT part of the repository and this is
a documented manual step, not part of CI: the project's own tests make their own
material. Variants that need altered inputs (another Rekor key, a changed DSSE
payload) are written to a temporary directory, never into INTEROP_DIR.

Exit status: 0 when every case agrees, 1 otherwise.
"""

import argparse
import base64
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

GH_ISSUER = "https://token.actions.githubusercontent.com"
TOOLKIT_SAN = ("https://github.com/docker/github-builder-experimental/.github/workflows/"
               "build.yml@refs/heads/build-reusable-workflow")
CONFORMANCE_SAN = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
                   ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")


def keyless(san, issuer):
    return ["--certificate-identity", san, "--certificate-oidc-issuer", issuer]


def cases(d, tmp):
    """Yields (id, expected 'pass'|'fail', argv, note)."""
    pg = f"{d}/trust/public-good.trusted_root.json"
    pgi = f"{d}/v3-cosign-attest-keyless-empty-image-cosign/trusted_root_pgi.json"
    tk = f"{d}/v3-cosign-sign-keyless-referrers-docker-actions-toolkit"
    regs = {
        "ecr": ("public.ecr.aws/q3b5f1u4/test-docker-action",
                "8fe63f8b055569015407e5bd0c78071e87cf921019249b8b7a913091f680a664",
                ["--referrers-index", f"{tk}/ecr/referrers-api-response.json"]),
        "ghcr": ("ghcr.io/docker/github-builder-test",
                 "c6fc458cc8718628e8fb8b699d2991056590e0fed4ea0d6f86583705202bdce4",
                 ["--referrers-index", f"{tk}/ghcr/tag-sha256-c6fc458cc8718628e8fb8b699d2991056590e0fed4ea0d6f86583705202bdce4.referrers-fallback-index.json"]),
        "dockerhub": ("docker.io/crazymax/github-builder-test",
                      "037107d7fd796553702f616bef63d7d54ea1f66a3305650b7b63f48ae0ef825b",
                      ["--referrer-manifest", f"{tk}/dockerhub/manifest-sha256-792fbbfd9fb8577a42115b587583ec25257b81aa276c51ec75f42d18b7f4e622.referrer.json"]),
    }
    for n, (reg, (repo, digest, material)) in zip(("A1", "A2", "A3"), regs.items()):
        base = ["--image", f"{repo}@sha256:{digest}", *material, "--blobs", f"{tk}/{reg}"]
        note = {"ecr": "referrers API index", "ghcr": "tag-schema fallback index (artifactType = empty)",
                "dockerhub": "referrer manifest (Hub's index was empty after the push)"}[reg]
        yield n, "pass", base + keyless(TOOLKIT_SAN, GH_ISSUER) + ["--trusted-root", pg], note
        caller = "https://github.com/docker/github-builder-test/.github/workflows/ci.yml@refs/heads/main"
        yield f"A4-{reg}", "fail", base + keyless(caller, GH_ISSUER) + ["--trusted-root", pg], "caller workflow is not the SAN"
        yield f"A6-{reg}", "fail", base + keyless(TOOLKIT_SAN, GH_ISSUER) + ["--trusted-root", pgi], "trust root without the bundle's TSA"
    yield "A5", "fail", ["--image", f"ghcr.io/docker/github-builder-test@sha256:{regs['ghcr'][1]}",
                         "--bundle", f"{tk}/ecr/blob-sha256-2b4c5c9d02679447fac16423a8f30512d32779434b4cd09ec4e37c370fca72f8.sigstore-bundle.json",
                         *keyless(TOOLKIT_SAN, GH_ISSUER), "--trusted-root", pg], "ecr bundle for the ghcr digest"
    yield "A7", "fail", ["--image", "docker.io/crazymax/github-builder-test@sha256:6cc021c733ae2760b2493f449d9885b1606002962b51a9c4f0d0d1568b6dc5c0",
                         "--referrers-index", f"{tk}/dockerhub/referrers-api-response.empty-right-after-push.json",
                         "--blobs", f"{tk}/dockerhub", *keyless(TOOLKIT_SAN, GH_ISSUER), "--trusted-root", pg], "empty referrers index, no .sig"

    kw = f"{d}/v3-cosign-sign-keyless-kubewarden-controller/bundle_v03.json"
    kw_id = keyless("https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0", GH_ISSUER)
    kw_img = "ghcr.io/kubewarden/kubewarden-controller:v1.34.0@sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"
    yield "B1", "pass", ["--image", kw_img, "--bundle", kw, *kw_id, "--trusted-root", pg], ""
    yield "B2", "fail", ["--image", "ghcr.io/kubewarden/kubewarden-controller@sha256:" + "0" * 64,
                         "--bundle", kw, *kw_id, "--trusted-root", pg], "digest sha256:000..."
    root = json.load(open(pg))
    other_key = open(f"{d}/trust/ctfe_2022.pub").read().split("-----")[2].replace("\n", "")
    swapped = copy.deepcopy(root)
    for t in swapped["tlogs"]:
        if t["baseUrl"] == "https://rekor.sigstore.dev":
            t["publicKey"]["rawBytes"] = other_key
    no_rekor = copy.deepcopy(root)
    no_rekor["tlogs"] = [t for t in no_rekor["tlogs"] if t["baseUrl"] != "https://rekor.sigstore.dev"]
    for name, doc in (("B3-swapped-rekor-key", swapped), ("B3-no-rekor-key", no_rekor)):
        path = os.path.join(tmp, f"{name}.json")
        json.dump(doc, open(path, "w"))
        yield name, "fail", ["--image", kw_img, "--bundle", kw, *kw_id, "--trusted-root", path], "another key under the same log ID / no Rekor key"
    bundle = json.load(open(kw))

    def mutate(name, fn):
        b = copy.deepcopy(bundle)
        env = b["dsseEnvelope"]
        st = json.loads(base64.b64decode(env["payload"]))
        fn(env, st)
        env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
        path = os.path.join(tmp, f"{name}.json")
        json.dump(b, open(path, "w"))
        return path
    for name, fn in (
        ("B4-payloadType", lambda env, st: env.__setitem__("payloadType", "application/json")),
        ("B4-statement-type", lambda env, st: st.__setitem__("_type", "https://in-toto.io/Statement/v0.9")),
        ("B4-predicateType", lambda env, st: st.__setitem__("predicateType", "https://example.com/other")),
    ):
        yield name, "fail", ["--image", kw_img, "--bundle", mutate(name, fn), *kw_id, "--trusted-root", pg], "changed after signing"

    cb = f"{d}/v3-cosign-sign-key-no-tlog-cloud-boot"
    cb_args = ["--digest", "sha256:5099b89d7666cc2186cad769ddc262ddc7c335b33f5fe79f9ffe50a01282b23e", "--bundle", f"{cb}/bundle.sigstore.json"]
    yield "C1", "pass", cb_args + ["--key", f"{cb}/cosign.pub"], "key bundle, no tlog entry (Optional)"
    yield "C2", "fail", cb_args + ["--key", f"{cb}/cosign.pub", "--transparency-log", "required"], "tlog Required"
    yield "C3", "fail", cb_args + ["--key", f"{d}/legacy-sig-key-and-keyless-connaisseur/keys/alice.pub"], "another key"

    at = f"{d}/v3-cosign-attest-keyless-empty-image-cosign"
    at_img = "registry.example/repo@sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
    at_args = ["--bundle", f"{at}/oci-attestation.sigstore.json", "--predicate-type", "https://cosign.sigstore.dev/attestation/v1"]
    for root_name, root_path in (("pgi", pgi), ("public-good", pg)):
        yield f"D1-{root_name}", "pass", ["--image", at_img, *at_args, *keyless("cody@soyland.com", "https://github.com/login/oauth"), "--trusted-root", root_path], ""
    yield "D1-regexp", "pass", ["--image", at_img, *at_args, "--certificate-identity-regexp", ".*", "--certificate-oidc-issuer-regexp", ".*", "--trusted-root", pgi], "subject and issuer .*"
    yield "D2", "fail", ["--image", at_img, *at_args, "--certificate-identity-regexp", "wrong", "--certificate-oidc-issuer-regexp", ".*", "--trusted-root", pgi], "subject regexp wrong"
    yield "D3", "fail", ["--image", "registry.example/repo@sha256:" + "1" * 64, *at_args, *keyless("cody@soyland.com", "https://github.com/login/oauth"), "--trusted-root", pgi], "another image digest"

    gh = f"{d}/v3-attestation-slsa-github-private-instance"
    gh_args = ["--image", "ghcr.io/github/artifact-attestations-opa-provider@sha256:d57f9212097b86c8d75158ea1d974721e7c6f8c33bd77838b242c8f6a2d21813",
               "--bundle", f"{gh}/bundle.sigstore.json", "--predicate-type", "https://slsa.dev/provenance/v1",
               *keyless("https://github.com/github/artifact-attestations-opa-provider/.github/workflows/docker.yaml@refs/pull/31/merge", GH_ISSUER)]
    yield "E1", "pass", gh_args + ["--trusted-root", f"{gh}/trusted_root_github.json"], "GitHub instance: TSA only, no tlog, no CT"
    yield "E2", "fail", gh_args + ["--trusted-root", pg], "public-good root"

    cn = f"{d}/legacy-sig-key-and-keyless-connaisseur"
    key = lambda n: ["--key", f"{cn}/keys/{n}.pub"]
    img = "index.docker.io/securesystemsengineering/testimage"
    sig = lambda h: ["--sig-manifest", f"{cn}/manifests/sha256-{h}.sig.json", "--blobs", f"{cn}/blobs"]
    alice_only = "071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81"
    abc = "bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533"
    yield "F1", "pass", ["--image", f"{img}@sha256:{alice_only}", *sig(alice_only), *key("alice")], ""
    yield "F2", "pass", ["--image", f"{img}@sha256:{abc}", *sig(abc), *key("alice"), *key("bob"), "--threshold", "2"], "alice and bob, threshold 2"
    yield "F3", "fail", ["--image", f"{img}@sha256:{abc}", *sig(abc), *key("alice"), *key("bob"), "--threshold", "3"], "threshold 3 of 2 trusted keys"
    yield "F4", "fail", ["--image", f"{img}@sha256:{alice_only}", *sig(alice_only), *key("bob")], "bob required, only alice signed"
    yield "F5", "fail", ["--image", f"{img}@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", *key("alice")], "unsigned: no .sig"
    kl = "31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"
    kl_trust = ["--fulcio-chain", f"{d}/trust/fulcio_v1_2022.chain.pem", "--rekor-key", f"{d}/trust/rekor.pub", "--ctlog-key", f"{d}/trust/ctfe_2022.pub"]
    kl_re = ["--certificate-identity-regexp", "philipp", "--certificate-oidc-issuer-regexp", "github"]
    yield "F6", "pass", ["--image", f"index.docker.io/phbelitz/rekor-test@sha256:{kl}", *sig(kl), *kl_re, *kl_trust], "PEM trust root; repository the signature names"
    yield "F6-served-as-testimage", "fail", ["--image", f"{img}@sha256:{kl}", *sig(kl), *kl_re, *kl_trust], "deliberate: docker-reference is phbelitz/rekor-test (cosign does not compare it)"
    yield "F6-mirror-allowed", "pass", ["--image", f"{img}@sha256:{kl}", *sig(kl), *kl_re, *kl_trust, "--allow-repository", "phbelitz/rekor-test"], "the same, with the mirror allowed"
    yield "F7", "fail", ["--image", f"index.docker.io/phbelitz/rekor-test@sha256:{kl}", *sig(kl), "--certificate-identity", "bob@gmail.com", "--certificate-oidc-issuer-regexp", "google", *kl_trust], ""

    cs = f"{d}/legacy-sig-and-att-kms-key-confidential-space"
    cs_img = "us-central1-docker.pkg.dev/builder-395303/repo1/tee@sha256:60cb37c249fe3695c3660e431a60bf8e8684989bf1882786cc673ce933e27849"
    yield "G1-sig", "pass", ["--image", cs_img, "--sig-manifest", f"{cs}/sig-manifest.as-printed-by-skopeo-jq.json", "--blobs", cs, "--key", f"{cs}/kms.pub", "--require-annotation", "key1=value1", "--transparency-log", "off"], "-a key1=value1, --insecure-ignore-tlog"
    yield "G1-sig-wrong-annotation", "fail", ["--image", cs_img, "--sig-manifest", f"{cs}/sig-manifest.as-printed-by-skopeo-jq.json", "--blobs", cs, "--key", f"{cs}/kms.pub", "--require-annotation", "key1=other", "--transparency-log", "off"], "extra: -a key1=other"
    yield "G1-att", "pass", ["--image", cs_img, "--att-layer", f"{cs}/blob-sha256-2008211259d8021aaa8466cec423de1e64e312c38c4c76cf22ad1bff2ed352c4.att-dsse-envelope.reconstructed.json", "--key", f"{cs}/kms.pub", "--predicate-type", "https://cosign.sigstore.dev/attestation/v1", "--transparency-log", "off"], ".att DSSE"

    bz = f"{d}/legacy-sig-kms-and-keyless-rekor-cosign-bazel"
    bz_img = "us-central1-docker.pkg.dev/mineral-minutia-820/repo1/securebuild-bazel@sha256:a2b109fb9baea555556561317fdd13cef9c3dfac22c8f8fea0c5a0b06ece9d00"
    bz_sig = ["--image", bz_img, "--sig-manifest", f"{bz}/sig-manifest.as-printed-by-crane-jq.json", "--blobs", bz]
    bz_trust = ["--fulcio-chain", f"{d}/trust/fulcio_v1_2022.chain.pem", "--rekor-key", f"{d}/trust/rekor.pub", "--ctlog-key", f"{d}/trust/ctfe_2022.pub"]
    bz_id = keyless("cosign-svc-account@mineral-minutia-820.iam.gserviceaccount.com", "https://accounts.google.com")
    yield "H1", "pass", bz_sig + ["--key", f"{bz}/kms_pub.pem"], "layer 0"
    yield "H2", "pass", bz_sig + bz_id + bz_trust, "layer 1, Rekor SET offline, SCT"
    yield "H3", "pass", bz_sig + ["--key", f"{bz}/kms_pub.pem"] + bz_id + bz_trust + ["--threshold", "2"], "key AND keyless"
    yield "H4-att", "pass", ["--image", bz_img, "--att-layer", f"{bz}/att-dsse-envelope.kms.json", "--key", f"{bz}/kms_pub.pem", "--predicate-type", "cosign.sigstore.dev/attestation/v1"], "extra: the KMS attestation cosign printed"

    pc = f"{d}/negative-legacy-att-payload-altered-policy-controller"
    yield "I1", "fail", ["--image", "ghcr.io/distroless/static@sha256:a1e82f6a5f6dfc735165d3442e7cc5a615f72abac3db19452481f5f3c90fbfa8",
                         "--att-layer", f"{pc}/att-dsse-envelope.json",
                         "--annotation-file", f"dev.sigstore.cosign/certificate={pc}/dev.sigstore.cosign-certificate.pem",
                         "--annotation-file", f"dev.sigstore.cosign/chain={pc}/dev.sigstore.cosign-chain.pem",
                         "--annotation-file", f"dev.sigstore.cosign/bundle={pc}/dev.sigstore.cosign-bundle.assembled.json",
                         *keyless("https://github.com/distroless/static/.github/workflows/release.yaml@refs/heads/main", GH_ISSUER),
                         "--predicate-type", "https://cosign.sigstore.dev/attestation/vuln/v1",
                         "--fulcio-chain", f"{d}/trust/fulcio_v1_2022.chain.pem", "--rekor-key", f"{d}/trust/rekor.pub"], "payload altered after signing"

    conf = f"{d}/conformance-sigstore-bundle-verify/bundle-verify"
    for name in sorted(os.listdir(conf)):
        case = os.path.join(conf, name)
        if not os.path.isdir(case):
            continue
        artifact = os.path.join(case, "artifact")
        if not os.path.exists(artifact):
            artifact = os.path.join(conf, "a.txt")
        argv = ["--artifact", artifact, "--bundle", os.path.join(case, "bundle.sigstore.json"), "--any-material"]
        trust = os.path.join(case, "trusted_root.json")
        argv += ["--trusted-root", trust if os.path.exists(trust) else pg]
        if os.path.exists(os.path.join(case, "key.pub")):
            argv += ["--key", os.path.join(case, "key.pub")]
        else:
            read = lambda f, default: open(os.path.join(case, f)).read().strip() if os.path.exists(os.path.join(case, f)) else default
            argv += keyless(read("identity", CONFORMANCE_SAN), read("issuer", GH_ISSUER))
        yield f"J {name}", "fail" if name.endswith("_fail") else "pass", argv, ""
        if name == "bundle-from-wrong-instance_fail":
            staging = [a if a != pg else f"{d}/trust/staging.trusted_root.json" for a in argv]
            yield "J-staging", "pass", staging, "the same bundle under the staging root"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("interop_dir")
    ap.add_argument("--bin", default=None, help="the imagegate binary (default: target/release or target/debug)")
    ap.add_argument("--verbose", action="store_true", help="print each command")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = args.bin or next((p for p in (f"{root}/target/release/imagegate", f"{root}/target/debug/imagegate") if os.path.exists(p)), None)
    if not binary:
        sys.exit("build imagegate first (cargo build), or pass --bin PATH")
    d = os.path.abspath(args.interop_dir)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cid, expected, argv, note in cases(d, tmp):
            cmd = [binary, "verify", *argv, "--output", "json"]
            if args.verbose:
                print(" ".join(cmd), file=sys.stderr)
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode == 0:
                got, reason = "pass", ""
            elif p.returncode == 1:
                got = "fail"
                try:
                    out = json.loads(p.stdout)
                    reason = "; ".join(f"{a['name']}: {a['reason']}" for a in out["authorities"] if a.get("reason"))
                except (ValueError, KeyError):
                    reason = p.stdout.strip()
                if p.stderr.strip():
                    reason = (p.stderr.strip() + "; " + reason).strip("; ")
            elif p.returncode == 2:
                got, reason = "fail", "bad input: " + p.stderr.strip().replace("imagegate verify: ", "")
            else:
                got, reason = f"exit {p.returncode}", p.stderr.strip()[-300:]
            # Short enough to read in a table: file names without directories,
            # digests to 12 hex digits.
            reason = reason.replace(d + "/", "")
            reason = re.sub(r"(?:[\w.-]+/)+([\w.-]+\.(?:json|pub|pem))", r"\1", reason)
            reason = re.sub(r"([0-9a-f]{12})[0-9a-f]{52}", r"\1…", reason)
            rows.append((cid, expected, got, expected == got, note, reason))
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  expected  got   agree  reason")
    for cid, expected, got, agree, note, reason in rows:
        text = reason if reason else note
        print(f"{cid:<{width}}  {expected:<8}  {got:<4}  {'yes' if agree else 'NO':<5}  {text[:220]}")
    agreed = sum(1 for r in rows if r[3])
    print(f"\n{agreed} of {len(rows)} cases agree")
    sys.exit(0 if agreed == len(rows) else 1)


if __name__ == "__main__":
    main()
