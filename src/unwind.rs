//! Panics turned into answers, so that no input can drop a connection.
//!
//! Under `failurePolicy: Ignore` a dropped connection admits the object unchecked,
//! so a panic anywhere while a request is judged must become an in-band denial.
//! Two places catch them: the handlers (anything while judging a parsed request,
//! answered `allowed: false` with code 500) and the inspector (each registry
//! lookup, so that a registry's answer that makes the OCI client panic is a failed
//! lookup judged by `onRegistryError`, and never reaches the caches' coalescing).
//!
//! This relies on `panic = "unwind"`, the default profile setting: do not set
//! `panic = "abort"` in Cargo.toml.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Runs `future`, turning a panic into `Err` with its message.
///
/// `AssertUnwindSafe` is sound here: what a caught future leaves behind is its own
/// state, which is dropped; shared state it touches is behind `Arc`s of caches
/// (moka), atomics and `parking_lot` locks, none of which poison or break on unwind.
pub async fn catch<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|payload| message(payload.as_ref()))
}

/// The message of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Case = (
        std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
        &'static str,
    );

    fn fails() -> Result<(), &'static str> {
        Err("boom")
    }

    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_message() {
        assert_eq!(catch(async { 7 }).await, Ok(7));
        let table: Vec<Case> = vec![
            (
                Box::pin(async { panic!("static message") }),
                "static message",
            ),
            (
                Box::pin(async {
                    let n = 3;
                    panic!("formatted {n}")
                }),
                "formatted 3",
            ),
            (
                Box::pin(async { std::panic::panic_any(42u8) }),
                "a panic without a message",
            ),
            (
                Box::pin(async { fails().unwrap() }),
                "called `Result::unwrap()` on an `Err` value: \"boom\"",
            ),
        ];
        for (future, expected) in table {
            assert_eq!(catch(future).await, Err(expected.to_string()));
        }
    }
}
