//! What a cached image fact costs in the real binary: one image pushed to a real
//! registry under 10,000 tags (the manifest PUT again under each tag), admitted in
//! pods that name every tag, so that imagegate caches 10,000 digests. The RSS
//! growth per cached fact is bounded, and the cache's weigher charges at least
//! what an entry really costs (so the cache's byte bound is a bound on memory).

mod common;
mod support;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use support::images;
use support::registry::{Kind, Registry};

const TAGS: usize = 10_000;
/// Facts cached before the baseline is read: the caches' and the allocator's
/// fixed costs (first pages, hash tables) are then already paid.
const WARM: usize = 1_000;
const PER_POD: usize = 20;

/// A size in bytes from /proc/PID/status (`VmRSS`, `RssAnon`, `RssFile`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
    kb * 1024
}

fn rss(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS")
}

/// The RSS once the allocator has settled after the last request (freed pages
/// are given back within a second or so).
async fn settled_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_secs(3)).await;
    rss(pid)
}

/// Admits pods naming `tag{range}`, `PER_POD` containers each, 4 requests at a time.
async fn admit(ig: &Imagegate, registry: &Registry, range: std::ops::Range<usize>) {
    let pods: Vec<Vec<usize>> = range
        .collect::<Vec<_>>()
        .chunks(PER_POD)
        .map(<[usize]>::to_vec)
        .collect();
    futures::stream::iter(pods)
        .for_each_concurrent(4, |tags| async move {
            let names: Vec<(String, String)> = tags
                .iter()
                .map(|t| {
                    (
                        format!("c{t}"),
                        registry.reference(&format!("team/app:t{t}")),
                    )
                })
                .collect();
            let refs: Vec<(&str, &str)> = names
                .iter()
                .map(|(n, i)| (n.as_str(), i.as_str()))
                .collect();
            let r = ig
                .review(
                    "/validate",
                    &review("CREATE", &object("Pod", "p", &refs), None, None),
                )
                .await;
            assert_eq!(r["allowed"], true, "{r}");
            assert!(r.get("warnings").is_none(), "{r}");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_cached_image_facts_cost_a_bounded_number_of_bytes_each() {
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/app:t0").await;
    // The same manifest under every other tag: a manifest PUT each.
    let http = registry.http_client();
    let media = images::Format::Oci.manifest_type();
    let manifest_url = |tag: &str| format!("{}/v2/team/app/manifests/{tag}", registry.url());
    let manifest = http
        .get(manifest_url("t0"))
        .header("accept", media)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    futures::stream::iter(1..TAGS)
        .for_each_concurrent(16, |t| {
            let request = http
                .put(manifest_url(&format!("t{t}")))
                .header("content-type", media)
                .body(manifest.clone());
            async move {
                let status = request.send().await.unwrap().status();
                assert_eq!(status, 201, "PUT t{t}");
            }
        })
        .await;

    let preflight = policy("preflight", "namespaces: [team]\npreflight: true");
    // Long TTLs: nothing expires while the test reads the RSS.
    let config = format!(
        "registries:\n  - host: \"{}\"\n    insecure: true\ntagTtlSeconds: 3600\ndeadlineSeconds: 60\n",
        registry.host()
    );
    // IMAGEGATE_MEMORY_TEST_BIN: another build (the release binary, for the RSS
    // figure in README.md, "Memory", and the bound below).
    let bin = std::env::var_os("IMAGEGATE_MEMORY_TEST_BIN").map(std::path::PathBuf::from);
    let ig = Imagegate::launch(Launch {
        policies: &[("preflight.yaml", &preflight)],
        config: Some(&config),
        bin: bin.as_deref(),
        ..Launch::default()
    })
    .await;
    let pid = ig.pid();

    admit(&ig, &registry, 0..WARM).await;
    let before = settled_rss(pid).await;
    registry.reset_counts();
    admit(&ig, &registry, WARM..TAGS).await;
    let after = settled_rss(pid).await;
    // Each new tag was looked up once (a HEAD), and is now cached: admitting the
    // same pods again asks the registry nothing.
    let heads = registry.count("HEAD", "/v2/team/app/manifests/t");
    assert_eq!(heads, TAGS - WARM, "{heads} HEADs");
    registry.reset_counts();
    admit(&ig, &registry, WARM..WARM + 200).await;
    assert_eq!(registry.count("HEAD", "/manifests/"), 0, "cached");

    let entries = (TAGS - WARM) as u64;
    let per_entry = after.saturating_sub(before) / entries;
    // What the digest cache's weigher charges for one of these entries.
    let reference = registry.reference("team/app:t5000");
    let charged = imagegate::inspector::digest_entry_charge(&reference, 71) as u64;
    eprintln!(
        "RSS {} KiB with {WARM} cached facts, {} KiB with {TAGS} ({} KiB anonymous, {} KiB mapped from files): {per_entry} bytes per cached fact; the weigher charges {charged}",
        before / 1024,
        after / 1024,
        status_bytes(pid, "RssAnon") / 1024,
        status_bytes(pid, "RssFile") / 1024,
    );
    assert!(
        per_entry <= MAX_BYTES_PER_ENTRY,
        "{per_entry} bytes per cached fact (bound {MAX_BYTES_PER_ENTRY})"
    );
    assert!(
        charged >= per_entry,
        "the weigher charges {charged} bytes for an entry that costs {per_entry}"
    );
    // IMAGEGATE_MEMORY_TEST_MAX_RSS: a bound on the whole RSS with every fact
    // cached. scripts/test.sh runs this test again against the release binary
    // with the goal, 32,000,000 bytes; a debug build is larger.
    if let Some(max) = std::env::var("IMAGEGATE_MEMORY_TEST_MAX_RSS")
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .expect("IMAGEGATE_MEMORY_TEST_MAX_RSS: bytes")
        })
    {
        assert!(
            after <= max,
            "RSS {after} bytes with {TAGS} cached facts (bound {max})"
        );
    }
}

/// The bound on the RSS growth per cached image fact (measured: 534 to 571 bytes in a
/// release build, 1,110 in a debug build), which the weigher's charge covers.
const MAX_BYTES_PER_ENTRY: u64 = imagegate::inspector::DIGEST_ENTRY_OVERHEAD as u64;
