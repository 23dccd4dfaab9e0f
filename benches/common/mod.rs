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
