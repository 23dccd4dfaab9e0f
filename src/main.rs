#![forbid(unsafe_code)]

/// mimalloc, chosen on measurement (README.md, "Memory"): it gives memory back
/// to the system after a burst of large requests (glibc's malloc keeps it in
/// per-thread arenas), and it is fast under threads in the static musl image,
/// where musl's own malloc is slow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    imagegate::cli::run()
}
