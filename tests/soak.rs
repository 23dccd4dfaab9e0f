//! Soak: the real binary against the real registry (Debian's `docker-registry`) at
//! a steady rate, for `IMAGEGATE_SOAK_SECONDS` (default 30; `scripts/soak.sh` runs
//! 600), `IMAGEGATE_SOAK_RATE` requests a second (default 40), open loop (a slow
//! answer does not slow the sender).
//!
//! The mix, in turn: Pod and Deployment CREATEs and UPDATEs, on `/validate` and
//! `/mutate`; allowed (a tag pinned to its digest, a changed container on an
//! UPDATE) and denied (`latest`, a blocked repository, a tag the registry does not
//! have); cache hits on the same tags, and cold lookups of tags a pusher adds to
//! the registry every second while the load runs.
//!
//! Asserted: 0 errors (every answer is HTTP 200 with the request's uid and the
//! decision the policy gives: no HTTP error, no timeout, no in-band refusal, no
//! wrong decision), the cold tags were looked up in the registry, and the
//! binary's RSS, sampled every second, stays within 10% (max over min) after the
//! warm-up (a fifth of the run, at least 10 s and at most 60 s). It prints the
//! latency p50, p99 and max, and the RSS samples.

mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use support::images;
use support::registry::{Kind, Registry};
use tokio::sync::{Mutex, Semaphore};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// The resident set of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One request of the mix: the path, the review, and the decision expected.
struct Planned {
    label: &'static str,
    path: &'static str,
    review: Value,
    allowed: bool,
}

fn deployment(name: &str, images: &[(&str, &str)]) -> Value {
    object("Deployment", name, images)
}

fn plan(n: u64, registry: &Registry, cold: Option<&str>) -> Planned {
    let web = registry.reference("team/web:v1");
    let api = registry.reference("team/api:v2");
    let sidecar = registry.reference("team/sidecar:1.0");
    let blocked = registry.reference("team/blocked/tool:v1");
    let latest = registry.reference("team/web:latest");
    let missing = registry.reference(&format!("team/web:missing-{}", n % 7));
    match n % 10 {
        0 => Planned {
            label: "Pod CREATE /mutate (pinned)",
            path: "/mutate",
            review: review(
                "CREATE",
                &object("Pod", "web", &[("app", &web)]),
                None,
                None,
            ),
            allowed: true,
        },
        1 => Planned {
            label: "Pod CREATE /validate",
            path: "/validate",
            review: review(
                "CREATE",
                &object("Pod", "web", &[("app", &web), ("side", &sidecar)]),
                None,
                None,
            ),
            allowed: true,
        },
        2 => Planned {
            label: "Deployment CREATE /validate",
            path: "/validate",
            review: review(
                "CREATE",
                &deployment("api", &[("api", &api), ("side", &sidecar)]),
                None,
                None,
            ),
            allowed: true,
        },
        3 => Planned {
            label: "Pod CREATE latest (denied)",
            path: "/validate",
            review: review(
                "CREATE",
                &object("Pod", "web", &[("app", &latest)]),
                None,
                None,
            ),
            allowed: false,
        },
        4 => Planned {
            label: "Deployment UPDATE adds a blocked image (denied)",
            path: "/validate",
            review: review(
                "UPDATE",
                &deployment("api", &[("api", &api), ("tool", &blocked)]),
                Some(&deployment("api", &[("api", &api)])),
                None,
            ),
            allowed: false,
        },
        5 => Planned {
            label: "Deployment UPDATE changes an image",
            path: "/validate",
            review: review(
                "UPDATE",
                &deployment("api", &[("api", &api), ("side", &sidecar)]),
                Some(&deployment("api", &[("api", &web), ("side", &sidecar)])),
                None,
            ),
            allowed: true,
        },
        6 => Planned {
            label: "Pod CREATE of a tag the registry lacks (denied)",
            path: "/validate",
            review: review(
                "CREATE",
                &object("Pod", "web", &[("app", &missing)]),
                None,
                None,
            ),
            allowed: false,
        },
        7 => Planned {
            label: "Deployment UPDATE /mutate (scale only)",
            path: "/mutate",
            review: review(
                "UPDATE",
                &deployment("web", &[("app", &web)]),
                Some(&deployment("web", &[("app", &web)])),
                None,
            ),
            allowed: true,
        },
        _ => match cold {
            Some(tag) => Planned {
                label: "Pod CREATE of a newly pushed tag (cold, then cached)",
                path: if n % 20 < 10 { "/validate" } else { "/mutate" },
                review: review(
                    "CREATE",
                    &object(
                        "Pod",
                        "fresh",
                        &[("app", &registry.reference(&format!("team/web:{tag}")))],
                    ),
                    None,
                    None,
                ),
                allowed: true,
            },
            None => Planned {
                label: "Pod CREATE /validate",
                path: "/validate",
                review: review(
                    "CREATE",
                    &object("Pod", "web", &[("app", &web)]),
                    None,
                    None,
                ),
                allowed: true,
            },
        },
    }
}

#[derive(Default)]
struct Tally {
    latencies: Mutex<Vec<Duration>>,
    errors: Mutex<Vec<String>>,
    allowed: AtomicU64,
    denied: AtomicU64,
    pinned: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let seconds = env_u64("IMAGEGATE_SOAK_SECONDS", 30);
    let rate = env_u64("IMAGEGATE_SOAK_RATE", 40);
    let warmup = Duration::from_secs((seconds / 5).clamp(10, 60).min(seconds.saturating_sub(5)));
    let run = Duration::from_secs(seconds);

    let registry = Arc::new(Registry::start(Kind::Plain).await);
    let web_digest = images::push_amd64(&registry, "team/web:v1").await;
    images::push_amd64(&registry, "team/api:v2").await;
    images::push_amd64(&registry, "team/sidecar:1.0").await;
    images::push_amd64(&registry, "team/blocked/tool:v1").await;
    let spec = format!(
        "namespaces: [team]\npinDigests: true\ntags:\n  forbid: [latest]\nblockedImages: [\"{}/team/blocked/**\"]",
        registry.host()
    );
    let config = format!(
        "registries:\n  - host: \"{}\"\n    insecure: true\n",
        registry.host()
    );
    let ig = Arc::new(
        Imagegate::start_with(
            &[("soak.yaml", &policy("soak", &spec))],
            Some(&config),
            None,
        )
        .await,
    );
    let pid = ig.pid();

    // The pusher: a new tag of team/web every second (the same manifest, so the
    // cold part is the tag lookup), announced once it is in the registry.
    let newest: Arc<Mutex<Option<String>>> = Arc::default();
    let pushed = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + run;
    let pusher = {
        let (registry, newest, pushed) = (registry.clone(), newest.clone(), pushed.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop {
                let tag = format!("c{i}");
                images::push_amd64(&registry, &format!("team/web:{tag}")).await;
                *newest.lock().await = Some(tag);
                pushed.fetch_add(1, Ordering::SeqCst);
                i += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // The sampler: RSS every second.
    let samples: Arc<Mutex<Vec<(Duration, u64)>>> = Arc::default();
    let started = Instant::now();
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while Instant::now() < stop {
                tick.tick().await;
                samples.lock().await.push((started.elapsed(), rss_kib(pid)));
            }
        })
    };

    // The load: one request every 1/rate s, each in its own task.
    let tally = Arc::new(Tally::default());
    let in_flight = Arc::new(Semaphore::new(256));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let mut n = 0u64;
    while Instant::now() < stop {
        tick.tick().await;
        let cold = newest.lock().await.clone();
        let planned = plan(n, &registry, cold.as_deref());
        n += 1;
        let (ig, tally) = (ig.clone(), tally.clone());
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let web_digest = web_digest.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let body = serde_json::to_vec(&planned.review).unwrap();
            let sent = Instant::now();
            let answer = ig
                .client
                .post(ig.url(planned.path))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let result = match answer {
                Err(e) => Err(format!("{}: {e}", planned.label)),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    tally.latencies.lock().await.push(sent.elapsed());
                    judge(&planned, status, &text, &web_digest)
                }
            };
            match result {
                Ok((allowed, pinned)) => {
                    let counter = if allowed {
                        &tally.allowed
                    } else {
                        &tally.denied
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if pinned {
                        tally.pinned.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => tally.errors.lock().await.push(e),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    pusher.await.unwrap();
    sampler.await.unwrap();
    let elapsed = started.elapsed();

    let mut latencies = tally.latencies.lock().await.clone();
    latencies.sort_unstable();
    let errors = tally.errors.lock().await.clone();
    let samples = samples.lock().await.clone();
    let steady: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| *at >= warmup)
        .map(|(_, kib)| *kib)
        .collect();
    let (min, max) = (
        steady.iter().copied().min().unwrap_or(0),
        steady.iter().copied().max().unwrap_or(0),
    );
    let growth = if min == 0 {
        0.0
    } else {
        (max - min) as f64 / min as f64 * 100.0
    };
    let cold_lookups =
        registry.count("HEAD", "/manifests/c") + registry.count("GET", "/manifests/c");
    println!(
        "soak: {n} requests in {:.1} s ({:.1}/s), {} allowed ({} pinned), {} denied, {} errors; {} new tags pushed, {cold_lookups} cold lookups",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        tally.allowed.load(Ordering::Relaxed),
        tally.pinned.load(Ordering::Relaxed),
        tally.denied.load(Ordering::Relaxed),
        errors.len(),
        pushed.load(Ordering::SeqCst),
    );
    println!(
        "soak: latency p50 {}, p99 {}, max {}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "soak: RSS after a {} s warm-up: min {min} KiB, max {max} KiB ({growth:.1}% over the minimum)",
        warmup.as_secs()
    );
    println!(
        "soak: RSS samples (s: KiB): {}",
        samples
            .iter()
            .map(|(at, kib)| format!("{}:{kib}", at.as_secs()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let metrics = ig.metrics().await;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("imagegate_admission_requests_total"))
    {
        println!("soak: {line}");
    }

    assert!(
        errors.is_empty(),
        "{} errors, the first ones:\n{}",
        errors.len(),
        errors
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(n >= rate * seconds * 9 / 10, "only {n} requests were sent");
    assert!(
        pushed.load(Ordering::SeqCst) >= 2 && cold_lookups >= 2,
        "no cold lookups"
    );
    assert!(
        steady.len() >= 3,
        "too few RSS samples after the warm-up: {samples:?}"
    );
    assert!(
        growth <= 10.0,
        "RSS grew {growth:.1}% after the warm-up (min {min} KiB, max {max} KiB): {samples:?}"
    );
}

/// Checks one answer: Ok((allowed, pinned)) when it is what the policy says.
fn judge(
    planned: &Planned,
    status: u16,
    text: &str,
    web_digest: &str,
) -> Result<(bool, bool), String> {
    let fail = |why: &str| {
        Err(format!(
            "{}: {why}: HTTP {status}: {}",
            planned.label,
            &text[..text.len().min(600)]
        ))
    };
    if status != 200 {
        return fail("not HTTP 200");
    }
    let Ok(reply) = serde_json::from_str::<Value>(text) else {
        return fail("not JSON");
    };
    let response = &reply["response"];
    if response["uid"] != planned.review["request"]["uid"] {
        return fail("another uid");
    }
    let Some(allowed) = response["allowed"].as_bool() else {
        return fail("no decision");
    };
    if let Some(code) = response.pointer("/status/code").and_then(Value::as_u64)
        && !allowed
        && code != 403
    {
        return fail("refused in-band, not judged");
    }
    if allowed != planned.allowed {
        return fail(if planned.allowed {
            "denied, expected allowed"
        } else {
            "allowed, expected denied"
        });
    }
    let mut pinned = false;
    if planned.label.contains("(pinned)") {
        let Some(patch) = response["patch"].as_str() else {
            return fail("no digest pin");
        };
        use base64::Engine as _;
        let patch = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap_or_default();
        if !String::from_utf8_lossy(&patch).contains(web_digest) {
            return fail("the pin is not the image's digest");
        }
        pinned = true;
    }
    if !allowed
        && response
            .pointer("/status/message")
            .and_then(Value::as_str)
            .is_none_or(|m| m.trim().is_empty())
    {
        return fail("a denial without a message");
    }
    Ok((allowed, pinned))
}
