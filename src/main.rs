#![forbid(unsafe_code)]

/// jemalloc with its background thread, chosen on measurement (README.md,
/// "Memory"): the background thread gives freed memory back to the system
/// within seconds of a burst of large requests, where glibc's malloc keeps it in
/// its per-thread arenas and mimalloc keeps it until the thread allocates again;
/// and it is fast under threads in the static musl image, where musl's own
/// malloc is slow.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    imagegate::cli::run()
}
