//! What the benchmarks share.

/// A positive number from the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(text) => {
            let n: f64 = text
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}"));
            assert!(n > 0.0, "{name} must be positive, got {n}");
            n
        }
    }
}

/// A Pod in namespace `team` with one container per image (`c0`, `c1`, ...), as the
/// lookup benches admit it. (Not every bench uses it.)
#[allow(dead_code)]
pub fn pod(images: &[String]) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image}))
        .collect();
    serde_json::json!({
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"containers": containers},
    })
}
